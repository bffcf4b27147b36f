import { test, type Test } from 'tap'
import fastifyCookie from '@fastify/cookie'
import fastifyWebsocket from '@fastify/websocket'
import type { FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import {
  cookiePair,
  openGlueSocket,
  openSocket,
  refusedHandshake,
  resumeUrl,
  SECRET,
  startApp,
  until,
  type GlueSocket,
  type StartOptions
} from '../helpers/index.js'

const APP_SECRET = 'the-apps-own-cookie-secret-0123456789'
const OLD_SECRET = 'the-old-secret-0123456789-0123456789'
const NEW_SECRET = 'the-new-secret-0123456789-0123456789'

// Values an application signs for its own cookies, replayed by a client as the session cookie.
const CHOSEN_VALUES = ['user_alice_is_admin_12345', 'attackerChosenId_0123456']

/** The two ways the plugin gets its signer: its own `cookie.secret`, or the app's @fastify/cookie. */
const SIGNER_MODES: Array<{ name: string, secret: string, options: (secret: string | string[]) => StartOptions }> = [
  { name: 'its own secret', secret: SECRET, options: (secret) => ({ glue: { cookie: { secret } } }) },
  {
    name: "the app's @fastify/cookie secret",
    secret: APP_SECRET,
    options: (secret) => ({
      before: async (app) => { await app.register(fastifyCookie, { secret }) },
      glue: { cookie: { secret: undefined } }
    })
  }
]

/** Starts an app whose routes sign cookies of their own and report `request.sessionId`. */
async function startSigningApp (t: Test, options: StartOptions) {
  const connected: string[] = []
  const started = await startApp({
    ...options,
    after: (app) => {
      app.sessions.on('connect', (session) => { connected.push(session.id) })
      app.get('/login', async (_request, reply) => {
        for (const value of CHOSEN_VALUES) reply.setCookie(`role${value.length}`, value, { signed: true, path: '/' })
        return 'ok'
      })
      app.get('/whoami', async (request) => ({ sessionId: request.sessionId }))
    }
  })
  t.teardown(() => started.app.close())
  return { ...started, connected }
}

/** The signed values the app's /login route set, as `sid=` cookie headers. */
async function replayedAsSession (app: FastifyInstance): Promise<string[]> {
  const response = await app.inject({ method: 'GET', url: '/login' })
  const lines = response.headers['set-cookie'] as string[]
  return lines.map((line) => 'sid=' + cookiePair(line).slice(cookiePair(line).indexOf('=') + 1))
}

for (const { name: mode, secret, options: optionsFor } of SIGNER_MODES) {
  test(`a value the app signed for another cookie never becomes a session id, with ${mode}`, async (t) => {
    const { app, wsUrl, connected } = await startSigningApp(t, optionsFor(secret))
    const cookies = await replayedAsSession(app)
    t.equal(cookies.length, CHOSEN_VALUES.length)
    for (const [i, cookie] of cookies.entries()) {
      const chosen = CHOSEN_VALUES[i] as string
      const who = await app.inject({ method: 'GET', url: '/whoami', headers: { cookie, accept: 'application/json' } })
      t.same(who.json(), { sessionId: null }, `${chosen}: request.sessionId is null`)
      const page = await app.inject({ method: 'GET', url: '/whoami', headers: { cookie, 'sec-fetch-dest': 'document' } })
      t.not(page.json().sessionId, chosen, `${chosen}: a page mints a fresh id`)
      t.ok(page.headers['set-cookie'], `${chosen}: and a new cookie`)

      const client = await openSocket(wsUrl, { headers: { cookie } })
      t.equal(client.setCookie.length, 1, `${chosen}: the 101 carries a new cookie`)
      t.not(connected.at(-1), chosen, `${chosen}: the socket joins a fresh session`)
      t.notOk(app.sessions.has(chosen), `${chosen}: no session has the chosen id`)
      client.socket.terminate()
    }
  })

  test(`a genuine session cookie round-trips, with ${mode}`, async (t) => {
    const { app, wsUrl, connected } = await startSigningApp(t, optionsFor(secret))
    const first = await openSocket(wsUrl)
    const cookie = cookiePair(first.setCookie[0])
    const second = await openSocket(wsUrl, { headers: { cookie } })
    t.teardown(() => { first.socket.terminate(); second.socket.terminate() })
    t.same(second.setCookie, [], 'no new cookie')
    t.equal(connected[0], connected[1], 'both sockets share one session')
    t.match(connected[0], /^[A-Za-z0-9_-]{24}$/)
    const who = await app.inject({ method: 'GET', url: '/whoami', headers: { cookie } })
    t.same(who.json(), { sessionId: connected[0] })
  })

  test(`rotating the secret keeps sessions, with ${mode}`, async (t) => {
    const before = await startSigningApp(t, optionsFor(OLD_SECRET))
    const old = await openSocket(before.wsUrl)
    const oldCookie = cookiePair(old.setCookie[0])
    old.socket.terminate()

    // New secret first, the old one after it: the old cookie verifies and is re-issued.
    const rotating = await startSigningApp(t, optionsFor([NEW_SECRET, OLD_SECRET]))
    const resumed = await openSocket(rotating.wsUrl, { headers: { cookie: oldCookie } })
    t.equal(resumed.setCookie.length, 1, 're-issued')
    t.equal(rotating.connected[0], before.connected[0], 'same session')
    const newCookie = cookiePair(resumed.setCookie[0])
    t.not(newCookie, oldCookie)
    resumed.socket.terminate()

    // Old secret dropped: the re-issued cookie still verifies, the old one no longer does.
    const after = await startSigningApp(t, optionsFor(NEW_SECRET))
    const renewed = await openSocket(after.wsUrl, { headers: { cookie: newCookie } })
    const stale = await openSocket(after.wsUrl, { headers: { cookie: oldCookie } })
    t.teardown(() => { renewed.socket.terminate(); stale.socket.terminate() })
    t.same(renewed.setCookie, [])
    t.equal(after.connected[0], before.connected[0], 'the renewed cookie keeps the session')
    t.equal(stale.setCookie.length, 1, 'a cookie of the dropped secret is a fresh session')
    t.not(after.connected[1], before.connected[0])
  })
}

test('/_glue/ serves only the client scripts, with nosniff and revalidation', async (t) => {
  const { app, httpUrl } = await startApp()
  t.teardown(() => app.close())
  for (const name of ['glue-client.js', 'glue-client.global.js']) {
    const response = await fetch(`${httpUrl}/_glue/${name}`)
    t.equal(response.status, 200, name)
    t.match(response.headers.get('content-type'), /^(text|application)\/javascript/, `${name}: content type`)
    t.equal(response.headers.get('x-content-type-options'), 'nosniff', `${name}: nosniff`)
    t.equal(response.headers.get('cache-control'), 'no-cache', `${name}: revalidated on every load`)
    const etag = response.headers.get('etag')
    t.ok(etag, `${name}: has an ETag`)
    await response.arrayBuffer()
    // fetch() adds Cache-Control: no-cache to a conditional request, which forces a 200.
    const again = await app.inject({ method: 'GET', url: `/_glue/${name}`, headers: { 'if-none-match': etag as string } })
    t.equal(again.statusCode, 304, `${name}: unchanged means 304`)
    t.equal(again.headers['x-content-type-options'], 'nosniff', `${name}: 304 keeps the headers`)
    t.equal(again.headers['cache-control'], 'no-cache')
  }
  for (const path of ['glue-client.d.ts', 'glue-client', 'GLUE-CLIENT.JS', '', '.', '..%2Fplugin%2Findex.js', 'glue-client.js/x']) {
    const response = await fetch(`${httpUrl}/_glue/${path}`)
    t.equal(response.status, 404, `${JSON.stringify(path)} is not served`)
    await response.arrayBuffer()
  }
})

test('an upgrade to an ordinary route is refused with 404 before any 101', async (t) => {
  const { app, wsUrl, httpUrl, logs } = await startApp({
    after: async (app) => {
      app.get('/', async (_request, reply) => reply.type('text/html').send('<html></html>'))
      app.get('/own', { websocket: true }, (socket) => { socket.send('own') })
      app.route({ method: 'GET', url: '/both', handler: async () => 'http', wsHandler: (socket) => { socket.send('ws') } })
      app.post('/form', async () => 'posted')
      await app.register(async (child) => { child.get('/child', async () => 'child') }, { prefix: '/nested' })
    }
  })
  t.teardown(() => app.close())
  const base = wsUrl.replace('/ws', '')
  for (const path of ['/', '/nested/child', '/_glue/glue-client.js']) {
    const refused = await refusedHandshake(base + path)
    t.equal(refused.status, 404, `${path}: 404`)
    t.same(JSON.parse(refused.body), {
      statusCode: 404,
      code: 'FST_WSGLUE_NOT_A_WEBSOCKET_ROUTE',
      error: 'Not Found',
      message: 'Not a websocket route'
    }, `${path}: the body names the reason`)
  }
  t.equal((await refusedHandshake(base + '/unknown')).status, 404, 'unknown paths stay 404')
  t.notOk(logs.lines.some((line) => line.msg === 'closed incoming websocket connection for path with no websocket handler'))

  const own = await openSocket(base + '/own')
  const both = await openSocket(base + '/both')
  const glue = await openSocket(wsUrl)
  t.teardown(() => { own.socket.terminate(); both.socket.terminate(); glue.socket.terminate() })
  t.equal(await own.nextMessage(), 'own', 'websocket: true routes still upgrade')
  t.equal(await both.nextMessage(), 'ws', 'wsHandler routes still upgrade')
  t.equal(await (await fetch(`${httpUrl}/both`)).text(), 'http', 'and answer HTTP')
  t.equal((await fetch(`${httpUrl}/`)).status, 200, 'ordinary requests are unaffected')
  t.equal(await (await fetch(`${httpUrl}/form`, { method: 'POST' })).text(), 'posted')
  t.equal(await (await fetch(`${httpUrl}/nested/child`)).text(), 'child')
})

test('routes registered before the plugin keep working and fail open', async (t) => {
  const { app, wsUrl, httpUrl } = await startApp({
    before: async (app) => {
      await app.register(fastifyWebsocket)
      app.get('/early', { websocket: true }, (socket) => { socket.send('early') })
      app.get('/early-page', async () => 'early page')
    },
    after: (app) => {
      app.get('/late-page', async () => 'late page')
      app.get('/late', { websocket: true }, (socket) => { socket.send('late') })
    }
  })
  t.teardown(() => app.close())
  const base = wsUrl.replace('/ws', '')
  const early = await openSocket(base + '/early')
  const late = await openSocket(base + '/late')
  const glue = await openSocket(wsUrl)
  t.teardown(() => { early.socket.terminate(); late.socket.terminate(); glue.socket.terminate() })
  t.equal(await early.nextMessage(), 'early')
  t.equal(await late.nextMessage(), 'late')
  t.equal(await (await fetch(`${httpUrl}/early-page`)).text(), 'early page')
  t.equal(await (await fetch(`${httpUrl}/late-page`)).text(), 'late page')
  t.equal((await refusedHandshake(base + '/late-page')).status, 404, 'a route the plugin saw is refused')
  // The plugin never saw /early-page: @fastify/websocket handles it as before (101, then a close).
  const unseen = await openSocket(base + '/early-page')
  t.equal((await unseen.closed).code, 1005, 'fails open to @fastify/websocket\'s behaviour')
})

test('the same-host rule accepts only http and https origins', async (t) => {
  const { app, wsUrl, port } = await startApp()
  t.teardown(() => app.close())
  const host = `127.0.0.1:${port}`
  const cases: Array<[string, string]> = [
    [`ftp://${host}`, host],
    [`ws://${host}`, host],
    [`wss://${host}`, host],
    [`file://${host}`, host],
    ['chrome-extension://abcdefghijklmnopabcdefghijklmnop', 'abcdefghijklmnopabcdefghijklmnop'],
    [`moz-extension://${host}`, host]
  ]
  for (const [origin, hostHeader] of cases) {
    const refused = await refusedHandshake(wsUrl, { origin, headers: { host: hostHeader } })
    t.equal(refused.status, 403, `${origin} is refused`)
  }
  const allowed = await openSocket(wsUrl, { origin: `http://${host}` })
  allowed.socket.terminate()
  t.pass('http on the same host is still allowed')
})

test('topics that are not well-formed unicode are refused by the API and over glue.v1', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { authorizeSubscribe: () => true } })
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  const [session] = [...app.sessions]
  const id = session?.id as string
  for (const topic of ['\ud800', 'news\udc00', '\udc00\ud800', 'a\ud83d']) {
    t.throws(() => app.sessions.subscribe(id, topic), { code: 'FST_WSGLUE_INVALID_TOPIC' }, `subscribe ${JSON.stringify(topic)}`)
    t.throws(() => app.sessions.unsubscribe(id, topic), { code: 'FST_WSGLUE_INVALID_TOPIC' }, `unsubscribe ${JSON.stringify(topic)}`)
    t.throws(() => app.sessions.publish(topic, 'x'), { code: 'FST_WSGLUE_INVALID_TOPIC' }, `publish ${JSON.stringify(topic)}`)
  }
  client.sendEnvelope(['s', 1, '\ud800'])
  t.same(await client.nextEnvelope(), ['r', 1, 0, { code: 'GLUE_BAD_ENVELOPE', message: 'invalid topic' }])
  client.sendEnvelope(['u', 2, 'x\udfff'])
  t.same(await client.nextEnvelope(), ['r', 2, 0, { code: 'GLUE_BAD_ENVELOPE', message: 'invalid topic' }])
  t.same(app.sessions.topicsOf(id), [], 'nothing was subscribed')
  // A surrogate pair is well-formed: emoji topics still work.
  client.sendEnvelope(['s', 3, 'news \ud83d\ude00'])
  t.same(await client.nextEnvelope(), ['r', 3, 1, 'news \ud83d\ude00'])
  t.ok(app.sessions.subscribe(id, 'emoji \u{1f600}'))
})

