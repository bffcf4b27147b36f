// Browser client for fastify-websocket-glue. No runtime dependencies, and no DOM-only types in
// its signatures, so it also runs in Node with the `ws` package injected as `WebSocket`.

/** Where the client is in its life cycle. */
export type GlueState = 'connecting' | 'open' | 'reconnecting' | 'closed'

/** Codes carried by {@link GlueClientError}. */
export type GlueErrorCode =
  | 'GLUE_INVALID_OPTION'
  | 'GLUE_QUEUE_FULL'
  | 'GLUE_CLOSED'
  | 'GLUE_SOCKET_ERROR'
  | 'GLUE_RECONNECT_FAILED'

/** Data the client can send: strings and binary go out as they are, anything else as JSON text. */
export type GlueSendData = string | ArrayBuffer | ArrayBufferView | object | number | boolean | null

// Method syntax keeps the handler parameter bivariant, so the `ws` class and the DOM class both fit.
interface GlueHandler<E> { handle (event: E): void }

/** The part of a WebSocket the client uses. The DOM `WebSocket` and the `ws` package both fit. */
export interface GlueSocket {
  readonly readyState: number
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
   * Subprotocols passed to the WebSocket constructor.
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
   * Close codes that mean "do not come back": the client stops instead of reconnecting.
   * @default GlueClient.isDoNotComeBack (1008 and 4000-4099)
   */
  doNotComeBack?: (code: number) => boolean
  /**
   * How many messages `send()` keeps while disconnected. Beyond it, `send()` returns false and emits `GLUE_QUEUE_FULL`.
   * @default 100
   */
  maxQueue?: number
}

/** Payload of the `message` event. */
export interface GlueMessageEvent {
  /** A string for text frames, an ArrayBuffer for binary frames. */
  readonly data: string | ArrayBuffer
  /**
   * Parses the frame as JSON.
   * @throws SyntaxError when the frame is not valid JSON
   */
  json<T = unknown> (): T
}

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

/** Events of {@link GlueClient} and their payloads. */
export interface GlueClientEventMap {
  open: undefined
  message: GlueMessageEvent
  close: GlueCloseEvent
  reconnecting: GlueReconnectingEvent
  statechange: GlueStateChangeEvent
  error: GlueClientError
}

/** A listener of event `K`. */
export type GlueListener<K extends keyof GlueClientEventMap> = (event: GlueClientEventMap[K]) => void

/** Error emitted (or thrown, for bad options and bad `close()` arguments) by the client; `code` says which. */
export class GlueClientError extends Error {
  readonly code: GlueErrorCode
  /** The message that could not be sent, for `GLUE_QUEUE_FULL` and `GLUE_CLOSED`. */
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
  maxQueue: 100
})

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
  const BlobClass = (globalThis as { Blob?: new (...args: never[]) => object }).Blob
  if (BlobClass !== undefined && data instanceof BlobClass) return data
  const text: string | undefined = JSON.stringify(data)
  if (text === undefined) throw new TypeError(`Expected \`data\` to be a string, binary or JSON-serialisable, got ${typeof data}`)
  return text
}

function reportListenerError (err: unknown): void {
  // A throwing listener must not break the client's state machine; report it like EventTarget does.
  const report = (globalThis as { reportError?: (err: unknown) => void }).reportError
  if (report !== undefined) report(err)
  else setTimeout(() => { throw err }, 0)
}

/**
 * A websocket that comes back by itself: reconnects with backoff, queues while offline, and emits events.
 *
 * @example
 * const glue = new GlueClient()
 * glue.on('message', (event) => show(event.data))
 * glue.send('ping')
 */
export class GlueClient {
  /** The default `doNotComeBack` rule: 1008 (policy violation) and the application range 4000-4099. */
  static readonly isDoNotComeBack = isDoNotComeBack

  /** The websocket URL the client connects to. */
  readonly url: string
  #protocols: string | string[] | undefined
  #WebSocket: GlueSocketConstructor
  #reconnection: boolean
  #attempts: number
  #delay: number
  #delayMax: number
  #factor: number
  #stableAfter: number
  #doNotComeBack: (code: number) => boolean
  #maxQueue: number

  #state: GlueState = 'closed'
  #socket: GlueSocket | null = null
  #attempt = 0
  #queue: Frame[] = []
  #retryTimer: ReturnType<typeof setTimeout> | undefined
  #stableTimer: ReturnType<typeof setTimeout> | undefined
  #listeners = new Map<keyof GlueClientEventMap, Set<(event: never) => void>>()

