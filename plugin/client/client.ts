// The GlueClient class: its public methods, and the life cycle of its sockets. The wire format,
// reconnection, queue, replies, topics, inbound frames and listeners each live in their own module.
import { CLOSE_NORMAL, CLOSE_REVOKED } from './constants.js'
import { GLUE_PROTOCOL, toFrame, type GlueSendData, type Outgoing } from './envelope.js'
import { clientClosed, CLOSED, GlueClientError, protocolUnavailable, type Failure } from './errors.js'
import { GlueEmitter, type GlueClientEventMap, type GlueListener, type GlueState, type GlueTopicListener } from './events.js'
import { Inbound } from './inbound.js'
import { OfflineQueue } from './offline-queue.js'
import {
  checkCloseArguments, checkDelay, isDoNotComeBack, resolveClientOptions,
  type GlueClientOptions, type GlueRequestOptions, type ResolvedClientOptions
} from './options.js'
import { Reconnection } from './reconnection.js'
import { Replies } from './replies.js'
import { OPEN, type GlueSocket } from './socket.js'
import { Subscriptions } from './subscriptions.js'
import { TopicPositions } from './topic-positions.js'
import type { GlueMemberList } from './events.js'

/** Options of `subscribe()`. */
export interface GlueSubscribeOptions {
  /**
   * Ask for the topic's history (a topic the server keeps history for): `true` for everything kept,
   * `{ last: k }` for the newest k. It arrives after the subscription is confirmed and before live
   * messages, each a topic event with `history: true`; what is gone is a `gap` event with the topic.
   * After a reconnect the client asks only for what came after the last message it delivered.
   * @default false
   */
  history?: boolean | { last?: number }
}

/**
 * A websocket that comes back by itself: reconnects with backoff, resumes the session's messages
 * where it left off (each delivered once, in order, or a `gap` event), queues while offline,
 * restores topic subscriptions, and answers requests through the glue.v1 protocol.
 *
 * @example
 * const glue = new GlueClient()
 * glue.on('message', (event) => show(event.data))
 * glue.onTopic('news', (event) => show(event.data))
 * await glue.subscribe('news')
 * const time = await glue.request({ op: 'time' })
 */
export class GlueClient {
  /** The default `doNotComeBack` rule: 1008 (policy violation), 3000 (revoked) and the application range 4000-4099. */
  static readonly isDoNotComeBack = isDoNotComeBack

  /** The websocket URL the client connects to. */
  readonly url: string
  readonly #options: ResolvedClientOptions
  readonly #events = new GlueEmitter()
  readonly #reconnection: Reconnection
  readonly #queue: OfflineQueue
  readonly #replies = new Replies()
  readonly #positions = new TopicPositions()
  readonly #subscriptions = new Subscriptions(this.#replies, (error) => { this.#events.emit('error', error) }, this.#positions)
  readonly #inbound: Inbound

  #state: GlueState = 'closed'
  #socket: GlueSocket | null = null
  #protocol = ''

