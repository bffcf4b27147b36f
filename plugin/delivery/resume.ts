import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { WebSocket } from 'ws'
import type { GlueAdapter, SequencedAdapter, StreamPosition } from '../adapters/adapter.js'
import type { SessionStats } from '../stats.js'
import { envelopeFrame, Outbound, type StoredMessage } from '../messages/outbound.js'
import { Outbox } from '../messages/outbox.js'
import type { LiveSession } from '../sessions/live-session.js'
import { stateOf } from '../sessions/socket-state.js'
import type { SessionStore } from '../sessions/store.js'
import { gapEnvelope, welcomeEnvelope, type ResumePoint } from '../wire/protocol.js'
import { shownTopic } from '../users/channel.js'
import type { SocketWriter } from './socket-writer.js'

/** Resume limits, from the resolved options. */
export interface ResumeOptions {
  readonly outboxLimit: number
  readonly outboxMaxAge: number
  readonly sendHighWaterMark: number
}

const OPEN = 1

/**
 * The start of every glue.v1 socket: its welcome, then whatever it missed since its resume point,
 * before anything new. On one node the session's outbox holds the missed messages; in cluster mode
 * the sequencing adapter reads them back. Gaps are always announced, never skipped silently.
 */
export class Resume {
  readonly #store: SessionStore
  readonly #writer: SocketWriter
  readonly #options: ResumeOptions
  readonly #stats: SessionStats
  readonly #cluster: SequencedAdapter | undefined
  readonly #log: FastifyBaseLogger
  /** Cluster mode: the position a replayed topic message shows, for a topic that keeps history. */
  readonly #positionOf: (topic: string, epoch: string, seq: number) => string | undefined

  constructor (store: SessionStore, writer: SocketWriter, adapter: GlueAdapter, options: ResumeOptions, stats: SessionStats, log: FastifyBaseLogger,
    positionOf: (topic: string, epoch: string, seq: number) => string | undefined = () => undefined) {
    this.#positionOf = positionOf
    this.#store = store
    this.#writer = writer
    this.#options = options
    this.#stats = stats
    this.#cluster = adapter.sequenced ? adapter : undefined
    this.#log = log
  }

