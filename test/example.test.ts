import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { test } from 'tap'
import WebSocket from 'ws'
import { buildApp, DEV_SECRET, NEWS_TOPIC, sessionTag, type ExampleOptions } from '../example/app.js'
import { GlueClient, type GlueTopicEvent } from '../plugin/client/glue-client.js'
import {
  closeClient,
  closeSocket,
  cookieWebSocket,
  createLogCapture,
  nextEvent,
  openInboxSocket,
  redisSkip,
  refusedHandshake,
  setEnv,
  startBuiltServer,
  startRedis,
  until
} from './helpers/index.js'

const SECRET = 'example-test-secret-that-is-long-enough-0123'

interface Started {
  readonly app: FastifyInstance
  readonly http: string
  readonly ws: string
}

async function start (options: ExampleOptions = {}): Promise<Started> {
  const app = await buildApp({ logger: false, secret: SECRET, broadcastInterval: 0, ...options })
  const http = await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, http, ws: http.replace('http:', 'ws:') + '/ws' }
}

/** Loads the page as a browser would and returns the session cookie it set (`name=value`). */
async function pageCookie (http: string): Promise<string> {
  const response = await fetch(http + '/', { headers: { accept: 'text/html' } })
  await response.text()
  const header = response.headers.get('set-cookie') ?? ''
  return header.split(';', 1)[0] ?? ''
}