  /**
   * Creates the client and, unless `autoConnect` is false, starts connecting.
   * @throws GLUE_INVALID_OPTION (a GlueClientError) when an option breaks its rule, or no WebSocket is available
   */
  constructor (options: GlueClientOptions = {}) {
    this.#options = resolveClientOptions(options)
    this.url = this.#options.url
    // A `reconnecting` listener may have called close(), which wins over the retry.
    const retry = (): void => { if (this.#state === 'reconnecting') this.#open('reconnecting') }
    this.#reconnection = new Reconnection(this.#options, (event) => { this.#events.emit('reconnecting', event) }, retry)
    this.#queue = new OfflineQueue(this.#options.maxQueue)
    this.#inbound = new Inbound(this.#events, this.#replies, this.#options.resume, this.#positions)
    if (this.#options.autoConnect) this.connect()
  }

  /** Where the client is: 'connecting', 'open', 'reconnecting' (waiting or retrying after a drop) or 'closed'. */
  get state (): GlueState {
    return this.#state
  }

  /** How many messages and requests wait for the next connection. */
  get queued (): number {
    return this.#queue.length
  }

  /** The subprotocol the server selected for the latest socket: 'glue.v1', or '' (plain frames) before the first open and in raw mode. */
  get protocol (): string {
    return this.#protocol
  }

  /**
   * The session's sequence number up to which messages are processed, over all connections: the
   * latest numbered glue.v1 message or topic message, or where the server's welcome started this
   * client (0 before the first welcome). Volatile messages (`seq` 0) do not change it.
   */
  get lastSeq (): number {
    return this.#inbound.lastSeq
  }

  /**
   * The server's name for the session's delivery state, from the latest welcome; a reconnect sends
   * it with `lastSeq` to resume. Undefined before the first glue.v1 welcome.
   */
  get epoch (): string | undefined {
    return this.#inbound.epoch
  }

  /**
   * Opens the connection after `close()`, a "do not come back" close, or `autoConnect: false`. While
   * reconnecting, ends the wait: the next attempt starts at once. Does nothing otherwise.
   */
  connect (): void {
    if (this.#state === 'reconnecting') this.#reconnection.retryNow()
    if (this.#state !== 'closed') return
    this.#reconnection.reset()
    this.#open('connecting')
  }

  /**
   * Sends now when open; queues while connecting or reconnecting.
   * Strings and binary go out as they are; other values as JSON text (on glue.v1, inside a message envelope).
   * @returns true when sent or queued; false when the queue is full (`GLUE_QUEUE_FULL`) or the client is closed (`GLUE_CLOSED`), each also emitted as an `error` event
   * @throws TypeError when `data` cannot be turned into JSON
   */
  send (data: GlueSendData): boolean {
    const error = this.#push([0, toFrame(data), typeof data === 'string'], data)
    if (error !== undefined) this.#events.emit('error', error)
    return error === undefined
  }

  /**
   * Asks the server's `onRequest` hook and resolves with its reply. Sent now when open; queued
   * (counting toward `maxQueue`) while connecting or reconnecting.
   * Rejects with a GlueClientError: the server's code and message (`GLUE_REQUEST_FAILED`, an exposed
   * error's code, `GLUE_NO_HANDLER`), `GLUE_TIMEOUT`, `GLUE_DISCONNECTED` (the socket closed after
   * sending), `GLUE_CLOSED`, `GLUE_QUEUE_FULL` or `GLUE_PROTOCOL_UNAVAILABLE` (raw mode).
   * @param data any JSON value
   */
  request<T = unknown> (data: unknown, options: GlueRequestOptions = {}): Promise<T> {
    return new Promise((resolve, reject) => {
      const timeout = checkDelay('timeout', options.timeout ?? this.#options.requestTimeout)
      const json: string | undefined = JSON.stringify(data)
      if (json === undefined) throw new TypeError(`Expected request \`data\` to be JSON-serialisable, got ${typeof data}`)
      const unusable = this.#unusable()
      if (unusable !== undefined) throw unusable
      const id = this.#replies.nextId()
      // A request that times out while queued is never sent.
      this.#replies.waitAtMost(id, timeout, () => { this.#queue.remove(id) }, (failure, value) => {
        if (failure === null) resolve(value as T)
        else reject(new GlueClientError(failure.code, failure.message, data))
      })
      const error = this.#push([id, json, false], data)
      if (error !== undefined) this.#replies.settle(id, error)
    })
  }

  /**
   * Subscribes the session to a topic; resolves once the server agreed. Sent now when open, else on
   * the next open. Add the listener with `onTopic()`. The subscription is restored after every
   * reconnect; a refusal then is an `error` event.
   * Rejects with a GlueClientError: `GLUE_SUBSCRIBE_REFUSED`, `GLUE_SUBSCRIBE_FAILED`, `GLUE_BAD_ENVELOPE`
   * (an invalid topic or history request), `GLUE_UNSUBSCRIBED`, `GLUE_CLOSED` or `GLUE_PROTOCOL_UNAVAILABLE`.
   */
  subscribe (topic: string, options: GlueSubscribeOptions = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      const unusable = this.#unusable()
      if (unusable !== undefined) throw unusable
      const history = options.history
      this.#subscriptions.wantHistory(topic, history === undefined || history === false ? undefined : history === true ? {} : { ...history })
      this.#subscriptions.want(topic, { resolve, reject })
      // Otherwise every wanted topic is sent on open.
      const socket = this.#live()
      if (socket !== null) this.#subscriptions.subscribe(socket, topic)
    })
  }

  /**
   * Unsubscribes the session from a topic and stops restoring it; resolves with the server's answer
   * (whether the session was subscribed). Sent now when open, else on the next open. Topic listeners stay.
   * A `subscribe()` of the topic still waiting for its answer rejects with `GLUE_UNSUBSCRIBED`.
   * Rejects with a GlueClientError: `GLUE_BAD_ENVELOPE` (an invalid topic), `GLUE_CLOSED` or `GLUE_PROTOCOL_UNAVAILABLE`.
   */
  unsubscribe (topic: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const unusable = this.#unusable()
      if (unusable !== undefined) throw unusable
      this.#subscriptions.unwant(topic, { resolve, reject })
      const socket = this.#live()
      if (socket !== null) this.#subscriptions.unsubscribe(socket, topic)
    })
  }

