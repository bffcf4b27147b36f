import { once } from 'node:events'
import type { Duplex } from 'node:stream'
import { test, type Test } from 'tap'
import WebSocket, { WebSocketServer, type WebSocket as ServerSocket } from 'ws'
import { GlueClient, type GlueClientOptions } from '../plugin/client/glue-client.js'
import { closeClient, cookieWebSocket, freePort, nextEvent, onlySession, startServer, until, type GlueServer } from './helpers/index.js'

// Jitter-free backoff; the first retry waits long enough for the stream to go on without the client.
const FAST: GlueClientOptions = { reconnectionDelay: 50, reconnectionDelayMax: 200, randomizationFactor: 0 }

/** What a client delivered: the numbers of its messages in order, and its gap events with how many numbers came before each. */
interface Delivered { numbers: number[], gaps: Array<{ missed: number | null, after: number }> }

function collect (client: GlueClient): Delivered {
  const delivered: Delivered = { numbers: [], gaps: [] }
  client.on('message', (event) => { delivered.numbers.push(Number(String(event.data).split(':')[0])) })
  client.on('gap', ({ missed }) => { delivered.gaps.push({ missed, after: delivered.numbers.length }) })
  return delivered
}

function range (from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i)
}

/**
 * Sends `from`, `from + 1` … `to` to a session, a few every 2 ms. `target()` names the server to
 * send through; while it returns undefined (a restart) no number is used.
 */
function pump (target: () => GlueServer | undefined, sessionId: string, from: number, to: number, perTick = 5): { next: () => number, stop: () => void } {
  let next = from
  const timer = setInterval(() => {
    const server = target()
    if (server === undefined) return
    for (let i = 0; i < perTick && next <= to; i++) server.app.sessions.send(sessionId, next++)
    if (next > to) clearInterval(timer)
  }, 2)
  return { next: () => next, stop: () => clearInterval(timer) }
}

async function open (t: Test, server: GlueServer, options: GlueClientOptions): Promise<GlueClient> {
  const client = new GlueClient({ ...FAST, url: server.url, ...options })
  t.teardown(() => closeClient(client))
  await nextEvent(client, 'open')
  return client
}

function terminateAll (server: GlueServer): void {
  for (const session of server.app.sessions) for (const socket of session.sockets) socket.terminate()
}

for (const [how, cut] of [
  ['the server terminates the socket', (server: GlueServer) => { terminateAll(server) }],
  ['the client socket is destroyed without a close frame', (_server: GlueServer, transport: Duplex) => { transport.destroy() }]
] as const) {
  test(`resumes after ${how}: every number of a stream arrives once, in order`, async (t) => {
    const server = await startServer()
    t.teardown(() => server.app.close())
    const { WebSocket: Jar, urls, transports } = cookieWebSocket()
    const client = await open(t, server, { WebSocket: Jar })
    t.equal(client.lastSeq, 0)
    t.match(client.epoch, /^[\w-]+$/, 'the epoch of the welcome')
    const epoch = client.epoch
    const delivered = collect(client)
    const total = 400
    const stream = pump(() => server, onlySession(server), 1, total)
    t.teardown(stream.stop)
    await until(() => delivered.numbers.length >= 50, 'part of the stream')

    const closed = nextEvent(client, 'close')
    const reopened = nextEvent(client, 'open')
    cut(server, transports[0] as Duplex)
    const { code, willReconnect } = await closed
    t.equal(code, 1006)
    t.equal(willReconnect, true)
    const resumedFrom = client.lastSeq
    await reopened
    await until(() => delivered.numbers.length >= total, 'the whole stream', 10_000)

    t.same(delivered.numbers, range(1, total), 'every number once, in order')
    t.same(delivered.gaps, [], 'no gap')
    t.equal(client.lastSeq, total)
    t.equal(client.epoch, epoch)
    t.equal(urls[0], server.url, 'the first connection starts from now')
    t.equal(urls[1], `${server.url}?glue_resume=${epoch ?? ''}.${resumedFrom}`, 'the reconnect resumes after the last number processed')
    t.ok(server.app.sessions.stats().replayed > 0, 'part of the stream was replayed from the outbox')
  })
}

