import { existsSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { fileURLToPath } from 'node:url'
import fastifyCookie from '@fastify/cookie'
import fastifyStatic from '@fastify/static'
import fastifyWebsocket from '@fastify/websocket'
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import type { WebSocket } from 'ws'
import { createConnectionHandler } from './connection.js'
import { CLOSE_GOING_AWAY, kHttpRoute, kSetCookie, MAX_SWEEP_INTERVAL, SHUTDOWN_GRACE, WEAK_SECRET_LENGTH } from './constants.js'
import { errors, FST_WSGLUE_MISSING_SECRET } from './errors.js'
import { SessionEvents } from './events.js'
import { createHeartbeat } from './heartbeat.js'
import { createCookieSigner, createSessionId, createSharedCookieSigner, readIdentity, serializeSessionCookie, type CookieSigner } from './identity.js'
import { resolveOptions, type GlueOptions, type ResolvedGlueOptions } from './options.js'
import { isOriginAllowed } from './origin.js'
import { GLUE_PROTOCOL } from './protocol.js'
import { createRateLimiter } from './rate-limit.js'
import { createHandshakeLimiter } from './handshake-limit.js'
import { SessionRegistry } from './registry.js'
import { createStats } from './stats.js'
import { createSessions, type Sessions } from './sessions.js'
import type { GlueAdapter } from './adapters/adapter.js'
import { createMemoryAdapter } from './adapters/memory.js'
import { createRedisAdapterFromResolved } from './adapters/redis.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Push to browsers by session id; see the README's API section. */
    sessions: Sessions
  }
  interface FastifyRequest {
    /** The verified session id from the signed cookie (or the one minted for this response), else null. */
    sessionId: string | null
  }
}

type HandshakeRequest = IncomingMessage & { [kSetCookie]?: string }
interface MarkedRouteConfig { [kHttpRoute]?: true }

const FORBIDDEN_ORIGIN = 'FST_WSGLUE_FORBIDDEN_ORIGIN'
const TOO_MANY_SESSION_SOCKETS = 'FST_WSGLUE_TOO_MANY_SESSION_SOCKETS'
const TOO_MANY_ADDRESS_SOCKETS = 'FST_WSGLUE_TOO_MANY_ADDRESS_SOCKETS'
const TOO_MANY_HANDSHAKES = 'FST_WSGLUE_TOO_MANY_HANDSHAKES'
const NOT_A_WEBSOCKET_ROUTE = 'FST_WSGLUE_NOT_A_WEBSOCKET_ROUTE'

// What a browser loads from the client prefix: the scripts, and their source maps when built with them.
const CLIENT_ASSET_RE = /^\/[\w.-]+\.js(?:\.map)?$/

/** Picks the signer: ours when a secret was given, else the one @fastify/cookie was registered with. */
function chooseSigner (fastify: FastifyInstance, options: ResolvedGlueOptions): CookieSigner {
  const secrets = options.cookie.secrets
  if (secrets !== null) {
    if (secrets[0] !== undefined && secrets[0].length < WEAK_SECRET_LENGTH) {
      fastify.log.warn({ minLength: WEAK_SECRET_LENGTH }, 'fastify-websocket-glue: cookie secret is shorter than recommended')
    }
    return createCookieSigner(secrets)
  }
  // @fastify/cookie types declare the signer methods always, but they exist only with a secret.
  if (typeof (fastify as Partial<FastifyInstance>).unsignCookie === 'function') {
    return createSharedCookieSigner({ sign: (value) => fastify.signCookie(value), unsign: (value) => fastify.unsignCookie(value) })
  }
  throw new FST_WSGLUE_MISSING_SECRET()
}

// Navigations send Sec-Fetch-Dest; older clients only say they accept HTML.
function isPageRequest (request: FastifyRequest): boolean {
  if (request.method !== 'GET') return false
  const dest = request.headers['sec-fetch-dest']
  if (dest !== undefined) return dest === 'document' || dest === 'iframe'
  return request.headers.accept?.includes('text/html') === true
}

