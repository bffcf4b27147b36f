import type { ClusterCounts, GlueAdapter } from '../adapters/adapter.js'
import { CLOSE_APP_MAX, CLOSE_APP_MIN, CLOSE_NORMAL, CLOSE_REASON_MAX_BYTES } from '../constants.js'
import {
  describe,
  FST_WSGLUE_INVALID_CLOSE_CODE,
  FST_WSGLUE_INVALID_CLOSE_REASON,
  FST_WSGLUE_INVALID_LISTENER,
  FST_WSGLUE_INVALID_SESSION_ID,
  FST_WSGLUE_INVALID_TOPIC,
  FST_WSGLUE_TOO_MANY_TOPICS
} from '../errors.js'
import type { Session } from '../sessions/live-session.js'
import type { SessionStore } from '../sessions/store.js'
import { encodeData } from '../wire/encode.js'
import { isTopic } from '../wire/protocol.js'
import { SESSION_EVENTS, type SessionEventMap, type SessionEventName, type SessionEvents } from './events.js'
import type { SessionGauges, SessionStats } from '../stats.js'

/** Options of `sessions.send()`. */
export interface SendOptions {
  /**
   * A volatile message is not sequenced, not kept for resume, and dropped (rather than closing the
   * socket) for a slow consumer: for data that is stale by the time it could be replayed.
   * @default false
   */
  volatile?: boolean
}

/** Options of `sessions.broadcast()` and `sessions.publish()`. */
export interface BroadcastOptions extends SendOptions {
  /** A session id whose sockets do not receive this message (typically the sender's). */
  except?: string
}

/**
 * `app.sessions`: push to browsers by session id, from any route handler or plugin. `Outbound` types
 * the data of `send`, `broadcast` and `publish`: `const sessions: Sessions<ServerMessage> = app.sessions`.
 */
