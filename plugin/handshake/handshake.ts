import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler, RouteOptions } from 'fastify'
import type { SessionStats } from '../stats.js'
import type { ResolvedGlueOptions } from '../config/resolve.js'
import { kSetCookie } from '../constants.js'
import { REFUSALS, type HandshakeRefusal } from '../errors.js'
import type { SessionStore } from '../sessions/store.js'
import { isUserId } from '../users/channel.js'
import type { UserSessions } from '../users/users.js'
import { createHandshakeLimiter, type HandshakeLimiter } from './handshake-limit.js'
import { createSessionId } from './identity.js'
import { isOriginAllowed } from './origin.js'
import type { HandshakeRequest, SessionCookie } from './session-cookie.js'

// Navigations send Sec-Fetch-Dest; older clients only say they accept HTML.
function isPageRequest (request: FastifyRequest): boolean {
  if (request.method !== 'GET') return false
  const dest = request.headers['sec-fetch-dest']
  if (dest !== undefined) return dest === 'document' || dest === 'iframe'
  return request.headers.accept?.includes('text/html') === true
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
 * - every request reads the signed cookie into `request.sessionId` and `request.sessionUserId`;
 *   responses re-issue cookies signed with an older secret or past half their lifetime, and HTML
 *   page responses mint one (`cookie.issueOnPages`);
 * - a 101 carries its Set-Cookie through ws's 'headers' event (hijacked replies skip onSend);
 * - an upgrade to an ordinary HTTP route is refused with 404 before any 101;
 * - the plugin's own route checks the origin, the handshake rate and the socket limits, all
 *   before the upgrade, so every refusal is a real HTTP error; then `identify` names its user, and
 *   a session whose user changed is rotated on the 101.
 */
export function setUpHandshake (
  fastify: FastifyInstance,
  options: ResolvedGlueOptions,
  store: SessionStore,
  stats: SessionStats,
  cookie: SessionCookie,
  users: UserSessions
): Handshake {
  fastify.addHook('onRequest', function readSessionCookie (request, reply, done) {
    const identity = cookie.read(request)
    request.sessionId = identity.sessionId
    request.sessionUserId = identity.userId
    if (identity.sessionId !== null) {
      if (identity.renew) cookie.issue(request, reply, { sessionId: identity.sessionId, userId: identity.userId, issuedAt: Date.now() })
    } else if (options.cookie.issueOnPages && !request.ws && isPageRequest(request)) {
      request.sessionId = createSessionId()
      cookie.issue(request, reply, { sessionId: request.sessionId, userId: null, issuedAt: Date.now() })
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

  const identify = options.identify

  /**
   * Gives the handshake the session of `userId`: a fresh one without a cookie, the cookie's own when
   * it is bound to that user, else (someone logged in or out) the session rotated to a new id.
   */
  function bind (request: FastifyRequest, reply: FastifyReply, userId: string | null): void {
    if (request.sessionId === null) {
      request.sessionId = createSessionId()
      request.sessionUserId = userId
      cookie.issue(request, reply, { sessionId: request.sessionId, userId, issuedAt: Date.now() })
    } else if (userId !== request.sessionUserId) {
      users.rotate(request, reply, userId)
    }
  }

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
    if (request.sessionId !== null && store.socketCount(request.sessionId) >= options.maxSocketsPerSession) {
      refuseTooMany(request, reply, REFUSALS.tooManySessionSockets)
      return
    }
    if (options.maxSocketsPerAddress > 0 && store.addressCount(request.ip) >= options.maxSocketsPerAddress) {
      refuseTooMany(request, reply, REFUSALS.tooManyAddressSockets)
      return
    }
    if (identify === undefined) {
      bind(request, reply, request.sessionUserId)
      done()
      return
    }
    let named: Promise<unknown>
    try {
      named = Promise.resolve(identify(request))
    } catch (err) {
      named = Promise.reject(err)
    }
    named.then((userId) => {
      if (userId !== null && userId !== undefined && !isUserId(userId)) {
        throw new TypeError(`identify returned an invalid user id (expected null, undefined or a non-empty string of at most 128 UTF-8 bytes, got ${typeof userId})`)
      }
      bind(request, reply, userId ?? null)
      done()
    }).catch((err: unknown) => {
      request.log.error({ err }, 'identify failed; refused the websocket handshake')
      stats.refusedHandshakes++
      refuse(reply, REFUSALS.identifyFailed)
    })
  }

  return { admit, limiter }
}