test('a Buffer mutated after send still resumes with the bytes that were sent', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  const first = await openGlueSocket(wsUrl)
  const cookie = cookiePair(first.setCookie[0])
  const [session] = [...app.sessions]
  const id = session?.id as string
  first.socket.close()
  await until(() => !app.sessions.has(id) && app.sessions.isKnown(id), 'the session to detach')

  const sent = Buffer.from([1, 2, 3])
  app.sessions.send(id, sent)
  sent.fill(0xff)
  const broadcast = Buffer.from('abcd')
  app.sessions.broadcast(broadcast)
  broadcast.write('XXXX')
  const view = new Uint8Array([7, 8, 9, 10]).subarray(1, 3)
  app.sessions.send(id, view)
  view.fill(0)

  const resumed = await openGlueSocket(resumeUrl(wsUrl, first.welcome.epoch, first.welcome.seq), { headers: { cookie } })
  t.teardown(() => resumed.socket.terminate())
  const seq = first.welcome.seq
  const header = (n: number) => [0x00, 0, 0, 0, 0, 0, seq + n]
  t.same(await resumed.nextMessage(), Buffer.from([...header(1), 1, 2, 3]), 'send')
  t.same(await resumed.nextMessage(), Buffer.from([...header(2), ...Buffer.from('abcd')]), 'broadcast')
  t.same(await resumed.nextMessage(), Buffer.from([...header(3), 8, 9]), 'an ArrayBuffer view')
})

