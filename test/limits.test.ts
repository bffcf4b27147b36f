import { test } from 'tap'
import fastifyWebsocket from '@fastify/websocket'
import { closeCodeOf, cookiePair, openSocket, rawUpgrade, startApp, until } from './helpers/index.js'

test('a message over maxPayload closes that socket with 1009 and leaves other tabs open', async (t) => {
  const got: unknown[] = []
  const { app, wsUrl, logs } = await startApp({ glue: { maxPayload: 1024, onMessage: (_s, data) => { got.push(data) } } })
  t.teardown(() => app.close())
  const big = await openSocket(wsUrl)
  const other = await openSocket(wsUrl, { headers: { cookie: cookiePair(big.setCookie[0]) } })
  t.teardown(() => other.socket.terminate())
  big.socket.send('x'.repeat(1024))
  await until(() => got.length === 1, 'a message of exactly maxPayload is accepted')
  big.socket.send('x'.repeat(1025))
  t.equal((await big.closed).code, 1009)
  await logs.waitFor('websocket peer error')
  other.socket.send('small')
  await until(() => got.length === 2, 'other tab still delivers')
  t.equal(other.socket.readyState, other.socket.OPEN)
  t.equal(app.sessions.size, 1)
})

test('enforces maxPayload with 1009 even when the app registered @fastify/websocket with a larger limit', async (t) => {
  const { app, wsUrl } = await startApp({
    glue: { maxPayload: 100 },
    before: async (app) => { await app.register(fastifyWebsocket, { options: { maxPayload: 1 << 20 } }) }
  })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  client.socket.send(Buffer.alloc(101))
  t.same(await client.closed, { code: 1009, reason: 'message too big' })
})

test('a text frame with invalid UTF-8 closes that socket with 1007', async (t) => {
  const got: unknown[] = []
  const { app, wsUrl } = await startApp({ glue: { onMessage: (_s, data) => { got.push(data) } } })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  const bystander = await openSocket(wsUrl)
  t.teardown(() => bystander.socket.terminate())
  client.socket.send(Buffer.from([0x68, 0xff, 0xfe]), { binary: false })
  t.equal((await client.closed).code, 1007)
  t.same(got, [], 'the invalid message never reached a listener')
  bystander.socket.send('fine')
  await until(() => got.length === 1, 'bystander unaffected')
})

test('garbage bytes after the upgrade end that socket with 1002 and nothing else', async (t) => {
  const closes: number[] = []
  const { app, port, wsUrl } = await startApp({ glue: { onClose: (_s, _socket, code) => { closes.push(code) } } })
  t.teardown(() => app.close())
  const bystander = await openSocket(wsUrl)
  t.teardown(() => bystander.socket.terminate())
  const raw = await rawUpgrade(port)
  // An unmasked frame with a reserved opcode: two protocol violations at once.
  raw.socket.write(Buffer.from([0x83, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0xde, 0xad, 0xbe, 0xef]))
  await until(() => closeCodeOf(raw.received()) !== undefined, 'a close frame')
  t.equal(closeCodeOf(raw.received()), 1002)
  raw.socket.destroy()
  await until(() => closes.length === 1, 'close listener ran')
  t.equal(app.sessions.size, 1, 'only the bystander is left')
})

test('a socket that vanishes without a close frame leaves its session with code 1006', async (t) => {
  const closes: number[] = []
  const { app, port } = await startApp({ glue: { onClose: (_s, _socket, code) => { closes.push(code) } } })
  t.teardown(() => app.close())
  const raw = await rawUpgrade(port)
  await until(() => app.sessions.size === 1, 'joined')
  raw.socket.destroy()
  await until(() => closes.length === 1, 'close listener ran')
  t.same(closes, [1006])
  t.equal(app.sessions.size, 0)
})

test('a flood of connect and disconnect cycles leaves nothing behind', async (t) => {
  let connects = 0
  let closes = 0
  const { app, wsUrl } = await startApp({
    glue: { onConnect: () => { connects++ }, onClose: () => { closes++ } }
  })
  t.teardown(() => app.close())
  const rounds = 10
  const perRound = 40
  for (let round = 0; round < rounds; round++) {
    const clients = await Promise.all(Array.from({ length: perRound }, () => openSocket(wsUrl)))
    clients.forEach((client, i) => { if (i % 2 === 0) client.socket.close(); else client.socket.terminate() })
    await Promise.all(clients.map((client) => client.closed))
  }
  await until(() => closes === rounds * perRound, 'every close seen')
  t.equal(connects, rounds * perRound)
  t.equal(app.sessions.size, 0)
  t.equal(app.websocketServer.clients.size, 0)
})
