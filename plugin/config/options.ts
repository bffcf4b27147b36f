import type { CloseListener, ConnectListener, IdentifyUser, MessageListener, OriginCheck, RequestHandler, SubscribeAuthorizer } from '../api/hooks.js'
import type { GlueAdapter } from '../adapters/adapter.js'
import type { RedisAdapterOptions, RedisClientLike } from '../redis/options.js'

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
   * Seconds a signed session value is accepted after it was issued, whatever the browser does with
   * `maxAge`: a stolen cookie stops working after it. Handshakes and HTTP responses re-issue the
   * cookie once it is past half its lifetime, so an active session never expires. 60 to 34560000 (400 days).
   * @default 604800 (7 days)
   */
  lifetime?: number
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

/** What a topic keeps for clients that subscribe with `history`: its last messages, by count and age. */
export interface TopicHistoryOptions {
  /**
   * Messages kept, 1 to 10000.
   * @default 100
   */
  limit?: number
  /**
   * Milliseconds a message stays kept.
   * @default 3600000
   */
  maxAge?: number
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

/** A JSON Schema: an object (a TypeBox schema is one) or a boolean. */
export type JsonSchema = object | boolean

/**
 * Options of `app.register(glue, options)`. `Message` and `Request` type the data of `onMessage` and
 * `answerRequest`; `defineGlueOptions` infers them from `messageSchema` and `requestSchema`.
 */
export interface GlueOptions<Message = string | Buffer, Request = unknown> {
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
   * Milliseconds writes may wait so a busy socket gets one write per window: broadcasts and publishes
   * wait for the end of the window (at most this long), and so does a message for one session on a
   * socket that wrote within the last window; everything held leaves in one write. A message for a
   * quiet socket goes at once. Held bytes count toward `sendHighWaterMark`. Does not apply to
   * messages `ws` compresses itself. 0 writes every message in the tick it was sent (same-tick
   * messages still share one write).
   * @default 0
   */
  writeDelay?: number
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
   * Unset means one node with the memory adapter. Needs the optional peer dependency ioredis;
   * `createRedisAdapter` from `fastify-websocket-glue/redis` is the same adapter as an `adapter`.
   * @default undefined
   * @throws FST_WSGLUE_INVALID_OPTION at register when invalid, or when ioredis is not installed.
   */
  redis?: string | RedisClientLike | RedisAdapterOptions
  /** A custom adapter (see `GlueAdapter`); takes precedence over `redis`. @default the memory adapter */
  adapter?: GlueAdapter
  /**
   * Topics that keep their last messages for clients subscribing with `history`: the same limits for
   * every topic, or a function naming the limits of each topic (`undefined`, `null` or `false`: none).
   * The function runs on every publish, so keep it cheap; a throw or invalid result is logged and
   * keeps nothing. Only text and JSON messages are kept (not binary ones, not volatile ones).
   * @default undefined (no topic keeps history)
   */
  topicHistory?: TopicHistoryOptions | ((topic: string) => TopicHistoryOptions | undefined | null | false)
  /**
   * Bytes all topic histories of this node may hold together (one node; with Redis the histories
   * live in Redis, bounded per topic by `limit`). Beyond it the oldest kept messages go first.
   * @default 33554432
   */
  maxHistoryBytes?: number
  /**
   * Topics whose subscribers see who else is subscribed (member lists, join and leave events):
   * `true` for every topic, or a function deciding per topic.
   * @default false
   */
  topicPresence?: boolean | ((topic: string) => boolean)
  /**
   * Milliseconds over which a topic's join and leave events are coalesced: at most one batch per
   * topic per interval (per node), carrying only net changes, so a client that churns cannot flood a room.
   * @default 1000
   */
  presenceInterval?: number
  /**
   * Members a member list returns at most, and changes one presence batch lists at most (beyond it
   * the batch tells clients to ask for the list again).
   * @default 1000
   */
  maxMembers?: number
  /** Runs when a socket has joined its session. Throwing or rejecting closes that socket with 1011. */
  onConnect?: ConnectListener
  /**
   * JSON Schema of client messages, compiled once at register with the app's validator compiler
   * (Ajv by default, honouring shared schemas added with `addSchema`). With it, every message must
   * be JSON: the envelope's value for glue.v1 clients, the text parsed for plain ones; binary
   * messages never match. `onMessage` and `message` listeners then get the validated value (with
   * Ajv's defaults and coercions applied). Anything else is dropped, logged at info and counted in
   * `stats().invalidMessages`; the socket stays open.
   * @default undefined
   * @throws FST_WSGLUE_INVALID_OPTION at register when the compiler refuses the schema.
   */
  messageSchema?: JsonSchema
  /**
   * JSON Schema of the data of `client.request(data)`, compiled once at register like
   * `messageSchema`. A request whose data fails it is answered `GLUE_INVALID_DATA` with the
   * validator's message (`data/op must be string`), counted in `stats().invalidMessages`, and never
   * reaches `answerRequest`.
   * @default undefined
   * @throws FST_WSGLUE_INVALID_OPTION at register when the compiler refuses the schema.
   */
  requestSchema?: JsonSchema
  /**
   * Runs for every inbound message: `data` is a string for text frames, a Buffer for binary frames,
   * or the validated value with `messageSchema`.
   */
  onMessage?: MessageListener<Message>
  /** Runs when a socket of a session has closed, with the close code and reason. */
  onClose?: CloseListener
  /**
   * Names the user of each websocket handshake from the app's own authentication; see `IdentifyUser`
   * and the README's "Users and login".
   */
  identify?: IdentifyUser
  /**
   * Revoked session ids, and users logged out everywhere, that this node remembers (each kind);
   * beyond it the oldest revocation is forgotten early (its cookie would be accepted again).
   * @default 100000
   */
  maxRevocations?: number
  /**
   * Answers `client.request(data)` from glue.v1 clients; the (resolved) return value is the reply.
   * Without it, requests are answered with `GLUE_NO_HANDLER`. Formerly `onRequest`.
   */
  answerRequest?: RequestHandler<Request>
  /**
   * Allows or refuses a subscription asked for by a glue.v1 client. May be async. Without it every
   * client-initiated subscription is refused (server-side `sessions.subscribe()` is not affected).
   */
  authorizeSubscribe?: SubscribeAuthorizer
}
