import type { IncomingMessage } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler, RouteOptions } from 'fastify'
import type { SessionStats } from '../stats.js'
import type { ResolvedGlueOptions } from '../config/resolve.js'
import { kSetCookie, WEAK_SECRET_LENGTH } from '../constants.js'
import { FST_WSGLUE_MISSING_SECRET, REFUSALS, type HandshakeRefusal } from '../errors.js'
import type { SessionStore } from '../sessions/store.js'
import { createHandshakeLimiter, type HandshakeLimiter } from './handshake-limit.js'
import { createCookieSigner, createSessionId, createSharedCookieSigner, readIdentity, serializeSessionCookie, type CookieSigner } from './identity.js'
import { isOriginAllowed } from './origin.js'

type HandshakeRequest = IncomingMessage & { [kSetCookie]?: string }

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

function readCookieHeader (fastify: FastifyInstance, request: FastifyRequest, name: string): string | undefined {
  const header = request.headers.cookie
  return header === undefined ? undefined : fastify.parseCookie(header)[name]
}

function refuse (reply: FastifyReply, refusal: HandshakeRefusal): void {
  reply.code(refusal.statusCode).send(refusal)
}

/** The handshake's admission check for the plugin's route, and upkeep for its per-address limit. */
export interface Handshake {
  /** The plugin route's onRequest hook: origin, limits, and a session id minted when there is none. */
  readonly admit: onRequestHookHandler
  readonly limiter: HandshakeLimiter
}

/**
 * Sets up how a request learns its session and how a websocket handshake is admitted:
 * - every request reads the signed cookie into `request.sessionId`; HTTP responses re-issue cookies
 *   signed with an older secret, and HTML page responses mint one (`cookie.issueOnPages`);
 * - a 101 carries its Set-Cookie through ws's 'headers' event (hijacked replies skip onSend);
 * - an upgrade to an ordinary HTTP route is refused with 404 before any 101;
 * - the plugin's own route checks the origin, the handshake rate and the socket limits, all
 *   before the upgrade, so every refusal is a real HTTP error.
 * @throws FST_WSGLUE_MISSING_SECRET when there is no secret to sign with.
 */
export function setUpHandshake (fastify: FastifyInstance, options: ResolvedGlueOptions, store: SessionStore, stats: SessionStats): Handshake {
  const { cookie } = options
  const signer = chooseSigner(fastify, options)

  function issue (request: FastifyRequest, reply: FastifyReply, sessionId: string): void {
    const header = serializeSessionCookie(cookie, sessionId, signer, request.protocol === 'https')
    // A hijacked upgrade reply never runs onSend, so the 101 gets the cookie through ws's 'headers' event.
    if (request.ws) (request.raw as HandshakeRequest)[kSetCookie] = header
    else reply.header('set-cookie', header)
  }

  fastify.addHook('onRequest', function identify (request, reply, done) {
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

  fastify.websocketServer.on('headers', (headers: string[], request: HandshakeRequest) => {
    const header = request[kSetCookie]
    if (header !== undefined) {
      headers.push(`Set-Cookie: ${header}`)
      request[kSetCookie] = undefined
    }
  })

  // @fastify/websocket answers an upgrade to an ordinary route with a 101 and an immediate close.
  // Ordinary routes registered from here on get a route-level hook that refuses it (routes registered
  // earlier fail open); websocket routes get none, so a handshake runs one hook fewer.
  const refuseHttpRouteUpgrade: onRequestHookHandler = function refuseHttpRouteUpgrade (request, reply, done) {
    if (request.ws) {
      request.log.info({ route: request.routeOptions.url }, 'refused websocket upgrade to an ordinary route')
      refuse(reply, REFUSALS.notAWebsocketRoute)
      return
    }
    done()
  }
  fastify.addHook('onRoute', function guardHttpRoute (routeOptions: RouteOptions) {
    if (routeOptions.websocket === true || routeOptions.wsHandler !== undefined) return
    const own = routeOptions.onRequest
    routeOptions.onRequest = own === undefined ? [refuseHttpRouteUpgrade] : [refuseHttpRouteUpgrade, ...(Array.isArray(own) ? own : [own])]
  })

  const limiter = createHandshakeLimiter(options.handshakeRateLimit)

  function refuseTooMany (request: FastifyRequest, reply: FastifyReply, refusal: HandshakeRefusal): void {
    stats.refusedHandshakes++
    request.log.warn({ code: refusal.code }, 'refused websocket handshake')
    refuse(reply, refusal)
  }

  // request.ip costs a getpeername() per handshake: read it only for a limit that needs it.
  const limitsAddresses = options.handshakeRateLimit !== false

  const admit: onRequestHookHandler = function admitHandshake (request, reply, done) {
    if (limitsAddresses && !limiter.allow(request.ip, Date.now())) {
      refuseTooMany(request, reply, REFUSALS.tooManyHandshakes)
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
      refuse(reply, REFUSALS.forbiddenOrigin)
      return
    }
    if (request.sessionId === null) {
      request.sessionId = createSessionId()
      issue(request, reply, request.sessionId)
    } else if (store.socketCount(request.sessionId) >= options.maxSocketsPerSession) {
      refuseTooMany(request, reply, REFUSALS.tooManySessionSockets)
      return
    }
    if (options.maxSocketsPerAddress > 0 && store.addressCount(request.ip) >= options.maxSocketsPerAddress) {
      refuseTooMany(request, reply, REFUSALS.tooManyAddressSockets)
      return
    }
    done()
  }

  return { admit, limiter }
}