test('serves the page, which loads the client from the plugin url and sets an HttpOnly session cookie', async (t) => {
  const { app, http } = await start()
  t.teardown(() => app.close())
  const page = await fetch(http + '/', { headers: { accept: 'text/html' } })
  t.equal(page.status, 200)
  t.match(page.headers.get('content-type'), /^text\/html/)
  t.match(page.headers.get('set-cookie'), /^sid=[^;]+; .*HttpOnly/)
  const html = await page.text()
  t.match(html, '<script src="/_glue/glue-client.global.js"></script>')
  for (const id of ['connect', 'disconnect', 'message', 'send', 'notify', 'subscribe', 'unsubscribe', 'topic', 'request', 'log', 'state', 'stream', 'stream-stop', 'numbers', 'last-number']) {
    t.match(html, `id="${id}"`)
  }

  const script = await fetch(http + '/_glue/glue-client.global.js')
  t.equal(script.status, 200)
  t.match(script.headers.get('content-type'), /javascript/)
  t.match(await script.text(), 'GlueClient')
  const esm = await fetch(http + '/_glue/glue-client.js')
  t.equal(esm.status, 200)
  const bundle = await esm.text()
  t.match(bundle, /\n\/\/# sourceMappingURL=glue-client\.js\.map\n?$/, 'the ES module names its source map')
  const map = await fetch(http + '/_glue/glue-client.js.map')
  t.equal(map.status, 200, 'which is served beside it')
  const { sources } = await map.json() as { sources: string[] }
  t.ok(sources.length > 0 && sources.every((source) => /plugin\/client\/[\w-]+\.ts$/.test(source)), 'and maps to the TypeScript sources')
  // The ES module is a minified bundle: import it as a page would (a data: URL has no place for
  // the relative map), then look for the exports by name.
  const code = Buffer.from(bundle.replace(/\/\/# sourceMappingURL=.*\n?$/, '')).toString('base64')
  const served = await import('data:text/javascript;base64,' + code) as Record<string, unknown>
  t.equal(typeof served.GlueClient, 'function', 'the ES module exports GlueClient')
  t.equal(typeof served.GlueClientError, 'function', 'and GlueClientError')
})

test('greets with a session tag, answers ping with pong and any other text with ok', async (t) => {
  const { app, ws } = await start()
  t.teardown(() => app.close())
  const { socket, frames } = await openInboxSocket(ws)
  t.teardown(() => closeSocket(socket))
  t.match(await frames.next(), /^welcome [\w-]{12}$/)
  socket.send('ping')
  t.equal(await frames.next(), 'pong')
  socket.send('hello')
  t.equal(await frames.next(), 'ok')
  socket.send('PING')
  t.equal(await frames.next(), 'ok', 'only the exact text "ping" gets pong')
  socket.send(Buffer.from('ping'), { binary: true })
  t.equal(await frames.next(), 'ok', 'a binary frame is not the text "ping"')
})

test('broadcasts periodically to every connected socket', async (t) => {
  const { app, ws } = await start({ broadcastInterval: 30 })
  t.teardown(() => app.close())
  const first = await openInboxSocket(ws)
  const second = await openInboxSocket(ws)
  t.teardown(() => Promise.all([closeSocket(first.socket), closeSocket(second.socket)]))
  const [a, b] = await Promise.all([first.frames.next(/^broadcast #/), second.frames.next(/^broadcast #/)])
  t.match(a, /^broadcast #\d+ from .+ at \d{4}-\d\d-\d\dT/)
  t.match(b, /^broadcast #\d+ from .+ at /)
})

test('publishes each broadcast to the news topic, which the shipped client may subscribe to', async (t) => {
  const { app, ws } = await start({ broadcastInterval: 30 })
  t.teardown(() => app.close())
  const client = new GlueClient({ url: ws, WebSocket, reconnection: false })
  t.teardown(() => closeClient(client))
  const news = new Promise<GlueTopicEvent>((resolve) => { client.onTopic(NEWS_TOPIC, resolve) })
  await client.subscribe('news')
  const { data, topic, seq } = await news
  t.equal(topic, 'news')
  t.match(data, { headline: /^news #\d+$/, at: /^\d{4}-\d\d-\d\dT/ })
  t.type(seq, 'number')
  await t.rejects(client.subscribe('admin'), { code: 'GLUE_SUBSCRIBE_REFUSED' }, 'any other topic is refused')
  t.equal(await client.unsubscribe('news'), true)
})

test('answers requests for the time and echoes, and rejects unknown ones with an exposed error', async (t) => {
  const { app, ws } = await start()
  t.teardown(() => app.close())
  const client = new GlueClient({ url: ws, WebSocket, reconnection: false })
  t.teardown(() => closeClient(client))
  const welcome = nextEvent(client, 'message')
  const { now } = await client.request<{ now: string }>({ op: 'time' })
  t.ok(Math.abs(Date.parse(now) - Date.now()) < 60_000, 'the time is the server\'s clock')
  t.same(await client.request({ op: 'echo', value: [1, 'two'] }), [1, 'two'])
  t.equal(await client.request({ op: 'echo' }), null)
  await t.rejects(client.request({ op: 'launch' }), { code: 'UNKNOWN_OP', message: 'Expected op to be "time", "echo", "topics" or "share-topics", got "launch"' })
  await t.rejects(client.request(null), { code: 'UNKNOWN_OP', message: /got nothing/ })
  const { data, seq } = await welcome
  t.match(data, /^welcome [\w-]{12}$/, 'the welcome, sent with socket.send, arrives as a plain message')
  t.equal(seq, undefined)
  const pong = nextEvent(client, 'message')
  client.send('ping')
  t.equal((await pong).data, 'pong')
})

test('tells every tab of a session its topics: the subscription belongs to the session', async (t) => {
  const { app, http, ws } = await start()
  t.teardown(() => app.close())
  const cookie = await pageCookie(http)
  const { WebSocket: Jar, jar } = cookieWebSocket()
  const [name = '', value = ''] = cookie.split('=')
  jar.set(name, value)
  const first = new GlueClient({ url: ws, WebSocket: Jar, reconnection: false })
  const second = new GlueClient({ url: ws, WebSocket: Jar, reconnection: false })
  t.teardown(() => Promise.all([closeClient(first), closeClient(second)]))
  t.same(await second.request({ op: 'topics' }), { topics: [] })
  await first.subscribe('news')
  const shared = new Promise<unknown>((resolve) => {
    second.on('message', ({ data }) => { if (typeof data === 'object' && data !== null && 'topics' in data) resolve(data) })
  })
  t.same(await first.request({ op: 'share-topics' }), { topics: ['news'] })
  t.same(await shared, { topics: ['news'] }, 'the other tab hears of it')
  t.same(await second.request({ op: 'topics' }), { topics: ['news'] })
  t.equal(await second.unsubscribe('news'), true, 'a tab that never subscribed itself unsubscribes the session')
  t.same(await first.request({ op: 'topics' }), { topics: [] })
})

test('refuses a websocket upgrade to the page at / with 404 before any 101', async (t) => {
  const { app, http } = await start()
  t.teardown(() => app.close())
  const refused = await refusedHandshake(http.replace('http:', 'ws:') + '/')
  t.equal(refused.status, 404)
  t.match(JSON.parse(refused.body), { statusCode: 404, code: 'FST_WSGLUE_NOT_A_WEBSOCKET_ROUTE' })
})

test('ALLOWED_ORIGINS admits pages from other origins besides its own page; others get 403', async (t) => {
  setEnv(t, 'ALLOWED_ORIGINS', 'http://localhost:5173/app')
  await t.rejects(buildApp({ logger: false, secret: SECRET, broadcastInterval: 0 }), {
    name: 'RangeError',
    message: 'Expected ALLOWED_ORIGINS to be comma-separated origins such as http://localhost:5173 (or null), got "http://localhost:5173/app"'
  })

  delete process.env.ALLOWED_ORIGINS
  const { app: closed, ws: closedWs, http: closedHttp } = await start()
  t.teardown(() => closed.close())
  t.equal((await refusedHandshake(closedWs, { headers: { origin: 'http://localhost:5173' } })).status, 403, 'without it another origin is refused')
  const own = await openInboxSocket(closedWs, { origin: closedHttp })
  await closeSocket(own.socket)

  process.env.ALLOWED_ORIGINS = ' http://localhost:5173 , null '
  const { app, http, ws } = await start()
  t.teardown(() => app.close())
  for (const origin of ['http://localhost:5173', 'null', http]) {
    const { socket, frames } = await openInboxSocket(ws, { origin })
    t.match(await frames.next(), /^welcome /, `${origin} is allowed`)
    await closeSocket(socket)
  }
  for (const origin of ['http://localhost:5174', 'https://localhost:5173', 'ftp://127.0.0.1']) {
    t.equal((await refusedHandshake(ws, { headers: { origin } })).status, 403, `${origin} is refused`)
  }
})

test('GET /metrics answers Prometheus text with the plugin\'s metrics', async (t) => {
  const { app, http, ws } = await start()
  t.teardown(() => app.close())
  const { socket, frames } = await openInboxSocket(ws)
  t.teardown(() => closeSocket(socket))
  await frames.next(/^welcome /)
  const response = await fetch(http + '/metrics')
  t.equal(response.status, 200)
  t.match(response.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
  const text = await response.text()
  t.match(text, /^glue_sockets 1$/m)
  t.match(text, /^glue_sessions 1$/m)
  t.match(text, /^glue_closes_total\{code="1000"\} 0$/m)
})

test('reads BROADCAST_INTERVAL from the environment and rejects a bad one', async (t) => {
  setEnv(t, 'BROADCAST_INTERVAL', 'soon')
  await t.rejects(buildApp({ logger: false, secret: SECRET }), { name: 'RangeError', message: /BROADCAST_INTERVAL.*"soon"/ })

  setEnv(t, 'STREAM_INTERVAL', '0')
  await t.rejects(buildApp({ logger: false, secret: SECRET, broadcastInterval: 0 }), { name: 'RangeError', message: 'Expected STREAM_INTERVAL to be an integer >= 1 (milliseconds), got "0"' })
  delete process.env.STREAM_INTERVAL

  process.env.BROADCAST_INTERVAL = '25'
  const app = await buildApp({ logger: false, secret: SECRET })
  t.teardown(() => app.close())
  const http = await app.listen({ port: 0, host: '127.0.0.1' })
  const { socket, frames } = await openInboxSocket(http.replace('http:', 'ws:') + '/ws')
  t.teardown(() => closeSocket(socket))
  t.match(await frames.next(/^broadcast/), /^broadcast #\d+ /)
})

test('POST /notify pushes to the sockets of the caller\'s own session only', async (t) => {
  const { app, http, ws } = await start()
  t.teardown(() => app.close())
  const cookie = await pageCookie(http)
  t.match(cookie, /^sid=/)
  const mine = await openInboxSocket(ws, { cookie })
  const myOtherTab = await openInboxSocket(ws, { cookie })
  const stranger = await openInboxSocket(ws)
  t.teardown(() => Promise.all([mine, myOtherTab, stranger].map(({ socket }) => closeSocket(socket))))
  const frames = [mine.frames, myOtherTab.frames, stranger.frames] as const
  const [myWelcome, otherTabWelcome, strangerWelcome] = await Promise.all(frames.map((f) => f.next(/^welcome /)))
  t.equal(otherTabWelcome, myWelcome, 'both tabs share the session the page cookie names')
  t.not(strangerWelcome, myWelcome)

  const response = await fetch(http + '/notify', { method: 'POST', headers: { cookie } })
  t.equal(response.status, 200)
  t.same(await response.json(), { delivered: 2, online: 2 })
  const [a, b] = await Promise.all([frames[0].next(/^notify/), frames[1].next(/^notify/)])
  t.match(a, /^notify: hello [\w-]{12}, this came from POST \/notify on pid \d+$/)
  t.equal(b, a)
  t.equal(myWelcome, `welcome ${a.split(' ')[2]?.replace(',', '')}`, 'the notify names the same session tag')
  // The stranger's next frame is its own ping answer, so nothing from /notify came in between.
  stranger.socket.send('ping')
  t.equal(await frames[2].next(), 'pong')
  t.equal(frames[2].all.some((text) => text.startsWith('notify')), false)
})

test('POST /notify answers 0 delivered for a session with no open socket', async (t) => {
  const { app, http } = await start()
  t.teardown(() => app.close())
  const cookie = await pageCookie(http)
  const response = await app.inject({ method: 'POST', url: '/notify', headers: { cookie } })
  t.equal(response.statusCode, 200)
  t.same(response.json(), { delivered: 0, online: 0 })
})

test('POST /notify without a session answers 401 with a JSON error', async (t) => {
  const { app } = await start()
  t.teardown(() => app.close())
  const response = await app.inject({ method: 'POST', url: '/notify' })
  t.equal(response.statusCode, 401)
  t.match(response.headers['content-type'], /^application\/json/)
  t.match(response.json(), { code: 'NO_SESSION', error: /open the page first/ })

  const forged = await app.inject({ method: 'POST', url: '/notify', headers: { cookie: 'sid=forged.value' } })
  t.equal(forged.statusCode, 401, 'a forged cookie is no session')
})

test('POST /stream pushes numbers to the caller\'s session, which resume after a cut; DELETE /stream stops them', async (t) => {
  const { app, http, ws } = await start({ streamInterval: 5 })
  t.teardown(() => app.close())
  const cookie = await pageCookie(http)
  const { WebSocket: Jar, jar } = cookieWebSocket()
  const [name = '', value = ''] = cookie.split('=')
  jar.set(name, value)
  const client = new GlueClient({ url: ws, WebSocket: Jar, reconnectionDelay: 30, randomizationFactor: 0 })
  t.teardown(() => closeClient(client))
  const numbers: number[] = []
  client.on('message', ({ data }) => {
    if (typeof data === 'object' && data !== null && 'stream' in data) numbers.push(data.stream as number)
  })
  await nextEvent(client, 'open')

  const started = await fetch(http + '/stream?from=7', { method: 'POST', headers: { cookie } })
  t.equal(started.status, 200)
  t.same(await started.json(), { from: 7, interval: 5 })
  await until(() => numbers.length >= 10, 'some numbers')
  const reopened = nextEvent(client, 'open')
  for (const session of app.sessions) for (const socket of session.sockets) socket.terminate()
  await reopened
  await until(() => numbers.length >= 40, 'more numbers after the cut')
  const stopped = await fetch(http + '/stream', { method: 'DELETE', headers: { cookie } })
  t.same(await stopped.json(), { stopped: true })
  // A request round trip after the stop: any number still in flight has arrived by now.
  await client.request({ op: 'echo' })
  const count = numbers.length
  t.same(numbers, Array.from({ length: count }, (_, i) => 7 + i), 'every number once, in order, from 7')
  // Proving an absence needs a window: several stream intervals.
  await new Promise((resolve) => setTimeout(resolve, 40))
  t.equal(numbers.length, count, 'no new numbers after DELETE /stream')
  t.same(await (await fetch(http + '/stream', { method: 'DELETE', headers: { cookie } })).json(), { stopped: false })

  t.equal((await app.inject({ method: 'POST', url: '/stream' })).statusCode, 401, 'no session')
  t.same((await app.inject({ method: 'DELETE', url: '/stream' })).json(), { stopped: false })
  const bad = await app.inject({ method: 'POST', url: '/stream?from=0', headers: { cookie } })
  t.equal(bad.statusCode, 400, 'from is an integer >= 1')

  const stats = await fetch(http + '/stats')
  t.match(await stats.json(), { sockets: 1, sessions: 1, replayed: Number, gaps: 0 }, 'GET /stats shows the delivery counters')
})

test('a stream ends once its session is released', async (t) => {
  const { app, http } = await start({ streamInterval: 5 })
  t.teardown(() => app.close())
  const cookie = await pageCookie(http)
  const response = await app.inject({ method: 'POST', url: '/stream', headers: { cookie } })
  t.same(response.json(), { from: 1, interval: 5 }, 'from defaults to 1')
  // The session never had a socket here, so the first tick finds it unknown; proving the end needs a window of ticks.
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same((await app.inject({ method: 'DELETE', url: '/stream', headers: { cookie } })).json(), { stopped: false }, 'the stream had ended by itself')
})

test('warns once when the built-in development secret is used', async (t) => {
  setEnv(t, 'SESSION_SECRET', undefined)
  const { stream, lines } = createLogCapture()
  const dev = await buildApp({ logger: { stream }, broadcastInterval: 0 })
  await dev.close()
  t.same(lines.filter((line) => /development secret/.test(String(line.msg))).map((line) => line.level), [40])

  lines.length = 0
  process.env.SESSION_SECRET = SECRET
  const configured = await buildApp({ logger: { stream }, broadcastInterval: 0 })
  await configured.close()
  t.equal(lines.some((line) => /development secret/.test(String(line.msg))), false, 'SESSION_SECRET silences it')
  t.ok(DEV_SECRET.length >= 32, 'the dev secret itself is not weak')
})

test('the session tag is short and stable and does not reveal the id', async (t) => {
  t.equal(sessionTag('abc'), sessionTag('abc'))
  t.not(sessionTag('abc'), sessionTag('abd'))
  t.equal(sessionTag('abc').length, 12)
  t.notMatch(sessionTag('abcdefghijklmnop'), 'abcdef')
})

test('the example server listens on PORT and HOST, logs its url and stops on SIGTERM', async (t) => {
  const server = await startBuiltServer(t, fileURLToPath(new URL('../dist/example/server.js', import.meta.url)), { PORT: '0', HOST: '127.0.0.1', BROADCAST_INTERVAL: '0', SESSION_SECRET: SECRET })
  t.match(server.message, /example listening/)
  const url = server.url
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+$/)
  const page = await fetch(url + '/', { headers: { accept: 'text/html' } })
  t.equal(page.status, 200)
  await page.text()
  t.equal(await server.stop(), 0, 'exits cleanly')
})

test('runs as several nodes with REDIS_URL: a notify on one node reaches a socket on another', { skip: redisSkip }, async (t) => {
  const redis = await startRedis(t)
  const a = await start({ redisUrl: redis.url, nodeName: 'node-a' })
  t.teardown(() => a.app.close())
  const b = await start({ redisUrl: redis.url, nodeName: 'node-b' })
  t.teardown(() => b.app.close())
  const cookie = await pageCookie(a.http)
  const tab = await openInboxSocket(a.ws, { cookie })
  t.teardown(() => closeSocket(tab.socket))
  await tab.frames.next(/^welcome /)
  let answer: unknown
  for (let i = 0; i < 100; i++) {
    answer = await (await fetch(b.http + '/notify', { method: 'POST', headers: { cookie } })).json()
    if ((answer as { online: number }).online === 1) break
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  t.same(answer, { delivered: 'asynchronously, through Redis', online: 1 }, 'node b sees the socket on node a, and says how it delivers')
  t.match(await tab.frames.next(/^notify/), /this came from POST \/notify on node-b$/)
  const stats = await (await fetch(b.http + '/stats')).json() as Record<string, unknown>
  t.match(stats, { node: 'node-b', sockets: 0, cluster: { nodes: 2, sessions: 1, sockets: 1 } })
})
