// Browser client for fastify-websocket-glue. No runtime dependencies, and no DOM-only types in
// its signatures, so it also runs in Node with the `ws` package injected as `WebSocket`.
// The glue.v1 wire protocol it speaks is described in docs/protocol.md.

/** Where the client is in its life cycle. */
export type GlueState = 'connecting' | 'open' | 'reconnecting' | 'closed'

/**
 * Codes carried by {@link GlueClientError}: the client's own, the server's reply codes
 * (docs/protocol.md), and any code an application's `onRequest` error exposes.
 */
export type GlueErrorCode =
  | 'GLUE_INVALID_OPTION'
  | 'GLUE_QUEUE_FULL'
  | 'GLUE_CLOSED'
  | 'GLUE_SOCKET_ERROR'
  | 'GLUE_RECONNECT_FAILED'
  | 'GLUE_PROTOCOL_UNAVAILABLE'
  | 'GLUE_TIMEOUT'
  | 'GLUE_DISCONNECTED'
  | 'GLUE_UNSUBSCRIBED'
  | 'GLUE_NO_HANDLER'
  | 'GLUE_REQUEST_FAILED'
  | 'GLUE_SUBSCRIBE_REFUSED'
  | 'GLUE_SUBSCRIBE_FAILED'
  | 'GLUE_BAD_ENVELOPE'
  | (string & {})

/** Data the client can send: strings and binary go out as they are, anything else as JSON text. */
export type GlueSendData = string | ArrayBuffer | ArrayBufferView | object | number | boolean | null

/**
 * Data the client receives: a string for text, an ArrayBuffer for binary, and on glue.v1 any JSON
 * value the server sent (`app.sessions.send(id, { a: 1 })` arrives as the object).
 */
export type GlueData = string | ArrayBuffer | object | number | boolean | null

// Method syntax keeps the handler parameter bivariant, so the `ws` class and the DOM class both fit.
interface GlueHandler<E> { handle (event: E): void }

/** The part of a WebSocket the client uses. The DOM `WebSocket` and the `ws` package both fit. */
export interface GlueSocket {
  readonly readyState: number
  readonly protocol: string
  binaryType: string
  onopen: GlueHandler<unknown>['handle'] | null
  onmessage: GlueHandler<{ data: unknown }>['handle'] | null
  onclose: GlueHandler<{ code: number, reason: string, wasClean: boolean }>['handle'] | null
  onerror: GlueHandler<unknown>['handle'] | null
  send (data: never): void
  close (code?: number, reason?: string): void
}

/** A WebSocket constructor, such as `globalThis.WebSocket` or `ws`'s default export. */
export type GlueSocketConstructor = new (url: string, protocols?: string | string[]) => GlueSocket

/** Options of {@link GlueClient}. */
export interface GlueClientOptions {
  /**
   * Full websocket URL (`ws:`, `wss:`, `http:` or `https:`), or a path resolved against the page.
   * @default the plugin path on the page's own origin, `ws:` or `wss:` after the page's protocol
   */
  url?: string
  /**
   * Path of the plugin's websocket route, used when `url` is not given.
   * @default '/ws'
   */
  path?: string
  /**
   * Speak plain frames: do not offer the `glue.v1` subprotocol, so there are no topics, requests or
   * sequence numbers, exactly like a bare `WebSocket`.
   * @default false
   */
  raw?: boolean
  /**
   * More subprotocols to offer, after `glue.v1`. When the server selects one of them, the client speaks plain frames.
   * @default undefined
   */
  protocols?: string | string[]
  /**
   * WebSocket implementation, for runtimes without a global one (Node 20: pass `ws`).
   * @default globalThis.WebSocket
   */
  WebSocket?: GlueSocketConstructor
  /**
   * Connect in the constructor. With `false`, call {@link GlueClient.connect}.
   * @default true
   */
  autoConnect?: boolean
  /**
   * Reconnect after the connection drops.
   * @default true
   */
  reconnection?: boolean
  /**
   * How many reconnection attempts in a row before giving up with a `GLUE_RECONNECT_FAILED` error.
   * @default Infinity
   */
  reconnectionAttempts?: number
  /**
   * Base delay of the exponential backoff, in milliseconds: attempt n waits up to `reconnectionDelay * 2^(n-1)`.
   * @default 1000
   */
  reconnectionDelay?: number
  /**
   * Upper bound of the backoff delay, in milliseconds.
   * @default 30000
   */
  reconnectionDelayMax?: number
  /**
   * Share of the delay that is random, from 0 (none) to 1 (full jitter: anywhere between 0 and the delay).
   * @default 1
   */
  randomizationFactor?: number
  /**
   * How long a socket must stay open, in milliseconds, before the backoff starts again from the base delay.
   * @default 5000
   */
  stableAfter?: number
  /**
   * Close codes that mean "do not come back": the client stops instead of reconnecting. By default a
   * client closed for its rate (1008) stays closed; one closed as a slow consumer (1013) comes back and resumes.
   * @default GlueClient.isDoNotComeBack (1008 and 4000-4099)
   */
  doNotComeBack?: (code: number) => boolean
  /**
   * How many messages and requests wait while disconnected. Beyond it, `send()` returns false and
   * emits `GLUE_QUEUE_FULL`, and `request()` rejects with it.
   * @default 100
   */
  maxQueue?: number
  /**
   * Milliseconds `request()` waits for its reply, queued time included, before rejecting with `GLUE_TIMEOUT`.
   * @default 10000
   */
  requestTimeout?: number
  /**
   * Where the first connection resumes: the `epoch` and `lastSeq` of an earlier client of this
   * session, for example saved in `sessionStorage` before a reload. Without it a new client starts
   * from now; its reconnects always resume.
   * @default undefined
   */
  resume?: GlueResumePoint
}

