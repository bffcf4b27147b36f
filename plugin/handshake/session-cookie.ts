import type { IncomingMessage } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ResolvedGlueOptions } from '../config/resolve.js'
import { kSetCookie, WEAK_SECRET_LENGTH } from '../constants.js'
import { FST_WSGLUE_MISSING_SECRET } from '../errors.js'
import type { Revocations } from '../users/revocations.js'
import { createCookieSigner, NO_IDENTITY, readIdentity, serializeClearedCookie, serializeSessionCookie, type CookieIdentity, type CookieSigner, type SessionClaims } from './identity.js'

export type HandshakeRequest = IncomingMessage & { [kSetCookie]?: string }

/** Reads, writes and deletes the session cookie of a request. */
export interface SessionCookie {
  /** What the request's cookie says: verified, within its lifetime, not revoked; else no session. */
  read (request: FastifyRequest): CookieIdentity
  /** Sets the cookie on the response: a reply's header, or for an upgrade the 101's. */
  issue (request: FastifyRequest, reply: FastifyReply, claims: SessionClaims): void
  /** Deletes the cookie in the browser (logout). */
  clear (request: FastifyRequest, reply: FastifyReply): void
}

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
  // Its values carry the `glue2.` prefix, which keeps them apart from the app's own signed cookies.
  if (typeof (fastify as Partial<FastifyInstance>).unsignCookie === 'function') {
    return { sign: (value) => fastify.signCookie(value), unsign: (value) => fastify.unsignCookie(value) }
  }
  throw new FST_WSGLUE_MISSING_SECRET()
}

/**
 * The session cookie of the plugin instance.
 * @throws FST_WSGLUE_MISSING_SECRET when there is no secret to sign with.
 */
export function createSessionCookie (fastify: FastifyInstance, options: ResolvedGlueOptions, revocations: Revocations): SessionCookie {
  const { cookie } = options
  const signer = chooseSigner(fastify, options)

  function set (request: FastifyRequest, reply: FastifyReply, header: string): void {
    const raw = request.raw as HandshakeRequest
    // A hijacked upgrade reply never runs onSend, so the 101 gets the cookie through ws's 'headers' event.
    if (request.ws) {
      raw[kSetCookie] = header
      return
    }
    // Fastify appends Set-Cookie headers: the cookie set last (a login after a re-issue) replaces ours.
    const previous = raw[kSetCookie]
    if (previous !== undefined) {
      const kept = ([] as unknown[]).concat(reply.getHeader('set-cookie') ?? []).filter((line) => line !== previous)
      reply.removeHeader('set-cookie')
      if (kept.length > 0) reply.header('set-cookie', kept)
    }
    raw[kSetCookie] = header
    reply.header('set-cookie', header)
  }

  return {
    read (request) {
      const value = request.cookies?.[cookie.name] ?? readCookieHeader(fastify, request, cookie.name)
      const identity = readIdentity(value, signer, Date.now(), cookie.lifetime)
      // A revoked session is no session: the request is anonymous, as with a forged cookie.
      if (identity.sessionId !== null && revocations.refuses({ ...identity, sessionId: identity.sessionId })) return NO_IDENTITY
      return identity
    },
    issue (request, reply, claims) {
      set(request, reply, serializeSessionCookie(cookie, claims, signer, request.protocol === 'https'))
    },
    clear (request, reply) {
      set(request, reply, serializeClearedCookie(cookie, request.protocol === 'https'))
    }
  }
}

function readCookieHeader (fastify: FastifyInstance, request: FastifyRequest, name: string): string | undefined {
  const header = request.headers.cookie
  return header === undefined ? undefined : fastify.parseCookie(header)[name]
}
