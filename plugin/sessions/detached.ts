import { BroadcastLog, type LoggedBroadcast } from './broadcast-log.js'
import type { AwayMessage, LiveSession } from './live-session.js'
import type { StoredMessage } from '../messages/outbound.js'
import { Outbox } from '../messages/outbox.js'
import { receives } from '../messages/recipients.js'
import type { SessionStats } from '../stats.js'

/** Limits of detached sessions, from the resolved options. */
export interface DetachedLimits {
  readonly outboxLimit: number
  readonly sessionGrace: number
  readonly maxDetachedSessions: number
  readonly maxDetachedBytes: number
}

/**
 * What one detached session is charged against `maxDetachedBytes`, beyond its messages: the session,
 * its Map entries, an empty outbox and its away state (measured at about 1.6 KiB of heap).
 */
export const DETACHED_SESSION_COST = 1600
/** What each kept message is charged: an outbox slot or an away entry; shared bodies are not charged. */
export const DETACHED_MESSAGE_COST = 48

function messageCost (message: StoredMessage): number {
  // Broadcast and topic bodies are shared by every outbox and bounded by the app's own traffic.
  return DETACHED_MESSAGE_COST + (message.shared ? 0 : message.body.length)
}

/**
 * The sessions that have no socket on this node but stay known for `sessionGrace`, so their
 * clients can resume. Whatever clients do, they hold at most `maxDetachedSessions` and
 * `maxDetachedBytes`: beyond that a session is released before its grace ends, and its client
 * sees a gap when it comes back. Sessions that have nothing to resume (they never received or
 * sent anything) go first, oldest first, so a flood of empty handshakes cannot push out the
 * sessions of real users. Broadcasts are logged once for all of them, so their cost does not grow
 * with the number of detached sessions.
 */
export class DetachedSessions {
  /** Detached sessions with something to resume, roughly in the order they left. */
  readonly #sessions = new Map<string, LiveSession>()
  /** Detached sessions that never received or sent anything, in the order they left. */
  readonly #idle = new Map<string, LiveSession>()
  readonly #log: BroadcastLog
  readonly #limits: DetachedLimits
  readonly #stats: SessionStats
  readonly #release: (session: LiveSession) => void
  /** Orders broadcasts and away messages, so a returning session numbers them as they were sent. */
  #order = 0
  #bytes = 0

  /** `release` forgets a session that left for good (grace over, or evicted). */
  constructor (limits: DetachedLimits, stats: SessionStats, release: (session: LiveSession) => void) {
    this.#limits = limits
    this.#stats = stats
    this.#release = release
    this.#log = new BroadcastLog(limits.outboxLimit)
  }

  get size (): number {
    return this.#sessions.size + this.#idle.size
  }

  /** Bytes charged to the detached budget. */
  get bytes (): number {
    return this.#bytes
  }

  get (sessionId: string): LiveSession | undefined {
    return this.#sessions.get(sessionId) ?? this.#idle.get(sessionId)
  }