export interface Sessions<Outbound = unknown> extends Iterable<Session> {
  /**
   * Sends `data` to every open socket of a session: a string as a text frame, a Buffer or
   * ArrayBuffer view as a binary frame (copied now, so reusing it later changes nothing), anything
   * else as JSON text.
   * A session that spoke glue.v1 and is within its grace period keeps the message for its client.
   * With the Redis adapter the message reaches the session's sockets on every node, asynchronously.
   * @returns how many sockets it was written to; 0 for an unknown or detached session (not an error).
   * With the Redis adapter always 0: delivery happens once Redis has numbered the message.
   * @throws FST_WSGLUE_INVALID_SESSION_ID, FST_WSGLUE_INVALID_DATA, FST_WSGLUE_CLUSTER_UNAVAILABLE
   */
  send (sessionId: string, data: Outbound, options?: SendOptions): number
  /**
   * Sends `data` to every open socket of every session (on every node), encoded once.
   * @returns how many sockets it was written to (0 with the Redis adapter: delivery is asynchronous).
   * @throws FST_WSGLUE_INVALID_DATA, FST_WSGLUE_INVALID_SESSION_ID (for a bad `except`), FST_WSGLUE_CLUSTER_UNAVAILABLE
   */
  broadcast (data: Outbound, options?: BroadcastOptions): number
  /**
   * Closes every socket of a session with a close frame.
   * @param code 1000 (the default) or 3000–4999.
   * @param reason at most 123 UTF-8 bytes.
   * @returns how many sockets started closing; 0 for an unknown session (always 0 with the Redis adapter).
   * @throws FST_WSGLUE_INVALID_SESSION_ID, FST_WSGLUE_INVALID_CLOSE_CODE, FST_WSGLUE_INVALID_CLOSE_REASON,
   * FST_WSGLUE_CLUSTER_UNAVAILABLE
   */
  close (sessionId: string, code?: number, reason?: string): number
  /**
   * Subscribes a session (all its tabs) to a topic. Membership ends with the session, after its
   * grace period.
   * @returns false when the session is not known here (no open socket, not within its grace period).
   * With the Redis adapter always true: the subscription is cluster-wide and lasts until the session
   * has had no socket on any node for the grace period (beyond `maxTopicsPerSession` it is dropped
   * with a warning, since the check there happens in Redis).
   * @throws FST_WSGLUE_INVALID_SESSION_ID, FST_WSGLUE_INVALID_TOPIC, FST_WSGLUE_TOO_MANY_TOPICS,
   * FST_WSGLUE_CLUSTER_UNAVAILABLE
   */
  subscribe (sessionId: string, topic: string): boolean
  /**
   * Unsubscribes a session from a topic.
   * @returns false when it was not subscribed (with the Redis adapter: as far as this node knows,
   * which is complete for the sessions with a socket here; the unsubscribe applies cluster-wide).
   * @throws FST_WSGLUE_INVALID_SESSION_ID, FST_WSGLUE_INVALID_TOPIC, FST_WSGLUE_CLUSTER_UNAVAILABLE
   */
  unsubscribe (sessionId: string, topic: string): boolean
  /**
   * Sends `data` to every socket of every session subscribed to `topic`, encoded once.
   * @returns how many sockets it was written to (0 with the Redis adapter: delivery is asynchronous).
   * @throws FST_WSGLUE_INVALID_TOPIC, FST_WSGLUE_INVALID_DATA, FST_WSGLUE_INVALID_SESSION_ID (for a bad `except`),
   * FST_WSGLUE_CLUSTER_UNAVAILABLE
   */
  publish (topic: string, data: Outbound, options?: BroadcastOptions): number
  /**
   * The topics a session is subscribed to. With the Redis adapter: as this node knows them, which is
   * complete for the sessions with a socket here; `clusterTopicsOf()` asks the cluster.
   */
  topicsOf (sessionId: string): string[]
  /**
   * How many sessions on this node are subscribed to a topic (all of them with the memory adapter);
   * `clusterSubscriberCount()` counts the whole cluster.
   */
  subscriberCount (topic: string): number
  /**
   * The topics a session is subscribed to, cluster-wide.
   * @throws FST_WSGLUE_CLUSTER_UNAVAILABLE (rejects) when Redis does not answer within `queryTimeout`.
   */
  clusterTopicsOf (sessionId: string): Promise<string[]>
  /**
   * How many sessions are subscribed to a topic, cluster-wide.
   * @throws FST_WSGLUE_CLUSTER_UNAVAILABLE (rejects) when Redis does not answer within `queryTimeout`.
   */
  clusterSubscriberCount (topic: string): Promise<number>
  /**
   * Open sockets of a session on every node (this node with the memory adapter); 0 when offline.
   * @throws FST_WSGLUE_CLUSTER_UNAVAILABLE (rejects) when Redis does not answer within `queryTimeout`.
   */
  presence (sessionId: string): Promise<number>
  /**
   * Live nodes, sessions with an open socket, and open sockets, over the whole cluster.
   * @throws FST_WSGLUE_CLUSTER_UNAVAILABLE (rejects) when Redis does not answer within `queryTimeout`.
   */
  clusterCounts (): Promise<ClusterCounts>
  /** Whether the session is known on this node: connected, or detached within its grace period. */
  isKnown (sessionId: string): boolean
  /** A snapshot of the counters (sockets, sessions, messages in and out, replays, gaps, closes). */
  stats (): SessionStats
  /**
   * Measures what this node holds right now: buffered bytes, outbox sizes, detached bytes and the
   * adapter's link. It walks every socket and session, so call it for a metrics scrape, not per message.
   */
  gauges (): Promise<SessionGauges>
  /** Whether the session has at least one open socket on this node. */
  has (sessionId: string): boolean
  /** The session with its open sockets, or undefined. */
  get (sessionId: string): Session | undefined
  /** How many sessions have at least one open socket. */
  readonly size: number
  /** Adds a listener; several plugins may listen to the same event. @throws FST_WSGLUE_INVALID_LISTENER */
  on<E extends SessionEventName> (event: E, listener: SessionEventMap[E]): Sessions<Outbound>
  /** Removes a listener added with `on()`. @throws FST_WSGLUE_INVALID_LISTENER */
  off<E extends SessionEventName> (event: E, listener: SessionEventMap[E]): Sessions<Outbound>
}

function assertSessionId (sessionId: unknown): asserts sessionId is string {
  if (typeof sessionId !== 'string' || sessionId === '') throw new FST_WSGLUE_INVALID_SESSION_ID(describe(sessionId))
}

function assertTopic (topic: unknown): asserts topic is string {
  if (!isTopic(topic)) throw new FST_WSGLUE_INVALID_TOPIC(describe(topic))
}