/** A position in a session's message stream: the delivery epoch and the last sequence number processed. */
export interface GlueResumePoint {
  readonly epoch: string
  readonly lastSeq: number
}

/** Options of {@link GlueClient.request}. */
export interface GlueRequestOptions {
  /**
   * Milliseconds to wait for the reply, queued time included, before rejecting with `GLUE_TIMEOUT`.
   * @default the client's `requestTimeout` (10000)
   */
  timeout?: number
}

/** Payload of the `message` event. */
export interface GlueMessageEvent {
  /** A string for text, an ArrayBuffer for binary; on glue.v1 also the JSON value the server sent. */
  readonly data: GlueData
  /** The session's sequence number of the message on glue.v1 (0 for a volatile message); undefined for plain frames. */
  readonly seq: number | undefined
  /**
   * Parses `data` as JSON when it is a string or binary; returns it as it is when it is already a JSON value.
   * @throws SyntaxError when a string or binary `data` is not valid JSON
   */
  json<T = unknown> (): T
}

/** Payload of a topic listener added with {@link GlueClient.onTopic}. */
export interface GlueTopicEvent extends GlueMessageEvent {
  readonly topic: string
  readonly seq: number
}

/** A listener of one topic's messages. */
export type GlueTopicListener = (event: GlueTopicEvent) => void

/** Payload of the `close` event. */
export interface GlueCloseEvent {
  readonly code: number
  readonly reason: string
  readonly wasClean: boolean
  /** True when the client is about to reconnect. */
  readonly willReconnect: boolean
}

/** Payload of the `reconnecting` event. */
export interface GlueReconnectingEvent {
  /** 1 for the first attempt after a drop; back to 1 once a socket stayed open for `stableAfter`. */
  readonly attempt: number
  /** Milliseconds until the attempt. */
  readonly delay: number
}

/** Payload of the `statechange` event. */
export interface GlueStateChangeEvent {
  readonly state: GlueState
  readonly previous: GlueState
}

/** Payload of the `gap` event. */
export interface GlueGapEvent {
  /** How many messages can no longer be delivered, or null when unknown (the server lost the session's state). */
  readonly missed: number | null
}

/** Events of {@link GlueClient} and their payloads. */
export interface GlueClientEventMap {
  open: undefined
  message: GlueMessageEvent
  gap: GlueGapEvent
  close: GlueCloseEvent
  reconnecting: GlueReconnectingEvent
  statechange: GlueStateChangeEvent
  error: GlueClientError
}

/** A listener of event `K`. */
export type GlueListener<K extends keyof GlueClientEventMap> = (event: GlueClientEventMap[K]) => void

/** Error emitted, thrown (bad options, bad `close()` arguments) or rejected with by the client; `code` says which. */
export class GlueClientError extends Error {
  readonly code: GlueErrorCode
  /** What the failure concerns: the unsent message or request data, or the topic of a subscription. */
  readonly data: unknown

  constructor (code: GlueErrorCode, message: string, data?: unknown) {
    super(message)
    this.name = 'GlueClientError'
    this.code = code
    this.data = data
  }
}