// Serve the built client next to this file (dist/plugin → dist/client), also when the plugin runs from source.
function clientDirectory (): string {
  const beside = new URL('../client/', import.meta.url)
  if (existsSync(new URL('glue-client.js', beside))) return fileURLToPath(beside)
  return fileURLToPath(new URL('../dist/client/', import.meta.url))
}

async function glue (fastify: FastifyInstance, rawOptions: GlueOptions): Promise<void> {
  const options = resolveOptions(rawOptions)
  const { cookie } = options
  const signer = chooseSigner(fastify, options)

  if (!fastify.hasDecorator('parseCookie')) {
    await fastify.register(fastifyCookie, { secret: cookie.secrets === null ? undefined : [...cookie.secrets] })
  }
  const ownsWebsocket = !fastify.hasDecorator('websocketServer')
  if (ownsWebsocket) {
    await fastify.register(fastifyWebsocket, {
      options: {
        maxPayload: options.maxPayload,
        // Select glue.v1 when offered; any other client gets no subprotocol and raw frames.
        handleProtocols: (protocols) => protocols.has(GLUE_PROTOCOL) ? GLUE_PROTOCOL : false
      },
      // ws has already sent the close frame (1002, 1007, 1009); terminating here could cut it off.
      errorHandler (error, _socket, request) {
        request.log.info({ err: error }, 'websocket peer error')
      },
      // Closing with 1001 happens in our own preClose hook below.
      preClose (done) {
        this.websocketServer.close()
        done()
      }
    })
  }

  // @fastify/websocket answers an upgrade to an ordinary route with a 101 and an immediate close.
  // Mark the ordinary routes registered from here on; unmarked ones (registered earlier) fail open.
  fastify.addHook('onRoute', function markHttpRoute (routeOptions) {
    if (routeOptions.websocket === true || routeOptions.wsHandler !== undefined) return
    // A fresh object: routes may share one config object, and a websocket route must stay unmarked.
    routeOptions.config = { ...routeOptions.config, [kHttpRoute]: true } as typeof routeOptions.config
  })
  fastify.addHook('onRequest', function refuseHttpRouteUpgrade (request, reply, done) {
    if (request.ws && (request.routeOptions.config as MarkedRouteConfig)[kHttpRoute] === true) {
      request.log.info({ route: request.routeOptions.url }, 'refused websocket upgrade to an ordinary route')
      reply.code(404).send({ statusCode: 404, code: NOT_A_WEBSOCKET_ROUTE, error: 'Not Found', message: 'Not a websocket route' })
      return
    }
    done()
  })

  const stats = createStats()
  const registry = new SessionRegistry(options, stats)
  const events = new SessionEvents(fastify.log)
  const adapter: GlueAdapter = options.adapter ??
    (options.redis !== undefined ? createRedisAdapterFromResolved(options.redis) : createMemoryAdapter())
  registry.useAdapter(adapter, fastify.log)
  await adapter.start({
    deliver: (message, seq) => registry.deliver(message, seq),
    resync: (position) => registry.resync(position),
    socketCount: (sessionId) => registry.socketCount(sessionId),
    localSessions: () => registry.socketCounts(),
    topicsOf: (sessionId) => registry.topicsOf(sessionId),
    subscriberCount: (topic) => registry.subscriberCount(topic),
    localCounts: () => ({ sessions: stats.sessions, sockets: stats.sockets }),
    log: fastify.log
  }, options)
  // Registered after start, so a failed start leaves nothing to stop; runs after preClose closed the sockets.
  fastify.addHook('onClose', async function stopAdapter () {
    await adapter.stop()
  })
  if (options.onConnect !== undefined) events.on('connect', options.onConnect)
  if (options.onMessage !== undefined) events.on('message', options.onMessage)
  if (options.onClose !== undefined) events.on('close', options.onClose)
  const heartbeat = createHeartbeat(options.heartbeatInterval)

  fastify.decorate('sessions', createSessions(registry, adapter, events, stats, options))
  fastify.decorateRequest('sessionId', null)

  const setCookieHeader = (request: FastifyRequest, sessionId: string): string =>
    serializeSessionCookie(cookie, sessionId, signer, request.protocol === 'https')

  // Every request learns its session; HTTP responses re-issue rotated cookies and mint them on pages.
  fastify.addHook('onRequest', function identify (request: FastifyRequest, reply: FastifyReply, done) {
    const value = request.cookies?.[cookie.name] ?? readCookieHeader(fastify, request, cookie.name)
    const identity = readIdentity(value, signer)
    request.sessionId = identity.sessionId
    if (identity.sessionId !== null) {
      if (identity.renew) issue(request, reply, identity.sessionId)
    } else if (cookie.issueOnPages && !request.ws && isPageRequest(request)) {
      request.sessionId = createSessionId()
      issue(request, reply, request.sessionId)
    }
    done()
  })

  function issue (request: FastifyRequest, reply: FastifyReply, sessionId: string): void {
    const header = setCookieHeader(request, sessionId)
    // A hijacked upgrade reply never runs onSend, so the 101 gets the cookie through ws's 'headers' event.
    if (request.ws) (request.raw as HandshakeRequest)[kSetCookie] = header
    else reply.header('set-cookie', header)
  }

  fastify.websocketServer.on('headers', (headers: string[], request: HandshakeRequest) => {
    const header = request[kSetCookie]
    if (header !== undefined) {
      headers.push(`Set-Cookie: ${header}`)
      request[kSetCookie] = undefined
    }
  })

  const handshakeLimiter = createHandshakeLimiter(options.handshakeRateLimit)

  // Runs before the upgrade, so a refusal is a real HTTP 403 and no 101 is ever sent.
  const admitHandshake: onRequestHookHandler = function (request, reply, done) {
    if (!handshakeLimiter.allow(request.ip, Date.now())) {
      refuseTooMany(request, reply, TOO_MANY_HANDSHAKES, 'Too many handshakes from this address')
      return
    }
    const origin = request.headers.origin
    let allowed: boolean
    try {
      allowed = isOriginAllowed(origin, request.headers.host, options.allowedOrigins, request)
    } catch (err) {
      request.log.error({ err }, 'allowedOrigins check failed')
      allowed = false
    }
    if (!allowed) {
      stats.refusedHandshakes++
      request.log.warn({ origin }, 'refused websocket origin')
      reply.code(403).send({ statusCode: 403, code: FORBIDDEN_ORIGIN, error: 'Forbidden', message: 'Origin not allowed' })
      return
    }
    if (request.sessionId === null) {
      request.sessionId = createSessionId()
      issue(request, reply, request.sessionId)
    } else if (registry.socketCount(request.sessionId) >= options.maxSocketsPerSession) {
      refuseTooMany(request, reply, TOO_MANY_SESSION_SOCKETS, 'Too many sockets for this session')
      return
    }
    if (options.maxSocketsPerAddress > 0 && registry.addressCount(request.ip) >= options.maxSocketsPerAddress) {
      refuseTooMany(request, reply, TOO_MANY_ADDRESS_SOCKETS, 'Too many sockets from this address')
      return
    }
    done()
  }

  function refuseTooMany (request: FastifyRequest, reply: FastifyReply, code: string, message: string): void {
    stats.refusedHandshakes++
    request.log.warn({ code }, 'refused websocket handshake')
    reply.code(429).send({ statusCode: 429, code, error: 'Too Many Requests', message })
  }

  fastify.get(options.path, { websocket: true, onRequest: admitHandshake }, createConnectionHandler({
    registry,
    adapter,
    events,
    heartbeat,
    maxPayload: options.maxPayload,
    log: fastify.log,
    onRequest: options.onRequest,
    authorizeSubscribe: options.authorizeSubscribe,
    maxTopicsPerSession: options.maxTopicsPerSession,
    maxPendingRequests: options.maxPendingRequests,
    rateLimiter: createRateLimiter(options.rateLimit),
    stats,
    ownsWebsocket
  }))

  // One timer for every session's grace period, outbox age, drain deadline and slow-consumer deadline.
  const sweepInterval = Math.max(10, Math.min(MAX_SWEEP_INTERVAL,
    Math.floor(Math.min(options.sessionGrace || Infinity, options.outboxMaxAge, options.drainTimeout) / 4)))
  const sweeper = setInterval(() => {
    const now = Date.now()
    try {
      registry.sweep(now)
      handshakeLimiter.sweep(now)
    } catch (err) {
      fastify.log.error({ err }, 'session sweep failed')
    }
  }, sweepInterval)
  sweeper.unref()

  if (options.client !== false) {
    const prefix = options.client.prefix
    // Encapsulated, so the app's own @fastify/static registration (and its decorators) is unaffected.
    await fastify.register(async function glueClient (child) {
      await child.register(fastifyStatic, {
        root: clientDirectory(),
        prefix,
        decorateReply: false,
        index: false,
        // Everything else in the directory (type declarations) is for bundlers, not browsers: 404.
        allowedPath: (pathName) => CLIENT_ASSET_RE.test(pathName),
        // The file names carry no version, so browsers revalidate on every load (ETag, then 304)
        // and pick up an upgrade at once; no max-age that would keep an old client running.
        cacheControl: false,
        etag: true,
        setHeaders (reply) {
          reply.header('cache-control', 'no-cache')
          reply.header('x-content-type-options', 'nosniff')
        }
      })
    })
  }

  fastify.addHook('preClose', async function closeSockets () {
    heartbeat.stop()
    clearInterval(sweeper)
    const closing: Array<Promise<void>> = []
    for (const socket of registry.sockets()) {
      closing.push(new Promise((resolve) => { socket.once('close', () => resolve()) }))
      socket.close(CLOSE_GOING_AWAY, 'server shutting down')
    }
    if (closing.length === 0) return
    // Peers that do not answer the close frame must not hold app.close() for ws's 30 s timeout.
    let timer: NodeJS.Timeout | undefined
    const grace = new Promise<void>((resolve) => { timer = setTimeout(resolve, SHUTDOWN_GRACE) })
    await Promise.race([Promise.all(closing), grace])
    clearTimeout(timer)
    for (const socket of registry.sockets()) socket.terminate()
  })
}

