import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { test } from 'tap'
import {
  cookiePair,
  firstSessionId,
  freePort,
  openGlueSocket,
  openSocket,
  pauseReading,
  resumeUrl,
  serverTransport,
  startApp,
  until,
  type GlueSocket
} from './helpers/index.js'

/** The data of every `m` envelope a glue socket received, and the last sequence number seen. */
function stream (client: GlueSocket): { data: unknown[], lastSeq: () => number } {
  const data: unknown[] = []
  let last = client.welcome.seq
  const take = (message: string | Buffer): void => {
    if (typeof message !== 'string') return
    const envelope = JSON.parse(message) as unknown[]
    if (envelope[0] === 'm' && envelope[1] !== 0) {
      if (envelope[1] !== last + 1) throw new Error(`sequence ${String(envelope[1])} does not follow ${last}`)
      last = envelope[1] as number
      data.push(envelope[2])
    }
  }
  // Replays can arrive in the same read as the welcome, before this listener exists.
  for (const message of client.received.slice(1)) take(message)
  client.socket.on('message', (raw: Buffer, isBinary: boolean) => { take(isBinary ? raw : raw.toString()) })
  return { data, lastSeq: () => last }
}

test('every glue.v1 socket starts with a welcome; new tabs start from now', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  const first = await openGlueSocket(wsUrl)
  t.match(first.welcome, { epoch: /^[A-Za-z0-9_-]{8}$/, seq: 0 })
  const id = firstSessionId(app)
  app.sessions.send(id, 'one')
  app.sessions.send(id, 'two')
  const second = await openGlueSocket(wsUrl, { headers: { cookie: cookiePair(first.setCookie[0]) } })
  t.teardown(() => { first.socket.terminate(); second.socket.terminate() })
  t.same(second.welcome, { epoch: first.welcome.epoch, seq: 2 }, 'same epoch, starts after the last message')
  app.sessions.send(id, 'three')
  t.same(await second.nextEnvelope(), ['m', 3, 'three'], 'no replay of what came before')
})

for (const [title, cut] of [
  ['the server terminates the socket', (_client: GlueSocket, app: { sessions: Iterable<{ sockets: ReadonlySet<{ terminate: () => void }> }> }) => {
    for (const session of app.sessions) for (const socket of session.sockets) socket.terminate()
  }],
  ['the client socket is destroyed without a close frame', (client: GlueSocket) => {
    (client.socket as unknown as { _socket: { destroy: () => void } })._socket.destroy()
  }]
] as const) {
  test(`resumes after ${title}: every message of a numbered stream arrives once, in order`, async (t) => {
    const { app, wsUrl } = await startApp()
    t.teardown(() => app.close())
    const client = await openGlueSocket(wsUrl)
    const cookie = cookiePair(client.setCookie[0])
    const id = firstSessionId(app)
    const received = stream(client)
    const total = 300
    let sent = 0
    const pump = setInterval(() => {
      for (let i = 0; i < 10 && sent < total; i++) app.sessions.send(id, ++sent)
      if (sent === total) clearInterval(pump)
    }, 2)
    t.teardown(() => clearInterval(pump))
    await until(() => received.data.length >= 50, 'part of the stream')
    cut(client, app)
    await client.closed
    await until(() => sent >= 150, 'more sent while disconnected')
    t.ok(app.sessions.isKnown(id), 'the session is kept through its grace period')
    const again = await openGlueSocket(resumeUrl(wsUrl, client.welcome.epoch, received.lastSeq()), { headers: { cookie } })
    t.teardown(() => again.socket.terminate())
    t.same(again.welcome, { epoch: client.welcome.epoch, seq: received.lastSeq() })
    const resumed = stream(again)
    await until(() => received.data.length + resumed.data.length === total, 'the whole stream', 10_000)
    t.same([...received.data, ...resumed.data], Array.from({ length: total }, (_, i) => i + 1))
    t.ok(app.sessions.stats().replayed > 0, 'some messages were replayed')
  })
}

test('a stalled reader is closed as a slow consumer, server memory stays bounded, and it catches up', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { sendHighWaterMark: 256 * 1024 } })
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  const cookie = cookiePair(client.setCookie[0])
  const id = firstSessionId(app)
  const received = stream(client)
  const chunk = 'x'.repeat(64 * 1024)
  app.sessions.send(id, 'start')
  await until(() => received.data.length === 1, 'first message')
  // Stop reading: the kernel buffers fill, then the server's.
  pauseReading(client)
  let sent = 1
  const transport = serverTransport(app)
  let maxBuffered = 0
  while (app.sessions.stats().slowConsumerCloses === 0 && sent < 400) {
    app.sessions.send(id, `${++sent}:${chunk}`)
    maxBuffered = Math.max(maxBuffered, transport.writableLength)
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(app.sessions.stats().slowConsumerCloses, 1, 'closed as a slow consumer')
  // Unsent bytes may exceed the mark while they drain, never twice the mark (plus the message that crossed it).
  t.ok(maxBuffered < 2 * 256 * 1024 + 2 * chunk.length, `server buffer peaked at ${maxBuffered} bytes`)
  for (let i = 0; i < 5; i++) app.sessions.send(id, `${++sent}:${chunk}`)
  client.socket.terminate()
  await until(() => !app.sessions.has(id), 'the stalled socket is gone')
  const again = await openGlueSocket(resumeUrl(wsUrl, client.welcome.epoch, received.lastSeq()), { headers: { cookie } })
  t.teardown(() => again.socket.terminate())
  const resumed = stream(again)
  await until(() => received.data.length + resumed.data.length === sent, 'caught up', 10_000)
  const numbers = [...received.data, ...resumed.data].map((data) => Number(String(data).split(':')[0]) || 1)
  t.same(numbers, Array.from({ length: sent }, (_, i) => i + 1), 'every message once, in order')
})

