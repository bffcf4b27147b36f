import { test } from 'tap'
import fastifyWebsocket from '@fastify/websocket'
import WebSocket from 'ws'
import { cookiePair, openSocket, rawUpgrade, startApp, until } from './helpers/index.js'

// ws's own framing of the same payload is the reference for byte-identical output.
function wsFrame (payload: Buffer, binary: boolean): Buffer {
  const parts = (WebSocket as unknown as { Sender: { frame: (data: Buffer, options: object) => Buffer[] } }).Sender
    .frame(payload, { fin: true, rsv1: false, opcode: binary ? 2 : 1, mask: false, readOnly: false })
  return Buffer.concat(parts)
}

test('a pre-framed broadcast writes frames byte-identical to ws, text and binary preserved', async (t) => {
  const { app, port } = await startApp()
  t.teardown(() => app.close())
  const raw = await rawUpgrade(port)
  t.teardown(() => raw.socket.destroy())
  await until(() => app.sessions.size === 1, 'joined')
  const messages: Array<[unknown, Buffer, boolean]> = [
    ['hello', Buffer.from('hello'), false],
    ['é'.repeat(100), Buffer.from('é'.repeat(100)), false],
    [Buffer.alloc(70_000, 7), Buffer.alloc(70_000, 7), true],
    [{ n: 1 }, Buffer.from('{"n":1}'), false],
    [new Uint8Array([1, 2, 3]), Buffer.from([1, 2, 3]), true]
  ]
  const expected = Buffer.concat(messages.map(([, payload, binary]) => wsFrame(payload, binary)))
  for (const [data] of messages) app.sessions.broadcast(data)
  await until(() => raw.received().length >= expected.length, 'all bytes')
  t.ok(raw.received().equals(expected), 'identical bytes')
})

test('a burst of sends and broadcasts in one tick arrives complete and in order on every tab', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  const a = await openSocket(wsUrl)
  const b = await openSocket(wsUrl, { headers: { cookie: cookiePair(a.setCookie[0]) } })
  const c = await openSocket(wsUrl)
  t.teardown(() => { a.socket.terminate(); b.socket.terminate(); c.socket.terminate() })
  const [first] = [...app.sessions].filter((session) => session.sockets.size === 2)
  const expectedAll: string[] = []
  for (let i = 0; i < 500; i++) {
    app.sessions.broadcast(`b${i}`)
    app.sessions.send(first?.id as string, `s${i}`)
    expectedAll.push(`b${i}`, `s${i}`)
  }
  await until(() => a.received.length === 1000 && b.received.length === 1000 && c.received.length === 500, 'all messages')
  t.same(a.received, expectedAll)
  t.same(b.received, expectedAll)
  t.same(c.received, expectedAll.filter((message) => message.startsWith('b')))
})

test('interleaves correctly with frames ws writes itself (socket.send in a hook)', async (t) => {
  const { app, wsUrl } = await startApp({
    glue: { onMessage: (session, data, socket) => { app.sessions.send(session.id, `glue:${String(data)}`); socket.send(`ws:${String(data)}`) } }
  })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  for (let i = 0; i < 50; i++) client.socket.send(String(i))
  await until(() => client.received.length === 100, 'replies')
  t.same(client.received, Array.from({ length: 50 }, (_, i) => [`glue:${i}`, `ws:${i}`]).flat())
})

test('falls back to ws framing for a socket with permessage-deflate', async (t) => {
  const { app, wsUrl } = await startApp({
    before: async (app) => { await app.register(fastifyWebsocket, { options: { perMessageDeflate: { threshold: 0 } } }) }
  })
  t.teardown(() => app.close())
  const compressed = await openSocket(wsUrl, { perMessageDeflate: { threshold: 0 } })
  const plain = await openSocket(wsUrl, { perMessageDeflate: false })
  const enveloped = await openSocket(wsUrl, { perMessageDeflate: { threshold: 0 } }, 'glue.v1')
  t.teardown(() => { compressed.socket.terminate(); plain.socket.terminate(); enveloped.socket.terminate() })
  t.match(compressed.socket.extensions, /permessage-deflate/)
  const big = 'compressible '.repeat(1000)
  app.sessions.broadcast(big)
  app.sessions.broadcast(Buffer.from([9, 8, 7]))
  t.equal(await compressed.nextMessage(), big)
  t.same(await compressed.nextMessage(), Buffer.from([9, 8, 7]))
  t.equal(await plain.nextMessage(), big)
  t.same(await plain.nextMessage(), Buffer.from([9, 8, 7]))
  t.match(enveloped.socket.extensions, /permessage-deflate/)
  t.match(JSON.parse(await enveloped.nextMessage() as string), ['w', String, 0])
  t.equal(await enveloped.nextMessage(), JSON.stringify(['m', 1, big]))
  t.same(await enveloped.nextMessage(), Buffer.from([0, 0, 0, 0, 0, 0, 2, 9, 8, 7]))
})