test('a stalled client is closed with 1013, comes back by itself and catches up', async (t) => {
  const server = await startServer({ sendHighWaterMark: 256 * 1024 })
  t.teardown(() => server.app.close())
  const { WebSocket: Jar, urls, transports } = cookieWebSocket()
  const client = await open(t, server, { WebSocket: Jar })
  const delivered = collect(client)
  const sessionId = onlySession(server)
  const chunk = 'x'.repeat(64 * 1024)
  let sent = 0
  server.app.sessions.send(sessionId, `${++sent}:${chunk}`)
  await until(() => delivered.numbers.length === 1, 'the first message')

  // Stop reading: the kernel buffers fill, then the server's, until it gives up on the socket.
  const transport = transports[0] as Duplex
  transport.pause()
  while (server.app.sessions.stats().slowConsumerCloses === 0 && sent < 1000) {
    server.app.sessions.send(sessionId, `${++sent}:${chunk}`)
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(server.app.sessions.stats().slowConsumerCloses, 1, 'closed as a slow consumer')
  for (let i = 0; i < 10; i++) server.app.sessions.send(sessionId, `${++sent}:${chunk}`)

  const closed = nextEvent(client, 'close')
  const reopened = nextEvent(client, 'open')
  transport.resume()
  const close = await closed
  t.equal(close.code, 1013, 'the client reads its backlog, then the close frame')
  t.equal(close.reason, 'slow consumer')
  t.equal(close.willReconnect, true, '1013 is no reason to stay away')
  await reopened
  t.match(urls[1], /\?glue_resume=[\w-]+\.\d+$/)
  await until(() => delivered.numbers.length >= sent, 'caught up', 15_000)
  t.same(delivered.numbers, range(1, sent), 'every message once, in order')
  t.same(delivered.gaps, [])
})

test('a server restart on the same port gives a gap of unknown size, and the stream goes on', async (t) => {
  let server: GlueServer | undefined = await startServer({}, await freePort())
  t.teardown(() => server?.app.close())
  const { WebSocket: Jar, urls } = cookieWebSocket()
  const client = await open(t, server, { WebSocket: Jar })
  const firstEpoch = client.epoch
  const delivered = collect(client)
  const stream = pump(() => server, onlySession(server), 1, Number.MAX_SAFE_INTEGER, 2)
  t.teardown(stream.stop)
  await until(() => delivered.numbers.length >= 30, 'part of the stream')

  const gap = nextEvent(client, 'gap')
  const stopping = server
  server = undefined
  await stopping.app.close()
  server = await startServer({}, stopping.port)
  t.same(await gap, { missed: null }, 'the new server cannot know what was lost')
  const [{ after: before } = { after: 0 }] = delivered.gaps
  await until(() => delivered.numbers.length >= before + 30, 'the stream after the restart')
  stream.stop()

  const { numbers } = delivered
  t.same(numbers.slice(0, before), range(1, before), 'before the restart: every number once, in order')
  t.ok(numbers.every((n, i) => i === 0 || n > (numbers[i - 1] as number)), 'strictly increasing across the restart')
  const after = numbers.slice(before)
  t.same(after, range(after[0] as number, (after[0] as number) + after.length - 1), 'after the restart: every number once, in order')
  t.equal(delivered.gaps.length, 1, 'one gap')
  t.not(client.epoch, firstEpoch, 'a new epoch')
  t.match(urls.at(-1), new RegExp(`\\?glue_resume=${firstEpoch ?? ''}\\.${before}$`), 'the client asked to resume the old epoch')
  t.equal(client.lastSeq, after.length, 'tracking follows the new server\'s numbering')
})

test('a trimmed outbox gives a gap with the exact number lost; connect() after close() resumes too', async (t) => {
  const server = await startServer({ outboxLimit: 5 })
  t.teardown(() => server.app.close())
  const { WebSocket: Jar, urls } = cookieWebSocket()
  const client = await open(t, server, { WebSocket: Jar })
  const delivered = collect(client)
  const sessionId = onlySession(server)
  for (let n = 1; n <= 10; n++) server.app.sessions.send(sessionId, n)
  await until(() => delivered.numbers.length === 10, 'the first ten')

  const closed = nextEvent(client, 'close')
  terminateAll(server)
  await closed
  client.close()
  await until(() => !server.app.sessions.has(sessionId), 'the session is detached')
  for (let n = 11; n <= 30; n++) t.equal(server.app.sessions.send(sessionId, n), 0, `${n} is kept for the detached session`)

  const gap = nextEvent(client, 'gap')
  client.connect()
  t.same(await gap, { missed: 15 }, 'the outbox kept the last 5 of 20')
  await until(() => delivered.numbers.length === 15, 'the rest')
  t.same(delivered.numbers, [...range(1, 10), ...range(26, 30)])
  t.same(delivered.gaps, [{ missed: 15, after: 10 }])
  t.equal(urls[1], `${server.url}?glue_resume=${client.epoch ?? ''}.10`)
  t.equal(client.lastSeq, 30)
})

test('a gap in the middle of a catch-up is counted exactly', async (t) => {
  const server = await startServer({ outboxLimit: 200, sendHighWaterMark: 64 * 1024 })
  t.teardown(() => server.app.close())
  const { WebSocket: Jar, transports } = cookieWebSocket()
  const client = await open(t, server, { WebSocket: Jar })
  const delivered = collect(client)
  const sessionId = onlySession(server)
  const chunk = 'x'.repeat(64 * 1024)
  let sent = 0
  server.app.sessions.send(sessionId, `${++sent}:${chunk}`)
  await until(() => delivered.numbers.length === 1, 'the first message')
  client.close()
  await until(() => !server.app.sessions.has(sessionId), 'the session is detached')
  // A backlog larger than the socket buffers, so the catch-up waits for the reader.
  for (let i = 0; i < 200; i++) server.app.sessions.send(sessionId, `${++sent}:${chunk}`)

  const reopened = nextEvent(client, 'open')
  client.on('open', () => { transports.at(-1)?.pause() })
  client.connect()
  await reopened
  // While the reader stalls, the outbox moves on past the part of the backlog not yet written.
  for (let i = 0; i < 200; i++) server.app.sessions.send(sessionId, `${++sent}:${chunk}`)
  transports.at(-1)?.resume()
  await until(() => delivered.numbers.at(-1) === sent, 'the last message', 15_000)

  const { numbers, gaps } = delivered
  const missed = gaps.reduce((sum, gap) => sum + (gap.missed ?? Number.NaN), 0)
  t.ok(gaps.length > 0, `a gap of ${missed} after ${gaps[0]?.after ?? 0} messages`)
  t.equal(numbers.length + missed, sent, 'every message was delivered or counted as missed')
  t.ok(numbers.every((n, i) => i === 0 || n > (numbers[i - 1] as number)), 'in order, none twice')
  let expected = 1
  for (const [i, n] of numbers.entries()) {
    expected += gaps.filter((gap) => gap.after === i).reduce((sum, gap) => sum + (gap.missed ?? 0), 0)
    if (n !== expected) break
    expected++
  }
  t.equal(expected, sent + 1, 'each gap sits exactly where its messages are missing')
})

test('two tabs of one session each see every message once; a new tab starts from now', async (t) => {
  const server = await startServer()
  t.teardown(() => server.app.close())
  const firstTab = cookieWebSocket()
  const first = await open(t, server, { WebSocket: firstTab.WebSocket })
  const one = collect(first)
  const sessionId = onlySession(server)
  for (let n = 1; n <= 5; n++) server.app.sessions.send(sessionId, n)
  await until(() => one.numbers.length === 5, 'the first tab\'s messages')

  const secondTab = cookieWebSocket(firstTab.jar)
  const second = await open(t, server, { WebSocket: secondTab.WebSocket })
  t.equal(onlySession(server), sessionId, 'the second tab shares the session')
  t.equal(second.lastSeq, 5, 'a new tab starts from now')
  t.equal(second.epoch, first.epoch)
  const two = collect(second)
  const total = 300
  const stream = pump(() => server, sessionId, 6, total)
  t.teardown(stream.stop)
  await until(() => one.numbers.length >= 60, 'part of the stream')

  // Both tabs drop at once and catch up each from its own place; then the second one alone, without a close frame.
  const bothBack = Promise.all([nextEvent(first, 'open'), nextEvent(second, 'open')])
  terminateAll(server)
  await bothBack
  await until(() => two.numbers.length >= 150, 'more of the stream')
  const secondBack = nextEvent(second, 'open')
  secondTab.transports.at(-1)?.destroy()
  await secondBack
  await until(() => one.numbers.length >= total && two.numbers.length >= total - 5, 'the whole stream', 10_000)

  t.same(one.numbers, range(1, total), 'the first tab: every message once, in order')
  t.same(two.numbers, range(6, total), 'the second tab: every message since it opened, once, in order')
  t.same([...one.gaps, ...two.gaps], [])
  t.same([first.lastSeq, second.lastSeq], [total, total])
  t.same(secondTab.urls.slice(1).map((url) => url.replace(/\d+$/, 'N')), [1, 2].map(() => `${server.url}?glue_resume=${first.epoch ?? ''}.N`))
})

test('drops repeated sequence numbers, resumes with the query string kept, and resets on a new epoch', async (t) => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => 'glue.v1' })
  await once(wss, 'listening')
  t.teardown(() => new Promise((resolve) => {
    for (const socket of wss.clients) socket.terminate()
    wss.close(resolve)
  }))
  const paths: string[] = []
  const scripts = [
    [['w', 'e1', 0], ['m', 1, 'a'], ['m', 1, 'a again'], ['m', 2, 'b'], ['m', 1, 'late'], ['m', 0, 'volatile'], ['t', 3, 'news', 'c']],
    [['w', 'e1', 3], ['m', 3, 'c again'], ['m', 4, 'd']],
    [['w', 'e2', 7], ['g', null], ['m', 8, 'e'], ['m', 1, 'old numbering']],
    [['w', 'e2', 8]]
  ]
  const sockets: ServerSocket[] = []
  wss.on('connection', (socket, request) => {
    paths.push(request.url ?? '')
    sockets.push(socket)
    for (const envelope of scripts[paths.length - 1] ?? []) socket.send(JSON.stringify(envelope))
  })
  const { port } = wss.address() as { port: number }
  const client = new GlueClient({ ...FAST, WebSocket, url: `ws://127.0.0.1:${port}/ws?room=a%20b&x=1` })
  t.teardown(() => closeClient(client))
  const seen: unknown[] = []
  client.on('message', (event) => { seen.push([event.seq, event.data]) })
  client.onTopic('news', (event) => { seen.push([event.seq, event.topic, event.data]) })
  client.on('gap', (event) => { seen.push(['gap', event.missed]) })

  for (const count of [4, 5, 7]) {
    await until(() => seen.length === count, `${count} events`)
    const reopened = nextEvent(client, 'open')
    sockets.at(-1)?.terminate()
    await reopened
  }
  await until(() => client.lastSeq === 8 && paths.length === 4, 'the fourth welcome')
  t.same(seen, [
    [1, 'a'], [2, 'b'], [0, 'volatile'], [3, 'news', 'c'],
    [4, 'd'],
    ['gap', null], [8, 'e']
  ], 'repeats and older numbers dropped; volatile delivered; numbering follows the new epoch')
  t.same(paths, [
    '/ws?room=a%20b&x=1',
    '/ws?room=a%20b&x=1&glue_resume=e1.3',
    '/ws?room=a%20b&x=1&glue_resume=e1.4',
    '/ws?room=a%20b&x=1&glue_resume=e2.8'
  ])
  t.equal(client.epoch, 'e2')
})

