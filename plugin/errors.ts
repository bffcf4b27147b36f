import createError from '@fastify/error'

/**
 * A register option is missing, of the wrong type or out of range.
 * The message names the option, states the rule and shows the value received.
 */
export const FST_WSGLUE_INVALID_OPTION = createError<'FST_WSGLUE_INVALID_OPTION', [string]>(
  'FST_WSGLUE_INVALID_OPTION',
  'Invalid option: %s',
  500,
  TypeError
)

/** No cookie secret was given and @fastify/cookie is not registered with one. */
export const FST_WSGLUE_MISSING_SECRET = createError<'FST_WSGLUE_MISSING_SECRET', []>(
  'FST_WSGLUE_MISSING_SECRET',
  'Missing cookie secret: pass `cookie.secret` or register @fastify/cookie with a `secret` before fastify-websocket-glue',
  500
)

/** `sessions.close()` got a code a server may not send (allowed: 1000 and 3000–4999). */
export const FST_WSGLUE_INVALID_CLOSE_CODE = createError<'FST_WSGLUE_INVALID_CLOSE_CODE', [string]>(
  'FST_WSGLUE_INVALID_CLOSE_CODE',
  'Invalid close code: expected 1000 or an integer from 3000 to 4999, got %s',
  500,
  RangeError
)

/** `sessions.close()` got a reason that is not a string of at most 123 UTF-8 bytes. */
export const FST_WSGLUE_INVALID_CLOSE_REASON = createError<'FST_WSGLUE_INVALID_CLOSE_REASON', [string]>(
  'FST_WSGLUE_INVALID_CLOSE_REASON',
  'Invalid close reason: expected a string of at most 123 UTF-8 bytes, got %s',
  500,
  RangeError
)

/** `send`/`broadcast` got data that is neither a string, binary, nor JSON-serialisable. */
export const FST_WSGLUE_INVALID_DATA = createError<'FST_WSGLUE_INVALID_DATA', [string]>(
  'FST_WSGLUE_INVALID_DATA',
  'Invalid data: expected a string, a Buffer, an ArrayBuffer view or a JSON-serialisable value, %s',
  500,
  TypeError
)

/** A session id argument is not a non-empty string. */
export const FST_WSGLUE_INVALID_SESSION_ID = createError<'FST_WSGLUE_INVALID_SESSION_ID', [string]>(
  'FST_WSGLUE_INVALID_SESSION_ID',
  'Invalid session id: expected a non-empty string, got %s',
  500,
  TypeError
)

/** A topic argument is not a non-empty, well-formed Unicode string of at most 255 UTF-8 bytes. */
export const FST_WSGLUE_INVALID_TOPIC = createError<'FST_WSGLUE_INVALID_TOPIC', [string]>(
  'FST_WSGLUE_INVALID_TOPIC',
  'Invalid topic: expected a non-empty, well-formed Unicode string (no lone surrogates) of at most 255 UTF-8 bytes, not starting with U+0000, got %s',
  500,
  TypeError
)
/** A user id argument is not a non-empty, well-formed Unicode string of at most 128 UTF-8 bytes. */
export const FST_WSGLUE_INVALID_USER_ID = createError<'FST_WSGLUE_INVALID_USER_ID', [string]>(
  'FST_WSGLUE_INVALID_USER_ID',
  'Invalid user id: expected a non-empty, well-formed Unicode string of at most 128 UTF-8 bytes, got %s',
  500,
  TypeError
)

/**
 * `sessions.login()`/`logout()` got something that is not the Fastify request and reply of an HTTP
 * route (a websocket handshake's reply cannot carry the new cookie: use `identify`).
 */
export const FST_WSGLUE_INVALID_REQUEST = createError<'FST_WSGLUE_INVALID_REQUEST', [string]>(
  'FST_WSGLUE_INVALID_REQUEST',
  'Invalid request: %s',
  500,
  TypeError
)

/** `sessions.subscribe()` would give a session more topics than `maxTopicsPerSession`. Nothing changed. */
export const FST_WSGLUE_TOO_MANY_TOPICS = createError<'FST_WSGLUE_TOO_MANY_TOPICS', [string]>(
  'FST_WSGLUE_TOO_MANY_TOPICS',
  'Too many topics: %s',
  500,
  RangeError
)

/** `sessions.on()`/`off()` got an unknown event name or a listener that is not a function. */
export const FST_WSGLUE_INVALID_LISTENER = createError<'FST_WSGLUE_INVALID_LISTENER', [string]>(
  'FST_WSGLUE_INVALID_LISTENER',
  'Invalid listener: %s',
  500,
  TypeError
)

/**
 * The Redis adapter cannot reach Redis and its buffer of messages waiting for it is full (`send`,
 * `broadcast`, `publish`, `close`, `subscribe`, `unsubscribe`), or a cluster-wide query
 * (`presence`, `clusterCounts`) cannot be answered right now. Nothing was sent.
 */
export const FST_WSGLUE_CLUSTER_UNAVAILABLE = createError<'FST_WSGLUE_CLUSTER_UNAVAILABLE', [string]>(
  'FST_WSGLUE_CLUSTER_UNAVAILABLE',
  'Cluster unavailable: %s',
  503
)

/** The Redis adapter could not connect to Redis while the plugin was being registered. */
export const FST_WSGLUE_REDIS_UNAVAILABLE = createError<'FST_WSGLUE_REDIS_UNAVAILABLE', [string]>(
  'FST_WSGLUE_REDIS_UNAVAILABLE',
  'Cannot connect to Redis: %s',
  500
)

/**
 * `sessions.pipe()` got a source, target or option it cannot use (the message names which), or was
 * called while the app is closing. No pipe was started.
 */