  /**
   * Welcomes a glue.v1 socket that just joined its session, and catches it up from `resume`. In
   * cluster mode this takes a round trip: the returned promise settles once the socket is live.
   */
  welcome (session: LiveSession, socket: WebSocket, resume: ResumePoint | undefined): Promise<void> | undefined {
    if (this.#cluster !== undefined) return this.#welcomeFromCluster(this.#cluster, session, socket, resume)
    this.#welcomeFromOutbox(session, socket, resume)
    return undefined
  }

  /**
   * Cluster mode: messages may have missed this node's sockets. Each glue.v1 socket of the affected
   * sessions is welcomed again from where this node left it (from 0 of a new epoch, with a gap,
   * when the shared store lost its data) and reads back what it missed, as a resume would.
   */
  resync (epoch: string, affects: (sessionId: string) => boolean = () => true, announced?: Promise<void>): void {
    const cluster = this.#cluster
    if (cluster === undefined) return
    for (const session of this.#store.attached()) {
      if (!affects(session.id)) continue
      const lost = session.epoch !== epoch
      const from = lost ? 0 : session.seq
      session.epoch = epoch
      session.seq = from
      for (const socket of session.sockets) {
        const state = stateOf(socket)
        // A socket still being welcomed reads back its own way.
        if (!state.enveloped || state.cursor !== undefined) continue
        this.#catchUpFromCluster(cluster, session, socket, { epoch, seq: from }, lost, announced).catch((err: unknown) => {
          this.#log.error({ err }, 'catching up a socket failed')
          if (socket.readyState === OPEN) socket.terminate()
        })
      }
    }
  }

  /**
   * Welcomes a live socket again at `from` and writes what the session missed since, then what
   * arrived meanwhile. Live messages are held from now on; the read-back waits for `announced`
   * (the node routed to again), so it covers everything the held messages could follow.
   */
  async #catchUpFromCluster (cluster: SequencedAdapter, session: LiveSession, socket: WebSocket, from: StreamPosition, lost: boolean, announced?: Promise<void>): Promise<void> {
    const state = stateOf(socket)
    state.held = []
    state.cursor = 0
    this.#writer.sendTo(socket, welcomeEnvelope(from.epoch, from.seq))
    if (lost) this.#announceGap(socket, null)
    if (announced !== undefined) await announced
    state.floor = await this.#replayFromCluster(cluster, session, socket, from.seq, Number.MAX_SAFE_INTEGER)
    this.#goLive(socket)
  }

  #welcomeFromOutbox (session: LiveSession, socket: WebSocket, resume: ResumePoint | undefined): void {
    if (session.epoch === undefined) {
      session.epoch = randomBytes(6).toString('base64url')
      if (this.#options.outboxLimit > 0) session.outbox = new Outbox(this.#options.outboxLimit)
    }
    const nextSeq = session.seq + 1
    // New tabs start from now; a resume from another epoch (restart, expiry) or from the future cannot be filled.
    if (resume === undefined || resume.epoch !== session.epoch || resume.seq >= nextSeq) {
      this.#writer.sendTo(socket, welcomeEnvelope(session.epoch, session.seq))
      if (resume !== undefined && (resume.epoch !== session.epoch || resume.seq >= nextSeq)) {
        this.#stats.gaps++
        this.#writer.sendTo(socket, gapEnvelope(null))
      }
      return
    }
    session.outbox?.trimBefore(Date.now() - this.#options.outboxMaxAge)
    const oldest = session.outbox?.oldestSeq(nextSeq) ?? nextSeq
    this.#writer.sendTo(socket, welcomeEnvelope(session.epoch, Math.max(resume.seq, oldest - 1)))
    stateOf(socket).cursor = resume.seq + 1
    this.#catchUp(session, socket)
  }

  /**
   * Replays a resuming socket from the outbox, as fast as it reads: it stops at the high-water mark
   * and goes on once drained. Meanwhile live messages skip the socket (they are in the outbox too),
   * so a long backlog neither floods memory nor is overtaken by new messages.
   */
  #catchUp (session: LiveSession, socket: WebSocket): void {
    const state = stateOf(socket)
    let cursor = state.cursor as number
    while (cursor <= session.seq && socket.readyState === OPEN) {
      if (this.#writer.buffered(socket) > this.#options.sendHighWaterMark) {
        state.cursor = cursor
        this.#writer.whenDrained(socket, () => {
          if (this.#store.get(session.id) === session) this.#catchUp(session, socket)
        })
        return
      }
      const oldest = session.outbox?.oldestSeq(session.seq + 1) ?? session.seq + 1
      if (cursor < oldest) {
        // Trimmed before this client got to it (limit or age): say how much is gone, never skip silently.
        this.#stats.gaps++
        this.#writer.sendTo(socket, gapEnvelope(oldest - cursor))
        cursor = oldest
        continue
      }
      const message = session.outbox?.get(cursor) as StoredMessage
      this.#stats.replayed++
      this.#writer.writeReplayed(socket, envelopeFrame(message, cursor))
      cursor++
    }
    state.cursor = undefined
  }

  /**
   * Cluster mode: the welcome waits for the adapter to say where the session stands once this node
   * receives its messages; live messages meanwhile are held. A resume then reads what the session
   * missed up to that point back from the adapter, and the held messages follow, so nothing
   * overtakes and nothing is written twice. A resume point the cluster never reached, from another
   * epoch, or of a session that expired, is answered with the current position and a gap.
   */
  async #welcomeFromCluster (cluster: SequencedAdapter, session: LiveSession, socket: WebSocket, resume: ResumePoint | undefined): Promise<void> {
    const state = stateOf(socket)
    state.held = []
    state.cursor = 0
    try {
      const position = await cluster.welcomePosition(session.id)
      if (socket.readyState !== OPEN) return
      if (session.epoch !== position.epoch) session.seq = 0
      session.epoch = position.epoch
      if (position.seq > session.seq) session.seq = position.seq
      state.floor = position.seq
      const fillable = resume !== undefined && position.known && resume.epoch === position.epoch && resume.seq <= position.seq
      if (!fillable) {
        this.#writer.sendTo(socket, welcomeEnvelope(position.epoch, position.seq))
        if (resume !== undefined) this.#announceGap(socket, null)
      } else {
        this.#writer.sendTo(socket, welcomeEnvelope(position.epoch, resume.seq))
        if (resume.seq < position.seq) await this.#replayFromCluster(cluster, session, socket, resume.seq, position.seq)
      }
      this.#goLive(socket)
    } catch (err) {
      this.#log.error({ err }, 'writing a resumed socket failed')
      if (socket.readyState === OPEN) socket.terminate()
    }
  }

  /**
   * Writes what the session missed after `afterSeq`, up to `untilSeq`, as the adapter reads it back,
   * with a gap when some is gone; returns the newest number written (at least `afterSeq`).
   */
  async #replayFromCluster (cluster: SequencedAdapter, session: LiveSession, socket: WebSocket, afterSeq: number, untilSeq: number): Promise<number> {
    let newest = afterSeq
    try {
      const result = await cluster.replay(session.id, afterSeq, untilSeq)
      if (socket.readyState !== OPEN) return newest
      if (result.missed !== 0) this.#announceGap(socket, result.missed)
      for (const { seq, message } of result.messages) {
        if (message.kind !== 'send' && message.kind !== 'broadcast' && message.kind !== 'publish') continue
        this.#stats.replayed++
        const position = message.kind === 'publish' && !message.data.binary ? this.#positionOf(message.topic, session.epoch ?? '', seq) : undefined
        this.#writer.writeEnvelope(socket, new Outbound(message.data, message.kind === 'publish' ? shownTopic(message.topic) : undefined, false, position).envelope(seq), false)
        newest = Math.max(newest, seq)
      }
    } catch (err) {
      this.#log.error({ err }, 'resume from the adapter failed')
      this.#announceGap(socket, null)
    }
    if (newest > session.seq) session.seq = newest
    return newest
  }

  #announceGap (socket: WebSocket, missed: number | null): void {
    this.#stats.gaps++
    this.#writer.sendTo(socket, gapEnvelope(missed))
  }

  /** Writes what was held while the socket was welcomed (what came after its floor), then lets live messages through. */
  #goLive (socket: WebSocket): void {
    const state = stateOf(socket)
    const held = state.held ?? []
    state.held = undefined
    state.cursor = undefined
    for (const [seq, envelope] of held) {
      if (seq > state.floor && socket.readyState === OPEN) this.#writer.writeEnvelope(socket, envelope, false)
    }
  }
}
