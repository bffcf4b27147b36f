import { test } from 'tap'
import { firstSessionId, openGlueSocket, pauseReading, serverTransport, startApp, until } from '../helpers/index.js'

test('a reader that keeps up is not a slow consumer after a synchronous burst', async (t) => {
  for (const { mark, count } of [{ mark: undefined, count: 40 }, { mark: 64 * 1024, count: 10 }]) {
    const { app, wsUrl } = await startApp({ glue: { sendHighWaterMark: mark } })
    const client = await openGlueSocket(wsUrl)
    const id = firstSessionId(app)
    const chunk = 'c'.repeat(32 * 1024)
    // One synchronous burst: every byte is waiting at once, though the client reads normally.
    for (let i = 0; i < count; i++) app.sessions.send(id, chunk)
    await until(() => client.received.length === count + 1, `${count} messages of 32 KiB`)
    t.equal(app.sessions.stats().slowConsumerCloses, 0, `${count} x 32 KiB with a ${mark ?? 'default'} mark: not closed`)
    t.equal(client.socket.readyState, client.socket.OPEN)
    client.socket.close()
    await app.close()
  }
})

test('a socket that stays above the mark for drainTimeout is closed with 1013', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { sendHighWaterMark: 64 * 1024, drainTimeout: 1000 } })
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  const id = firstSessionId(app)
  pauseReading(client)
  const chunk = 'c'.repeat(16 * 1024)
  const transport = serverTransport(app)
  // Fill the kernel's buffers, then stay between the mark and twice the mark.
  let sent = 0
  let congestedAt: number | undefined
  while (transport.writableLength <= 64 * 1024 && sent < 10_000) {
    const sentAt = Date.now()
    app.sessions.send(id, chunk)
    // The plugin starts the drain timeout right after the first write that leaves the socket above the mark.
    if (congestedAt === undefined && transport.writableLength > 64 * 1024) congestedAt = sentAt
    sent++
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.ok(transport.writableLength < 128 * 1024, 'above the mark, below twice the mark')
  t.equal(app.sessions.stats().slowConsumerCloses, 0, 'not closed at once')
  await until(() => app.sessions.stats().slowConsumerCloses === 1, 'closed after drainTimeout', 5000)
  t.ok(Date.now() - (congestedAt ?? Infinity) >= 1000, 'only after the drain timeout')
  client.socket.terminate()
})

test('a socket that reaches twice the mark is closed at once, so memory stays bounded', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { sendHighWaterMark: 64 * 1024, drainTimeout: 60_000 } })
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  const id = firstSessionId(app)
  pauseReading(client)
  const transport = serverTransport(app)
  let peak = 0
  for (let i = 0; i < 10_000 && app.sessions.stats().slowConsumerCloses === 0; i++) {
    app.sessions.send(id, 'c'.repeat(16 * 1024))
    peak = Math.max(peak, transport.writableLength)
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(app.sessions.stats().slowConsumerCloses, 1, 'closed well before drainTimeout')
  t.ok(peak < 2 * 64 * 1024 + 16 * 1024 + 64, `unsent bytes peaked at ${peak}`)
  client.socket.terminate()
})

test('replies, welcomes and errors honour the high-water mark too', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { sendHighWaterMark: 64 * 1024, rateLimit: false, answerRequest: () => 'r'.repeat(16 * 1024) } })
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  pauseReading(client)
  const transport = serverTransport(app)
  let peak = 0
  for (let i = 0; i < 2000 && app.sessions.stats().slowConsumerCloses === 0; i++) {
    client.sendEnvelope(['q', i, null])
    await new Promise((resolve) => setTimeout(resolve, 1))
    peak = Math.max(peak, transport.writableLength)
  }
  t.equal(app.sessions.stats().slowConsumerCloses, 1, 'a client that asks and never reads is a slow consumer')
  t.ok(peak < 2 * 64 * 1024 + 16 * 1024 + 64, `unsent bytes peaked at ${peak}`)
  client.socket.terminate()
})
