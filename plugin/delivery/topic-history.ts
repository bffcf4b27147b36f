import type { FastifyBaseLogger } from 'fastify'
import type { WebSocket } from 'ws'
import type { GlueAdapter, SequencedAdapter, TopicHistoryResult } from '../adapters/adapter.js'
import { HISTORY_MESSAGES_PER_TOKEN } from '../constants.js'
import { chargeRate } from '../connection/rate-limit.js'
import type { Session } from '../sessions/live-session.js'
import { stateOf } from '../sessions/socket-state.js'
import type { SessionStats } from '../stats.js'
import type { TopicHistories } from '../topics/history.js'
import { formatPosition, type HistoryRequest } from '../topics/position.js'
import type { TopicRules } from '../topics/rules.js'
import { historyEnvelope, historyLostEnvelope } from '../wire/protocol.js'
import type { SocketWriter } from './socket-writer.js'

const OPEN = 1

/** A topic's history as `sessions.history()` returns it. */
export interface TopicHistory {
  /** Kept messages, oldest first: their position and their data (a string, or the JSON value). */
  readonly messages: Array<{ readonly position: string, readonly data: unknown }>
  /** Messages asked for that are gone (limit, age, memory budget); null when unknown. */
  readonly missed: number | null
}

/**
 * Writes a topic's history to a socket that subscribed asking for it, before anything live of the
 * topic: on one node from this node's histories, in the same tick as the subscription (nothing can
 * come between); in cluster mode from the shared store, while the socket holds the topic's live
 * messages and then writes only those numbered after the history (no duplicate, no loss at the seam).
 */
export class TopicHistoryReplies {
  readonly #rules: TopicRules
  readonly #histories: TopicHistories
  readonly #writer: SocketWriter
  readonly #cluster: SequencedAdapter | undefined
  readonly #stats: SessionStats
  readonly #log: FastifyBaseLogger

  constructor (rules: TopicRules, histories: TopicHistories, writer: SocketWriter, adapter: GlueAdapter, stats: SessionStats, log: FastifyBaseLogger) {
    this.#rules = rules
    this.#histories = histories
    this.#writer = writer
    this.#cluster = adapter.sequenced && adapter.topicHistory !== undefined ? adapter : undefined
    this.#stats = stats
    this.#log = log
  }

  /** Cluster mode: from now on the socket holds the topic's live messages (call before the subscription is emitted). */
  hold (socket: WebSocket, topic: string): void {
    if (this.#cluster === undefined) return
    const state = stateOf(socket)
    state.topicHolds ??= new Map()
    state.topicHolds.set(topic, { held: [], floor: undefined })
  }

  /**
   * Lets the topic's live messages through again: those held and numbered after `after` are
   * written; later ones at or below it (this node's inbox may lag behind the history it read) are skipped.
   */
  release (socket: WebSocket, topic: string, after: number): void {
    const hold = stateOf(socket).topicHolds?.get(topic)
    if (hold === undefined || hold.floor !== undefined) return
    hold.floor = after
    for (const [seq, envelope] of hold.held.splice(0)) {
      if (seq > after && socket.readyState === OPEN) this.#writer.writeEnvelope(socket, envelope, false)
    }
  }

  /** Writes what the client asked of the topic's history, right after its subscribe reply. */
  serve (session: Session, socket: WebSocket, topic: string, request: HistoryRequest): void {
    this.#stats.historyRequests++
    const limits = this.#rules.historyOf(topic)
    const cluster = this.#cluster
    if (limits === undefined) {
      // The topic keeps nothing and numbers nothing: the reply alone answers.
      this.release(socket, topic, 0)
      return
    }
    if (cluster === undefined) {
      const answer = this.#histories.read(topic, limits, request, Date.now())
      this.#write(socket, topic, answer.missed, answer.entries)
      return
    }
    (cluster.topicHistory as NonNullable<SequencedAdapter['topicHistory']>)(topic, request, limits, session.id).then((result: TopicHistoryResult) => {
      if (socket.readyState !== OPEN) return
      const entries = result.entries.map(({ n, json }) => ({ position: formatPosition(result.epoch, n), json }))
      this.#write(socket, topic, result.missed, entries)
      // Live messages numbered up to the newest entry read were in the history (or came before it).
      this.release(socket, topic, result.entries.at(-1)?.n ?? 0)
    }, (err: unknown) => {
      this.#log.warn({ err, topic }, 'reading a topic history failed')
      this.#writeLost(socket, topic, null)
      this.release(socket, topic, 0)
    })
  }

  /** `sessions.history()`: what the app asks of a topic's history (one node: this node's; cluster: the first shard's). */
  async read (topic: string, request: HistoryRequest): Promise<TopicHistory> {
    const limits = this.#rules.historyOf(topic)
    if (limits === undefined) return { messages: [], missed: 0 }
    const cluster = this.#cluster
    const answer = cluster === undefined
      ? this.#histories.read(topic, limits, request, Date.now())
      : await (cluster.topicHistory as NonNullable<SequencedAdapter['topicHistory']>)(topic, request, limits).then((result) => ({
        missed: result.missed,
        entries: result.entries.map(({ n, json }) => ({ position: formatPosition(result.epoch, n), json }))
      }))
    return { missed: answer.missed, messages: answer.entries.map(({ position, json }) => ({ position, data: JSON.parse(json) as unknown })) }
  }

  #write (socket: WebSocket, topic: string, missed: number | null, entries: ReadonlyArray<{ position: string, json: string }>): void {
    if (missed !== 0) this.#writeLost(socket, topic, missed)
    for (const { position, json } of entries) this.#writer.sendTo(socket, historyEnvelope(topic, position, json))
    this.#stats.historyMessages += entries.length
    // A history costs the client's rate limit in proportion to its size.
    chargeRate(socket, Math.floor(entries.length / HISTORY_MESSAGES_PER_TOKEN))
  }

  #writeLost (socket: WebSocket, topic: string, missed: number | null): void {
    this.#stats.gaps++
    this.#writer.sendTo(socket, historyLostEnvelope(topic, missed))
  }
}