function readCookieHeader (fastify: FastifyInstance, request: FastifyRequest, name: string): string | undefined {
  const header = request.headers.cookie
  return header === undefined ? undefined : fastify.parseCookie(header)[name]
}

/** The fastify-websocket-glue plugin: signed-cookie sessions that own websockets, and `app.sessions`. */
const plugin = fp(glue, { fastify: '5.x', name: 'fastify-websocket-glue' })

export default plugin
export { plugin as glue, errors }
export { createSessionId } from './identity.js'
export { createMemoryAdapter } from './adapters/memory.js'
export { createRedisAdapter } from './adapters/redis.js'
export type {
  GlueAdapter,
  AdapterHost,
  AdapterLimits,
  ClusterMessage,
  ClusterMessageKind,
  ClusterCounts,
  ReplayResult,
  StreamPosition
} from './adapters/adapter.js'
export { CODEC_VERSION, encodeClusterMessage, decodeClusterMessage } from './adapters/codec.js'
export type {
  GlueOptions,
  GlueCookieOptions,
  GlueClientAssetsOptions,
  OriginCheck,
  RateLimitOptions,
  RedisAdapterOptions,
  RedisClientLike
} from './options.js'
export type { Sessions, BroadcastOptions, SendOptions } from './sessions.js'
export type { SessionStats } from './stats.js'
export type { Session } from './registry.js'
export type { ConnectListener, MessageListener, CloseListener, SessionEventMap, SessionEventName } from './events.js'
export type { RequestHandler, SubscribeAuthorizer } from './inbound.js'
export { GLUE_PROTOCOL } from './protocol.js'
export type { WebSocket }
