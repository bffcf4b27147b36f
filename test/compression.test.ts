import type { FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import { test } from 'tap'
import type { WebSocket } from 'ws'
import { GLUE_PROTOCOL } from '../plugin/index.js'
import { sharedDeflateOf } from '../plugin/wire/ws-fast-path.js'
import { openGlueSocket, openSocket, startApp, until, type OpenedSocket } from './helpers/index.js'

/** Registers @fastify/websocket with permessage-deflate before glue, as an app that wants compression does. */
function withDeflate (perMessageDeflate: Record<string, unknown>) {
  return async (app: FastifyInstance): Promise<void> => {
    await app.register(websocket, {
      options: { perMessageDeflate, handleProtocols: (protocols: Set<string>) => protocols.has(GLUE_PROTOCOL) ? GLUE_PROTOCOL : false }
    })
  }
}

/** The server side of every open socket, in the order they joined. */
function serverSockets (app: FastifyInstance): WebSocket[] {
  return [...app.sessions].flatMap((session) => [...session.sockets])
}

/** Whether ws ever compressed for this socket itself (its zlib stream exists once it has). */
function wsCompressed (socket: WebSocket): boolean {
  const extension = (socket as unknown as { _extensions: Record<string, { _deflate: unknown }> })._extensions['permessage-deflate']
  return extension?._deflate != null
}

/** Counts the messages ws compresses for a socket from now on. */
function countWsCompressions (socket: WebSocket): () => number {
  const extension = (socket as unknown as { _extensions: Record<string, { compress: (...args: unknown[]) => void }> })._extensions['permessage-deflate']
  let count = 0
  const compress = extension?.compress
  if (extension !== undefined && compress !== undefined) {
    extension.compress = function (...args: unknown[]) {
      count++
      compress.apply(this, args)
    }
  }
  return () => count
}

function bytesRead (client: OpenedSocket): number {
  return (client.socket as unknown as { _socket: { bytesRead: number } })._socket.bytesRead
}

test('a broadcast is compressed once and every deflate client inflates the same data', async (t) => {
  const { app, wsUrl } = await startApp({ before: withDeflate({ serverNoContextTakeover: true, threshold: 64 }) })
  t.teardown(() => app.close())
  const clients = await Promise.all([openSocket(wsUrl), openSocket(wsUrl), openSocket(wsUrl, { perMessageDeflate: { serverMaxWindowBits: 10 } })])
  t.teardown(() => { for (const client of clients) client.socket.terminate() })
  t.match(serverSockets(app).map(sharedDeflateOf), [{ windowBits: 15 }, { windowBits: 15 }, { windowBits: 10 }], 'negotiated without context takeover')
  const before = clients.map(bytesRead)
  const text = 'compress me '.repeat(1000)
  const binary = Buffer.alloc(5000, 7)
  const json = { list: Array.from({ length: 200 }, (_, i) => ({ i, name: `item-${i}` })) }
  app.sessions.broadcast(text)
  app.sessions.broadcast(binary)
  app.sessions.broadcast(json)
  app.sessions.broadcast('short')
  await until(() => clients.every((client) => client.received.length === 4), 'four messages on every socket')
  for (const client of clients) {
    t.same(client.received, [text, binary, JSON.stringify(json), 'short'], 'inflated to what was sent, in order')
  }
  const wire = clients.map((client, i) => bytesRead(client) - (before[i] as number))
  t.ok(wire.every((bytes) => bytes < 2000), `compressed on the wire (${wire.join(', ')} bytes for ${text.length + binary.length + JSON.stringify(json).length + 5})`)
  t.ok(serverSockets(app).every((socket) => !wsCompressed(socket)), 'ws never compressed per socket')
})

test('glue.v1 clients get compressed envelopes with their own sequence numbers', async (t) => {
  const { app, wsUrl } = await startApp({ before: withDeflate({ serverNoContextTakeover: true, threshold: 0 }) })
  t.teardown(() => app.close())
  const first = await openGlueSocket(wsUrl)
  const second = await openGlueSocket(wsUrl)
  t.teardown(() => { first.socket.terminate(); second.socket.terminate() })
  const [firstId] = [...app.sessions].map((session) => session.id)
  // The welcome went through ws; count what ws compresses from here on.
  const [firstCount, secondCount] = serverSockets(app).map(countWsCompressions)
  app.sessions.send(firstId as string, 'only first')
  const text = 'envelope '.repeat(500)
  app.sessions.broadcast(text)
  app.sessions.broadcast(Buffer.from('binary payload '.repeat(100)))
  await until(() => first.received.length === 4 && second.received.length === 3, 'every envelope')
  t.same(JSON.parse(String(first.received[1])), ['m', 1, 'only first'])
  t.same(JSON.parse(String(first.received[2])), ['m', 2, text])
  t.same(JSON.parse(String(second.received[1])), ['m', 1, text])
  for (const [client, seq] of [[first, 3], [second, 2]] as const) {
    const frame = client.received.at(-1) as Buffer
    t.ok(Buffer.isBuffer(frame), 'binary envelope')
    t.equal(frame.readUIntBE(1, 6), seq, 'its own sequence number')
    t.equal(frame.subarray(7).toString(), 'binary payload '.repeat(100))
  }
  // While ws compresses the send, the broadcasts queue behind it in ws, which then compresses them too.
  t.ok((firstCount?.() ?? 0) >= 1, 'a send to one session is compressed by ws')
  t.equal(secondCount?.(), 0, 'broadcasts are not')
})

test('with context takeover, ws compresses every message itself', async (t) => {
  const { app, wsUrl } = await startApp({ before: withDeflate({ threshold: 0 }) })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  t.equal(sharedDeflateOf(serverSockets(app)[0] as WebSocket), undefined)
  app.sessions.broadcast('same text '.repeat(100))
  app.sessions.broadcast('same text '.repeat(100))
  await until(() => client.received.length === 2, 'both messages')
  t.same(client.received, ['same text '.repeat(100), 'same text '.repeat(100)])
  t.ok(serverSockets(app).every(wsCompressed), 'compressed by ws, per socket')
})

test('a message written while ws is compressing waits behind it', async (t) => {
  const { app, wsUrl } = await startApp({ before: withDeflate({ serverNoContextTakeover: true, threshold: 0 }) })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  const [socket] = serverSockets(app)
  // ws compresses asynchronously: the broadcast must not overtake it.
  socket?.send('from ws '.repeat(50))
  app.sessions.broadcast('from glue '.repeat(50))
  await until(() => client.received.length === 2, 'both messages')
  t.same(client.received, ['from ws '.repeat(50), 'from glue '.repeat(50)])
})
