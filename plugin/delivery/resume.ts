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

  constructor (store: SessionStore, writer: SocketWriter, adapter: GlueAdapter, options: ResumeOptions, stats: SessionStats, log: FastifyBaseLogger) {
    this.#store = store
    this.#writer = writer
    this.#options = options
    this.#stats = stats
    this.#cluster = adapter.sequenced ? adapter : undefined
    this.#log = log
  }

  /** Welcomes a glue.v1 socket that just joined its session, and catches it up from `resume`. */
  welcome (session: LiveSession, socket: WebSocket, resume: ResumePoint | undefined): void {
    if (this.#cluster !== undefined) this.#welcomeFromCluster(this.#cluster, session, socket, resume)
    else this.#welcomeFromOutbox(session, socket, resume)
  }

  /** Cluster mode: the shared delivery state restarted or skipped ahead; every glue.v1 client hears of it. */
  resync (position: StreamPosition): void {
    for (const session of this.#store.attached()) {
      for (const socket of session.sockets) {
        if (!stateOf(socket).enveloped) continue
        this.#stats.gaps++
        this.#writer.sendTo(socket, welcomeEnvelope(position.epoch, position.seq))
        this.#writer.sendTo(socket, gapEnvelope(null))
      }
    }
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
   * Cluster mode: the welcome carries this node's position in the cluster order. A resume reads
   * what the session missed from the adapter; live messages meanwhile are held for this socket and
   * written after the replay, so nothing overtakes and nothing is written twice.
   */
  #welcomeFromCluster (cluster: SequencedAdapter, session: LiveSession, socket: WebSocket, resume: ResumePoint | undefined): void {
    const position = cluster.position()
    session.epoch = position.epoch
    if (resume === undefined || resume.epoch !== position.epoch || resume.seq >= position.seq) {
      // A client ahead of this node (it came from a node further along) gets the rest live.
      const start = resume !== undefined && resume.epoch === position.epoch ? resume.seq : position.seq
      this.#writer.sendTo(socket, welcomeEnvelope(position.epoch, start))
      if (resume !== undefined && resume.epoch !== position.epoch) {
        this.#stats.gaps++
        this.#writer.sendTo(socket, gapEnvelope(null))
      }
      return
    }
    const state = stateOf(socket)
    this.#writer.sendTo(socket, welcomeEnvelope(position.epoch, resume.seq))
    state.held = []
    state.cursor = resume.seq + 1
    const announceGap = (missed: number | null): void => {
      if (missed !== 0) {
        this.#stats.gaps++
        this.#writer.sendTo(socket, gapEnvelope(missed))
      }
    }
    cluster.replay(session.id, resume.seq, position.seq).then((result) => {
      if (socket.readyState !== OPEN) return
      announceGap(result.missed)
      for (const { seq, message } of result.messages) {
        if (message.kind !== 'send' && message.kind !== 'broadcast' && message.kind !== 'publish') continue
        this.#stats.replayed++
        this.#writer.writeEnvelope(socket, new Outbound(message.data, message.kind === 'publish' ? message.topic : undefined, false).envelope(seq), false)
      }
    }, (err: unknown) => {
      this.#log.error({ err }, 'resume from the adapter failed')
      announceGap(null)
    }).finally(() => {
      const held = state.held ?? []
      state.held = undefined
      state.cursor = undefined
      for (const envelope of held) {
        if (socket.readyState === OPEN) this.#writer.writeEnvelope(socket, envelope, false)
      }
    }).catch((err: unknown) => {
      this.#log.error({ err }, 'writing a resumed socket failed')
      if (socket.readyState === OPEN) socket.terminate()
    })
  }
}
