import { createHash, randomFillSync } from 'node:crypto'
import { Signer } from '@fastify/cookie'
import { SESSION_ID_BYTES } from './constants.js'
import type { ResolvedCookieOptions } from './options.js'

/** Signs and verifies cookie values; the interface of @fastify/cookie's Signer. */
export interface CookieSigner {
  sign (value: string): string
  unsign (signed: string): { valid: boolean, renew: boolean, value: string | null }
}

/** What a request's cookie says about its session. */
export interface CookieIdentity {
  /** The verified session id, or null when the cookie is absent, forged, tampered or unsigned. */
  readonly sessionId: string | null
  /** True when the cookie verified with an older secret and must be re-issued. */
  readonly renew: boolean
}

const NO_IDENTITY: CookieIdentity = Object.freeze({ sessionId: null, renew: false })

// Ids we mint are base64url; anything else that happens to verify (another cookie signed with a
// shared app secret) is not a session id of ours.
const SESSION_ID_RE = /^[A-Za-z0-9_-]{22,128}$/

// One CSPRNG call fills ids for many handshakes: a randomBytes() call per id costs ~4 µs, a slice ~0.5 µs.
const ID_POOL = Buffer.alloc(SESSION_ID_BYTES * 256)
let poolOffset = ID_POOL.length

/** Creates a fresh session id: 144 bits from the CSPRNG, base64url. */
export function createSessionId (): string {
  if (poolOffset === ID_POOL.length) {
    randomFillSync(ID_POOL)
    poolOffset = 0
  }
  const id = ID_POOL.toString('base64url', poolOffset, poolOffset + SESSION_ID_BYTES)
  // Wipe what was handed out, so the pool never holds an id that is in use.
  ID_POOL.fill(0, poolOffset, poolOffset + SESSION_ID_BYTES)
  poolOffset += SESSION_ID_BYTES
  return id
}

/** Creates a signer for a rotation list: the first secret signs, all of them verify. */
export function createCookieSigner (secrets: readonly string[]): CookieSigner {
  return new Signer([...secrets])
}

/** Reads the session identity out of a raw (already URI-decoded) cookie value. */
export function readIdentity (cookieValue: string | undefined, signer: CookieSigner): CookieIdentity {
  if (cookieValue === undefined || cookieValue === '') return NO_IDENTITY
  const result = signer.unsign(cookieValue)
  if (!result.valid || result.value === null || !SESSION_ID_RE.test(result.value)) return NO_IDENTITY
  return { sessionId: result.value, renew: result.renew }
}

/** Builds the `Set-Cookie` header value for a session id. */
export function serializeSessionCookie (
  cookie: ResolvedCookieOptions,
  sessionId: string,
  signer: CookieSigner,
  overHttps: boolean
): string {
  // The signature is standard base64 ('+', '/'), so encode as @fastify/cookie's parser expects.
  let header = `${cookie.name}=${encodeURIComponent(signer.sign(sessionId))}`
  if (cookie.maxAge !== undefined) header += `; Max-Age=${cookie.maxAge}`
  if (cookie.domain !== undefined) header += `; Domain=${cookie.domain}`
  header += `; Path=${cookie.path}; HttpOnly`
  if (cookie.secure === true || (cookie.secure === 'auto' && overHttps)) header += '; Secure'
  header += `; SameSite=${cookie.sameSite === 'lax' ? 'Lax' : cookie.sameSite === 'strict' ? 'Strict' : 'None'}`
  return header
}

/** A short, stable hash of a session id, for logs: ids never appear in clear. */
export function sessionTag (sessionId: string): string {
  return createHash('sha256').update(sessionId).digest('base64url').slice(0, 10)
}
