import {
  DEFAULT_CLIENT_PREFIX,
  DEFAULT_COOKIE_LIFETIME,
  DEFAULT_COOKIE_NAME,
  DEFAULT_DRAIN_TIMEOUT,
  DEFAULT_HEARTBEAT_INTERVAL,
  DEFAULT_MAX_DETACHED_BYTES,
  DEFAULT_MAX_DETACHED_SESSIONS,
  DEFAULT_MAX_HISTORY_BYTES,
  DEFAULT_MAX_MEMBERS,
  DEFAULT_MAX_PAYLOAD,
  DEFAULT_MAX_PENDING_REQUESTS,
  DEFAULT_MAX_REVOCATIONS,
  DEFAULT_MAX_SOCKETS_PER_SESSION,
  DEFAULT_MAX_TOPICS_PER_SESSION,
  DEFAULT_OUTBOX_LIMIT,
  DEFAULT_OUTBOX_MAX_AGE,
  DEFAULT_PATH,
  DEFAULT_PRESENCE_INTERVAL,
  DEFAULT_RATE_LIMIT,
  DEFAULT_SEND_HIGH_WATER_MARK,
  DEFAULT_SESSION_GRACE,
  DEFAULT_WRITE_DELAY,
  MAX_COOKIE_LIFETIME,
  MAX_WRITE_DELAY,
  MIN_COOKIE_LIFETIME
} from '../constants.js'
import type { CloseListener, ConnectListener, IdentifyUser, MessageListener, OriginCheck, RequestHandler, SubscribeAuthorizer } from '../api/hooks.js'
import type { GlueAdapter } from '../adapters/adapter.js'
import type { SessionCookieAttributes } from '../handshake/identity.js'
import type { GlueOptions, JsonSchema } from './options.js'
import { resolveTopicHistory, resolveTopicPresence, type ResolvedTopicHistory, type ResolvedTopicPresence } from '../topics/rules.js'
import { invalid, isPlainObject, readBoolean, readHook, readInteger, readOptionalString, readUrlPath } from './validate.js'

/** Validated cookie options. */
export interface ResolvedCookieOptions extends SessionCookieAttributes {
  readonly secrets: readonly string[] | null
  readonly issueOnPages: boolean
  /** `cookie.lifetime` in milliseconds. */
  readonly lifetime: number
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
  /** Validated by the Redis adapter, which is loaded only when this is set. */
  readonly redis: GlueOptions['redis']
  readonly adapter: GlueAdapter | undefined
  readonly sessionGrace: number
  readonly sendHighWaterMark: number
  readonly drainTimeout: number
  readonly writeDelay: number
  readonly maxDetachedSessions: number
  readonly maxDetachedBytes: number
  readonly maxTopicsPerSession: number
  readonly maxPendingRequests: number
  readonly handshakeRateLimit: { readonly handshakesPerSecond: number, readonly burst: number } | false
  readonly rateLimit: { readonly messagesPerSecond: number, readonly burst: number } | false
  readonly maxSocketsPerSession: number
  readonly maxSocketsPerAddress: number
  readonly messageSchema: JsonSchema | undefined
  readonly requestSchema: JsonSchema | undefined
  readonly onConnect: ConnectListener | undefined
  readonly onMessage: MessageListener | undefined
  readonly onClose: CloseListener | undefined
  readonly answerRequest: RequestHandler | undefined
  readonly authorizeSubscribe: SubscribeAuthorizer | undefined
  readonly identify: IdentifyUser | undefined
  readonly maxRevocations: number
  /** Topic history and presence (issue 17). */
  readonly topicHistory: ResolvedTopicHistory
  readonly maxHistoryBytes: number
  readonly topicPresence: ResolvedTopicPresence
  readonly presenceInterval: number
  readonly maxMembers: number
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
  writeDelay: DEFAULT_WRITE_DELAY,
  maxDetachedSessions: DEFAULT_MAX_DETACHED_SESSIONS,
  maxDetachedBytes: DEFAULT_MAX_DETACHED_BYTES,
  maxTopicsPerSession: DEFAULT_MAX_TOPICS_PER_SESSION,
  maxPendingRequests: DEFAULT_MAX_PENDING_REQUESTS,
  handshakeRateLimit: Object.freeze({ handshakesPerSecond: 20, burst: 60 }),
  rateLimit: DEFAULT_RATE_LIMIT,
  maxSocketsPerSession: DEFAULT_MAX_SOCKETS_PER_SESSION,
  maxSocketsPerAddress: 0,
  cookieLifetime: DEFAULT_COOKIE_LIFETIME,
  maxRevocations: DEFAULT_MAX_REVOCATIONS,
  maxHistoryBytes: DEFAULT_MAX_HISTORY_BYTES,
  presenceInterval: DEFAULT_PRESENCE_INTERVAL,
  maxMembers: DEFAULT_MAX_MEMBERS
} as const)

