import { once } from 'node:events'
import { connect } from 'node:net'
import { test } from 'tap'
import fastifyCookie, { Signer } from '@fastify/cookie'
import fastifyWebsocket from '@fastify/websocket'
import { createCookieSigner, decodeSessionValue, encodeSessionValue } from '../plugin/handshake/identity.js'
import { cookiePair, openSocket, SECRET, startApp, until, upgradeRequest } from './helpers/index.js'

// Session cookies are signed with a key derived from the secret (identity.ts), not the raw secret.
// `value` is the session id the signed value carries.
function unsignCookie (line: string | undefined, secret: string | string[] = SECRET): { valid: boolean, renew: boolean, value: string | null } {
  const pair = cookiePair(line)
  const signed = decodeURIComponent(pair.slice(pair.indexOf('=') + 1))
  const result = createCookieSigner(([] as string[]).concat(secret)).unsign(signed)
  return { ...result, value: result.value === null ? null : decodeSessionValue(result.value)?.sessionId ?? null }
}

/** A cookie as the plugin issues it for session `sessionId`, or, for anything but an id, the signed raw value. */
function signedCookie (sessionId: string, secret: string = SECRET, name = 'sid'): string {
  const value = /^[\w-]{24}$/.test(sessionId) ? encodeSessionValue({ sessionId, userId: null, issuedAt: Date.now() }) : sessionId
  return `${name}=${encodeURIComponent(createCookieSigner([secret]).sign(value))}`
}

test('mints a session and a signed HttpOnly cookie on the 101 of a first handshake', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())

  t.equal(client.setCookie.length, 1)
  t.match(client.setCookie[0], /^sid=[^;]+; Path=\/; HttpOnly; SameSite=Lax$/)
  const unsigned = unsignCookie(client.setCookie[0])
  t.ok(unsigned.valid, 'cookie verifies with the secret')
  t.match(unsigned.value, /^[A-Za-z0-9_-]{24}$/, '144-bit base64url id')
  t.ok(app.sessions.has(unsigned.value as string))
})

test('mints a different id for every cookie-less handshake', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  const ids = new Set<string>()
  for (let i = 0; i < 20; i++) {
    const client = await openSocket(wsUrl)
    ids.add(unsignCookie(client.setCookie[0]).value as string)
    client.socket.terminate()
  }
  t.equal(ids.size, 20)
})

test('reuses the session id of a valid signed cookie and sends no new cookie', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  const first = await openSocket(wsUrl)
  const second = await openSocket(wsUrl, { headers: { cookie: cookiePair(first.setCookie[0]) } })
  t.teardown(() => { first.socket.terminate(); second.socket.terminate() })

  t.same(second.setCookie, [], 'no Set-Cookie for a valid cookie')
  const id = unsignCookie(first.setCookie[0]).value as string
  t.equal(app.sessions.size, 1)
  t.equal(app.sessions.get(id)?.sockets.size, 2, 'one session, two tabs')
})

test('keeps the session id across a server restart: the cookie is the identity', async (t) => {
  const one = await startApp()
  const client = await openSocket(one.wsUrl)
  const id = unsignCookie(client.setCookie[0]).value as string
  client.socket.terminate()
  await one.app.close()

  const two = await startApp()
  t.teardown(() => two.app.close())
  const again = await openSocket(two.wsUrl, { headers: { cookie: cookiePair(client.setCookie[0]) } })
  t.teardown(() => again.socket.terminate())
  t.same(again.setCookie, [])
  t.ok(two.app.sessions.has(id))
})

test('accepts a cookie signed with an older secret and re-issues it signed with the newest', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { cookie: { secret: ['new-secret-0123456789-0123456789-ab', SECRET] } } })
  t.teardown(() => app.close())
  const id = 'AAAAAAAAAAAAAAAAAAAAAAAA'
  const client = await openSocket(wsUrl, { headers: { cookie: signedCookie(id) } })
  t.teardown(() => client.socket.terminate())

  t.ok(app.sessions.has(id), 'same session, nobody dropped')
  t.equal(client.setCookie.length, 1)
  const renewed = unsignCookie(client.setCookie[0], 'new-secret-0123456789-0123456789-ab')
  t.ok(renewed.valid, 'signed with the newest secret')
  t.equal(renewed.value, id)
})

