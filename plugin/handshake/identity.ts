import { createHash, createHmac, createSecretKey, randomFillSync, timingSafeEqual, type KeyObject } from 'node:crypto'
import { SESSION_ID_BYTES } from '../constants.js'
import { isUserId } from '../users/channel.js'

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
  /** The verified session id, or null when the cookie is absent, forged, tampered, expired or of an older format. */
  readonly sessionId: string | null
  /** The user the session is bound to (`sessions.login()` or `identify`), or null when anonymous. */
  readonly userId: string | null
  /** When this cookie value was issued, in ms since 1970 (0 without a session). */
  readonly issuedAt: number
  /** True when the cookie must be re-issued: signed with an older secret, or past half its lifetime. */
  readonly renew: boolean
}

/** What a session cookie carries, signed. */
export interface SessionClaims {
  readonly sessionId: string
  readonly userId: string | null
  readonly issuedAt: number
}

/** A request without a session. */
export const NO_IDENTITY: CookieIdentity = Object.freeze({ sessionId: null, userId: null, issuedAt: 0, renew: false })
const UNVERIFIED = Object.freeze({ valid: false, renew: false, value: null })

// Domain separation: the session signature must not verify values the app signs for its own cookies.
const SESSION_KEY_LABEL = 'fastify-websocket-glue session v1'

/**
 * The signed value, version 2: `glue2.<id>.<issued ms>[.<user id, base64url>]`. The id is exactly
 * what createSessionId returns (24 base64url characters); the issue time has 13 digits (until 2286).
 * The prefix names the version and, with the app's signer, keeps session values apart from the
 * app's own signed cookies.
 */
const VALUE_PREFIX = 'glue2.'
const VALUE_RE = /^glue2\.([A-Za-z0-9_-]{24})\.(\d{13})(?:\.([A-Za-z0-9_-]{1,171}))?$/
/** A cookie issued this far in the future (clock skew between nodes) still counts; further, it is refused. */
export const MAX_CLOCK_SKEW = 60_000

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

/** The value a session cookie signs. */
export function encodeSessionValue (claims: SessionClaims): string {
  const user = claims.userId === null ? '' : '.' + Buffer.from(claims.userId, 'utf8').toString('base64url')
  return `${VALUE_PREFIX}${claims.sessionId}.${claims.issuedAt}${user}`
}

/** The claims of a signed value, or undefined when it is not a version-2 session value. */
export function decodeSessionValue (value: string): SessionClaims | undefined {
  const match = VALUE_RE.exec(value)
  if (match === null) return undefined
  let userId: string | null = null
  if (match[3] !== undefined) {
    const decoded = Buffer.from(match[3], 'base64url').toString('utf8')
    // Encoding it back must give the same text: invalid UTF-8 would have become U+FFFD.
    if (!isUserId(decoded) || Buffer.from(decoded, 'utf8').toString('base64url') !== match[3]) return undefined
    userId = decoded
  }
  return { sessionId: match[1] as string, issuedAt: Number(match[2]), userId }
}

/**
 * Reads the session identity out of a raw (already URI-decoded) cookie value. A cookie older than
 * `lifetime` (ms) is refused even under a valid signature; past half of it, it is to be re-issued.
 */
export function readIdentity (cookieValue: string | undefined, signer: CookieSigner, now: number, lifetime: number): CookieIdentity {
  if (cookieValue === undefined || cookieValue === '') return NO_IDENTITY
  const result = signer.unsign(cookieValue)
  if (!result.valid || result.value === null) return NO_IDENTITY
  const claims = decodeSessionValue(result.value)
  if (claims === undefined) return NO_IDENTITY
  const age = now - claims.issuedAt
  if (age >= lifetime || age < -MAX_CLOCK_SKEW) return NO_IDENTITY
  return { ...claims, renew: result.renew || age >= lifetime / 2 }
}

/** Builds the `Set-Cookie` header value for a session. */
export function serializeSessionCookie (
  cookie: SessionCookieAttributes,
  claims: SessionClaims,
  signer: CookieSigner,
  overHttps: boolean
): string {
  // The signature is standard base64 ('+', '/'), so encode as @fastify/cookie's parser expects.
  return `${cookie.name}=${encodeURIComponent(signer.sign(encodeSessionValue(claims)))}${attributes(cookie, cookie.maxAge, overHttps)}`
}

/** Builds the `Set-Cookie` header value that deletes the session cookie (logout). */
export function serializeClearedCookie (cookie: SessionCookieAttributes, overHttps: boolean): string {
  return `${cookie.name}=${attributes(cookie, 0, overHttps)}`
}

function attributes (cookie: SessionCookieAttributes, maxAge: number | undefined, overHttps: boolean): string {
  let header = ''
  if (maxAge !== undefined) header += `; Max-Age=${maxAge}`
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
