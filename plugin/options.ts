import type { FastifyRequest } from 'fastify'
import {
  DEFAULT_CLIENT_PREFIX,
  DEFAULT_MAX_SOCKETS_PER_SESSION,
  DEFAULT_OUTBOX_LIMIT,
  DEFAULT_OUTBOX_MAX_AGE,
  DEFAULT_RATE_LIMIT,
  DEFAULT_SEND_HIGH_WATER_MARK,
  DEFAULT_SESSION_GRACE,
  DEFAULT_COOKIE_NAME,
  DEFAULT_HEARTBEAT_INTERVAL,
  DEFAULT_MAX_PAYLOAD,
  DEFAULT_PATH,
  DEFAULT_REDIS_BUFFER_LIMIT,
  DEFAULT_REDIS_NODE_TIMEOUT,
  DEFAULT_REDIS_PREFIX,
  DEFAULT_REDIS_STREAM_LIMIT,
  DEFAULT_DRAIN_TIMEOUT,
  DEFAULT_MAX_DETACHED_BYTES,
  DEFAULT_MAX_DETACHED_SESSIONS,
  DEFAULT_MAX_PENDING_REQUESTS,
  DEFAULT_MAX_TOPICS_PER_SESSION
} from './constants.js'
import { describe, FST_WSGLUE_INVALID_OPTION } from './errors.js'
import type { CloseListener, ConnectListener, MessageListener } from './events.js'
import type { RequestHandler, SubscribeAuthorizer } from './inbound.js'
import type { GlueAdapter } from './adapters/adapter.js'

/** Decides whether a handshake's `Origin` may connect. Throwing counts as a refusal. */
export type OriginCheck = (origin: string, request: FastifyRequest) => boolean

/** Options of the session cookie. */
export interface GlueCookieOptions {
  /**
   * Cookie name. A `__Host-` name requires `secure: true`, `path: '/'` and no `domain`.
   * @default 'sid'
   */
  name?: string
  /**
   * Signing secret, or a rotation list: the first entry signs, every entry verifies, and a cookie
   * signed with an older entry is re-issued signed with the first. Required unless @fastify/cookie
   * is already registered with a secret, whose signer is then used.
   */
  secret?: string | string[]
  /**
   * Max-Age in seconds. Unset means a browser-session cookie.
   * @default undefined
   */
  maxAge?: number
  /**
   * Domain attribute. Unset means host-only.
   * @default undefined
   */
  domain?: string
  /**
   * Path attribute.
   * @default '/'
   */
  path?: string
  /**
   * SameSite attribute. `'none'` requires `secure: true`.
   * @default 'lax'
   */
  sameSite?: 'lax' | 'strict' | 'none'
  /**
   * Secure attribute. `'auto'` sets it when the request came over https (trust proxy honoured).
   * @default 'auto'
   */
  secure?: boolean | 'auto'
  /**
   * Mint the session cookie on HTTP `GET` responses for HTML pages (`Sec-Fetch-Dest: document` or
   * `Accept: text/html`) that arrive without a valid one, so every tab the page opens shares a session.
   * @default true
   */
  issueOnPages?: boolean
}

/** Options of the browser client that the plugin serves. */
export interface GlueClientAssetsOptions {
  /**
   * URL prefix the client files are served under (`glue-client.js`, `glue-client.global.js`).
   * @default '/_glue/'
   */
  prefix?: string
}

/** Inbound message rate limit of each socket: a token bucket. */
export interface RateLimitOptions {
  /**
   * Sustained messages per second.
   * @default 100
   */
  messagesPerSecond?: number
  /**
   * Messages that may arrive at once above the sustained rate.
   * @default 200
   */
  burst?: number
}

/** Handshake rate limit of each remote address: a token bucket. */
export interface HandshakeRateLimitOptions {
  /**
   * Sustained handshakes per second from one address.
   * @default 20
   */
  handshakesPerSecond?: number
  /**
   * Handshakes that may arrive at once above the sustained rate.
   * @default 60
   */
  burst?: number
}

