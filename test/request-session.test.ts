import { test } from 'tap'
import { createCookieSigner, decodeSessionValue } from '../plugin/handshake/identity.js'
import { cookiePair, forgeCookie, openSocket, SECRET, startApp } from './helpers/index.js'

async function startWithRoutes (glue = {}) {
  return startApp({
    glue,
    after: (app) => {
      app.get('/whoami', async (request) => ({ sessionId: request.sessionId }))
      app.post('/notify', async (request, reply) => {
        if (request.sessionId === null) return reply.code(401).send({ code: 'NO_SESSION' })
        return { delivered: app.sessions.send(request.sessionId, { notice: 'hi' }) }
      })
      app.get('/page', async (_request, reply) => reply.type('text/html').send('<html></html>'))
    }
  })
}

test('request.sessionId is null without a cookie and no cookie is minted for API calls', async (t) => {
  const { app } = await startWithRoutes()
  t.teardown(() => app.close())
  const response = await app.inject({ method: 'GET', url: '/whoami', headers: { accept: 'application/json' } })
  t.same(response.json(), { sessionId: null })
  t.equal(response.headers['set-cookie'], undefined)
  const post = await app.inject({ method: 'POST', url: '/notify' })
  t.equal(post.statusCode, 401)
  t.equal(post.headers['set-cookie'], undefined)
})

test('request.sessionId is the verified id of the socket cookie, and a route pushes to that session', async (t) => {
  const { app, wsUrl } = await startWithRoutes()
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  const cookie = cookiePair(client.setCookie[0])
  const who = await app.inject({ method: 'GET', url: '/whoami', headers: { cookie } })
  const [session] = [...app.sessions]
  t.same(who.json(), { sessionId: session?.id })
  const post = await app.inject({ method: 'POST', url: '/notify', headers: { cookie } })
  t.same(post.json(), { delivered: 1 })
  t.equal(await client.nextMessage(), '{"notice":"hi"}')
})

test('request.sessionId is null for a forged cookie', async (t) => {
  const { app } = await startWithRoutes()
  t.teardown(() => app.close())
  const forged = forgeCookie('AAAAAAAAAAAAAAAAAAAAAAAA', { secret: 'some-other-secret-0123456789-abcdef' })
  const response = await app.inject({ method: 'GET', url: '/whoami', headers: { cookie: forged, accept: 'application/json' } })
  t.same(response.json(), { sessionId: null })
})

test('a page response mints the cookie, so the sockets of every tab share one session', async (t) => {
  const { app, wsUrl, httpUrl } = await startWithRoutes()
  t.teardown(() => app.close())
  // Two tabs load the page at the same time without a cookie.
  const [one, two] = await Promise.all([
    fetch(`${httpUrl}/page`, { headers: { 'sec-fetch-dest': 'document', accept: 'text/html' } }),
    fetch(`${httpUrl}/page`, { headers: { accept: 'text/html,application/xhtml+xml' } })
  ])
  const first = one.headers.get('set-cookie') ?? undefined
  const second = two.headers.get('set-cookie') ?? undefined
  t.match(first, /^sid=[^;]+; Path=\/; HttpOnly; SameSite=Lax$/)
  t.match(second, /^sid=/)
  // The browser keeps the last cookie it stored; both tabs' handshakes then carry it.
  const jar = cookiePair(second)
  const tabA = await openSocket(wsUrl, { headers: { cookie: jar } })
  const tabB = await openSocket(wsUrl, { headers: { cookie: jar } })
  t.teardown(() => { tabA.socket.terminate(); tabB.socket.terminate() })
  t.same(tabA.setCookie, [], 'the handshake needs no cookie of its own')
  t.equal(app.sessions.size, 1)
  t.equal([...app.sessions][0]?.sockets.size, 2)
})

test('the page route sees the id it is minting', async (t) => {
  const { app } = await startWithRoutes()
  t.teardown(() => app.close())
  const response = await app.inject({ method: 'GET', url: '/whoami', headers: { 'sec-fetch-dest': 'document' } })
  const minted = response.json().sessionId as string
  t.match(minted, /^[A-Za-z0-9_-]{24}$/)
  const cookieValue = decodeURIComponent(cookiePair(response.headers['set-cookie'] as string).slice(4))
  t.equal(decodeSessionValue(createCookieSigner([SECRET]).unsign(cookieValue).value ?? '')?.sessionId, minted)
})

test('does not mint on subresource, non-GET or non-HTML requests', async (t) => {
  const { app } = await startWithRoutes()
  t.teardown(() => app.close())
  const cases = [
    { method: 'GET' as const, headers: { 'sec-fetch-dest': 'script', accept: 'text/html' } },
    { method: 'GET' as const, headers: { accept: 'image/png' } },
    { method: 'POST' as const, headers: { accept: 'text/html' } }
  ]
  for (const request of cases) {
    const response = await app.inject({ ...request, url: '/page' })
    t.equal(response.headers['set-cookie'], undefined, JSON.stringify(request))
  }
})

test('cookie.issueOnPages false leaves pages alone', async (t) => {
  const { app } = await startWithRoutes({ cookie: { issueOnPages: false } })
  t.teardown(() => app.close())
  const response = await app.inject({ method: 'GET', url: '/whoami', headers: { 'sec-fetch-dest': 'document' } })
  t.equal(response.headers['set-cookie'], undefined)
  t.same(response.json(), { sessionId: null })
})

test('an HTTP request with a cookie signed by an older secret gets it re-issued', async (t) => {
  const newest = 'the-newest-secret-0123456789-abcdefgh'
  const { app } = await startWithRoutes({ cookie: { secret: [newest, SECRET] } })
  t.teardown(() => app.close())
  const id = 'DDDDDDDDDDDDDDDDDDDDDDDD'
  const old = forgeCookie(id)
  const response = await app.inject({ method: 'POST', url: '/notify', headers: { cookie: old } })
  t.same(response.json(), { delivered: 0 })
  const renewed = decodeURIComponent(cookiePair(response.headers['set-cookie'] as string).slice(4))
  const unsigned = createCookieSigner([newest]).unsign(renewed)
  t.ok(unsigned.valid, 'signed with the newest secret')
  t.equal(decodeSessionValue(unsigned.value ?? '')?.sessionId, id)
})
