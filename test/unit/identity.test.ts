import { test } from 'tap'
import { Signer } from '@fastify/cookie'
import {
  createCookieSigner,
  createSessionId,
  createSharedCookieSigner,
  readIdentity,
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

test('the shared signer adds a prefix, so only values it signed are session ids', (t) => {
  const app = new Signer([NEW, OLD])
  const shared = createSharedCookieSigner(app)
  const signed = shared.sign(ID)
  t.same(app.unsign(signed), { valid: true, renew: false, value: `glue1.${ID}` }, 'the app signer sees the prefixed value')
  t.same(shared.unsign(signed), { valid: true, renew: false, value: ID })
  t.same(shared.unsign(app.sign(ID)), { valid: false, renew: false, value: null }, 'a value the app signed for another cookie')
  t.same(shared.unsign('glue1.' + ID), { valid: false, renew: false, value: null }, 'unsigned')
  const old = createSharedCookieSigner(new Signer(OLD)).sign(ID)
  t.same(shared.unsign(old), { valid: true, renew: true, value: ID }, 'rotation passes through')
  t.end()
})

test('readIdentity accepts only a verified session id', (t) => {
  const signer = createCookieSigner([NEW, OLD])
  t.same(readIdentity(undefined, signer), { sessionId: null, renew: false })
  t.same(readIdentity('', signer), { sessionId: null, renew: false })
  t.same(readIdentity(signer.sign(ID), signer), { sessionId: ID, renew: false })
  t.same(readIdentity(createCookieSigner([OLD]).sign(ID), signer), { sessionId: ID, renew: true })
  t.same(readIdentity(createCookieSigner(['another-secret-0123456789-abcdefgh']).sign(ID), signer), { sessionId: null, renew: false }, 'forged')
  for (const value of ['x', ID + 'A', ID.slice(1), 'A'.repeat(23) + '+', 'glue1.' + ID.slice(6)]) {
    t.same(readIdentity(signer.sign(value), signer), { sessionId: null, renew: false }, `signed but not a session id: ${value}`)
  }
  t.ok(Object.isFrozen(readIdentity(undefined, signer)), 'the empty identity is shared and frozen')
  t.end()
})

test('the Set-Cookie value carries the signed id, URI-encoded, and the attributes', (t) => {
  const signer = createCookieSigner([NEW])
  const base: SessionCookieAttributes = { name: 'sid', maxAge: undefined, domain: undefined, path: '/', sameSite: 'lax', secure: 'auto' }
  const header = serializeSessionCookie(base, ID, signer, false)
  t.match(header, /^sid=[^;]+; Path=\/; HttpOnly; SameSite=Lax$/)
  const value = decodeURIComponent(header.slice(4, header.indexOf(';')))
  t.same(signer.unsign(value), { valid: true, renew: false, value: ID }, 'the value decodes and verifies')
  t.notMatch(header.slice(4, header.indexOf(';')), /[+/=]/, 'base64 signature characters are encoded')
  t.match(serializeSessionCookie(base, ID, signer, true), /; HttpOnly; Secure; SameSite=Lax$/, "'auto' adds Secure over https")
  t.match(serializeSessionCookie({ ...base, secure: true }, ID, signer, false), /; Secure;/)
  t.notMatch(serializeSessionCookie({ ...base, secure: false }, ID, signer, true), /Secure/, 'false never adds it')
  t.match(serializeSessionCookie({ ...base, sameSite: 'strict' }, ID, signer, false), /; SameSite=Strict$/)
  t.match(serializeSessionCookie({ ...base, sameSite: 'none', secure: true }, ID, signer, false), /; Secure; SameSite=None$/)
  t.match(serializeSessionCookie({ ...base, name: '__Host-s', maxAge: 0, domain: 'example.com', path: '/app' }, ID, signer, false),
    /^__Host-s=[^;]+; Max-Age=0; Domain=example\.com; Path=\/app; HttpOnly; SameSite=Lax$/, 'a 0 max age stays')
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
