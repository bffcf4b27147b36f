import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ClusterCounts, GlueAdapter } from '../adapters/adapter.js'
import { CLOSE_APP_MAX, CLOSE_APP_MIN, CLOSE_NORMAL, CLOSE_REASON_MAX_BYTES } from '../constants.js'
import {
  describe,
  FST_WSGLUE_INVALID_CLOSE_CODE,
  FST_WSGLUE_INVALID_CLOSE_REASON,
  FST_WSGLUE_INVALID_HISTORY_REQUEST,
  FST_WSGLUE_INVALID_LISTENER,
  FST_WSGLUE_INVALID_REQUEST,
  FST_WSGLUE_INVALID_SESSION_ID,
  FST_WSGLUE_INVALID_TOPIC,
  FST_WSGLUE_INVALID_USER_ID,
  FST_WSGLUE_TOO_MANY_TOPICS
} from '../errors.js'
import { isUserChannel, isUserId, userChannel } from '../users/channel.js'
import type { UserSessions } from '../users/users.js'
import type { Session } from '../sessions/live-session.js'
import type { SessionStore } from '../sessions/store.js'
import { encodeData } from '../wire/encode.js'
import { isTopic } from '../wire/protocol.js'
import { SESSION_EVENTS, type SessionEventMap, type SessionEventName, type SessionEvents } from './events.js'
import type { SessionGauges, SessionStats } from '../stats.js'
import type { TopicHistory, TopicHistoryReplies } from '../delivery/topic-history.js'
import { parseHistoryRequest } from '../topics/position.js'
import type { MemberList, TopicPresence } from '../topics/presence.js'

/** Options of `sessions.history()`: at most the last `last` messages, only those after the position `since`. */
export interface HistoryOptions {
  /** At most this many, the newest (clamped to the topic's `limit`). @default the topic's limit */
  last?: number
  /** A position (`"<epoch>.<n>"`, as clients and `history()` see them): only what came after it. @default undefined */
  since?: string
}