test('resume starts a new client where an earlier one left off, and is validated', async (t) => {
  const server = await startServer()
  t.teardown(() => server.app.close())
  const { WebSocket: Jar, urls } = cookieWebSocket()
  const before = await open(t, server, { WebSocket: Jar })
  const delivered = collect(before)
  const sessionId = onlySession(server)
  for (let n = 1; n <= 3; n++) server.app.sessions.send(sessionId, n)
  await until(() => delivered.numbers.length === 3, 'three messages')
  const saved = { epoch: before.epoch ?? '', lastSeq: 2 }
  await closeClient(before)

  // As after a reload that saved its place, say in sessionStorage, before message 3 was processed.
  const after = new GlueClient({ ...FAST, url: server.url, WebSocket: Jar, resume: saved })
  t.teardown(() => closeClient(after))
  t.equal(after.epoch, saved.epoch)
  t.equal(after.lastSeq, 2)
  const resumed = collect(after)
  await nextEvent(after, 'open')
  t.equal(urls.at(-1), `${server.url}?glue_resume=${saved.epoch}.2`, 'the first connection resumes')
  server.app.sessions.send(sessionId, 4)
  await until(() => resumed.numbers.length === 2, 'the rest')
  t.same(resumed.numbers, [3, 4])
  t.same(resumed.gaps, [])

  const invalid = (resume: unknown, pattern: RegExp): void => {
    t.throws(() => new GlueClient({ WebSocket, url: server.url, autoConnect: false, resume: resume as GlueClientOptions['resume'] }),
      { name: 'GlueClientError', code: 'GLUE_INVALID_OPTION', message: pattern })
  }
  invalid({ epoch: '', lastSeq: 1 }, /`resume.epoch` to be a non-empty string, got ""/)
  invalid({ epoch: 7, lastSeq: 1 }, /`resume.epoch`.*got 7 \(number\)/)
  invalid({ epoch: 'e', lastSeq: -1 }, /`resume.lastSeq` to be an integer >= 0, got -1/)
  invalid({ epoch: 'e', lastSeq: 1.5 }, /`resume.lastSeq`/)
})

test('a rate-limited client does not come back by default', async (t) => {
  const server = await startServer({ rateLimit: { messagesPerSecond: 1, burst: 2 } })
  t.teardown(() => server.app.close())
  const { WebSocket: Jar, urls } = cookieWebSocket()
  const client = await open(t, server, { WebSocket: Jar })
  const closed = nextEvent(client, 'close')
  for (let i = 0; i < 5; i++) client.send(`burst ${i}`)
  const close = await closed
  t.same([close.code, close.reason, close.willReconnect], [1008, 'rate limit exceeded', false])
  t.equal(client.state, 'closed')
  // Proving an absence needs a window: several times the largest backoff delay.
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.equal(urls.length, 1, 'no reconnection')
  t.equal(server.app.sessions.stats().rateLimitCloses, 1)
})
