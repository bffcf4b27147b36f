// The client's options: their types and defaults, and resolveClientOptions(), the one place that
// reads and validates what the caller passed.
import {
  CLOSE_APP_MAX, CLOSE_APP_MIN, CLOSE_NORMAL, CLOSE_POLICY_VIOLATION, CLOSE_REASON_MAX_BYTES, CLOSE_REVOKED,
  DO_NOT_COME_BACK_MAX, DO_NOT_COME_BACK_MIN, MAX_TIMER_DELAY
} from './constants.js'
import { GLUE_PROTOCOL } from './envelope.js'
import { invalidOption } from './errors.js'
import type { GlueSocketConstructor } from './socket.js'

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
   * WebSocket implementation, for runtimes without a global one (pass `ws`).
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
   * Upper bound of the backoff delay, in milliseconds, as in socket.io-client: a client comes back
   * within this long of the server.
   * @default 5000, or `reconnectionDelay` when that is larger
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
   * 3000 (the session was revoked) always stops the client, whatever this rule says, and emits `revoked`.
   * @default GlueClient.isDoNotComeBack (1008, 3000 and 4000-4099)
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

/** The client's options after validation, with every default filled in. */
export interface ResolvedClientOptions {
  readonly url: string
  readonly raw: boolean
  /** What the socket offers: `glue.v1` first unless `raw`, then the caller's own. */
  readonly protocols: string | string[] | undefined
  readonly WebSocket: GlueSocketConstructor
  readonly autoConnect: boolean
  readonly reconnection: boolean
  readonly reconnectionAttempts: number
  readonly reconnectionDelay: number
  readonly reconnectionDelayMax: number
  readonly randomizationFactor: number
  readonly stableAfter: number
  readonly doNotComeBack: (code: number) => boolean
  readonly maxQueue: number
  readonly requestTimeout: number
  readonly resume: GlueResumePoint | undefined
}

// Defaults are frozen so no instance can change them for the next one.
const DEFAULTS = Object.freeze({
  path: '/ws',
  autoConnect: true,
  reconnection: true,
  reconnectionAttempts: Infinity,
  reconnectionDelay: 1000,
  reconnectionDelayMax: 5000,
  randomizationFactor: 1,
  stableAfter: 5000,
  maxQueue: 100,
  requestTimeout: 10_000
})

/** The default `doNotComeBack` rule: 1008 (policy violation), 3000 (revoked) and the application range 4000-4099. */
export function isDoNotComeBack (code: number): boolean {
  return code === CLOSE_POLICY_VIOLATION || code === CLOSE_REVOKED || (code >= DO_NOT_COME_BACK_MIN && code <= DO_NOT_COME_BACK_MAX)
}

/**
 * Returns `value` when it is a number of at least `min` (an integer with `integer`, at most `max`,
 * or Infinity with `infinite`).
 * @throws GLUE_INVALID_OPTION (a GlueClientError) naming option `name`, the rule and the value
 */