  /**
   * Keeps a session whose last socket closed for its grace period. `idle` says it has nothing to
   * resume (it never received or sent anything, and has no topic).
   */
  detach (session: LiveSession, now: number, idle: boolean): void {
    let bytes = DETACHED_SESSION_COST
    for (const message of session.outbox?.messages() ?? []) bytes += messageCost(message)
    session.away = { releaseAt: now + this.#limits.sessionGrace, broadcastMark: this.#log.total, messages: [], dropped: 0, excepted: 0, bytes }
    ;(idle ? this.#idle : this.#sessions).set(session.id, session)
    this.#bytes += bytes
    this.#stats.detachedSessions++
    this.#enforceBudget()
  }

  /** A detached session was rotated: it is kept under its new id (`session.id` already carries it). */
  rekey (session: LiveSession, oldId: string): void {
    for (const sessions of [this.#idle, this.#sessions]) {
      if (sessions.get(oldId) !== session) continue
      sessions.delete(oldId)
      sessions.set(session.id, session)
    }
  }

  /** A detached session was revoked: it is released at once, and nothing waits for it any more. */
  release (session: LiveSession): void {
    if (this.get(session.id) !== session) return
    this.#forget(session)
    this.#release(session)
  }

  /** Keeps a message sent to a detached session until it comes back. */
  hold (session: LiveSession, message: StoredMessage, now: number): void {
    const away = session.away
    if (away === undefined) return
    // Something to resume now: evicted with the other sessions that have one, after the idle ones.
    if (this.#idle.delete(session.id)) this.#sessions.set(session.id, session)
    if (this.#limits.outboxLimit === 0) {
      away.dropped++
      return
    }
    away.messages.push({ order: ++this.#order, message, time: now })
    this.#charge(session, messageCost(message))
    if (away.messages.length > this.#limits.outboxLimit) {
      this.#charge(session, -messageCost((away.messages.shift() as AwayMessage).message))
      away.dropped++
    }
    this.#enforceBudget()
  }

  /** Logs a broadcast once for every detached session. */
  broadcast (message: StoredMessage, except: string | undefined, now: number): void {
    if (this.size === 0) return
    this.#log.push({ order: ++this.#order, message, time: now, except })
    const excluded = except === undefined ? undefined : this.get(except)?.away
    if (excluded !== undefined) excluded.excepted++
  }

  /**
   * Brings a session back: what it missed is numbered in the order it was sent and appended to its
   * outbox, from which its client catches up. Messages that no longer exist are numbered first,
   * so the outbox starts after them and the catch-up reports them as a gap of the right size.
   */
  reattach (session: LiveSession): void {
    const away = session.away
    if (away === undefined) return
    // Read before forgetting: the log is cleared once no session is detached.
    const { kept, dropped } = this.#log.since(away.broadcastMark)
    this.#forget(session)
    const broadcasts = kept.filter((entry) => receives({ kind: 'broadcast', except: entry.except }, session.id, noTopic))
    // Broadcasts dropped from the log that excluded this session were never meant for it.
    const lost = away.dropped + dropped - (away.excepted - (kept.length - broadcasts.length))
    if (lost > 0) {
      // Whatever was lost is newer than the outbox's messages, so they would be trimmed too.
      session.outbox?.clear()
      session.seq += lost
    }
    const outbox = session.outbox ?? (this.#limits.outboxLimit > 0 ? (session.outbox = new Outbox(this.#limits.outboxLimit)) : undefined)
    for (const entry of merge(broadcasts, away.messages)) outbox?.push(++session.seq, entry.message, entry.time)
  }

  /** Releases the sessions whose grace has ended, and drops broadcasts older than `cutoff`. */
  sweep (now: number, cutoff: number): void {
    for (const sessions of [this.#idle, this.#sessions]) {
      for (const session of sessions.values()) {
        if ((session.away?.releaseAt ?? 0) > now) continue
        this.#forget(session)
        this.#release(session)
      }
    }
    this.#log.trimBefore(cutoff)
  }

  #charge (session: LiveSession, bytes: number): void {
    (session.away as NonNullable<LiveSession['away']>).bytes += bytes
    this.#bytes += bytes
  }

  #forget (session: LiveSession): void {
    if (!this.#idle.delete(session.id)) this.#sessions.delete(session.id)
    this.#bytes -= session.away?.bytes ?? 0
    session.away = undefined
    this.#stats.detachedSessions--
    if (this.size === 0) this.#log.clear()
  }

  #enforceBudget (): void {
    for (const sessions of [this.#idle, this.#sessions]) {
      for (const session of sessions.values()) {
        if (this.size <= this.#limits.maxDetachedSessions && this.#bytes <= this.#limits.maxDetachedBytes) return
        this.#stats.detachedEvictions++
        this.#forget(session)
        this.#release(session)
      }
    }
  }
}

const noTopic = (): boolean => false

/** Broadcasts and away messages, each already in order, merged into the order they were sent. */
function * merge (broadcasts: readonly LoggedBroadcast[], messages: readonly AwayMessage[]): IterableIterator<AwayMessage> {
  let b = 0
  let m = 0
  while (b < broadcasts.length || m < messages.length) {
    const broadcast = broadcasts[b]
    const message = messages[m]
    if (message === undefined || (broadcast !== undefined && broadcast.order < message.order)) {
      b++
      yield broadcast as LoggedBroadcast
    } else {
      m++
      yield message
    }
  }
}