/** The server's answer to an envelope: the next envelope, or the close code if the socket closed instead. */
async function answerTo (client: GlueSocket, envelope: unknown[]): Promise<unknown[] | { closed: number }> {
  client.sendEnvelope(envelope)
  return await Promise.race([client.nextEnvelope(), client.closed.then(({ code }) => ({ closed: code }))])
}

test('a malformed envelope with a usable id gets GLUE_BAD_ENVELOPE and the socket stays open', async (t) => {
  const requests: unknown[] = []
  const { app, wsUrl } = await startApp({ glue: { answerRequest: (_session, data) => { requests.push(data); return data } } })
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  const cases: Array<[unknown[], string]> = [
    [['q', 1], 'request envelope needs an id and data'],
    [['q', 2, 'data', 'extra'], 'request envelope needs an id and data'],
    [['s', 3], 'subscription envelope needs an id and a topic'],
    [['u', 4, 'news', 'extra'], 'subscription envelope needs an id and a topic']
  ]
  for (const [envelope, message] of cases) {
    t.same(await answerTo(client, envelope), ['r', envelope[1], 0, { code: 'GLUE_BAD_ENVELOPE', message }], JSON.stringify(envelope))
  }
  t.same(await answerTo(client, ['q', 5, 'still open']), ['r', 5, 1, 'still open'])
  t.same(requests, ['still open'], 'no malformed request reached the handler')
})

