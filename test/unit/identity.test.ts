import { test } from 'tap'
import { Signer } from '@fastify/cookie'
import {
  createCookieSigner,
  createSessionId,
  decodeSessionValue,
  encodeSessionValue,
  readIdentity,
  serializeClearedCookie,
  serializeSessionCookie,
  sessionTag,
  type SessionCookieAttributes
} from '../../plugin/handshake/identity.js'

const OLD = 'the-old-secret-0123456789-0123456789'
const NEW = 'the-new-secret-0123456789-0123456789'
const ID = 'AAAAAAAAAAAAAAAAAAAAAAAA'

test('session ids are 24 base64url characters (144 random bits), never repeated', (t) => {
  const ids = new Set<string>()
  // More than one refill of the id pool (256 ids each).
  for (let i = 0; i < 1000; i++) {
    const id = createSessionId()
    if (!/^[A-Za-z0-9_-]{24}$/.test(id)) t.fail(`malformed id ${id}`)
    ids.add(id)
  }
  t.equal(ids.size, 1000)
  t.end()
})

test('the plugin signer signs with the first secret and verifies with all, asking to renew older ones', (t) => {
  const signedOld = createCookieSigner([OLD]).sign(ID)
  const rotating = createCookieSigner([NEW, OLD])
  t.same(rotating.unsign(signedOld), { valid: true, renew: true, value: ID }, 'an older secret verifies and is renewed')
  const signedNew = rotating.sign(ID)
  t.same(rotating.unsign(signedNew), { valid: true, renew: false, value: ID })
  t.same(createCookieSigner([NEW]).unsign(signedNew), { valid: true, renew: false, value: ID })
  t.equal(createCookieSigner([NEW]).unsign(signedOld).valid, false, 'a dropped secret no longer verifies')
  t.equal(rotating.unsign(signedNew.slice(0, -2) + 'AA').valid, false, 'a tampered signature')
  t.equal(rotating.unsign(ID).valid, false, 'no signature')
  t.end()
})

test('the plugin signer uses a key derived from the secret: the raw secret signs nothing it accepts', (t) => {
  const appSigned = new Signer(NEW).sign(ID)
  t.equal(createCookieSigner([NEW]).unsign(appSigned).valid, false, 'a value @fastify/cookie signed with the same secret')
  t.not(createCookieSigner([NEW]).sign(ID), appSigned)
  t.end()
})

const LIFETIME = 7 * 24 * 3600 * 1000
const NOW = 1_763_787_000_000

test('a session value is versioned and carries the id, its issue time and its user', (t) => {
  t.equal(encodeSessionValue({ sessionId: ID, userId: null, issuedAt: NOW }), `glue2.${ID}.${NOW}`)
  const bound = encodeSessionValue({ sessionId: ID, userId: 'ada@example.com', issuedAt: NOW })
  t.equal(bound, `glue2.${ID}.${NOW}.${Buffer.from('ada@example.com').toString('base64url')}`)
  t.same(decodeSessionValue(bound), { sessionId: ID, userId: 'ada@example.com', issuedAt: NOW })
  const unicode = encodeSessionValue({ sessionId: ID, userId: 'zoë.ünïcode', issuedAt: NOW })
  t.equal(decodeSessionValue(unicode)?.userId, 'zoë.ünïcode', 'any user id travels, dots included')
  for (const value of [ID, `glue1.${ID}`, `glue2.${ID}`, `glue2.${ID}.123`, `glue2.${ID}.${NOW}.`, `glue2.${ID}.${NOW}.${'A'.repeat(172)}`,
    `glue2.${ID.slice(1)}.${NOW}`, `glue3.${ID}.${NOW}`, `glue2.${ID}.${NOW}.${Buffer.from([0xd8]).toString('base64url')}`]) {
    t.equal(decodeSessionValue(value), undefined, `not a session value: ${value.slice(0, 60)}`)
  }
  t.end()
})

