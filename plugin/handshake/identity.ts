import { createHash, createHmac, createSecretKey, randomFillSync, timingSafeEqual, type KeyObject } from 'node:crypto'
import { SESSION_ID_BYTES } from '../constants.js'

/** The attributes of the session cookie, as resolved from the options. */
export interface SessionCookieAttributes {
  readonly name: string
  readonly maxAge: number | undefined
  readonly domain: string | undefined
  readonly path: string
  readonly sameSite: 'lax' | 'strict' | 'none'
  readonly secure: boolean | 'auto'
}

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
const UNVERIFIED = Object.freeze({ valid: false, renew: false, value: null })

// Exactly what createSessionId returns: 18 bytes in base64url are 24 characters, no padding.
const SESSION_ID_RE = /^[A-Za-z0-9_-]{24}$/

// Domain separation: the session signature must not verify values the app signs for its own cookies.
const SESSION_KEY_LABEL = 'fastify-websocket-glue session v1'
const SHARED_SIGNER_PREFIX = 'glue1.'

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

// An HMAC-SHA256 in base64 is 44 characters, the last one padding ('=' means something in cookies).
const SIGNATURE_LENGTH = 43

/** The signature @fastify/cookie's Signer writes: HMAC-SHA256 in base64 without padding. */
function signature (key: KeyObject, value: string): string {
  return createHmac('sha256', key).update(value).digest('base64').slice(0, SIGNATURE_LENGTH)
}

/**
 * Creates the session signer for the plugin's own rotation list: the first secret signs, all of
 * them verify. Each secret signs through its own derived key, HMAC-SHA256(secret, label), so a
 * value @fastify/cookie signs with the same raw secret never verifies as a session.
 *
 * The format is @fastify/cookie's (`value.signature`), but the keys are KeyObjects made once: with
 * raw key bytes, OpenSSL imports the key again for every HMAC, which cost ~15 µs per handshake.
 */
export function createCookieSigner (secrets: readonly string[]): CookieSigner {
  const keys = secrets.map((secret) => createSecretKey(createHmac('sha256', secret).update(SESSION_KEY_LABEL).digest()))
  const signingKey = keys[0] as KeyObject
  return {
    sign: (value) => `${value}.${signature(signingKey, value)}`,
    unsign (signed) {
      const dot = signed.lastIndexOf('.')
      if (dot === -1 || signed.length - dot - 1 !== SIGNATURE_LENGTH) return UNVERIFIED
      const value = signed.slice(0, dot)
      const actual = Buffer.from(signed.slice(dot + 1))
      for (let i = 0; i < keys.length; i++) {
        const expected = Buffer.from(signature(keys[i] as KeyObject, value))
        if (expected.length === actual.length && timingSafeEqual(expected, actual)) return { valid: true, renew: i !== 0, value }
      }
      return UNVERIFIED
    }
  }
}

/**
 * Wraps the app's @fastify/cookie signer, which signs the app's other cookies with the same key:
 * the signed value is `glue1.<id>`, and only values with that prefix are session ids.
 */
export function createSharedCookieSigner (appSigner: CookieSigner): CookieSigner {
  return {
    sign: (sessionId) => appSigner.sign(SHARED_SIGNER_PREFIX + sessionId),
    unsign (signed) {
      const result = appSigner.unsign(signed)
      if (!result.valid || result.value === null || !result.value.startsWith(SHARED_SIGNER_PREFIX)) return UNVERIFIED
      return { valid: true, renew: result.renew, value: result.value.slice(SHARED_SIGNER_PREFIX.length) }
    }
  }
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
  cookie: SessionCookieAttributes,
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
