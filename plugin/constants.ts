/**
 * Close code for the sockets of a revoked session (logout): IANA's registered 3000 "Unauthorized".
 * The shipped client never reconnects after it and emits `revoked`.
 */
export const CLOSE_REVOKED = 3000
/** Close code for a normal `sessions.close()` without an explicit code. */
export const CLOSE_NORMAL = 1000
/** Close code sent to every socket when the server shuts down. */
export const CLOSE_GOING_AWAY = 1001
/** Close code for an inbound message larger than `maxPayload`. */
export const CLOSE_MESSAGE_TOO_BIG = 1009
/** Close code when an `onConnect` hook throws or rejects, or handling a socket fails unexpectedly. */
export const CLOSE_INTERNAL_ERROR = 1011
/** Lowest and highest close codes an application may send (RFC 6455 §7.4.2 private range starts at 4000). */
export const CLOSE_APP_MIN = 3000
export const CLOSE_APP_MAX = 4999
/** RFC 6455 §5.5: a control frame body is at most 125 bytes, 2 of them the code. */
export const CLOSE_REASON_MAX_BYTES = 123

export const DEFAULT_PATH = '/ws'
export const DEFAULT_COOKIE_NAME = 'sid'
export const DEFAULT_HEARTBEAT_INTERVAL = 30_000
export const DEFAULT_MAX_PAYLOAD = 64 * 1024
export const DEFAULT_CLIENT_PREFIX = '/_glue/'
/** A secret shorter than this gets a boot-time warning. */
export const WEAK_SECRET_LENGTH = 32
/** Session ids carry 144 bits from the CSPRNG (24 base64url characters). */
export const SESSION_ID_BYTES = 18
/** How long `app.close()` waits for peers to answer the 1001 close frame before terminating them. */
export const SHUTDOWN_GRACE = 1000

/** Raw request marker: the session Set-Cookie value this response carries (for an upgrade, the 101 must carry it). */
export const kSetCookie = Symbol('fastify-websocket-glue.setCookie')
/** Close code for a glue.v1 envelope that is not valid JSON (RFC 6455: inconsistent data). */
export const CLOSE_INVALID_PAYLOAD = 1007
/** Close code for a glue.v1 envelope that breaks the protocol's rules. */
export const CLOSE_POLICY_VIOLATION = 1008
/** Topic names are at most 255 UTF-8 bytes: binary topic envelopes store the length in one byte. */
export const TOPIC_MAX_BYTES = 255
/** Close code for a slow consumer: its client should come back and resume (RFC 6455 §7.4.1 "Try Again Later"). */
export const CLOSE_TRY_AGAIN_LATER = 1013
/** How long a slow consumer closed with 1013 may take to finish closing before it is terminated. */
export const SLOW_CONSUMER_GRACE = 2000
/** Longest pause between two sweeps of detached sessions and outboxes. */
export const MAX_SWEEP_INTERVAL = 1000

export const DEFAULT_OUTBOX_LIMIT = 500
export const DEFAULT_OUTBOX_MAX_AGE = 120_000
export const DEFAULT_SESSION_GRACE = 60_000
export const DEFAULT_SEND_HIGH_WATER_MARK = 1024 * 1024
export const DEFAULT_RATE_LIMIT = Object.freeze({ messagesPerSecond: 100, burst: 200 })
export const DEFAULT_MAX_SOCKETS_PER_SESSION = 32
export const DEFAULT_DRAIN_TIMEOUT = 5000
export const DEFAULT_MAX_DETACHED_SESSIONS = 10_000
export const DEFAULT_MAX_DETACHED_BYTES = 32 * 1024 * 1024
export const DEFAULT_MAX_TOPICS_PER_SESSION = 256
export const DEFAULT_MAX_PENDING_REQUESTS = 100
/** A session cookie is accepted for 7 days after it was issued; active sessions get a new one past half of it. */
export const DEFAULT_COOKIE_LIFETIME = 7 * 24 * 3600
/** Browsers cap cookie lifetimes at 400 days (RFC 6265bis); shorter than a minute is a mistake. */
export const MIN_COOKIE_LIFETIME = 60
export const MAX_COOKIE_LIFETIME = 400 * 24 * 3600
export const DEFAULT_MAX_REVOCATIONS = 100_000
/** `writeDelay` is off by default; a window longer than this would hold messages for longer than it saves. */
export const DEFAULT_WRITE_DELAY = 0
export const MAX_WRITE_DELAY = 1000
/** Bytes written to one socket in one tick before they go to the kernel instead of waiting for the tick's end. */
export const COALESCE_FLUSH_BYTES = 64 * 1024
/** While an async `onConnect` runs, reading from the socket pauses once this many messages wait… */
export const CONNECT_QUEUE_MESSAGES = 100
/** …or this many bytes (TCP then holds the rest back; nothing is lost). */
export const CONNECT_QUEUE_BYTES = 1024 * 1024
/** How long `sessions.gauges()` (a metrics scrape) waits for the adapter's `health()` before reporting it not connected. */
export const ADAPTER_HEALTH_TIMEOUT = 1000

// Topic history and presence (issue 17).
/** Messages a topic keeps by default when `topicHistory` enables it, and the most it may keep. */
export const DEFAULT_HISTORY_LIMIT = 100
export const MAX_HISTORY_LIMIT = 10_000
/** Milliseconds a topic message stays in its history by default. */
export const DEFAULT_HISTORY_MAX_AGE = 3_600_000
/** Bytes all topic histories of one node may hold together (memory adapter). */
export const DEFAULT_MAX_HISTORY_BYTES = 32 * 1024 * 1024
/** Bytes charged per kept message and per topic on top of their text: the objects that hold them. */
export const HISTORY_ENTRY_OVERHEAD = 96
export const HISTORY_TOPIC_OVERHEAD = 256
/** A history request costs one message of the client's rate limit per this many messages it returns. */
export const HISTORY_MESSAGES_PER_TOKEN = 100
/** Milliseconds over which join and leave events of a topic are coalesced into one batch. */
export const DEFAULT_PRESENCE_INTERVAL = 1000
/** Members a member list returns at most, and changes one presence batch lists at most. */
export const DEFAULT_MAX_MEMBERS = 1000