/** Options of `app.register(glue, options)`. */
export interface GlueOptions {
  /**
   * Route of the websocket endpoint.
   * @default '/ws'
   */
  path?: string
  /** The session cookie. */
  cookie?: GlueCookieOptions
  /**
   * Origins allowed to open a socket, as `scheme://host[:port]` strings or a function. Unset means
   * the `Origin` must name the same host and port as the `Host` header; `Origin: null` is refused;
   * a handshake without `Origin` (not a browser) is allowed.
   * @default undefined
   */
  allowedOrigins?: readonly string[] | OriginCheck
  /**
   * Milliseconds between heartbeat pings; a socket that has not answered by the next tick is
   * terminated. 0 disables the heartbeat.
   * @default 30000
   */
  heartbeatInterval?: number
  /**
   * Largest inbound message in bytes; a larger one closes that socket with 1009.
   * @default 65536
   */
  maxPayload?: number
  /**
   * Serve the browser client through @fastify/static, or `false` to not serve it.
   * @default { prefix: '/_glue/' }
   */
  client?: GlueClientAssetsOptions | false
  /**
   * Messages kept per session for resuming glue.v1 clients. 0 disables resume.
   * @default 500
   */
  outboxLimit?: number
  /**
   * Milliseconds a message stays in an outbox.
   * @default 120000
   */
  outboxMaxAge?: number
  /**
   * Milliseconds a session that spoke glue.v1 stays known after its last socket closed; messages
   * sent to it meanwhile wait in its outbox. 0 releases it at once.
   * @default 60000
   */
  sessionGrace?: number
  /**
   * Unsent bytes above which a socket is congested: volatile messages are dropped for it, and it must
   * drain below the mark within `drainTimeout` or be closed with 1013 as a slow consumer (its client
   * resumes from the outbox). A socket that reaches twice the mark is closed at once.
   * @default 1048576
   */
  sendHighWaterMark?: number
  /**
   * Milliseconds a socket may stay above `sendHighWaterMark` before it is closed with 1013.
   * @default 5000
   */
  drainTimeout?: number
  /**
   * Detached sessions (no socket, within their grace period) kept on this node; beyond it the one
   * that left first is released and its client sees a gap when it comes back.
   * @default 10000
   */
  maxDetachedSessions?: number
  /**
   * Memory that detached sessions and the messages kept for them may hold on this node, in bytes
   * (about 1 KiB per session plus each message kept for one session); beyond it the session that
   * left first is released.
   * @default 33554432
   */
  maxDetachedBytes?: number
  /**
   * Topics one session may be subscribed to: a client's subscribe beyond it is answered with
   * `GLUE_TOO_MANY_TOPICS`, `sessions.subscribe()` throws `FST_WSGLUE_TOO_MANY_TOPICS`.
   * @default 256
   */
  maxTopicsPerSession?: number
  /**
   * Requests and subscription checks of one socket that may be in progress at once; more are
   * answered with `GLUE_TOO_MANY_REQUESTS`.
   * @default 100
   */
  maxPendingRequests?: number
  /**
   * Websocket handshakes per remote address (`request.ip`: set Fastify's `trustProxy` behind a
   * proxy); further handshakes get HTTP 429. `false` disables it.
   * @default false
   */
  handshakeRateLimit?: HandshakeRateLimitOptions | false
  /**
   * Inbound message rate limit per socket; a client over it is closed with 1008. `false` disables it.
   * @default { messagesPerSecond: 100, burst: 200 }
   */
  rateLimit?: RateLimitOptions | false
  /**
   * Open sockets per session; further handshakes get HTTP 429.
   * @default 32
   */
  maxSocketsPerSession?: number
  /**
   * Open sockets per remote address (`request.ip`: set Fastify's `trustProxy` behind a proxy);
   * further handshakes get HTTP 429. 0 disables the limit.
   * @default 0
   */
  maxSocketsPerAddress?: number
  /**
   * Joins several nodes through Redis: a `redis://` or `rediss://` URL, an ioredis client (the
   * adapter opens its own connections with `duplicate()`), or the Redis adapter's options.
   * Unset means one node with the memory adapter.
   * @default undefined
   */
  redis?: string | RedisClientLike | RedisAdapterOptions
  /** A custom adapter (see `GlueAdapter`); takes precedence over `redis`. @default the memory adapter */
  adapter?: GlueAdapter
  /** Runs when a socket has joined its session. Throwing or rejecting closes that socket with 1011. */
  onConnect?: ConnectListener
  /** Runs for every inbound message: `data` is a string for text frames, a Buffer for binary frames. */
  onMessage?: MessageListener
  /** Runs when a socket of a session has closed, with the close code and reason. */
  onClose?: CloseListener
  /**
   * Answers `client.request(data)` from glue.v1 clients; the (resolved) return value is the reply.
   * Without it, requests are answered with `GLUE_NO_HANDLER`.
   */
  onRequest?: RequestHandler
  /**
   * Allows or refuses a subscription asked for by a glue.v1 client. May be async. Without it every
   * client-initiated subscription is refused (server-side `sessions.subscribe()` is not affected).
   */
  authorizeSubscribe?: SubscribeAuthorizer
}