  /**
   * Creates the client and, unless `autoConnect` is false, starts connecting.
   * @throws GLUE_INVALID_OPTION (a GlueClientError) when an option breaks its rule, or no WebSocket is available
   */
  constructor (options: GlueClientOptions = {}) {
    const path = options.path ?? DEFAULTS.path
    if (typeof path !== 'string' || !path.startsWith('/')) throw invalid('path', 'a string starting with "/"', path)
    this.url = resolveUrl(options.url, path)
    this.#protocols = options.protocols
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
    this.#doNotComeBack = options.doNotComeBack ?? isDoNotComeBack
    if (typeof this.#doNotComeBack !== 'function') throw invalid('doNotComeBack', 'a function (code) => boolean', this.#doNotComeBack)
    if (options.autoConnect ?? DEFAULTS.autoConnect) this.connect()
  }

  /** Where the client is: 'connecting', 'open', 'reconnecting' (waiting or retrying after a drop) or 'closed'. */
  get state (): GlueState {
    return this.#state
  }

  /** How many messages wait for the next connection. */
  get queued (): number {
    return this.#queue.length
  }

  /** Opens the connection after `close()`, a "do not come back" close, or `autoConnect: false`. Does nothing otherwise. */
  connect (): void {
    if (this.#state !== 'closed') return
    this.#attempt = 0
    this.#open('connecting')
  }

  /**
   * Sends now when open; queues while connecting or reconnecting.
   * Strings and binary go out as they are; other values as JSON text.
   * @returns true when sent or queued; false when the queue is full (`GLUE_QUEUE_FULL`) or the client is closed (`GLUE_CLOSED`), each also emitted as an `error` event
   * @throws TypeError when `data` cannot be turned into JSON
   */
  send (data: GlueSendData): boolean {
    const frame = toFrame(data)
    if (this.#state === 'open' && this.#socket !== null && this.#socket.readyState === OPEN) {
      this.#socket.send(frame as never)
      return true
    }
    if (this.#state === 'closed') {
      this.#emit('error', new GlueClientError('GLUE_CLOSED', 'The client is closed: call connect() before send()', data))
      return false
    }
    if (this.#queue.length >= this.#maxQueue) {
      this.#emit('error', new GlueClientError('GLUE_QUEUE_FULL', `The offline queue holds ${this.#maxQueue} messages already (maxQueue); this one was not queued`, data))
      return false
    }
    this.#queue.push(frame)
    return true
  }

  /**
   * Closes the connection and stays closed until `connect()`. Queued messages are kept for that `connect()`.
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
    let set = this.#listeners.get(type)
    if (set === undefined) {
      set = new Set()
      this.#listeners.set(type, set)
    }
    set.add(listener)
    return this
  }

  /** Removes a listener added with `on()`. */
  off<K extends keyof GlueClientEventMap> (type: K, listener: GlueListener<K>): this {
    this.#listeners.get(type)?.delete(listener)
    return this
  }

  #emit<K extends keyof GlueClientEventMap> (type: K, event: GlueClientEventMap[K]): void {
    const set = this.#listeners.get(type)
    if (set === undefined) return
    for (const listener of [...set]) {
      try {
        (listener as GlueListener<K>)(event)
      } catch (err) {
        reportListenerError(err)
      }
    }
  }

  #setState (state: GlueState): void {
    const previous = this.#state
    if (previous === state) return
    this.#state = state
    this.#emit('statechange', { state, previous })
  }

  #clearTimers (): void {
    clearTimeout(this.#retryTimer)
    clearTimeout(this.#stableTimer)
    this.#retryTimer = undefined
    this.#stableTimer = undefined
  }

  #open (state: 'connecting' | 'reconnecting'): void {
    this.#setState(state)
    let socket: GlueSocket
    try {
      socket = new this.#WebSocket(this.url, this.#protocols)
    } catch (err) {
      this.#setState('closed')
      this.#emit('error', new GlueClientError('GLUE_SOCKET_ERROR', `Cannot open a websocket to ${this.url}: ${(err as Error).message}`, err))
      return
    }
    socket.binaryType = 'arraybuffer'
    this.#socket = socket
    socket.onopen = () => {
      if (this.#socket !== socket) return
      this.#setState('open')
      this.#stableTimer = setTimeout(() => { this.#attempt = 0 }, this.#stableAfter)
      // Queued messages go first, in order, before anything a listener sends.
      while (this.#queue.length > 0 && socket.readyState === OPEN) {
        socket.send(this.#queue.shift() as never)
      }
      this.#emit('open', undefined)
    }
    socket.onmessage = (event) => {
      if (this.#socket !== socket) return
      const data = event.data as string | ArrayBuffer
      this.#emit('message', {
        data,
        json: <T>() => JSON.parse(typeof data === 'string' ? data : new TextDecoder().decode(data)) as T
      })
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
      const { code, reason, wasClean } = event
      const userClosed = this.#state === 'closed'
      const comeBack = !userClosed && this.#reconnection && !this.#doNotComeBack(code)
      const willReconnect = comeBack && this.#attempt < this.#attempts
      this.#setState(willReconnect ? 'reconnecting' : 'closed')
      this.#emit('close', { code, reason, wasClean, willReconnect })
      // A close listener may have called close(), which wins over the retry.
      if (willReconnect && this.#state === 'reconnecting') this.#schedule()
      if (comeBack && !willReconnect) {
        this.#emit('error', new GlueClientError('GLUE_RECONNECT_FAILED', `Gave up after ${this.#attempt} reconnection attempts (reconnectionAttempts)`))
      }
    }
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