test('a slow consumer that keeps not reading is terminated after the grace', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { sendHighWaterMark: 64 * 1024 } })
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  const id = firstSessionId(app)
  pauseReading(client)
  while (app.sessions.stats().slowConsumerCloses === 0) {
    app.sessions.send(id, 'y'.repeat(64 * 1024))
    await new Promise((resolve) => setImmediate(resolve))
  }
  await until(() => !app.sessions.has(id), 'terminated', 10_000)
  t.equal(app.sessions.stats().sockets, 0)
})

test('a server restart without a shared store gives an explicit gap of unknown size', async (t) => {
  const one = await startApp({ port: await freePort() })
  const client = await openGlueSocket(one.wsUrl)
  const cookie = cookiePair(client.setCookie[0])
  one.app.sessions.send(firstSessionId(one.app), 'before restart')
  await client.nextEnvelope()
  await one.app.close()
  const two = await startApp({ port: one.port })
  t.teardown(() => two.app.close())
  const again = await openGlueSocket(resumeUrl(two.wsUrl, client.welcome.epoch, 1), { headers: { cookie } })
  t.teardown(() => again.socket.terminate())
  t.not(again.welcome.epoch, client.welcome.epoch, 'a new epoch')
  t.equal(again.welcome.seq, 0)
  t.same(await again.nextEnvelope(), ['g', null])
  t.equal(two.app.sessions.stats().gaps, 1)
})

test('a trimmed outbox gives a gap with the number of lost messages, then the rest in order', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { outboxLimit: 5 } })
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  const cookie = cookiePair(client.setCookie[0])
  const id = firstSessionId(app)
  client.socket.close()
  await until(() => !app.sessions.has(id), 'detached')
  for (let i = 1; i <= 20; i++) t.equal(app.sessions.send(id, i), 0, 'kept, written to no socket')
  const again = await openGlueSocket(resumeUrl(wsUrl, client.welcome.epoch, 0), { headers: { cookie } })
  t.teardown(() => again.socket.terminate())
  t.same(again.welcome, { epoch: client.welcome.epoch, seq: 15 })
  t.same(await again.nextEnvelope(), ['g', 15])
  for (let i = 16; i <= 20; i++) t.same(await again.nextEnvelope(), ['m', i, i])
})

test('outboxLimit 0 keeps nothing: a resume reports every missed message as a gap', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { outboxLimit: 0 } })
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  const cookie = cookiePair(client.setCookie[0])
  const id = firstSessionId(app)
  client.socket.close()
  await until(() => !app.sessions.has(id), 'detached')
  app.sessions.send(id, 'a')
  app.sessions.send(id, 'b')
  const again = await openGlueSocket(resumeUrl(wsUrl, client.welcome.epoch, 0), { headers: { cookie } })
  t.teardown(() => again.socket.terminate())
  t.same(again.welcome, { epoch: client.welcome.epoch, seq: 2 })
  t.same(await again.nextEnvelope(), ['g', 2])
  app.sessions.send(id, 'c')
  t.same(await again.nextEnvelope(), ['m', 3, 'c'])
})

test('messages older than outboxMaxAge are not replayed and count as a gap', async (t) => {
  // A wide age, so 'fresh' is still young when a loaded machine gets round to the resume.
  const { app, wsUrl } = await startApp({ glue: { outboxMaxAge: 1500 } })
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  const cookie = cookiePair(client.setCookie[0])
  const id = firstSessionId(app)
  client.socket.close()
  await until(() => !app.sessions.has(id), 'detached')
  app.sessions.send(id, 'old')
  await new Promise((resolve) => setTimeout(resolve, 1600))
  app.sessions.send(id, 'fresh')
  const again = await openGlueSocket(resumeUrl(wsUrl, client.welcome.epoch, 0), { headers: { cookie } })
  t.teardown(() => again.socket.terminate())
  t.same(await again.nextEnvelope(), ['g', 1])
  t.same(await again.nextEnvelope(), ['m', 2, 'fresh'])
})

test('a resume from the future or a malformed resume parameter starts from now', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  const cookie = cookiePair(client.setCookie[0])
  const future = await openGlueSocket(resumeUrl(wsUrl, client.welcome.epoch, 99), { headers: { cookie } })
  t.same(await future.nextEnvelope(), ['g', null])
  const malformed = await openGlueSocket(`${wsUrl}?glue_resume=not-valid`, { headers: { cookie } })
  const id = firstSessionId(app)
  app.sessions.send(id, 'now')
  t.same(await malformed.nextEnvelope(), ['m', 1, 'now'], 'no gap, no replay')
  for (const socket of [client, future, malformed]) socket.socket.terminate()
})