/** The part of an ioredis client the Redis adapter uses: `duplicate()`, to open its own connections. */
export interface RedisClientLike {
  duplicate (options?: object): unknown
}

/** Options of the Redis adapter. */
export interface RedisAdapterOptions {
  /** A `redis://` or `rediss://` URL; required unless `client` is given. */
  url?: string
  /** An ioredis client to take connection settings from (`duplicate()`); it is not used itself. */
  client?: RedisClientLike
  /**
   * Prefix of every key; nodes with the same prefix form one cluster. It becomes a `{prefix}` hash tag.
   * @default 'glue'
   */
  prefix?: string
  /**
   * Messages the shared stream keeps (all sessions together): how far back any resume can reach.
   * @default 100000
   */
  streamLimit?: number
  /**
   * Messages a node buffers while Redis is unreachable; beyond that, sends throw
   * FST_WSGLUE_CLUSTER_UNAVAILABLE.
   * @default 10000
   */
  bufferLimit?: number
  /**
   * Milliseconds without a heartbeat after which a node counts as dead and its presence is removed.
   * @default 10000
   */
  nodeTimeout?: number
}

/** Validated Redis adapter options. */
export interface ResolvedRedisAdapterOptions {
  readonly url: string | undefined
  readonly client: RedisClientLike | undefined
  readonly prefix: string
  readonly streamLimit: number
  readonly bufferLimit: number
  readonly nodeTimeout: number
}

/** Validated cookie options. */
export interface ResolvedCookieOptions {
  readonly name: string
  readonly secrets: readonly string[] | null
  readonly maxAge: number | undefined
  readonly domain: string | undefined
  readonly path: string
  readonly sameSite: 'lax' | 'strict' | 'none'
  readonly secure: boolean | 'auto'
  readonly issueOnPages: boolean
}

/** Validated, frozen options; the rest of the plugin reads only these. */
export interface ResolvedGlueOptions {
  readonly path: string
  readonly cookie: ResolvedCookieOptions
  readonly allowedOrigins: ReadonlySet<string> | OriginCheck | null
  readonly heartbeatInterval: number
  readonly maxPayload: number
  readonly client: { readonly prefix: string } | false
  readonly outboxLimit: number
  readonly outboxMaxAge: number
  readonly redis: ResolvedRedisAdapterOptions | undefined
  readonly adapter: GlueAdapter | undefined
  readonly sessionGrace: number
  readonly sendHighWaterMark: number
  readonly drainTimeout: number
  readonly maxDetachedSessions: number
  readonly maxDetachedBytes: number
  readonly maxTopicsPerSession: number
  readonly maxPendingRequests: number
  readonly handshakeRateLimit: { readonly handshakesPerSecond: number, readonly burst: number } | false
  readonly rateLimit: { readonly messagesPerSecond: number, readonly burst: number } | false
  readonly maxSocketsPerSession: number
  readonly maxSocketsPerAddress: number
  readonly onConnect: ConnectListener | undefined
  readonly onMessage: MessageListener | undefined
  readonly onClose: CloseListener | undefined
  readonly onRequest: RequestHandler | undefined
  readonly authorizeSubscribe: SubscribeAuthorizer | undefined
}

/** Default values of every optional option. */
export const DEFAULTS = Object.freeze({
  path: DEFAULT_PATH,
  cookieName: DEFAULT_COOKIE_NAME,
  cookiePath: '/',
  sameSite: 'lax',
  secure: 'auto',
  issueOnPages: true,
  heartbeatInterval: DEFAULT_HEARTBEAT_INTERVAL,
  maxPayload: DEFAULT_MAX_PAYLOAD,
  clientPrefix: DEFAULT_CLIENT_PREFIX,
  outboxLimit: DEFAULT_OUTBOX_LIMIT,
  outboxMaxAge: DEFAULT_OUTBOX_MAX_AGE,
  sessionGrace: DEFAULT_SESSION_GRACE,
  sendHighWaterMark: DEFAULT_SEND_HIGH_WATER_MARK,
  drainTimeout: DEFAULT_DRAIN_TIMEOUT,
  maxDetachedSessions: DEFAULT_MAX_DETACHED_SESSIONS,
  maxDetachedBytes: DEFAULT_MAX_DETACHED_BYTES,
  maxTopicsPerSession: DEFAULT_MAX_TOPICS_PER_SESSION,
  maxPendingRequests: DEFAULT_MAX_PENDING_REQUESTS,
  handshakeRateLimit: Object.freeze({ handshakesPerSecond: 20, burst: 60 }),
  rateLimit: DEFAULT_RATE_LIMIT,
  maxSocketsPerSession: DEFAULT_MAX_SOCKETS_PER_SESSION,
  maxSocketsPerAddress: 0,
  redisPrefix: DEFAULT_REDIS_PREFIX,
  redisStreamLimit: DEFAULT_REDIS_STREAM_LIMIT,
  redisBufferLimit: DEFAULT_REDIS_BUFFER_LIMIT,
  redisNodeTimeout: DEFAULT_REDIS_NODE_TIMEOUT
} as const)