function assertCloseCode (code: number): void {
  if (!Number.isInteger(code) || (code !== CLOSE_NORMAL && (code < CLOSE_APP_MIN || code > CLOSE_APP_MAX))) {
    throw new FST_WSGLUE_INVALID_CLOSE_CODE(describe(code))
  }
}

function assertCloseReason (reason: unknown): asserts reason is string {
  if (typeof reason !== 'string' || Buffer.byteLength(reason) > CLOSE_REASON_MAX_BYTES) {
    throw new FST_WSGLUE_INVALID_CLOSE_REASON(
      typeof reason === 'string' ? `${Buffer.byteLength(reason)} bytes` : describe(reason))
  }
}

function assertListener (event: unknown, listener: unknown): void {
  if (!SESSION_EVENTS.includes(event as SessionEventName)) {
    throw new FST_WSGLUE_INVALID_LISTENER(`expected event to be one of ${SESSION_EVENTS.join(', ')}, got ${describe(event)}`)
  }
  if (typeof listener !== 'function') {
    throw new FST_WSGLUE_INVALID_LISTENER(`expected listener to be a function, got ${describe(listener)}`)
  }
}

/** Builds the `app.sessions` facade: validates arguments, then hands messages to the adapter and questions to the store. */
export function createSessions (
  store: SessionStore,
  adapter: GlueAdapter,
  events: SessionEvents,
  stats: SessionStats,
  limits: { readonly maxTopicsPerSession: number },
  gauges: () => Promise<SessionGauges>
): Sessions {
  const sessions: Sessions = {
    send (sessionId, data, options) {
      assertSessionId(sessionId)
      return adapter.emit({ kind: 'send', sessionId, data: encodeData(data), volatile: options?.volatile === true })
    },
    broadcast (data, options) {
      const except = options?.except
      if (except !== undefined) assertSessionId(except)
      return adapter.emit({ kind: 'broadcast', data: encodeData(data), except, volatile: options?.volatile === true })
    },
    subscribe (sessionId, topic) {
      assertSessionId(sessionId)
      assertTopic(topic)
      const count = store.topicCount(sessionId)
      if (count >= limits.maxTopicsPerSession && !store.isSubscribed(sessionId, topic)) {
        throw new FST_WSGLUE_TOO_MANY_TOPICS(`the session already has ${count} topics (maxTopicsPerSession)`)
      }
      return adapter.emit({ kind: 'subscribe', sessionId, topic }) === 1
    },
    unsubscribe (sessionId, topic) {
      assertSessionId(sessionId)
      assertTopic(topic)
      return adapter.emit({ kind: 'unsubscribe', sessionId, topic }) === 1
    },
    publish (topic, data, options) {
      assertTopic(topic)
      const except = options?.except
      if (except !== undefined) assertSessionId(except)
      return adapter.emit({ kind: 'publish', topic, data: encodeData(data), except, volatile: options?.volatile === true })
    },
    topicsOf (sessionId) {
      return store.topicsOf(sessionId)
    },
    subscriberCount (topic) {
      return store.subscriberCount(topic)
    },
    clusterTopicsOf (sessionId) {
      assertSessionId(sessionId)
      return adapter.clusterTopicsOf(sessionId)
    },
    clusterSubscriberCount (topic) {
      assertTopic(topic)
      return adapter.clusterSubscriberCount(topic)
    },
    presence (sessionId) {
      assertSessionId(sessionId)
      return adapter.presence(sessionId)
    },
    clusterCounts () {
      return adapter.clusterCounts()
    },
    close (sessionId, code = CLOSE_NORMAL, reason = '') {
      assertSessionId(sessionId)
      assertCloseCode(code)
      assertCloseReason(reason)
      return adapter.emit({ kind: 'close', sessionId, code, reason })
    },
    has (sessionId) {
      return store.get(sessionId) !== undefined
    },
    isKnown (sessionId) {
      return store.find(sessionId) !== undefined
    },
    stats () {
      return { ...stats, closesByCode: { ...stats.closesByCode } }
    },
    gauges,
    get (sessionId) {
      return store.get(sessionId)
    },
    get size () {
      return stats.sessions
    },
    on (event, listener) {
      assertListener(event, listener)
      events.on(event, listener)
      return sessions
    },
    off (event, listener) {
      assertListener(event, listener)
      events.off(event, listener)
      return sessions
    },
    [Symbol.iterator] () {
      return store.attached()
    }
  }
  return sessions
}