  /**
   * The members of a topic that shows presence (the server's `topicPresence`), as the server counts
   * them now: each member once (a user id, or an opaque id for an anonymous session), at most the
   * server's `maxMembers`, with `count` of all. Follow changes with the `join`, `leave` and
   * `membersstale` events. The session must be subscribed to the topic.
   * Rejects with a GlueClientError: `GLUE_NO_PRESENCE`, `GLUE_NOT_SUBSCRIBED`, `GLUE_UNAVAILABLE`,
   * `GLUE_DISCONNECTED` (not connected now), `GLUE_CLOSED` or `GLUE_PROTOCOL_UNAVAILABLE`.
   */
  members (topic: string): Promise<GlueMemberList> {
    return new Promise((resolve, reject) => {
      const unusable = this.#unusable()
      if (unusable !== undefined) throw unusable
      const socket = this.#live()
      if (socket === null) throw new GlueClientError('GLUE_DISCONNECTED', 'members() needs an open connection', topic)
      this.#subscriptions.members(socket, topic, (failure, value) => {
        if (failure === null) resolve(value as GlueMemberList)
        else reject(new GlueClientError(failure.code, failure.message, topic))
      })
    })
  }

  /** The topics the client wants: subscribed, being subscribed, or to be restored on the next connection. */
  get topics (): string[] {
    return this.#subscriptions.wanted
  }

  /**
   * Closes the connection and stays closed until `connect()`. Queued messages and subscriptions are
   * kept for that `connect()`; what waits for the server (queued requests, unanswered requests,
   * subscribe and unsubscribe calls) rejects with `GLUE_CLOSED`, or `GLUE_DISCONNECTED` for a
   * request already sent.
   * @throws GlueClientError GLUE_INVALID_OPTION when the code is not 1000 or 3000-4999, or the reason is over 123 bytes
   */
  close (code: number = CLOSE_NORMAL, reason = ''): void {
    checkCloseArguments(code, reason)
    this.#reconnection.stop()
    const socket = this.#socket
    this.#setState('closed')
    // The socket's own close event still arrives and is reported as the `close` event.
    if (socket !== null) socket.close(code, reason)
  }

  /** Adds a listener for an event. */
  on<K extends keyof GlueClientEventMap> (type: K, listener: GlueListener<K>): this {
    this.#events.listen(type, listener, true)
    return this
  }

  /** Removes a listener added with `on()`. */
  off<K extends keyof GlueClientEventMap> (type: K, listener: GlueListener<K>): this {
    this.#events.listen(type, listener, false)
    return this
  }

  /** Adds a listener for the messages of one topic. Listening does not subscribe: call `subscribe()`. */
  onTopic (topic: string, listener: GlueTopicListener): this {
    this.#events.listenTopic(topic, listener, true)
    return this
  }

  /** Removes a listener added with `onTopic()`. */
  offTopic (topic: string, listener: GlueTopicListener): this {
    this.#events.listenTopic(topic, listener, false)
    return this
  }

  #setState (state: GlueState): void {
    const previous = this.#state
    if (previous === state) return
    this.#state = state
    // The browser's signals matter only while not closed; a closed client leaves no listener behind.
    if (previous === 'closed') this.#reconnection.watch()
    if (state === 'closed') {
      this.#reconnection.unwatch()
      this.#abandon(CLOSED, false)
    }
    this.#events.emit('statechange', { state, previous })
  }

  /** The open socket, or null. */
  #live (): GlueSocket | null {
    const socket = this.#socket
    return this.#state === 'open' && socket !== null && socket.readyState === OPEN ? socket : null
  }

  /** Why topics and requests cannot be used now, if they cannot. */
  #unusable (): GlueClientError | undefined {
    if (this.#state === 'closed') return clientClosed()
    if (this.#options.raw || (this.#state === 'open' && this.#protocol !== GLUE_PROTOCOL)) return protocolUnavailable(this.#options.raw)
    return undefined
  }

  /** Sends or queues a message or request; returns the error when it can do neither. */
  #push (item: Outgoing, data: unknown): GlueClientError | undefined {
    // Only an open client has a live socket, so a closed one never reaches the queue.
    if (this.#state === 'closed') return clientClosed(data)
    if (this.#queue.send(this.#live(), item, this.#protocol === GLUE_PROTOCOL)) return undefined
    return new GlueClientError('GLUE_QUEUE_FULL', `The offline queue holds ${this.#queue.limit} messages already (maxQueue); this one was not queued`, data)
  }

  /** Rejects what waits for the server: queued requests, and subscribe and unsubscribe calls (see Subscriptions.abandon). */
  #abandon (failure: Failure, drop: boolean): void {
    for (const id of this.#queue.takeRequests()) this.#replies.settle(id, failure)
    this.#subscriptions.abandon(failure, drop)
  }

  #open (state: 'connecting' | 'reconnecting'): void {
    this.#setState(state)
    let socket: GlueSocket
    try {
      socket = new this.#options.WebSocket(this.#inbound.socketUrl(this.url), this.#options.protocols)
    } catch (err) {
      this.#setState('closed')
      this.#events.emit('error', new GlueClientError('GLUE_SOCKET_ERROR', `Cannot open a websocket to ${this.url}: ${(err as Error).message}`, err))
      return
    }
    socket.binaryType = 'arraybuffer'
    this.#socket = socket
    socket.onopen = () => {
      if (this.#socket !== socket) return
      this.#protocol = socket.protocol
      this.#setState('open')
      this.#reconnection.opened()
      if (this.#protocol !== GLUE_PROTOCOL) {
        this.#abandon(this.#unusable() as GlueClientError, true)
      }
      // Topics go first, so queued requests find them (unsubscriptions before subscriptions, as
      // they were made); then the queue in order, before anything a listener sends.
      this.#subscriptions.restore(socket)
      this.#queue.flush(socket, this.#protocol === GLUE_PROTOCOL)
      this.#events.emit('open', undefined)
    }
    socket.onmessage = (event) => {
      if (this.#socket === socket) this.#inbound.receive(event.data, this.#protocol === GLUE_PROTOCOL)
    }
    socket.onerror = () => {
      if (this.#socket !== socket || this.#state === 'closed') return
      // Browsers give no detail here on purpose; the close event that follows carries the code.
      this.#events.emit('error', new GlueClientError('GLUE_SOCKET_ERROR', `The websocket to ${this.url} failed`))
    }
    socket.onclose = (event) => {
      if (this.#socket !== socket) return
      this.#socket = null
      this.#reconnection.dropped()
      // What was sent on this socket gets no reply now; queued requests wait for the next one.
      this.#replies.disconnect((id) => this.#queue.has(id))
      const { code, reason, wasClean } = event
      const userClosed = this.#state === 'closed'
      // A revoked session's cookie is refused: coming back would only open a new, anonymous session.
      const revoked = code === CLOSE_REVOKED
      const comeBack = !userClosed && this.#options.reconnection && !revoked && !this.#options.doNotComeBack(code)
      const willReconnect = comeBack && this.#reconnection.canRetry
      this.#setState(willReconnect ? 'reconnecting' : 'closed')
      // After close(), what was in flight on the socket was only settled just now.
      if (userClosed) this.#abandon(CLOSED, false)
      this.#events.emit('close', { code, reason, wasClean, willReconnect })
      if (revoked) this.#events.emit('revoked', { code, reason })
      // A close listener may have called close(), which wins over the retry.
      if (willReconnect && this.#state === 'reconnecting') this.#reconnection.schedule()
      if (comeBack && !willReconnect) {
        this.#events.emit('error', new GlueClientError('GLUE_RECONNECT_FAILED', `Gave up after ${this.#reconnection.attempt} reconnection attempts (reconnectionAttempts)`))
      }
    }
  }
}