/** Topic history and presence, for `app.sessions`. */
export interface SessionsTopics {
  readonly history: TopicHistoryReplies
  readonly presence: TopicPresence
}
import type { Pipe, PipeStats } from '../streams/pipe.js'
import type { PipeOptions, PipeSource, PipeTarget } from '../streams/pipe-options.js'
import type { Pipes } from '../streams/pipes.js'

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
  /**
   * Logs the browser of `request` in as `userId`, in a login route: its session moves to a new id
   * bound to the user, whose cookie is set on `reply`. Its open sockets stay open and continue under
   * the new id with their outbox and topics; the old id is refused from now on, on every node
   * (session fixation). Without a session, one is minted. `request.sessionId` holds the new id.
   * @returns the new session id.
   * @throws FST_WSGLUE_INVALID_USER_ID, FST_WSGLUE_INVALID_REQUEST (not an HTTP request and its
   * unsent reply), FST_WSGLUE_CLUSTER_UNAVAILABLE
   */
  login (request: FastifyRequest, reply: FastifyReply, userId: string): string
  /**
   * Logs the browser of `request` out: its session is revoked (its sockets close with 3000, its
   * cookie is refused on every node) and the cookie is deleted on `reply`. Does nothing more for a
   * request without a session.
   * @throws FST_WSGLUE_INVALID_REQUEST, FST_WSGLUE_CLUSTER_UNAVAILABLE
   */
  logout (request: FastifyRequest, reply: FastifyReply): void
  /**
   * Revokes a session: its sockets close with 3000 (the shipped client does not come back) and its
   * cookie is refused on every node until it would have expired anyway.
   * @returns the sockets that started closing (0 for an unknown session; always 0 with Redis).
   * @throws FST_WSGLUE_INVALID_SESSION_ID, FST_WSGLUE_CLUSTER_UNAVAILABLE
   */
  revoke (sessionId: string): number
  /**
   * Revokes every session of a user ("log out everywhere"): every cookie bound to the user issued
   * until now is refused, and the sockets of its sessions close with 3000.
   * @returns the sockets that started closing (always 0 with Redis).
   * @throws FST_WSGLUE_INVALID_USER_ID, FST_WSGLUE_CLUSTER_UNAVAILABLE
   */
  revokeUser (userId: string): number
  /**
   * Sends `data` to every session bound to a user (all their tabs and devices), as `send` does to
   * one: numbered per session, kept for resume, a plain message (`m`) on the client.
   * @returns how many sockets it was written to (0 with the Redis adapter: delivery is asynchronous).
   * @throws FST_WSGLUE_INVALID_USER_ID, FST_WSGLUE_INVALID_DATA, FST_WSGLUE_CLUSTER_UNAVAILABLE
   */
  sendToUser (userId: string, data: unknown, options?: SendOptions): number
  /**
   * Closes every socket of every session bound to a user, like `close()`.
   * @returns how many sockets started closing (always 0 with the Redis adapter).
   * @throws FST_WSGLUE_INVALID_USER_ID, FST_WSGLUE_INVALID_CLOSE_CODE, FST_WSGLUE_INVALID_CLOSE_REASON,
   * FST_WSGLUE_CLUSTER_UNAVAILABLE
   */
  closeUser (userId: string, code?: number, reason?: string): number
  /**
   * The ids of the sessions bound to a user: on one node every one this node knows (connected, or
   * detached within its grace period); with the Redis adapter those with a socket here.
   * `clusterSessionsOf()` asks the cluster.
   * @throws FST_WSGLUE_INVALID_USER_ID
   */
  sessionsOf (userId: string): string[]
  /**
   * The ids of the sessions bound to a user, cluster-wide: connected somewhere, or within their grace period.
   * @throws FST_WSGLUE_INVALID_USER_ID; FST_WSGLUE_CLUSTER_UNAVAILABLE (rejects) when Redis does not answer within `queryTimeout`.
   */
  clusterSessionsOf (userId: string): Promise<string[]>
  /**
   * A topic's kept messages (see `topicHistory`), oldest first, with their positions: all, the last
   * `last`, or those after `since`; `missed` counts what was asked for and is gone (null: unknown).
   * With Redis, the history as the first shard numbered it. A topic without history returns none.
   * @throws FST_WSGLUE_INVALID_TOPIC, FST_WSGLUE_INVALID_HISTORY_REQUEST; rejects with
   * FST_WSGLUE_CLUSTER_UNAVAILABLE when Redis does not answer within `queryTimeout`.
   */
  history (topic: string, options?: HistoryOptions): Promise<TopicHistory>
  /**
   * Who is subscribed to a topic that shows presence (`topicPresence`), cluster-wide: user ids for
   * sessions bound to a user, opaque ids otherwise, each member once; at most `maxMembers` of them,
   * and `count` of all. A topic without presence has none.
   * @throws FST_WSGLUE_INVALID_TOPIC; rejects with FST_WSGLUE_CLUSTER_UNAVAILABLE when Redis does not answer.
   */
  members (topic: string): Promise<MemberList>
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
  /**
   * Feeds a topic, a session or a user from a source: an async iterable (a Redis Stream, Kafka or
   * NATS consumer, a Node stream), an iterable, or a factory returning one, which the pipe calls
   * again to restart after an error. The pipe reads the next item once the plugin has accepted the
   * previous ones (at most `maxInFlight` waiting); slow browsers are the slow-consumer policy's job.
   * Errors are logged with the pipe's name and restart it per `restart`; `app.close()` stops it.
   * @returns the running pipe: `stop()`, `done`, `stats()`.
   * @throws FST_WSGLUE_INVALID_PIPE for a bad source, target or option, or while the app closes
   */
  pipe<T> (source: PipeSource<T>, target: PipeTarget<T>, options?: PipeOptions<T, Outbound>): Pipe
  /** The counters of every pipe still running (or waiting to restart). */
  pipes (): PipeStats[]
  /** Adds a listener; several plugins may listen to the same event. @throws FST_WSGLUE_INVALID_LISTENER */
  on<E extends SessionEventName> (event: E, listener: SessionEventMap[E]): Sessions<Outbound>
  /** Removes a listener added with `on()`. @throws FST_WSGLUE_INVALID_LISTENER */
  off<E extends SessionEventName> (event: E, listener: SessionEventMap[E]): Sessions<Outbound>
}