const OPEN = 1
const CLOSE_NORMAL = 1000
const CLOSE_POLICY_VIOLATION = 1008
const CLOSE_APP_MIN = 3000
const CLOSE_APP_MAX = 4999
const CLOSE_REASON_MAX_BYTES = 123
/** The application close codes that mean "do not come back" by default. */
const DO_NOT_COME_BACK_MIN = 4000
const DO_NOT_COME_BACK_MAX = 4099
/** setTimeout fires at once for a delay above 2^31 - 1 ms, in browsers and in Node. */
const MAX_TIMER_DELAY = 2 ** 31 - 1
const GLUE_PROTOCOL = 'glue.v1'
const RESUME_PARAM = 'glue_resume'
/** A binary envelope's header: the type byte and a 48-bit big-endian sequence number. */
const BINARY_HEADER = 7
// Defaults are frozen so no instance can change them for the next one.
const DEFAULTS = Object.freeze({
  path: '/ws',
  autoConnect: true,
  reconnection: true,
  reconnectionAttempts: Infinity,
  reconnectionDelay: 1000,
  reconnectionDelayMax: 30_000,
  randomizationFactor: 1,
  stableAfter: 5000,
  maxQueue: 100,
  requestTimeout: 10_000
})

const BlobClass = (globalThis as { Blob?: new (parts: unknown[]) => object }).Blob

function isDoNotComeBack (code: number): boolean {
  return code === CLOSE_POLICY_VIOLATION || (code >= DO_NOT_COME_BACK_MIN && code <= DO_NOT_COME_BACK_MAX)
}

function invalid (name: string, rule: string, value: unknown): GlueClientError {
  const shown = typeof value === 'string' ? `"${value}"` : String(value)
  return new GlueClientError('GLUE_INVALID_OPTION', `Expected \`${name}\` to be ${rule}, got ${shown} (${typeof value})`)
}

function checkNumber (name: string, value: number, min: number, { integer = false, max = Number.MAX_SAFE_INTEGER, infinite = false } = {}): number {
  const ok = typeof value === 'number' && value >= min &&
    ((infinite && value === Infinity) || (value <= max && (integer ? Number.isInteger(value) : Number.isFinite(value))))
  if (!ok) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`
    throw invalid(name, `a${integer ? 'n integer' : ' number'} ${range}${infinite ? ' or Infinity' : ''}`, value)
  }
  return value
}

function resolveUrl (url: string | undefined, path: string): string {
  const page = (globalThis as { location?: { href: string } }).location
  let target: URL
  try {
    target = new URL(url ?? path, page?.href)
  } catch {
    throw invalid('url', 'an absolute ws:, wss:, http: or https: URL (or a path, on a web page)', url ?? path)
  }
  // Both are special schemes, so the URL setter may switch between them.
  if (target.protocol === 'http:') target.protocol = 'ws:'
  else if (target.protocol === 'https:') target.protocol = 'wss:'
  if (target.protocol !== 'ws:' && target.protocol !== 'wss:') {
    throw invalid('url', 'a ws:, wss:, http: or https: URL', target.href)
  }
  return target.href
}

type Frame = string | ArrayBuffer | ArrayBufferView | object

function toFrame (data: GlueSendData): Frame {
  if (typeof data === 'string' || data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data
  if (BlobClass !== undefined && data instanceof BlobClass) return data
  const text: string | undefined = JSON.stringify(data)
  if (text === undefined) throw new TypeError(`Expected \`data\` to be a string, binary or JSON-serialisable, got ${typeof data}`)
  return text
}

/** `0x00 payload`: a binary message on glue.v1. */
function binaryEnvelope (frame: ArrayBuffer | ArrayBufferView | object): object {
  if (!(frame instanceof ArrayBuffer) && !ArrayBuffer.isView(frame)) return new (BlobClass as NonNullable<typeof BlobClass>)([new Uint8Array(1), frame])
  const bytes = ArrayBuffer.isView(frame) ? new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength) : new Uint8Array(frame)
  const envelope = new Uint8Array(bytes.length + 1)
  envelope.set(bytes, 1)
  return envelope
}

function reportListenerError (err: unknown): void {
  // A throwing listener must not break the client's state machine; report it like EventTarget does.
  const report = (globalThis as { reportError?: (err: unknown) => void }).reportError
  if (report !== undefined) report(err)
  else setTimeout(() => { throw err }, 0)
}