export const FST_WSGLUE_INVALID_PIPE = createError<'FST_WSGLUE_INVALID_PIPE', [string]>(
  'FST_WSGLUE_INVALID_PIPE',
  'Invalid pipe: %s',
  500,
  TypeError
)

/** An HTTP refusal of a websocket handshake, sent before any 101 as `{ statusCode, code, error, message }`. */
export interface HandshakeRefusal {
  readonly statusCode: number
  readonly code: string
  readonly error: string
  readonly message: string
}

/** Every refusal of a handshake, by what caused it (README "Close codes"). */
export const REFUSALS = Object.freeze({
  forbiddenOrigin: { statusCode: 403, code: 'FST_WSGLUE_FORBIDDEN_ORIGIN', error: 'Forbidden', message: 'Origin not allowed' },
  tooManySessionSockets: { statusCode: 429, code: 'FST_WSGLUE_TOO_MANY_SESSION_SOCKETS', error: 'Too Many Requests', message: 'Too many sockets for this session' },
  tooManyAddressSockets: { statusCode: 429, code: 'FST_WSGLUE_TOO_MANY_ADDRESS_SOCKETS', error: 'Too Many Requests', message: 'Too many sockets from this address' },
  tooManyHandshakes: { statusCode: 429, code: 'FST_WSGLUE_TOO_MANY_HANDSHAKES', error: 'Too Many Requests', message: 'Too many handshakes from this address' },
  notAWebsocketRoute: { statusCode: 404, code: 'FST_WSGLUE_NOT_A_WEBSOCKET_ROUTE', error: 'Not Found', message: 'Not a websocket route' },
  identifyFailed: { statusCode: 500, code: 'FST_WSGLUE_IDENTIFY_FAILED', error: 'Internal Server Error', message: 'Could not identify the user' }
} satisfies Record<string, HandshakeRefusal>)

/** An error reply as a glue.v1 client sees it: `["r", id, 0, { code, message }]`. */
export interface ReplyError {
  readonly code: string
  readonly message: string
}

/** Reply error codes a glue.v1 client can receive (docs/protocol.md). */
export const REPLY_ERRORS = Object.freeze({
  noHandler: { code: 'GLUE_NO_HANDLER', message: 'this server answers no requests' },
  requestFailed: { code: 'GLUE_REQUEST_FAILED', message: 'request failed' },
  refused: { code: 'GLUE_SUBSCRIBE_REFUSED', message: 'subscription refused' },
  authorizerFailed: { code: 'GLUE_SUBSCRIBE_FAILED', message: 'subscription check failed' },
  unknownKind: { code: 'GLUE_UNKNOWN_KIND', message: 'unknown envelope kind' },
  badEnvelope: { code: 'GLUE_BAD_ENVELOPE', message: 'malformed envelope' },
  unavailable: { code: 'GLUE_UNAVAILABLE', message: 'the cluster is unavailable; try again' },
  tooManyTopics: { code: 'GLUE_TOO_MANY_TOPICS', message: 'this session has as many topics as it may' },
  tooManyRequests: { code: 'GLUE_TOO_MANY_REQUESTS', message: 'too many requests in progress on this socket' },
  invalidData: { code: 'GLUE_INVALID_DATA', message: 'the request data does not match the schema' },
  noPresence: { code: 'GLUE_NO_PRESENCE', message: 'this topic does not show its members' },
  notSubscribed: { code: 'GLUE_NOT_SUBSCRIBED', message: 'subscribe to the topic to see its members' }
} satisfies Record<string, ReplyError>)

/** `sessions.history()` got options that are not `{ last?: integer >= 0, since?: position }`. */
export const FST_WSGLUE_INVALID_HISTORY_REQUEST = createError<'FST_WSGLUE_INVALID_HISTORY_REQUEST', [string]>(
  'FST_WSGLUE_INVALID_HISTORY_REQUEST',
  'Invalid history request: expected { last?: an integer >= 0, since?: a position "<epoch>.<n>" }, got %s',
  500,
  TypeError
)

/** Every error code of the plugin, for `instanceof` checks and `err.code` comparisons. */
export const errors = Object.freeze({
  FST_WSGLUE_INVALID_OPTION,
  FST_WSGLUE_MISSING_SECRET,
  FST_WSGLUE_INVALID_CLOSE_CODE,
  FST_WSGLUE_INVALID_CLOSE_REASON,
  FST_WSGLUE_INVALID_DATA,
  FST_WSGLUE_INVALID_SESSION_ID,
  FST_WSGLUE_INVALID_TOPIC,
  FST_WSGLUE_INVALID_USER_ID,
  FST_WSGLUE_INVALID_REQUEST,
  FST_WSGLUE_TOO_MANY_TOPICS,
  FST_WSGLUE_INVALID_LISTENER,
  FST_WSGLUE_CLUSTER_UNAVAILABLE,
  FST_WSGLUE_REDIS_UNAVAILABLE,
  FST_WSGLUE_INVALID_HISTORY_REQUEST,
  FST_WSGLUE_INVALID_PIPE
})

/** Describes a received value for error messages: `\`-1\` (number)`. */
export function describe (value: unknown): string {
  if (typeof value === 'string') return `\`${JSON.stringify(value)}\` (string)`
  if (typeof value === 'function') return '`function` (function)'
  if (value === null) return '`null`'
  if (Array.isArray(value)) return `\`${safeStringify(value)}\` (array)`
  if (typeof value === 'object') return `\`${safeStringify(value)}\` (object)`
  return `\`${String(value)}\` (${typeof value})`
}

function safeStringify (value: unknown): string {
  try {
    const text = JSON.stringify(value)
    return text.length > 80 ? text.slice(0, 77) + '...' : text
  } catch {
    return '[unserialisable]'
  }
}
