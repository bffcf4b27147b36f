import { test, type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import { GlueClient } from '../plugin/client/glue-client.js'
import type { GlueOptions } from '../plugin/index.js'
import {
  claimsOf,
  cookiePair,
  cookieWebSocket,
  createBrowser,
  dataOf,
  forgeCookie,
  nextEvent,
  openGlueSocket,
  refusedHandshake,
  resumeQuery,
  startApp,
  until,
  type Browser,
  type StartedApp
} from './helpers/index.js'

let lateLogin: string | undefined

/** An app with a page, a login by name, a logout, and a push to a user, as an app would write them. */
async function startUsersApp (t: Test, glue: GlueOptions = {}): Promise<StartedApp> {
  const started = await startApp({
    glue: { authorizeSubscribe: () => true, ...glue },
    after (app: FastifyInstance) {
      app.get('/', async (_request, reply) => reply.type('text/html').send('<!doctype html><title>page</title>'))
      app.get('/whoami', async (request) => ({ sessionId: request.sessionId, userId: request.sessionUserId }))
      app.post<{ Body: { name: string } }>('/login', async (request, reply) => {
        const before = request.sessionId
        const sessionId = app.sessions.login(request, reply, request.body.name)
        return { before, sessionId, requestSessionId: request.sessionId }
      })
      app.post('/late-login', async (request, reply) => {
        await reply.send({ ok: true })
        try {
          app.sessions.login(request, reply, 'ada')
        } catch (err) {
          lateLogin = (err as { code: string }).code
        }
        return reply
      })
      app.post('/logout', async (request, reply) => {
        app.sessions.logout(request, reply)
        return { sessionId: request.sessionId }
      })
    }
  })
  t.teardown(() => started.app.close())
  return started
}

/** A browser that loaded the page (so it has a session cookie). */
async function visit (httpUrl: string): Promise<Browser> {
  const browser = createBrowser(httpUrl)
  await browser.fetch('/', { headers: { 'sec-fetch-dest': 'document' } })
  return browser
}

const sidOf = (browser: Browser): string => claimsOf(`sid=${browser.get('sid') as string}`).sessionId

test('login moves the session to a new id bound to the user; its socket stays open and the old cookie is refused', async (t) => {
  const { app, httpUrl, wsUrl } = await startUsersApp(t)
  const browser = await visit(httpUrl)
  const before = sidOf(browser)
  const oldCookie = browser.cookie
  const tab = await browser.open(t, wsUrl)
  t.ok(app.sessions.subscribe(before, 'room'), 'a topic before login')
  app.sessions.send(before, 'before login')

  const login = await browser.fetch('/login', { method: 'POST', body: { name: 'ada' } })
  const { sessionId } = login.body as { before: string, sessionId: string, requestSessionId: string }
  t.same(login.body, { before, sessionId, requestSessionId: sessionId }, 'login returns the new id, and request.sessionId holds it')
  t.not(sessionId, before, 'a new id (session fixation)')
  t.equal(login.setCookie.length, 1, 'one Set-Cookie')
  t.same(claimsOf(`sid=${browser.get('sid') as string}`), { sessionId, userId: 'ada', issuedAt: claimsOf(`sid=${browser.get('sid') as string}`).issuedAt }, 'the cookie carries the new id and the user')

  t.equal(tab.socket.readyState, WebSocket.OPEN, 'the socket stays open')
  t.equal(app.sessions.get(sessionId)?.sockets.size, 1, 'and continues under the new id')
  t.equal(app.sessions.get(sessionId)?.userId, 'ada', 'session.userId')
  t.notOk(app.sessions.isKnown(before), 'the old id is gone')
  t.same(app.sessions.topicsOf(sessionId), ['room'], 'topics moved; the user channel is not one of them')
  t.same(app.sessions.sessionsOf('ada'), [sessionId])

  t.equal(app.sessions.sendToUser('ada', { to: 'ada' }), 1, 'a push to the user')
  t.equal(app.sessions.publish('room', 'topic message'), 1)
  t.equal(app.sessions.send(before, 'to the old id'), 0, 'the old id reaches nothing')
  await until(() => dataOf(tab).length === 3, 'three messages')
  t.same(tab.received.slice(1).map((frame) => JSON.parse(String(frame))), [
    ['m', 1, 'before login'],
    ['m', 2, { to: 'ada' }],
    ['t', 3, 'room', 'topic message']
  ], 'numbered on, a push to the user is a plain message')

  t.same((await browser.fetch('/whoami')).body, { sessionId, userId: 'ada' }, 'the new cookie works')
  const stale = await app.inject({ method: 'GET', url: '/whoami', headers: { cookie: oldCookie } })
  t.same(stale.json(), { sessionId: null, userId: null }, 'the old cookie is refused over HTTP')
  const replay = await openGlueSocket(wsUrl, { headers: { cookie: oldCookie } })
  t.teardown(() => replay.socket.terminate())
  t.equal(replay.setCookie.length, 1, 'a handshake with the old cookie gets a fresh session')
  t.not(claimsOf(replay.setCookie[0] as string).sessionId, sessionId)
  t.equal(claimsOf(replay.setCookie[0] as string).userId, null, 'anonymous')
  t.equal(app.sessions.sendToUser('ada', 'only ada'), 1, 'the replayed cookie does not reach the user')
})

test('a session resumes under its new id what was sent to the user while it was away', async (t) => {
  const { app, httpUrl, wsUrl } = await startUsersApp(t)
  const browser = await visit(httpUrl)
  const first = await browser.open(t, wsUrl)
  await browser.fetch('/login', { method: 'POST', body: { name: 'ada' } })
  app.sessions.sendToUser('ada', 'one')
  await until(() => dataOf(first).length === 1, 'one')
  first.socket.close()
  await first.closed
  t.equal(app.sessions.sendToUser('ada', 'two'), 0, 'kept for the detached session')
  const again = await browser.open(t, wsUrl, resumeQuery(first.welcome.epoch, 1))
  t.same(again.setCookie, [], 'the login cookie is accepted as it is')
  await until(() => dataOf(again).length === 1, 'two')
  t.same(JSON.parse(String(again.received[1])), ['m', 2, 'two'], 'resumed, no gap')
})

test('a login or logout while the tab is away moves or releases the detached session', async (t) => {
  const { app, httpUrl, wsUrl } = await startUsersApp(t)
  const browser = await visit(httpUrl)
  const tab = await browser.open(t, wsUrl)
  app.sessions.send(sidOf(browser), 'one')
  await until(() => dataOf(tab).length === 1, 'one')
  tab.socket.close()
  await tab.closed
  await until(() => app.sessions.stats().detachedSessions === 1, 'detached')
  const before = sidOf(browser)
  app.sessions.send(before, 'two')
  await browser.fetch('/login', { method: 'POST', body: { name: 'ada' } })
  t.ok(app.sessions.isKnown(sidOf(browser)), 'the detached session moved to the new id')
  t.notOk(app.sessions.isKnown(before))
  app.sessions.sendToUser('ada', 'three')
  const back = await browser.open(t, wsUrl, resumeQuery(tab.welcome.epoch, 1))
  await until(() => dataOf(back).length === 2, 'what it missed')
  t.same(back.received.slice(1).map((frame) => JSON.parse(String(frame))), [['m', 2, 'two'], ['m', 3, 'three']], 'resumed under the new id, in order')
  back.socket.close()
  await back.closed
  await until(() => app.sessions.stats().detachedSessions === 1, 'detached again')
  await browser.fetch('/logout', { method: 'POST' })
  t.equal(app.sessions.stats().detachedSessions, 0, 'logout releases it at once')
  t.same(app.sessions.sessionsOf('ada'), [])
})

test('a login in a request whose cookie was just re-issued sets one session cookie', async (t) => {
  const { httpUrl } = await startUsersApp(t, { cookie: { lifetime: 3600 } })
  const browser = createBrowser(httpUrl)
  const old = forgeCookie('GGGGGGGGGGGGGGGGGGGGGGGG', { age: 2_000_000 })
  const login = await browser.fetch('/login', { method: 'POST', body: { name: 'ada' }, headers: { cookie: old } })
  t.equal(login.setCookie.filter((line) => line.startsWith('sid=')).length, 1, 'the login cookie replaced the re-issued one')
  t.equal(claimsOf(login.setCookie[0] as string).userId, 'ada')
})

test('two browsers logged in as one user both get its pushes; closeUser and revokeUser reach both', async (t) => {
  const { app, httpUrl, wsUrl } = await startUsersApp(t)
  const laptop = await visit(httpUrl)
  const phone = await visit(httpUrl)
  const stranger = await visit(httpUrl)
  for (const browser of [laptop, phone]) await browser.fetch('/login', { method: 'POST', body: { name: 'ada' } })
  await stranger.fetch('/login', { method: 'POST', body: { name: 'bob' } })
  const tabs = [await laptop.open(t, wsUrl), await laptop.open(t, wsUrl), await phone.open(t, wsUrl)]
  const bob = await stranger.open(t, wsUrl)
  t.same(tabs.map((tab) => tab.setCookie), [[], [], []], 'the login cookies are used as they are')
  t.same(app.sessions.sessionsOf('ada').sort(), [sidOf(laptop), sidOf(phone)].sort())
  t.same(await app.sessions.clusterSessionsOf('ada'), app.sessions.sessionsOf('ada'), 'the cluster is this node')
  t.equal(app.sessions.sendToUser('ada', 'hello ada'), 3, 'every tab of every session of the user')
  for (const tab of tabs) await until(() => dataOf(tab).includes('hello ada'), 'the push')
  t.same(dataOf(bob), [], 'not another user')
  t.equal(app.sessions.closeUser('ada', 4001, 'bye'), 3)
  for (const tab of tabs) t.same(await tab.closed, { code: 4001, reason: 'bye' })

  const again = [await laptop.open(t, wsUrl), await phone.open(t, wsUrl)]
  const cookies = [laptop.cookie, phone.cookie]
  t.equal(app.sessions.revokeUser('ada'), 2, 'log out everywhere')
  for (const tab of again) t.same(await tab.closed, { code: 3000, reason: 'session revoked' })
  t.same(app.sessions.sessionsOf('ada'), [])
  for (const cookie of cookies) {
    const response = await app.inject({ method: 'GET', url: '/whoami', headers: { cookie } })
    t.same(response.json(), { sessionId: null, userId: null }, 'a cookie of the user issued before is refused')
  }
  t.equal(bob.socket.readyState, WebSocket.OPEN, 'another user is untouched')
  await laptop.fetch('/login', { method: 'POST', body: { name: 'ada' } })
  t.same((await laptop.fetch('/whoami')).body, { sessionId: sidOf(laptop), userId: 'ada' }, 'logging in again works')
})

test('logout closes the sockets with 3000, deletes the cookie and refuses it from then on', async (t) => {
  const { app, httpUrl, wsUrl } = await startUsersApp(t)
  const browser = await visit(httpUrl)
  await browser.fetch('/login', { method: 'POST', body: { name: 'ada' } })
  const cookie = browser.cookie
  const sessionId = sidOf(browser)
  const tab = await browser.open(t, wsUrl)
  const logout = await browser.fetch('/logout', { method: 'POST' })
  t.same(logout.body, { sessionId: null }, 'request.sessionId is null after logout')
  t.match(logout.setCookie, [/^sid=; Max-Age=0; Path=\/; HttpOnly; SameSite=Lax$/], 'the cookie is deleted')
  t.equal(browser.get('sid'), undefined)
  t.same(await tab.closed, { code: 3000, reason: 'session revoked' })
  await until(() => !app.sessions.isKnown(sessionId), 'the session released, not kept for resume')
  t.equal(app.sessions.stats().detachedSessions, 0)
  t.same((await app.inject({ method: 'GET', url: '/whoami', headers: { cookie } })).json(), { sessionId: null, userId: null })
  t.equal(app.sessions.revoke(sessionId), 0, 'revoking it again does nothing more')
  const anonymous = await app.inject({ method: 'POST', url: '/logout' })
  t.equal(anonymous.statusCode, 200, 'logging out without a session only deletes the cookie')
})

test('the shipped client stays closed on 3000 and says it was revoked, whatever doNotComeBack says', async (t) => {
  const { app, httpUrl, wsUrl } = await startUsersApp(t)
  const browser = await visit(httpUrl)
  await browser.fetch('/login', { method: 'POST', body: { name: 'ada' } })
  const { WebSocket: CookieSocket, jar } = cookieWebSocket(new Map([['sid', browser.get('sid') as string]]))
  const client = new GlueClient({ url: wsUrl, WebSocket: CookieSocket, doNotComeBack: () => false, reconnectionDelay: 10 })
  t.teardown(() => client.close())
  await nextEvent(client, 'open')
  t.equal(GlueClient.isDoNotComeBack(3000), true, 'the default rule lists it')
  const revoked = nextEvent(client, 'revoked')
  const closed = nextEvent(client, 'close')
  app.sessions.revoke(sidOf(browser))
  t.same(await closed, { code: 3000, reason: 'session revoked', wasClean: true, willReconnect: false })
  t.same(await revoked, { code: 3000, reason: 'session revoked' })
  t.equal(client.state, 'closed')
  t.equal(jar.get('sid'), browser.get('sid'), 'it never came back for a fresh session')
})

test('identify names the user of each handshake; a change of user rotates the session on the 101', async (t) => {
  const { app, wsUrl } = await startUsersApp(t, {
    identify: (request) => {
      const user = request.headers['x-user']
      if (user === 'throws') throw new Error('a bug in identify')
      if (user === 'broken') return Promise.reject(new Error('the user store is down'))
      if (user === 'number') return 42 as unknown as string
      return Promise.resolve(user === undefined ? null : String(user))
    }
  })
  const first = await openGlueSocket(wsUrl, { headers: { 'x-user': 'ada' } })
  t.teardown(() => first.socket.terminate())
  const bound = claimsOf(first.setCookie[0] as string)
  t.equal(bound.userId, 'ada', 'a fresh session bound to the user')
  t.equal(app.sessions.get(bound.sessionId)?.userId, 'ada')
  const cookie = cookiePair(first.setCookie[0])

  const same = await openGlueSocket(wsUrl, { headers: { 'x-user': 'ada', cookie } })
  t.teardown(() => same.socket.terminate())
  t.same(same.setCookie, [], 'the same user: the same session, no new cookie')
  t.equal(app.sessions.get(bound.sessionId)?.sockets.size, 2)

  const other = await openGlueSocket(wsUrl, { headers: { 'x-user': 'bob', cookie } })
  t.teardown(() => other.socket.terminate())
  const rotated = claimsOf(other.setCookie[0] as string)
  t.equal(rotated.userId, 'bob', 'another user: rotated')
  t.not(rotated.sessionId, bound.sessionId)
  t.equal(app.sessions.get(rotated.sessionId)?.sockets.size, 3, 'every tab of the browser moved with it')
  t.same(app.sessions.sessionsOf('ada'), [])
  t.equal(app.sessions.sendToUser('bob', 'hi bob'), 3)

  const anonymous = await openGlueSocket(wsUrl, { headers: { cookie: cookiePair(other.setCookie[0]) } })
  t.teardown(() => anonymous.socket.terminate())
  t.equal(claimsOf(anonymous.setCookie[0] as string).userId, null, 'nobody: rotated to an anonymous session')

  for (const user of ['throws', 'broken', 'number']) {
    const refused = await refusedHandshake(wsUrl, { headers: { 'x-user': user } })
    t.equal(refused.status, 500, `${user}: refused`)
    t.match(JSON.parse(refused.body), { code: 'FST_WSGLUE_IDENTIFY_FAILED' })
  }
})

test('a cookie is refused after its lifetime and re-issued past half of it', async (t) => {
  const lifetime = 3600
  const { app, wsUrl } = await startUsersApp(t, { cookie: { lifetime } })
  const id = 'EEEEEEEEEEEEEEEEEEEEEEEE'
  const expired = await openGlueSocket(wsUrl, { headers: { cookie: forgeCookie(id, { age: lifetime * 1000, userId: 'ada' }) } })
  t.teardown(() => expired.socket.terminate())
  t.not(claimsOf(expired.setCookie[0] as string).sessionId, id, 'expired: a fresh session, even under a valid signature')
  t.same((await app.inject({ method: 'GET', url: '/whoami', headers: { cookie: forgeCookie(id, { age: lifetime * 1000 }) } })).json(), { sessionId: null, userId: null })

  const old = await openGlueSocket(wsUrl, { headers: { cookie: forgeCookie(id, { age: lifetime * 600, userId: 'ada' }) } })
  t.teardown(() => old.socket.terminate())
  const renewed = claimsOf(old.setCookie[0] as string)
  t.equal(renewed.sessionId, id, 'past half its lifetime: the same session')
  t.equal(renewed.userId, 'ada', 'and the same user')
  t.ok(renewed.issuedAt > Date.now() - 60_000, 'with a new issue time')
  const http = await app.inject({ method: 'GET', url: '/whoami', headers: { cookie: forgeCookie(id, { age: lifetime * 600 }) } })
  t.equal(claimsOf(String(http.headers['set-cookie'])).sessionId, id, 'an HTTP response re-issues it too')
  const young = await app.inject({ method: 'GET', url: '/whoami', headers: { cookie: forgeCookie(id, { age: lifetime * 400 }) } })
  t.equal(young.headers['set-cookie'], undefined, 'younger than half: left alone')
})

test('session.userId reaches the hooks, and the user channel never counts as a topic', async (t) => {
  const seen: Array<string | null> = []
  const { app, httpUrl, wsUrl } = await startUsersApp(t, { maxTopicsPerSession: 1, onConnect: (session) => { seen.push(session.userId) } })
  const browser = await visit(httpUrl)
  await browser.open(t, wsUrl)
  await browser.fetch('/login', { method: 'POST', body: { name: 'ada' } })
  const tab = await browser.open(t, wsUrl)
  t.same(seen, [null, 'ada'])
  t.ok(app.sessions.subscribe(sidOf(browser), 'room'), 'one topic, as maxTopicsPerSession allows')
  tab.sendEnvelope(['s', 1, 'another'])
  t.same(await tab.nextEnvelope(), ['r', 1, 0, { code: 'GLUE_TOO_MANY_TOPICS', message: 'this session has as many topics as it may' }])
  t.same(app.sessions.topicsOf(sidOf(browser)), ['room'])
  t.same(await app.sessions.clusterTopicsOf(sidOf(browser)), ['room'])
})

test('nobody can subscribe to a user channel: topics starting with U+0000 are reserved', async (t) => {
  const { app, httpUrl, wsUrl } = await startUsersApp(t)
  const browser = await visit(httpUrl)
  const tab = await browser.open(t, wsUrl)
  t.throws(() => app.sessions.subscribe(sidOf(browser), '\u0000u:ada'), { code: 'FST_WSGLUE_INVALID_TOPIC' })
  t.throws(() => app.sessions.publish('\u0000u:ada', 'x'), { code: 'FST_WSGLUE_INVALID_TOPIC' })
  tab.sendEnvelope(['s', 1, '\u0000u:ada'])
  t.same(await tab.nextEnvelope(), ['r', 1, 0, { code: 'GLUE_BAD_ENVELOPE', message: 'invalid topic' }])
  t.same(app.sessions.sessionsOf('ada'), [])
})

test('misuse of the user API throws before anything changes', async (t) => {
  const { app } = await startUsersApp(t)
  for (const userId of ['', 42, null, 'x'.repeat(129), '\ud800']) {
    t.throws(() => app.sessions.sendToUser(userId as string, 'x'), { code: 'FST_WSGLUE_INVALID_USER_ID' }, `sendToUser ${String(userId)}`)
  }
  t.throws(() => app.sessions.closeUser('ada', 1001), { code: 'FST_WSGLUE_INVALID_CLOSE_CODE' })
  t.throws(() => app.sessions.closeUser('ada', 1000, 'x'.repeat(124)), { code: 'FST_WSGLUE_INVALID_CLOSE_REASON' })
  t.throws(() => app.sessions.revokeUser(''), { code: 'FST_WSGLUE_INVALID_USER_ID' })
  t.throws(() => app.sessions.revoke(''), { code: 'FST_WSGLUE_INVALID_SESSION_ID' })
  t.throws(() => app.sessions.sessionsOf(''), { code: 'FST_WSGLUE_INVALID_USER_ID' })
  t.throws(() => app.sessions.clusterSessionsOf(''), { code: 'FST_WSGLUE_INVALID_USER_ID' })
  t.throws(() => app.sessions.sendToUser('ada', undefined), { code: 'FST_WSGLUE_INVALID_DATA' })
  t.throws(() => app.sessions.login({} as never, {} as never, 'ada'), { code: 'FST_WSGLUE_INVALID_REQUEST' })
  t.throws(() => app.sessions.logout(null as never, null as never), { code: 'FST_WSGLUE_INVALID_REQUEST' })
  const late = await app.inject({ method: 'POST', url: '/late-login' })
  t.same(late.json(), { ok: true })
  t.equal(lateLogin, 'FST_WSGLUE_INVALID_REQUEST', 'login after the reply was sent')
  const bad = await app.inject({ method: 'POST', url: '/login', payload: { name: '' } })
  t.equal(bad.statusCode, 500)
  t.equal(bad.json().code, 'FST_WSGLUE_INVALID_USER_ID')
  t.equal(bad.headers['set-cookie'], undefined, 'no cookie set')
  t.equal(app.sessions.sendToUser('nobody', 'x'), 0, 'a user without sessions: nothing, not an error')
  t.equal(app.sessions.closeUser('nobody'), 0)
  t.equal(app.sessions.revokeUser('nobody'), 0)
})

test('revocations are bounded by maxRevocations: the oldest is forgotten first, once logged', async (t) => {
  const { app, logs } = await startUsersApp(t, { maxRevocations: 10 })
  const ids = Array.from({ length: 25 }, (_, i) => String(i).padStart(24, 'R'))
  for (const id of ids) app.sessions.revoke(id)
  t.equal(app.sessions.stats().revocations, 10)
  t.equal(app.sessions.stats().revocationEvictions, 15)
  const whoami = async (id: string): Promise<unknown> => (await app.inject({ method: 'GET', url: '/whoami', headers: { cookie: forgeCookie(id) } })).json()
  t.same(await whoami(ids[24] as string), { sessionId: null, userId: null }, 'the newest revocation holds')
  t.same(await whoami(ids[15] as string), { sessionId: null, userId: null })
  t.same(await whoami(ids[0] as string), { sessionId: ids[0], userId: null }, 'the oldest was forgotten')
  await logs.waitFor('fastify-websocket-glue: forgot revocations early to stay within maxRevocations')
  t.equal(logs.lines.filter((line) => /forgot revocations/.test(String(line.msg))).length, 1, 'logged once')
  for (let i = 0; i < 25; i++) app.sessions.revokeUser(`user${i}`)
  t.equal(app.sessions.stats().revocations, 20, 'users are bounded the same way')
})

test('a flood of logins leaves nothing behind but bounded revocations', async (t) => {
  const { app, httpUrl } = await startUsersApp(t, { maxRevocations: 50 })
  const browser = await visit(httpUrl)
  // Each login rotates from the cookie the previous one set: 500 revocations of old ids.
  for (let i = 0; i < 500; i++) await browser.fetch('/login', { method: 'POST', body: { name: 'mallory' } })
  t.equal(app.sessions.stats().revocations, 50, 'revocations stay within maxRevocations')
  t.equal(app.sessions.stats().revocationEvictions, 450)
  t.same(app.sessions.sessionsOf('mallory'), [], 'no session without a socket is kept for the user')
  t.equal(app.sessions.size, 0)
  t.equal(app.sessions.stats().detachedSessions, 0)
  t.equal(((await browser.fetch('/whoami')).body as { userId: string }).userId, 'mallory', 'the last login holds')
})