/** A reply error as the server sends it, or one of the client's own. */
interface Failure { readonly code: string, readonly message: string }
/** Settles what waits for reply `id`: `failure` null means success with `value`. */
type Settle = (failure: Failure | null, value?: unknown) => void
// Method syntax keeps `resolve` bivariant, so both Promise<void> and Promise<boolean> callers fit.
interface Waiter { resolve (value: unknown): void, reject (error: GlueClientError): void }
/** A queued message (id 0) or request: its frame as raw mode sends it, and whether the data was a string. */
type Outgoing = [id: number, frame: Frame, text: boolean]

const DISCONNECTED: Failure = { code: 'GLUE_DISCONNECTED', message: 'The connection closed before the reply arrived' }
const CLOSED: Failure = { code: 'GLUE_CLOSED', message: 'The client closed before the server answered' }

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
  /** The default `doNotComeBack` rule: 1008 (policy violation) and the application range 4000-4099. */
  static readonly isDoNotComeBack = isDoNotComeBack

  /** The websocket URL the client connects to. */
  readonly url: string
  #protocols: string | string[] | undefined
  #raw: boolean
  #WebSocket: GlueSocketConstructor
  #reconnection: boolean
  #attempts: number
  #delay: number
  #delayMax: number
  #factor: number
  #stableAfter: number
  #doNotComeBack: (code: number) => boolean
  #maxQueue: number
  #requestTimeout: number

  #state: GlueState = 'closed'
  #socket: GlueSocket | null = null
  #protocol = ''
  #epoch: string | undefined
  #lastSeq = 0
  #nextId = 0
  #attempt = 0
  #queue: Outgoing[] = []
  #pending = new Map<number, Settle>()
  /** Wanted topics, each with the callers still waiting for the server's confirmation. */
  #topics = new Map<string, Waiter[]>()
  /** Topics to unsubscribe on the next open, each with the callers waiting for the answer. */
  #leaving = new Map<string, Waiter[]>()
  #retryTimer: ReturnType<typeof setTimeout> | undefined
  #stableTimer: ReturnType<typeof setTimeout> | undefined
  #listeners = new Map<string, Set<(event: never) => void>>()

  /**
   * Creates the client and, unless `autoConnect` is false, starts connecting.
   * @throws GLUE_INVALID_OPTION (a GlueClientError) when an option breaks its rule, or no WebSocket is available
   */
  constructor (options: GlueClientOptions = {}) {
    const path = options.path ?? DEFAULTS.path
    if (typeof path !== 'string' || !path.startsWith('/')) throw invalid('path', 'a string starting with "/"', path)
    this.url = resolveUrl(options.url, path)
    this.#raw = options.raw === true
    this.#protocols = this.#raw ? options.protocols : [GLUE_PROTOCOL].concat(options.protocols ?? [])
    const WebSocketClass = options.WebSocket ?? (globalThis as { WebSocket?: GlueSocketConstructor }).WebSocket
    if (typeof WebSocketClass !== 'function') throw invalid('WebSocket', 'a WebSocket constructor (this runtime has none)', WebSocketClass)
    this.#WebSocket = WebSocketClass
    this.#reconnection = options.reconnection ?? DEFAULTS.reconnection
    this.#attempts = checkNumber('reconnectionAttempts', options.reconnectionAttempts ?? DEFAULTS.reconnectionAttempts, 0, { integer: true, infinite: true })
    this.#delay = checkNumber('reconnectionDelay', options.reconnectionDelay ?? DEFAULTS.reconnectionDelay, 0, { max: MAX_TIMER_DELAY })
    this.#delayMax = checkNumber('reconnectionDelayMax', options.reconnectionDelayMax ?? DEFAULTS.reconnectionDelayMax, this.#delay, { max: MAX_TIMER_DELAY })
    this.#factor = checkNumber('randomizationFactor', options.randomizationFactor ?? DEFAULTS.randomizationFactor, 0, { max: 1 })
    this.#stableAfter = checkNumber('stableAfter', options.stableAfter ?? DEFAULTS.stableAfter, 0, { max: MAX_TIMER_DELAY })
    this.#maxQueue = checkNumber('maxQueue', options.maxQueue ?? DEFAULTS.maxQueue, 0, { integer: true })
    this.#requestTimeout = checkNumber('requestTimeout', options.requestTimeout ?? DEFAULTS.requestTimeout, 0, { max: MAX_TIMER_DELAY })
    this.#doNotComeBack = options.doNotComeBack ?? isDoNotComeBack
    if (typeof this.#doNotComeBack !== 'function') throw invalid('doNotComeBack', 'a function (code) => boolean', this.#doNotComeBack)
    if (options.resume !== undefined) {
      const { epoch, lastSeq } = options.resume
      if (typeof epoch !== 'string' || epoch === '') throw invalid('resume.epoch', 'a non-empty string', epoch)
      this.#lastSeq = checkNumber('resume.lastSeq', lastSeq, 0, { integer: true })
      this.#epoch = epoch
    }
    if (options.autoConnect ?? DEFAULTS.autoConnect) this.connect()
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
    return this.#lastSeq
  }

  /**
   * The server's name for the session's delivery state, from the latest welcome; a reconnect sends
   * it with `lastSeq` to resume. Undefined before the first glue.v1 welcome.
   */
  get epoch (): string | undefined {
    return this.#epoch
  }

  /** Opens the connection after `close()`, a "do not come back" close, or `autoConnect: false`. Does nothing otherwise. */
  connect (): void {
    if (this.#state !== 'closed') return
    this.#attempt = 0
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
    if (error !== undefined) this.#emit('error', error)
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
      const timeout = checkNumber('timeout', options.timeout ?? this.#requestTimeout, 0, { max: MAX_TIMER_DELAY })
      const json: string | undefined = JSON.stringify(data)
      if (json === undefined) throw new TypeError(`Expected request \`data\` to be JSON-serialisable, got ${typeof data}`)
      const unusable = this.#unusable()
      if (unusable !== undefined) throw unusable
      const id = ++this.#nextId
      const timer = setTimeout(() => {
        this.#queue = this.#queue.filter(([queued]) => queued !== id)
        this.#settle(id, { code: 'GLUE_TIMEOUT', message: `No reply within ${timeout} ms` })
      }, timeout)
      this.#pending.set(id, (failure, value) => {
        clearTimeout(timer)
        if (failure === null) resolve(value as T)
        else reject(new GlueClientError(failure.code, failure.message, data))
      })
      const error = this.#push([id, json, false], data)
      if (error !== undefined) this.#settle(id, error)
    })
  }

  /**
   * Subscribes the session to a topic; resolves once the server agreed. Sent now when open, else on
   * the next open. Add the listener with `onTopic()`. The subscription is restored after every
   * reconnect; a refusal then is an `error` event.
   * Rejects with a GlueClientError: `GLUE_SUBSCRIBE_REFUSED`, `GLUE_SUBSCRIBE_FAILED`, `GLUE_BAD_ENVELOPE`
   * (an invalid topic), `GLUE_UNSUBSCRIBED`, `GLUE_CLOSED` or `GLUE_PROTOCOL_UNAVAILABLE`.
   */
  subscribe (topic: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const unusable = this.#unusable()
      if (unusable !== undefined) throw unusable
      let waiters = this.#topics.get(topic)
      if (waiters === undefined) this.#topics.set(topic, waiters = [])
      waiters.push({ resolve, reject })
      // Otherwise every wanted topic is sent on open.
      const socket = this.#live()
      if (socket !== null) this.#subscribe(socket, topic)
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
      for (const waiter of this.#topics.get(topic)?.splice(0) ?? []) {
        waiter.reject(new GlueClientError('GLUE_UNSUBSCRIBED', 'unsubscribe() came before the server confirmed the subscription', topic))
      }
      this.#topics.delete(topic)
      this.#leave(topic).push({ resolve, reject })
      const socket = this.#live()
      if (socket !== null) this.#unsubscribe(socket, topic)
    })
  }

  /** The topics the client wants: subscribed, being subscribed, or to be restored on the next connection. */
  get topics (): string[] {
    return [...this.#topics.keys()]
  }

  /**
   * Closes the connection and stays closed until `connect()`. Queued messages and subscriptions are
   * kept for that `connect()`; what waits for the server (queued requests, unanswered requests,
   * subscribe and unsubscribe calls) rejects with `GLUE_CLOSED`, or `GLUE_DISCONNECTED` for a
   * request already sent.
   * @throws GlueClientError GLUE_INVALID_OPTION when the code is not 1000 or 3000-4999, or the reason is over 123 bytes
   */
  close (code: number = CLOSE_NORMAL, reason = ''): void {
    if (code !== CLOSE_NORMAL && !(Number.isInteger(code) && code >= CLOSE_APP_MIN && code <= CLOSE_APP_MAX)) {
      throw invalid('code', '1000 or an integer from 3000 to 4999', code)
    }
    if (new TextEncoder().encode(reason).length > CLOSE_REASON_MAX_BYTES) {
      throw invalid('reason', `at most ${CLOSE_REASON_MAX_BYTES} bytes of UTF-8`, reason)
    }
    this.#clearTimers()
    const socket = this.#socket
    this.#setState('closed')
    // The socket's own close event still arrives and is reported as the `close` event.
    if (socket !== null) socket.close(code, reason)
  }

  /** Adds a listener for an event. */
  on<K extends keyof GlueClientEventMap> (type: K, listener: GlueListener<K>): this {
    return this.#listen(type, listener, true)
  }

  /** Removes a listener added with `on()`. */
  off<K extends keyof GlueClientEventMap> (type: K, listener: GlueListener<K>): this {
    return this.#listen(type, listener, false)
  }

  /** Adds a listener for the messages of one topic. Listening does not subscribe: call `subscribe()`. */
  onTopic (topic: string, listener: GlueTopicListener): this {
    return this.#listen(`topic:${topic}`, listener, true)
  }

  /** Removes a listener added with `onTopic()`. */
  offTopic (topic: string, listener: GlueTopicListener): this {
    return this.#listen(`topic:${topic}`, listener, false)
  }

  #listen (type: string, listener: (event: never) => void, add: boolean): this {
    let set = this.#listeners.get(type)
    if (!add) set?.delete(listener)
    else {
      if (set === undefined) this.#listeners.set(type, set = new Set())
      set.add(listener)
    }
    return this
  }

  #emit (type: string, event: unknown): void {
    const set = this.#listeners.get(type)
    if (set === undefined) return
    for (const listener of [...set]) {
      try {
        (listener as (event: unknown) => void)(event)
      } catch (err) {
        reportListenerError(err)
      }
    }
  }

  #setState (state: GlueState): void {
    const previous = this.#state
    if (previous === state) return
    this.#state = state
    if (state === 'closed') this.#abandon(CLOSED, false)
    this.#emit('statechange', { state, previous })
  }

  #clearTimers (): void {
    clearTimeout(this.#retryTimer)
    clearTimeout(this.#stableTimer)
    this.#retryTimer = undefined
    this.#stableTimer = undefined
  }

  /** The open socket, or null. */
  #live (): GlueSocket | null {
    const socket = this.#socket
    return this.#state === 'open' && socket !== null && socket.readyState === OPEN ? socket : null
  }

  /** Why topics and requests cannot be used now, if they cannot. */
  #unusable (): GlueClientError | undefined {
    if (this.#state === 'closed') return new GlueClientError('GLUE_CLOSED', 'The client is closed: call connect() first')
    if (this.#raw || (this.#state === 'open' && this.#protocol !== GLUE_PROTOCOL)) {
      return new GlueClientError('GLUE_PROTOCOL_UNAVAILABLE', `Topics and requests need the ${GLUE_PROTOCOL} subprotocol, which ${this.#raw ? 'the raw option turns off' : 'the server did not select'}`)
    }
    return undefined
  }

  /** Sends or queues a message or request; returns the error when it can do neither. */
  #push (item: Outgoing, data: unknown): GlueClientError | undefined {
    const socket = this.#live()
    if (socket !== null) this.#write(socket, item)
    else if (this.#state === 'closed') return new GlueClientError('GLUE_CLOSED', 'The client is closed: call connect() first', data)
    else if (this.#queue.length >= this.#maxQueue) {
      return new GlueClientError('GLUE_QUEUE_FULL', `The offline queue holds ${this.#maxQueue} messages already (maxQueue); this one was not queued`, data)
    } else this.#queue.push(item)
    return undefined
  }

  #write (socket: GlueSocket, [id, frame, text]: Outgoing): void {
    let wire = frame
    if (this.#protocol === GLUE_PROTOCOL) {
      wire = typeof frame !== 'string'
        ? binaryEnvelope(frame)
        : `[${id === 0 ? '"m"' : `"q",${id}`},${text ? JSON.stringify(frame) : frame}]`
    }
    socket.send(wire as never)
  }

  #ask (socket: GlueSocket, kind: 's' | 'u', topic: string, settle: Settle): void {
    const id = ++this.#nextId
    this.#pending.set(id, settle)
    socket.send(JSON.stringify([kind, id, topic]) as never)
  }

  #subscribe (socket: GlueSocket, topic: string): void {
    const waiters = this.#topics.get(topic) ?? []
    this.#ask(socket, 's', topic, (failure) => {
      // A dropped socket sends every wanted topic again on the next open.
      if (failure === DISCONNECTED) return
      const callers = waiters.splice(0)
      if (failure === null) {
        for (const waiter of callers) waiter.resolve(undefined)
        return
      }
      const wanted = this.#topics.get(topic) === waiters
      if (wanted) this.#topics.delete(topic)
      const error = new GlueClientError(failure.code, `${failure.message} (topic "${topic}")`, topic)
      for (const waiter of callers) waiter.reject(error)
      // Nobody awaits a restored subscription, so its refusal is an error event.
      if (callers.length === 0 && wanted) this.#emit('error', error)
    })
  }

  /** The waiters of a topic to unsubscribe on the next open, creating the entry. */
  #leave (topic: string): Waiter[] {
    let waiters = this.#leaving.get(topic)
    if (waiters === undefined) this.#leaving.set(topic, waiters = [])
    return waiters
  }

  #unsubscribe (socket: GlueSocket, topic: string): void {
    const waiters = this.#leave(topic)
    this.#leaving.delete(topic)
    this.#ask(socket, 'u', topic, (failure, value) => {
      // Sent again on the next open: a session in its grace period keeps its topics.
      if (failure === DISCONNECTED) this.#leave(topic).push(...waiters)
      else if (failure === null) for (const waiter of waiters) waiter.resolve(value === true)
      else for (const waiter of waiters) waiter.reject(new GlueClientError(failure.code, failure.message, topic))
    })
  }

  #settle (id: unknown, failure: Failure | null, value?: unknown): void {
    const settle = this.#pending.get(id as number)
    if (settle === undefined) return
    this.#pending.delete(id as number)
    settle(failure, value)
  }

  /**
   * Rejects what waits for the server: queued requests and subscribe and unsubscribe calls. With
   * `drop` (a server without glue.v1) every topic is forgotten too.
   */
  #abandon (failure: Failure, drop: boolean): void {
    const requests = this.#queue.filter(([id]) => id !== 0)
    this.#queue = this.#queue.filter(([id]) => id === 0)
    for (const [id] of requests) this.#settle(id, failure)
    const reject = (waiters: Waiter[], topic: string): void => {
      for (const waiter of waiters.splice(0)) waiter.reject(new GlueClientError(failure.code, failure.message, topic))
    }
    for (const [topic, waiters] of this.#topics) {
      if (!drop && waiters.length === 0) continue
      this.#topics.delete(topic)
      // The server may have agreed already: undo it on the next open, so a rejected subscribe leaves nothing behind.
      if (!drop) this.#leave(topic)
      reject(waiters, topic)
    }
    for (const [topic, waiters] of this.#leaving) reject(waiters, topic)
    if (drop) this.#leaving.clear()
  }

  #receive (data: unknown): void {
    if (this.#protocol !== GLUE_PROTOCOL) {
      this.#deliver(data as GlueData)
    } else if (typeof data === 'string') {
      let envelope: unknown
      // A text frame that is no envelope (an app's own socket.send('pong')) is a plain message.
      try {
        if (data.startsWith('[')) envelope = JSON.parse(data)
      } catch {}
      if (!Array.isArray(envelope) || typeof envelope[0] !== 'string' || envelope[0].length !== 1) {
        this.#deliver(data)
        return
      }
      const [kind, first, second, third] = envelope as [string, number, unknown, unknown]
      if (kind === 'm') this.#deliver(second as GlueData, first)
      else if (kind === 't') this.#deliver(third as GlueData, first, second as string)
      else if (kind === 'r') this.#settle(first, second === 1 ? null : third as Failure, third)
      else if (kind === 'w') {
        // Messages above the welcome's seq follow: after a resume, a trim or another epoch alike.
        this.#epoch = first as unknown as string
        this.#lastSeq = second as number
      } else if (kind === 'g') this.#emit('gap', { missed: first ?? null })
      // Any other kind is a control envelope of a newer server: ignored.
    } else {
      const buffer = data as ArrayBuffer
      const bytes = new Uint8Array(buffer)
      const type = bytes[0] as number
      // Only envelopes are valid binary frames on glue.v1; anything else is dropped.
      if (bytes.length < BINARY_HEADER || type > 1) return
      const view = new DataView(buffer)
      const seq = view.getUint16(1) * 2 ** 32 + view.getUint32(3)
      if (type === 0) {
        this.#deliver(buffer.slice(BINARY_HEADER), seq)
      } else {
        const end = BINARY_HEADER + 1 + (bytes[BINARY_HEADER] as number)
        this.#deliver(buffer.slice(end), seq, new TextDecoder().decode(bytes.subarray(BINARY_HEADER + 1, end)))
      }
    }
  }

  #deliver (data: GlueData, seq?: number, topic?: string): void {
    // Volatile messages carry seq 0: delivered, never tracked. A replay may repeat what came before the drop.
    if (seq !== undefined && seq > 0) {
      if (seq <= this.#lastSeq) return
      this.#lastSeq = seq
    }
    this.#emit(topic === undefined ? 'message' : `topic:${topic}`, {
      data,
      seq,
      topic,
      json: () => typeof data === 'string'
        ? JSON.parse(data)
        : data instanceof ArrayBuffer ? JSON.parse(new TextDecoder().decode(data)) : data
    })
  }

  #open (state: 'connecting' | 'reconnecting'): void {
    this.#setState(state)
    let socket: GlueSocket
    try {
      socket = new this.#WebSocket(this.#resumeUrl(), this.#protocols)
    } catch (err) {
      this.#setState('closed')
      this.#emit('error', new GlueClientError('GLUE_SOCKET_ERROR', `Cannot open a websocket to ${this.url}: ${(err as Error).message}`, err))
      return
    }
    socket.binaryType = 'arraybuffer'
    this.#socket = socket
    socket.onopen = () => {
      if (this.#socket !== socket) return
      this.#protocol = socket.protocol
      this.#setState('open')
      this.#stableTimer = setTimeout(() => { this.#attempt = 0 }, this.#stableAfter)
      if (this.#protocol !== GLUE_PROTOCOL) {
        this.#abandon(this.#unusable() as GlueClientError, true)
      }
      // Topics go first, so queued requests find them (unsubscriptions before subscriptions, as
      // they were made); then the queue in order, before anything a listener sends.
      for (const topic of [...this.#leaving.keys()]) this.#unsubscribe(socket, topic)
      for (const topic of this.#topics.keys()) this.#subscribe(socket, topic)
      while (this.#queue.length > 0 && socket.readyState === OPEN) {
        this.#write(socket, this.#queue.shift() as Outgoing)
      }
      this.#emit('open', undefined)
    }
    socket.onmessage = (event) => {
      if (this.#socket === socket) this.#receive(event.data)
    }
    socket.onerror = () => {
      if (this.#socket !== socket || this.#state === 'closed') return
      // Browsers give no detail here on purpose; the close event that follows carries the code.
      this.#emit('error', new GlueClientError('GLUE_SOCKET_ERROR', `The websocket to ${this.url} failed`))
    }
    socket.onclose = (event) => {
      if (this.#socket !== socket) return
      this.#socket = null
      clearTimeout(this.#stableTimer)
      // What was sent on this socket gets no reply now; queued requests wait for the next one.
      const queued = new Set(this.#queue.map(([id]) => id))
      for (const id of this.#pending.keys()) if (!queued.has(id)) this.#settle(id, DISCONNECTED)
      const { code, reason, wasClean } = event
      const userClosed = this.#state === 'closed'
      const comeBack = !userClosed && this.#reconnection && !this.#doNotComeBack(code)
      const willReconnect = comeBack && this.#attempt < this.#attempts
      this.#setState(willReconnect ? 'reconnecting' : 'closed')
      // After close(), what was in flight on the socket was only settled just now.
      if (userClosed) this.#abandon(CLOSED, false)
      this.#emit('close', { code, reason, wasClean, willReconnect })
      // A close listener may have called close(), which wins over the retry.
      if (willReconnect && this.#state === 'reconnecting') this.#schedule()
      if (comeBack && !willReconnect) {
        this.#emit('error', new GlueClientError('GLUE_RECONNECT_FAILED', `Gave up after ${this.#attempt} reconnection attempts (reconnectionAttempts)`))
      }
    }
  }

  /** The URL of the next socket: once the client knows an epoch, it asks to resume after `lastSeq`. */
  #resumeUrl (): string {
    if (this.#epoch === undefined) return this.url
    const url = new URL(this.url)
    url.search += `${url.search === '' ? '' : '&'}${RESUME_PARAM}=${encodeURIComponent(this.#epoch)}.${this.#lastSeq}`
    return url.href
  }

  #schedule (): void {
    const base = Math.min(this.#delayMax, this.#delay * 2 ** this.#attempt)
    const delay = Math.round(base * (1 - this.#factor * Math.random()))
    this.#attempt += 1
    this.#setState('reconnecting')
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined
      this.#open('reconnecting')
    }, delay)
    this.#emit('reconnecting', { attempt: this.#attempt, delay })
  }
}