test('a malformed envelope without a usable id still closes with 1008', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  for (const envelope of [['q'], ['q', 'one', {}], ['q', -1], ['s', 1.5], ['m', 1, 2]]) {
    const client = await openGlueSocket(wsUrl)
    client.sendEnvelope(envelope)
    t.equal((await client.closed).code, 1008, JSON.stringify(envelope))
  }
})

test('a message in more than 16,384 fragments closes the socket with 1008', async (t) => {
  const messages: unknown[] = []
  const { app, wsUrl, logs } = await startApp({ glue: { onMessage: (_session, data) => { messages.push(data) } } })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  for (let i = 0; i < 16_384; i++) client.socket.send('a', { fin: false })
  client.socket.send('a', { fin: true })
  t.same(await client.closed, { code: 1008, reason: '' })
  t.same(messages, [], 'nothing reached onMessage')
  const logged = await logs.waitFor('websocket peer error')
  t.match(logged.err, { message: 'Too many message fragments' })

  // Exactly at the limit is fine.
  const atLimit = await openSocket(wsUrl)
  t.teardown(() => atLimit.socket.terminate())
  for (let i = 0; i < 16_383; i++) atLimit.socket.send('b', { fin: false })
  atLimit.socket.send('b', { fin: true })
  await until(() => messages.length === 1, 'the message at the limit')
  t.equal(messages[0], 'b'.repeat(16_384))
  t.equal(atLimit.socket.readyState, WebSocket.OPEN)
})