function assertSessionId (sessionId: unknown): asserts sessionId is string {
  if (typeof sessionId !== 'string' || sessionId === '') throw new FST_WSGLUE_INVALID_SESSION_ID(describe(sessionId))
}

function assertUserId (userId: unknown): asserts userId is string {
  if (!isUserId(userId)) throw new FST_WSGLUE_INVALID_USER_ID(describe(userId))
}

/** login() and logout() set a cookie: they need an HTTP request and the reply that has not gone yet. */
function assertHttpExchange (request: unknown, reply: unknown): asserts request is FastifyRequest {
  const candidate = request as Partial<FastifyRequest> | null
  const response = reply as Partial<FastifyReply> | null
  if (typeof candidate !== 'object' || candidate === null || typeof candidate.raw !== 'object' ||
    typeof response !== 'object' || response === null || typeof response.header !== 'function') {
    throw new FST_WSGLUE_INVALID_REQUEST('expected the Fastify request and reply of a route')
  }
  if (response.sent === true) throw new FST_WSGLUE_INVALID_REQUEST('the reply was already sent; log in or out before replying')
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
  gauges: () => Promise<SessionGauges>,
  users: UserSessions,
  topics: SessionsTopics,
  pipes: Pipes
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
      return store.appTopicsOf(sessionId)
    },
    subscriberCount (topic) {
      return store.subscriberCount(topic)
    },
    clusterTopicsOf (sessionId) {
      assertSessionId(sessionId)
      return adapter.clusterTopicsOf(sessionId).then((topics) => topics.filter((topic) => !isUserChannel(topic)))
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
    login (request, reply, userId) {
      assertHttpExchange(request, reply)
      assertUserId(userId)
      return users.rotate(request, reply, userId)
    },
    logout (request, reply) {
      assertHttpExchange(request, reply)
      users.logout(request, reply)
    },
    revoke (sessionId) {
      assertSessionId(sessionId)
      return users.revoke(sessionId)
    },
    revokeUser (userId) {
      assertUserId(userId)
      return users.revokeUser(userId)
    },
    sendToUser (userId, data, options) {
      assertUserId(userId)
      return adapter.emit({ kind: 'publish', topic: userChannel(userId), data: encodeData(data), except: undefined, volatile: options?.volatile === true })
    },
    closeUser (userId, code = CLOSE_NORMAL, reason = '') {
      assertUserId(userId)
      assertCloseCode(code)
      assertCloseReason(reason)
      return adapter.emit({ kind: 'closeUser', userId, code, reason })
    },
    sessionsOf (userId) {
      assertUserId(userId)
      return store.sessionsOfUser(userId)
    },
    clusterSessionsOf (userId) {
      assertUserId(userId)
      return adapter.clusterSessionsOf(userId)
    },
    has (sessionId) {
      return store.get(sessionId) !== undefined
    },
    history (topic, options) {
      assertTopic(topic)
      const request = parseHistoryRequest(options ?? {})
      if (request === undefined) throw new FST_WSGLUE_INVALID_HISTORY_REQUEST(describe(options))
      return topics.history.read(topic, request)
    },
    members (topic) {
      assertTopic(topic)
      return topics.presence.members(topic)
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
    pipe (source, target, options) {
      return pipes.start(source, target, options)
    },
    pipes () {
      return pipes.list()
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