// RFC 6265 token characters: no separators, controls or whitespace.
const COOKIE_NAME_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

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
    issueOnPages: readBoolean('cookie.issueOnPages', cookie.issueOnPages, DEFAULTS.issueOnPages),
    lifetime: 1000 * readInteger('cookie.lifetime', cookie.lifetime, DEFAULTS.cookieLifetime, MIN_COOKIE_LIFETIME, MAX_COOKIE_LIFETIME)
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

// Compiled at register by the app's validator compiler, which checks the rest.
function resolveSchema (option: string, value: unknown): JsonSchema | undefined {
  if (value === undefined || typeof value === 'boolean' || isPlainObject(value)) return value
  throw invalid(option, 'a JSON Schema (an object or a boolean)', value)
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
  // Renamed: it shared its name with Fastify's onRequest hook.
  if (options.onRequest !== undefined) throw invalid('onRequest', 'unset: it is now called `answerRequest`', options.onRequest)

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
    writeDelay: readInteger('writeDelay', options.writeDelay, DEFAULTS.writeDelay, 0, MAX_WRITE_DELAY),
    maxDetachedSessions: readInteger('maxDetachedSessions', options.maxDetachedSessions, DEFAULTS.maxDetachedSessions, 0),
    maxDetachedBytes: readInteger('maxDetachedBytes', options.maxDetachedBytes, DEFAULTS.maxDetachedBytes, 0),
    maxTopicsPerSession: readInteger('maxTopicsPerSession', options.maxTopicsPerSession, DEFAULTS.maxTopicsPerSession, 1),
    maxPendingRequests: readInteger('maxPendingRequests', options.maxPendingRequests, DEFAULTS.maxPendingRequests, 1),
    handshakeRateLimit: resolveHandshakeRateLimit(options.handshakeRateLimit),
    rateLimit: resolveRateLimit(options.rateLimit),
    maxSocketsPerSession: readInteger('maxSocketsPerSession', options.maxSocketsPerSession, DEFAULTS.maxSocketsPerSession, 1),
    maxSocketsPerAddress: readInteger('maxSocketsPerAddress', options.maxSocketsPerAddress, DEFAULTS.maxSocketsPerAddress, 0),
    redis: options.redis as GlueOptions['redis'],
    adapter: resolveAdapter(options.adapter),
    messageSchema: resolveSchema('messageSchema', options.messageSchema),
    requestSchema: resolveSchema('requestSchema', options.requestSchema),
    onConnect: readHook<ConnectListener>('onConnect', options.onConnect),
    onMessage: readHook<MessageListener>('onMessage', options.onMessage),
    onClose: readHook<CloseListener>('onClose', options.onClose),
    answerRequest: readHook<RequestHandler>('answerRequest', options.answerRequest),
    authorizeSubscribe: readHook<SubscribeAuthorizer>('authorizeSubscribe', options.authorizeSubscribe),
    identify: readHook<IdentifyUser>('identify', options.identify),
    maxRevocations: readInteger('maxRevocations', options.maxRevocations, DEFAULTS.maxRevocations, 1),
    topicHistory: resolveTopicHistory(options.topicHistory),
    maxHistoryBytes: readInteger('maxHistoryBytes', options.maxHistoryBytes, DEFAULTS.maxHistoryBytes, 0),
    topicPresence: resolveTopicPresence(options.topicPresence),
    presenceInterval: readInteger('presenceInterval', options.presenceInterval, DEFAULTS.presenceInterval, 10, 60_000),
    maxMembers: readInteger('maxMembers', options.maxMembers, DEFAULTS.maxMembers, 1, 100_000)
  })
}
