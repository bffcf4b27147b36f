import { once } from 'node:events'
import type { Duplex } from 'node:stream'
import { test } from 'tap'
import type { WebSocket } from 'ws'
import { firstSessionId, openGlueSocket, openSocket, pauseReading, startApp, until } from './helpers/index.js'

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
// Tests that check what a window holds use a 1 s window, so a stalled CI machine cannot end it early.

/** The TCP socket under the server side of the first socket, and a count of the writes handed to it. */
function watchWrites (app: { sessions: Iterable<{ sockets: ReadonlySet<WebSocket> }> }): { transport: Duplex, writes: () => number } {
  const [session] = [...app.sessions]
  const [socket] = [...session?.sockets ?? []]
  const transport = (socket as unknown as { _socket: Duplex & { _writeGeneric: (...args: unknown[]) => unknown } })._socket
  let writes = 0
  const original = transport._writeGeneric
  // Every write or writev a net.Socket hands to libuv goes through _writeGeneric.
  transport._writeGeneric = function (...args: unknown[]) {
    writes++
    return original.apply(this, args)
  }
  return { transport, writes: () => writes }
}

test('a socket that wrote nothing for a whole window writes at once', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { writeDelay: 1000 } })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  const id = firstSessionId(app)
  const { transport, writes } = watchWrites(app)
  app.sessions.send(id, 'first')
  await new Promise((resolve) => process.nextTick(resolve))
  t.equal(transport.writableCorked, 0, 'not held')
  t.equal(writes(), 1, 'written in the tick it was sent')
  t.equal(await client.nextMessage(), 'first')
})

test('a broadcast waits for the window even on a quiet socket, and leaves in one write', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { writeDelay: 1000 } })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  const { transport, writes } = watchWrites(app)
  app.sessions.broadcast('b1')
  await nextTurn()
  app.sessions.broadcast('b2')
  app.sessions.publish('none', 'no subscriber')
  t.equal(transport.writableCorked, 1, 'held')
  t.equal(writes(), 0, 'nothing written yet')
  await until(() => client.received.length === 2, 'both broadcasts', 5000)
  t.equal(writes(), 1, 'one write for the window')
  t.same(client.received, ['b1', 'b2'])
})

test('a busy socket gets one write per window, every message in order', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { writeDelay: 1000 } })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  const id = firstSessionId(app)
  const { transport, writes } = watchWrites(app)
  app.sessions.send(id, 'm0')
  await nextTurn()
  t.equal(writes(), 1, 'the first message opens the window')
  for (let i = 1; i <= 20; i++) {
    app.sessions.send(id, `m${i}`)
    if (i % 5 === 0) await nextTurn()
  }
  t.equal(transport.writableCorked, 1, 'later messages wait for the end of the window')
  t.equal(writes(), 1, 'nothing more written during the window')
  t.ok(transport.writableLength > 0, 'held bytes are unsent bytes')
  await until(() => client.received.length === 21, 'every message', 5000)
  t.equal(writes(), 2, 'the window ends with one write of everything it held')
  t.same(client.received, Array.from({ length: 21 }, (_, i) => `m${i}`), 'in the order they were sent')
})

test('glue.v1 envelopes and raw frames keep their order across a window', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { writeDelay: 100 } })
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  const id = firstSessionId(app)
  for (let i = 1; i <= 10; i++) {
    app.sessions.send(id, { n: i })
    await nextTurn()
  }
  await until(() => client.received.length === 11, 'ten envelopes after the welcome', 5000)
  t.same(client.received.slice(1).map((frame) => JSON.parse(String(frame)) as unknown), Array.from({ length: 10 }, (_, i) => ['m', i + 1, { n: i + 1 }]))
})

test('held bytes past the flush threshold go out at once', async (t) => {
  // The threshold is min(64 KiB, sendHighWaterMark / 2) = 500 bytes here.
  const { app, wsUrl } = await startApp({ glue: { writeDelay: 1000, sendHighWaterMark: 1000 } })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  const id = firstSessionId(app)
  const { transport, writes } = watchWrites(app)
  app.sessions.send(id, 'open the window')
  await nextTurn()
  app.sessions.send(id, 'a'.repeat(300))
  t.equal(transport.writableCorked, 1, '300 bytes held')
  app.sessions.send(id, 'b'.repeat(300))
  t.equal(transport.writableCorked, 0, '600 bytes: released without waiting for the window')
  t.equal(writes(), 2)
  await until(() => client.received.length === 3, 'all three', 5000)
  t.equal(app.sessions.stats().slowConsumerCloses, 0)
})

test('with writeDelay, a socket that reaches twice the mark is still closed at once', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { writeDelay: 200, sendHighWaterMark: 64 * 1024, drainTimeout: 60_000 } })
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  const id = firstSessionId(app)
  pauseReading(client)
  const { transport } = watchWrites(app)
  let peak = 0
  for (let i = 0; i < 10_000 && app.sessions.stats().slowConsumerCloses === 0; i++) {
    app.sessions.send(id, 'c'.repeat(16 * 1024))
    peak = Math.max(peak, transport.writableLength)
    await nextTurn()
  }
  t.equal(app.sessions.stats().slowConsumerCloses, 1, 'held and unsent bytes together reached twice the mark')
  t.ok(peak < 2 * 64 * 1024 + 16 * 1024 + 64, `unsent bytes peaked at ${peak}`)
})

test('with writeDelay, volatile messages are dropped for a socket above the mark', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { writeDelay: 200, sendHighWaterMark: 64 * 1024, drainTimeout: 60_000 } })
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  const id = firstSessionId(app)
  pauseReading(client)
  const { transport } = watchWrites(app)
  for (let i = 0; i < 10_000 && transport.writableLength <= 64 * 1024; i++) {
    app.sessions.send(id, 'c'.repeat(8 * 1024))
    await nextTurn()
  }
  t.equal(app.sessions.send(id, 'dropped', { volatile: true }), 0, 'above the mark: not written')
  t.equal(app.sessions.stats().volatileDropped, 1)
  t.equal(app.sessions.stats().slowConsumerCloses, 0)
})

test('a socket that closes while holding frames drops them; the others still get theirs', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { writeDelay: 1000 } })
  t.teardown(() => app.close())
  const leaving = await openSocket(wsUrl)
  const staying = await openSocket(wsUrl)
  t.teardown(() => staying.socket.terminate())
  app.sessions.broadcast('one')
  await nextTurn()
  app.sessions.broadcast('two')
  const [session] = [...app.sessions]
  const [socket] = [...session?.sockets ?? []] as WebSocket[]
  const closed = once(socket as WebSocket, 'close')
  socket?.terminate()
  await closed
  app.sessions.broadcast('three')
  await until(() => staying.received.length === 3, 'the other socket gets every message', 5000)
  t.same(staying.received, ['one', 'two', 'three'])
  t.same(leaving.received.filter((m) => m !== 'one'), [], 'nothing after the close reached the closed socket')
})

test('shutdown writes what a window held before the 1001 close frame', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { writeDelay: 1000 } })
  const client = await openSocket(wsUrl)
  const id = firstSessionId(app)
  app.sessions.send(id, 'before')
  await nextTurn()
  app.sessions.send(id, 'held')
  const { transport } = watchWrites(app)
  t.equal(transport.writableCorked, 1, 'held for the window')
  await app.close()
  const { code } = await client.closed
  t.equal(code, 1001)
  t.same(client.received, ['before', 'held'], 'held frames first, then the close frame')
})