test('treats forged, tampered and unsigned cookies as absent and never uses their id', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  const forgedId = 'BBBBBBBBBBBBBBBBBBBBBBBB'
  const valid = signedCookie(forgedId)
  const cases = {
    unsigned: `sid=${forgedId}`,
    'signed with another secret': signedCookie(forgedId, 'another-secret-another-secret-12345'),
    tampered: valid.slice(0, -3) + 'AAA',
    'id swapped under a valid signature': valid.replace('BBBB', 'CCCC'),
    'not a session id': signedCookie('x'),
    empty: 'sid=',
    'undecodable percent escapes': 'sid=%E0%A4%A'
  }
  for (const [name, cookie] of Object.entries(cases)) {
    const client = await openSocket(wsUrl, { headers: { cookie } })
    t.equal(client.setCookie.length, 1, `${name}: a new cookie`)
    const fresh = unsignCookie(client.setCookie[0]).value as string
    t.not(fresh, forgedId, `${name}: the forged id is not used`)
    t.ok(app.sessions.has(fresh), `${name}: a fresh session`)
    client.socket.terminate()
  }
  t.notOk(app.sessions.has(forgedId))
  t.notOk(app.sessions.has('x'))
})

test('adds Secure when the request came over https behind a trusted proxy', async (t) => {
  const { app, wsUrl } = await startApp({ fastify: { trustProxy: true } })
  t.teardown(() => app.close())
  const overHttps = await openSocket(wsUrl, { headers: { 'x-forwarded-proto': 'https' } })
  const plain = await openSocket(wsUrl)
  t.teardown(() => { overHttps.socket.terminate(); plain.socket.terminate() })
  t.match(overHttps.setCookie[0], /; Secure; SameSite=Lax$/)
  t.notMatch(plain.setCookie[0], /Secure/)
})

test('ignores X-Forwarded-Proto without trust proxy', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl, { headers: { 'x-forwarded-proto': 'https' } })
  t.teardown(() => client.socket.terminate())
  t.notMatch(client.setCookie[0], /Secure/)
})

test('writes the configured cookie attributes', async (t) => {
  const { app, wsUrl } = await startApp({
    glue: { cookie: { name: 'app_session', maxAge: 3600, domain: '127.0.0.1', path: '/', sameSite: 'strict', secure: true } }
  })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  t.match(client.setCookie[0], /^app_session=[^;]+; Max-Age=3600; Domain=127\.0\.0\.1; Path=\/; HttpOnly; Secure; SameSite=Strict$/)
})

test('writes SameSite=None with Secure for cross-site embedding', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { cookie: { sameSite: 'none', secure: true } } })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  t.match(client.setCookie[0], /; Path=\/; HttpOnly; Secure; SameSite=None$/)
})

test('supports a __Host- cookie name', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { cookie: { name: '__Host-sid', secure: true } } })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.match(client.setCookie[0], /^__Host-sid=[^;]+; Path=\/; HttpOnly; Secure; SameSite=Lax$/)
  const again = await openSocket(wsUrl, { headers: { cookie: cookiePair(client.setCookie[0]) } })
  t.teardown(() => { client.socket.terminate(); again.socket.terminate() })
  t.equal(app.sessions.size, 1, 'the prefixed cookie is read back')
})