export function checkNumber (name: string, value: number, min: number, { integer = false, max = Number.MAX_SAFE_INTEGER, infinite = false } = {}): number {
  const ok = typeof value === 'number' && value >= min &&
    ((infinite && value === Infinity) || (value <= max && (integer ? Number.isInteger(value) : Number.isFinite(value))))
  if (!ok) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`
    throw invalidOption(name, `a${integer ? 'n integer' : ' number'} ${range}${infinite ? ' or Infinity' : ''}`, value)
  }
  return value
}

/**
 * Returns `value` when it is a delay setTimeout can wait for, in milliseconds.
 * @throws GLUE_INVALID_OPTION (a GlueClientError) naming option `name`
 */
export function checkDelay (name: string, value: number, min = 0): number {
  return checkNumber(name, value, min, { max: MAX_TIMER_DELAY })
}

/**
 * Checks the arguments of `close()`: the code 1000 or 3000-4999, the reason at most 123 bytes of UTF-8.
 * @throws GLUE_INVALID_OPTION (a GlueClientError) naming `code` or `reason`
 */
export function checkCloseArguments (code: number, reason: string): void {
  if (code !== CLOSE_NORMAL && !(Number.isInteger(code) && code >= CLOSE_APP_MIN && code <= CLOSE_APP_MAX)) {
    throw invalidOption('code', '1000 or an integer from 3000 to 4999', code)
  }
  if (new TextEncoder().encode(reason).length > CLOSE_REASON_MAX_BYTES) {
    throw invalidOption('reason', `at most ${CLOSE_REASON_MAX_BYTES} bytes of UTF-8`, reason)
  }
}

function resolveUrl (url: string | undefined, path: string): string {
  const page = (globalThis as { location?: { href: string } }).location
  let target: URL
  try {
    target = new URL(url ?? path, page?.href)
  } catch {
    throw invalidOption('url', 'an absolute ws:, wss:, http: or https: URL (or a path, on a web page)', url ?? path)
  }
  // Both are special schemes, so the URL setter may switch between them.
  if (target.protocol === 'http:') target.protocol = 'ws:'
  else if (target.protocol === 'https:') target.protocol = 'wss:'
  if (target.protocol !== 'ws:' && target.protocol !== 'wss:') {
    throw invalidOption('url', 'a ws:, wss:, http: or https: URL', target.href)
  }
  return target.href
}

/**
 * Merges the caller's options with the defaults, validates each one and freezes the result.
 * @throws GLUE_INVALID_OPTION (a GlueClientError) when an option breaks its rule, or no WebSocket is available
 */
export function resolveClientOptions (options: GlueClientOptions): ResolvedClientOptions {
  const path = options.path ?? DEFAULTS.path
  if (typeof path !== 'string' || !path.startsWith('/')) throw invalidOption('path', 'a string starting with "/"', path)
  const url = resolveUrl(options.url, path)
  const raw = options.raw === true
  const WebSocket = options.WebSocket ?? (globalThis as { WebSocket?: GlueSocketConstructor }).WebSocket
  if (typeof WebSocket !== 'function') throw invalidOption('WebSocket', 'a WebSocket constructor (this runtime has none)', WebSocket)
  const reconnectionAttempts = checkNumber('reconnectionAttempts', options.reconnectionAttempts ?? DEFAULTS.reconnectionAttempts, 0, { integer: true, infinite: true })
  const reconnectionDelay = checkDelay('reconnectionDelay', options.reconnectionDelay ?? DEFAULTS.reconnectionDelay)
  // The default cap never stands below a larger base delay: that base is then the delay of every attempt.
  const reconnectionDelayMax = checkDelay('reconnectionDelayMax', options.reconnectionDelayMax ?? Math.max(DEFAULTS.reconnectionDelayMax, reconnectionDelay), reconnectionDelay)
  const randomizationFactor = checkNumber('randomizationFactor', options.randomizationFactor ?? DEFAULTS.randomizationFactor, 0, { max: 1 })
  const stableAfter = checkDelay('stableAfter', options.stableAfter ?? DEFAULTS.stableAfter)
  const maxQueue = checkNumber('maxQueue', options.maxQueue ?? DEFAULTS.maxQueue, 0, { integer: true })
  const requestTimeout = checkDelay('requestTimeout', options.requestTimeout ?? DEFAULTS.requestTimeout)
  const doNotComeBack = options.doNotComeBack ?? isDoNotComeBack
  if (typeof doNotComeBack !== 'function') throw invalidOption('doNotComeBack', 'a function (code) => boolean', doNotComeBack)
  let resume: GlueResumePoint | undefined
  if (options.resume !== undefined) {
    const { epoch, lastSeq } = options.resume
    if (typeof epoch !== 'string' || epoch === '') throw invalidOption('resume.epoch', 'a non-empty string', epoch)
    resume = { epoch, lastSeq: checkNumber('resume.lastSeq', lastSeq, 0, { integer: true }) }
  }
  return Object.freeze({
    url,
    raw,
    protocols: raw ? options.protocols : [GLUE_PROTOCOL].concat(options.protocols ?? []),
    WebSocket,
    autoConnect: options.autoConnect ?? DEFAULTS.autoConnect,
    reconnection: options.reconnection ?? DEFAULTS.reconnection,
    reconnectionAttempts,
    reconnectionDelay,
    reconnectionDelayMax,
    randomizationFactor,
    stableAfter,
    doNotComeBack,
    maxQueue,
    requestTimeout,
    resume
  })
}