// RFC 6265 token characters: no separators, controls or whitespace.
const COOKIE_NAME_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

function invalid (option: string, rule: string, value: unknown): Error {
  return new FST_WSGLUE_INVALID_OPTION(`expected \`${option}\` to be ${rule}, got ${describe(value)}`)
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function readInteger (option: string, value: unknown, fallback: number, min: number): number {
  const result = value ?? fallback
  if (typeof result !== 'number' || !Number.isSafeInteger(result) || result < min) {
    throw invalid(option, `an integer >= ${min}`, value)
  }
  return result
}

function readBoolean (option: string, value: unknown, fallback: boolean): boolean {
  const result = value ?? fallback
  if (typeof result !== 'boolean') throw invalid(option, 'a boolean', value)
  return result
}

function readOptionalString (option: string, value: unknown): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || value === '') throw invalid(option, 'a non-empty string', value)
  return value
}

function readHook<T> (option: string, value: unknown): T | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'function') throw invalid(option, 'a function', value)
  return value as T
}

function readUrlPath (option: string, value: unknown, fallback: string): string {
  const result = value ?? fallback
  if (typeof result !== 'string' || !result.startsWith('/') || /[\s?#]/.test(result)) {
    throw invalid(option, 'a URL path starting with "/" (no spaces, query or fragment)', value)
  }
  return result
}

function resolveSecrets (value: unknown): readonly string[] | null {
  if (value === undefined) return null
  const list = typeof value === 'string' ? [value] : value
  if (!Array.isArray(list) || list.length === 0 ||
    !list.every((secret) => typeof secret === 'string' && secret.length > 0)) {
    throw invalid('cookie.secret', 'a non-empty string or a non-empty array of non-empty strings', value)
  }
  return Object.freeze([...list])
}

function resolveCookie (raw: unknown): ResolvedCookieOptions {
  if (raw !== undefined && !isPlainObject(raw)) throw invalid('cookie', 'an object', raw)
  const cookie = raw ?? {}

  const name = cookie.name ?? DEFAULTS.cookieName
  if (typeof name !== 'string' || !COOKIE_NAME_RE.test(name)) {
    throw invalid('cookie.name', 'a cookie name (RFC 6265 token characters)', cookie.name)
  }
  const maxAge = cookie.maxAge === undefined ? undefined : readInteger('cookie.maxAge', cookie.maxAge, 0, 0)
  const domain = readOptionalString('cookie.domain', cookie.domain)
  const path = readUrlPath('cookie.path', cookie.path, DEFAULTS.cookiePath)

  const sameSite = cookie.sameSite ?? DEFAULTS.sameSite
  if (sameSite !== 'lax' && sameSite !== 'strict' && sameSite !== 'none') {
    throw invalid('cookie.sameSite', "one of 'lax', 'strict' or 'none'", cookie.sameSite)
  }
  const secure = cookie.secure ?? DEFAULTS.secure
  if (secure !== true && secure !== false && secure !== 'auto') {
    throw invalid('cookie.secure', "true, false or 'auto'", cookie.secure)
  }
  // Browsers drop SameSite=None cookies that lack Secure.
  if (sameSite === 'none' && secure !== true) {
    throw invalid('cookie.secure', "true when `cookie.sameSite` is 'none'", cookie.secure)
  }
  // RFC 6265bis §4.1.3: prefixed names are rejected by browsers unless the attributes match.
  if (name.startsWith('__Host-')) {
    if (secure !== true) throw invalid('cookie.secure', 'true for a `__Host-` cookie name', cookie.secure)
    if (path !== '/') throw invalid('cookie.path', '"/" for a `__Host-` cookie name', cookie.path)
    if (domain !== undefined) throw invalid('cookie.domain', 'unset for a `__Host-` cookie name', cookie.domain)
  }
  if (name.startsWith('__Secure-') && secure !== true) {
    throw invalid('cookie.secure', 'true for a `__Secure-` cookie name', cookie.secure)
  }

  return Object.freeze({
    name,
    secrets: resolveSecrets(cookie.secret),
    maxAge,
    domain,
    path,
    sameSite,
    secure,
    issueOnPages: readBoolean('cookie.issueOnPages', cookie.issueOnPages, DEFAULTS.issueOnPages)
  })
}

function resolveAllowedOrigins (value: unknown): ReadonlySet<string> | OriginCheck | null {
  if (value === undefined) return null
  if (typeof value === 'function') return value as OriginCheck
  if (!Array.isArray(value)) throw invalid('allowedOrigins', 'an array of origins or a function', value)
  const origins = new Set<string>()
  for (const entry of value) {
    if (typeof entry !== 'string' || !isSerialisedOrigin(entry)) {
      throw invalid('allowedOrigins', 'origins of the form "scheme://host[:port]"', entry)
    }
    origins.add(entry.toLowerCase())
  }
  return origins
}

function isSerialisedOrigin (value: string): boolean {
  try {
    return new URL(value).origin === value.toLowerCase()
  } catch {
    return false
  }
}

function resolveRateLimit (value: unknown): ResolvedGlueOptions['rateLimit'] {
  if (value === false) return false
  if (value !== undefined && !isPlainObject(value)) throw invalid('rateLimit', 'an object or false', value)
  const messagesPerSecond = readInteger('rateLimit.messagesPerSecond', value?.messagesPerSecond, DEFAULTS.rateLimit.messagesPerSecond, 1)
  const burst = readInteger('rateLimit.burst', value?.burst, DEFAULTS.rateLimit.burst, 1)
  return Object.freeze({ messagesPerSecond, burst })
}

function resolveHandshakeRateLimit (value: unknown): ResolvedGlueOptions['handshakeRateLimit'] {
  if (value === false || value === undefined) return false
  if (!isPlainObject(value)) throw invalid('handshakeRateLimit', 'an object or false', value)
  const handshakesPerSecond = readInteger('handshakeRateLimit.handshakesPerSecond', value.handshakesPerSecond, DEFAULTS.handshakeRateLimit.handshakesPerSecond, 1)
  const burst = readInteger('handshakeRateLimit.burst', value.burst, DEFAULTS.handshakeRateLimit.burst, 1)
  return Object.freeze({ handshakesPerSecond, burst })
}

function resolveClient (value: unknown): { readonly prefix: string } | false {
  if (value === false) return false
  if (value !== undefined && !isPlainObject(value)) throw invalid('client', 'an object or false', value)
  const prefix = readUrlPath('client.prefix', value?.prefix, DEFAULTS.clientPrefix)
  return Object.freeze({ prefix: prefix.endsWith('/') ? prefix : prefix + '/' })
}

function isRedisClient (value: unknown): value is RedisClientLike {
  return typeof value === 'object' && value !== null && typeof (value as RedisClientLike).duplicate === 'function'
}

/**
 * Validates the Redis adapter's options (a URL, a client, or an options object).
 * @throws FST_WSGLUE_INVALID_OPTION
 */
export function resolveRedisOptions (value: unknown, option = 'redis'): ResolvedRedisAdapterOptions {
  const raw: Record<string, unknown> = typeof value === 'string'
    ? { url: value }
    : isRedisClient(value) ? { client: value } : isPlainObject(value) ? value : {}
  if (typeof value !== 'string' && !isRedisClient(value) && !isPlainObject(value)) {
    throw invalid(option, 'a redis:// URL, an ioredis client or an options object', value)
  }
  const url = raw.url
  if (url !== undefined && (typeof url !== 'string' || !/^rediss?:\/\//.test(url))) {
    throw invalid(`${option}.url`, 'a URL starting with redis:// or rediss://', url)
  }
  if (raw.client !== undefined && !isRedisClient(raw.client)) throw invalid(`${option}.client`, 'an ioredis client', raw.client)
  if (url === undefined && raw.client === undefined) throw invalid(option, 'a `url` or a `client`', value)
  const prefix = raw.prefix ?? DEFAULTS.redisPrefix
  if (typeof prefix !== 'string' || !/^[\w.:-]{1,64}$/.test(prefix)) {
    throw invalid(`${option}.prefix`, '1 to 64 letters, digits, or . : _ -', prefix)
  }
  return Object.freeze({
    url,
    client: raw.client as RedisClientLike | undefined,
    prefix,
    streamLimit: readInteger(`${option}.streamLimit`, raw.streamLimit, DEFAULTS.redisStreamLimit, 100),
    bufferLimit: readInteger(`${option}.bufferLimit`, raw.bufferLimit, DEFAULTS.redisBufferLimit, 0),
    nodeTimeout: readInteger(`${option}.nodeTimeout`, raw.nodeTimeout, DEFAULTS.redisNodeTimeout, 300)
  })
}

function resolveAdapter (value: unknown): GlueAdapter | undefined {
  if (value === undefined) return undefined
  const adapter = value as Partial<GlueAdapter>
  if (typeof adapter !== 'object' || adapter === null || typeof adapter.start !== 'function' || typeof adapter.emit !== 'function') {
    throw invalid('adapter', 'an adapter object (see GlueAdapter)', value)
  }
  return value as GlueAdapter
}

/**
 * Merges user options with the defaults, validates every field and freezes the result.
 * @throws FST_WSGLUE_INVALID_OPTION naming the option, the rule and the value received.
 */
export function resolveOptions (raw: GlueOptions | undefined): ResolvedGlueOptions {
  if (raw !== undefined && !isPlainObject(raw)) throw invalid('options', 'an object', raw)
  const options: Record<string, unknown> = raw ?? {}

  return Object.freeze({
    path: readUrlPath('path', options.path, DEFAULTS.path),
    cookie: resolveCookie(options.cookie),
    allowedOrigins: resolveAllowedOrigins(options.allowedOrigins),
    heartbeatInterval: readInteger('heartbeatInterval', options.heartbeatInterval, DEFAULTS.heartbeatInterval, 0),
    maxPayload: readInteger('maxPayload', options.maxPayload, DEFAULTS.maxPayload, 1),
    client: resolveClient(options.client),
    outboxLimit: readInteger('outboxLimit', options.outboxLimit, DEFAULTS.outboxLimit, 0),
    outboxMaxAge: readInteger('outboxMaxAge', options.outboxMaxAge, DEFAULTS.outboxMaxAge, 1),
    sessionGrace: readInteger('sessionGrace', options.sessionGrace, DEFAULTS.sessionGrace, 0),
    sendHighWaterMark: readInteger('sendHighWaterMark', options.sendHighWaterMark, DEFAULTS.sendHighWaterMark, 1),
    drainTimeout: readInteger('drainTimeout', options.drainTimeout, DEFAULTS.drainTimeout, 1),
    maxDetachedSessions: readInteger('maxDetachedSessions', options.maxDetachedSessions, DEFAULTS.maxDetachedSessions, 0),
    maxDetachedBytes: readInteger('maxDetachedBytes', options.maxDetachedBytes, DEFAULTS.maxDetachedBytes, 0),
    maxTopicsPerSession: readInteger('maxTopicsPerSession', options.maxTopicsPerSession, DEFAULTS.maxTopicsPerSession, 1),
    maxPendingRequests: readInteger('maxPendingRequests', options.maxPendingRequests, DEFAULTS.maxPendingRequests, 1),
    handshakeRateLimit: resolveHandshakeRateLimit(options.handshakeRateLimit),
    rateLimit: resolveRateLimit(options.rateLimit),
    maxSocketsPerSession: readInteger('maxSocketsPerSession', options.maxSocketsPerSession, DEFAULTS.maxSocketsPerSession, 1),
    maxSocketsPerAddress: readInteger('maxSocketsPerAddress', options.maxSocketsPerAddress, DEFAULTS.maxSocketsPerAddress, 0),
    redis: options.redis === undefined ? undefined : resolveRedisOptions(options.redis, 'redis'),
    adapter: resolveAdapter(options.adapter),
    onConnect: readHook<ConnectListener>('onConnect', options.onConnect),
    onMessage: readHook<MessageListener>('onMessage', options.onMessage),
    onClose: readHook<CloseListener>('onClose', options.onClose),
    onRequest: readHook<RequestHandler>('onRequest', options.onRequest),
    authorizeSubscribe: readHook<SubscribeAuthorizer>('authorizeSubscribe', options.authorizeSubscribe)
  })
}