test("uses the app's own @fastify/cookie signer when no secret is given", async (t) => {
  const appSecret = 'the-apps-own-cookie-secret-0123456789'
  const { app, wsUrl } = await startApp({
    before: async (app) => { await app.register(fastifyCookie, { secret: appSecret }) },
    glue: { cookie: { secret: undefined } }
  })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  const pair = cookiePair(client.setCookie[0])
  const unsigned = new Signer(appSecret).unsign(decodeURIComponent(pair.slice(pair.indexOf('=') + 1)))
  t.ok(unsigned.valid, "signed with the app's secret")
  const sessionId = decodeSessionValue(unsigned.value ?? '')?.sessionId
  const again = await openSocket(wsUrl, { headers: { cookie: cookiePair(client.setCookie[0]) } })
  t.teardown(() => { client.socket.terminate(); again.socket.terminate() })
  t.same(again.setCookie, [])
  t.equal(app.sessions.get(sessionId as string)?.sockets.size, 2)
})

test('works when the app registered @fastify/cookie and @fastify/websocket itself', async (t) => {
  const { app, wsUrl } = await startApp({
    before: async (app) => {
      await app.register(fastifyCookie, { secret: 'another-apps-secret-0123456789-abcdef' })
      await app.register(fastifyWebsocket)
      app.get('/own', { websocket: true }, (socket) => { socket.send('own route') })
    }
  })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.ok(unsignCookie(client.setCookie[0]).valid, 'glue secret signs when given')
  const own = await openSocket(wsUrl.replace('/ws', '/own'))
  t.teardown(() => { client.socket.terminate(); own.socket.terminate() })
  t.equal(await own.nextMessage(), 'own route')
  t.same(own.setCookie, [], "the app's other websocket routes get no cookie")
  t.equal(app.sessions.size, 1)
})

test('every upgrade reaches its route: the app\'s own websocket routes, and an upgrade on a kept-alive connection', async (t) => {
  const { app, wsUrl, port } = await startApp({
    // An async hook, as many apps have: the upgrade then completes after the routing call returned.
    before (app) { app.addHook('onRequest', async () => { await new Promise((resolve) => setImmediate(resolve)) }) },
    after (app) {
      app.get('/own', { websocket: true }, (socket) => { socket.send('own route') })
      app.get('/plain', async () => 'plain answer')
    }
  })
  t.teardown(() => app.close())
  const own = await openSocket(wsUrl.replace('/ws', '/own'))
  t.teardown(() => own.socket.terminate())
  t.equal(await own.nextMessage(), 'own route', 'a route of the app on the plugin\'s @fastify/websocket')

  // One connection: an HTTP request answered and kept alive, then an upgrade on it.
  const socket = connect(port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  await once(socket, 'connect')
  let received = ''
  socket.on('data', (chunk: Buffer) => { received += chunk.toString() })
  socket.write(`GET /plain HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`)
  await until(() => received.endsWith('plain answer'), 'the HTTP answer')
  t.match(received, /^HTTP\/1\.1 200 OK\r\n/)
  received = ''
  socket.write(upgradeRequest(port))
  await until(() => received.includes('\r\n\r\n'), 'the upgrade answer')
  t.match(received, /^HTTP\/1\.1 101 Switching Protocols\r\n/)
  await until(() => app.sessions.size === 1, 'the session joined')
  t.equal(socket.destroyed, false, 'the upgraded connection stays open')
})

test('never logs a session id in clear', async (t) => {
  const { app, wsUrl, logs } = await startApp()
  const client = await openSocket(wsUrl)
  const id = unsignCookie(client.setCookie[0]).value as string
  client.socket.close()
  await logs.waitFor('websocket closed')
  await app.close()
  const text = JSON.stringify(logs.lines)
  t.ok(logs.lines.some((line) => typeof line.session === 'string'), 'logs carry a session tag')
  t.notOk(text.includes(id), 'no id in logs')
  t.notOk(text.includes(encodeURIComponent(cookiePair(client.setCookie[0]))), 'no cookie in logs')
})

test('works through app.injectWS without a network socket', async (t) => {
  const { app } = await startApp()
  t.teardown(() => app.close())
  const socket = await app.injectWS('/ws')
  t.equal(app.sessions.size, 1)
  const [session] = [...app.sessions]
  const message = new Promise((resolve) => socket.once('message', (data) => resolve(data.toString())))
  app.sessions.send(session?.id as string, 'injected')
  t.equal(await message, 'injected')
  socket.terminate()
})