test('volatile messages are unsequenced, never replayed, and dropped for slow consumers', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { sendHighWaterMark: 64 * 1024 } })
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  const raw = await openSocket(wsUrl)
  const cookie = cookiePair(client.setCookie[0])
  const id = firstSessionId(app)
  app.sessions.send(id, 'cursor', { volatile: true })
  app.sessions.broadcast('tick', { volatile: true })
  app.sessions.send(id, 'kept')
  t.same(await client.nextEnvelope(), ['m', 0, 'cursor'])
  t.same(await client.nextEnvelope(), ['m', 0, 'tick'])
  t.same(await client.nextEnvelope(), ['m', 1, 'kept'])
  t.equal(await raw.nextMessage(), 'tick', 'raw clients get volatile data as is')
  client.socket.close()
  await until(() => !app.sessions.has(id), 'detached')
  app.sessions.send(id, 'lost on purpose', { volatile: true })
  const again = await openGlueSocket(resumeUrl(wsUrl, client.welcome.epoch, 0), { headers: { cookie } })
  t.same(again.welcome.seq, 0)
  t.same(await again.nextEnvelope(), ['m', 1, 'kept'], 'only the sequenced message is replayed')
  pauseReading(again)
  for (let i = 0; i < 300; i++) app.sessions.send(id, 'v'.repeat(64 * 1024), { volatile: true })
  await until(() => app.sessions.stats().volatileDropped > 0, 'volatile drops')
  t.equal(app.sessions.stats().slowConsumerCloses, 0, 'volatile overflow never closes')
  t.equal(again.socket.readyState, again.socket.OPEN)
  again.socket.terminate()
  raw.socket.terminate()
})

test('grace expiry releases detached sessions and their outboxes (heap measured after gc)', async (t) => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const ids: string[] = []
  const { app, wsUrl } = await startApp({
    // A grace long enough for 20,000 sends on a loaded machine before it ends.
    glue: { sessionGrace: 6000, outboxLimit: 200, outboxMaxAge: 600_000, onConnect: (session) => { ids.push(session.id) } }
  })
  t.teardown(() => app.close())
  const sessions = 100
  // Buffers live outside the JS heap: count both.
  const used = (): number => { const memory = process.memoryUsage(); return memory.heapUsed + memory.arrayBuffers }
  const clients = await Promise.all(Array.from({ length: sessions }, () => openGlueSocket(wsUrl)))
  for (const client of clients) client.socket.close()
  await Promise.all(clients.map((client) => client.closed))
  await until(() => app.sessions.stats().detachedSessions === sessions, 'all detached')
  // Measured from here, so garbage of earlier tests collected meanwhile cannot hide what the outboxes hold.
  gc()
  await new Promise((resolve) => setImmediate(resolve))
  gc()
  const baseline = used()
  // A full outbox for each: 200 distinct 1 KiB messages.
  for (let m = 0; m < 200; m++) {
    for (const id of ids) t0(app.sessions.send(id, `${m}:${id}:`.padEnd(1024, 'z')) === 0)
  }
  gc()
  const full = used() - baseline
  t.ok(full > sessions * 200 * 1024, `full outboxes hold ${Math.round(full / sessions / 1024)} KiB per session`)
  await until(() => app.sessions.stats().detachedSessions === 0, 'grace expired', 15_000)
  for (const id of ids) t.notOk(app.sessions.isKnown(id))
  // Buffer backing stores are freed after their wrappers: collect twice, a turn apart.
  gc()
  await new Promise((resolve) => setImmediate(resolve))
  gc()
  const after = used() - baseline
  t.ok(after < full / 10, `released: ${Math.round(after / 1024)} KiB left of ${Math.round(full / 1024)} KiB`)
})

function t0 (condition: boolean): void {
  if (!condition) throw new Error('a detached session must take the message into its outbox, not a socket')
}

test('stats count sockets, sessions, messages, replays and gaps', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { onMessage: () => {} } })
  t.teardown(() => app.close())
  const a = await openGlueSocket(wsUrl)
  const a2 = await openGlueSocket(wsUrl, { headers: { cookie: cookiePair(a.setCookie[0]) } })
  const b = await openSocket(wsUrl)
  t.teardown(() => { a2.socket.terminate(); b.socket.terminate() })
  t.match(app.sessions.stats(), { sockets: 3, sessions: 2, detachedSessions: 0, messagesOut: 0 })
  app.sessions.broadcast('hello')
  a.sendEnvelope(['m', 'in'])
  b.socket.send('in')
  await until(() => app.sessions.stats().messagesIn === 2, 'two in')
  t.match(app.sessions.stats(), { messagesOut: 3 })
  const snapshot = app.sessions.stats()
  snapshot.sockets = 99
  t.equal(app.sessions.stats().sockets, 3, 'a snapshot, not the live counters')
})