test('readIdentity accepts only a verified session value within its lifetime', (t) => {
  const signer = createCookieSigner([NEW, OLD])
  const none = { sessionId: null, userId: null, issuedAt: 0, renew: false }
  const signed = (issuedAt: number, userId: string | null = null, by = signer): string => by.sign(encodeSessionValue({ sessionId: ID, userId, issuedAt }))
  t.same(readIdentity(undefined, signer, NOW, LIFETIME), none)
  t.same(readIdentity('', signer, NOW, LIFETIME), none)
  t.same(readIdentity(signed(NOW), signer, NOW, LIFETIME), { sessionId: ID, userId: null, issuedAt: NOW, renew: false })
  t.same(readIdentity(signed(NOW, 'ada'), signer, NOW, LIFETIME), { sessionId: ID, userId: 'ada', issuedAt: NOW, renew: false })
  t.equal(readIdentity(signed(NOW, null, createCookieSigner([OLD])), signer, NOW, LIFETIME).renew, true, 'an older secret: renewed')
  t.equal(readIdentity(signed(NOW - LIFETIME / 2 + 1), signer, NOW, LIFETIME).renew, false, 'younger than half its lifetime: kept')
  t.equal(readIdentity(signed(NOW - LIFETIME / 2), signer, NOW, LIFETIME).renew, true, 'past half its lifetime: renewed')
  t.equal(readIdentity(signed(NOW - LIFETIME + 1), signer, NOW, LIFETIME).sessionId, ID, 'accepted until the end of its lifetime')
  t.same(readIdentity(signed(NOW - LIFETIME), signer, NOW, LIFETIME), none, 'expired: refused under a valid signature')
  t.equal(readIdentity(signed(NOW + 60_000), signer, NOW, LIFETIME).sessionId, ID, 'a minute of clock skew between nodes')
  t.same(readIdentity(signed(NOW + 60_001), signer, NOW, LIFETIME), none, 'from further in the future: refused')
  const forged = createCookieSigner(['another-secret-0123456789-abcdefgh']).sign(encodeSessionValue({ sessionId: ID, userId: null, issuedAt: NOW }))
  t.same(readIdentity(forged, signer, NOW, LIFETIME), none, 'forged')
  t.same(readIdentity(signer.sign(ID), signer, NOW, LIFETIME), none, 'a version 1 cookie (no issue time)')
  for (const value of ['x', ID + 'A', ID.slice(1), 'A'.repeat(23) + '+']) {
    t.same(readIdentity(signer.sign(value), signer, NOW, LIFETIME), none, `signed but not a session value: ${value}`)
  }
  t.ok(Object.isFrozen(readIdentity(undefined, signer, NOW, LIFETIME)), 'the empty identity is shared and frozen')
  t.end()
})

test("with the app's signer, only values with the glue2 prefix are sessions", (t) => {
  const app = new Signer([NEW, OLD])
  const value = encodeSessionValue({ sessionId: ID, userId: null, issuedAt: NOW })
  t.equal(readIdentity(app.sign(value), app, NOW, LIFETIME).sessionId, ID)
  t.equal(readIdentity(app.sign(ID), app, NOW, LIFETIME).sessionId, null, 'a value the app signed for another cookie')
  t.equal(readIdentity(new Signer(OLD).sign(value), app, NOW, LIFETIME).renew, true, 'rotation passes through')
  t.end()
})

test('the Set-Cookie value carries the signed id, URI-encoded, and the attributes', (t) => {
  const signer = createCookieSigner([NEW])
  const base: SessionCookieAttributes = { name: 'sid', maxAge: undefined, domain: undefined, path: '/', sameSite: 'lax', secure: 'auto' }
  const claims = { sessionId: ID, userId: 'ada', issuedAt: NOW }
  const header = serializeSessionCookie(base, claims, signer, false)
  t.match(header, /^sid=[^;]+; Path=\/; HttpOnly; SameSite=Lax$/)
  const value = decodeURIComponent(header.slice(4, header.indexOf(';')))
  t.same(signer.unsign(value), { valid: true, renew: false, value: encodeSessionValue(claims) }, 'the value decodes and verifies')
  t.notMatch(header.slice(4, header.indexOf(';')), /[+/=]/, 'base64 signature characters are encoded')
  t.match(serializeSessionCookie(base, claims, signer, true), /; HttpOnly; Secure; SameSite=Lax$/, "'auto' adds Secure over https")
  t.match(serializeSessionCookie({ ...base, secure: true }, claims, signer, false), /; Secure;/)
  t.notMatch(serializeSessionCookie({ ...base, secure: false }, claims, signer, true), /Secure/, 'false never adds it')
  t.match(serializeSessionCookie({ ...base, sameSite: 'strict' }, claims, signer, false), /; SameSite=Strict$/)
  t.match(serializeSessionCookie({ ...base, sameSite: 'none', secure: true }, claims, signer, false), /; Secure; SameSite=None$/)
  t.match(serializeSessionCookie({ ...base, name: '__Host-s', maxAge: 0, domain: 'example.com', path: '/app' }, claims, signer, false),
    /^__Host-s=[^;]+; Max-Age=0; Domain=example\.com; Path=\/app; HttpOnly; SameSite=Lax$/, 'a 0 max age stays')
  t.equal(serializeClearedCookie({ ...base, secure: true, maxAge: 3600 }, false), 'sid=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax', 'logout deletes it')
  t.end()
})

test('sessionTag is a short stable hash that does not reveal the id', (t) => {
  const tag = sessionTag(ID)
  t.match(tag, /^[A-Za-z0-9_-]{10}$/)
  t.equal(sessionTag(ID), tag, 'stable')
  t.not(sessionTag('B'.repeat(24)), tag)
  t.notOk(ID.includes(tag))
  t.end()
})
