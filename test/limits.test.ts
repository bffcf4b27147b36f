import { test } from 'tap'
import fastifyWebsocket from '@fastify/websocket'
import { clientFrame, closeCodeOf, cookiePair, openSocket, rawUpgrade, refusedHandshake, startApp, startTarget, until } from './helpers/index.js'

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

test('the rate limit closes a flooding socket with 1008 and leaves a paced one open', async (t) => {
  const got: unknown[] = []
  const { app, wsUrl } = await startApp({ glue: { rateLimit: { messagesPerSecond: 50, burst: 5 }, onMessage: (_s, data) => { got.push(data) } } })
  t.teardown(() => app.close())
  const flooder = await openSocket(wsUrl)
  for (let i = 0; i < 20; i++) flooder.socket.send(`f${i}`)
  t.same(await flooder.closed, { code: 1008, reason: 'rate limit exceeded' })
  t.same(got, ['f0', 'f1', 'f2', 'f3', 'f4'], 'the burst got through, nothing after')
  const paced = await openSocket(wsUrl)
  t.teardown(() => paced.socket.terminate())
  for (let i = 0; i < 10; i++) {
    paced.socket.send(`p${i}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  await until(() => got.length === 15, 'paced messages delivered')
  t.equal(paced.socket.readyState, paced.socket.OPEN)
  t.equal(app.sessions.stats().rateLimitCloses, 1)
})

test('a socket closed for its rate delivers nothing more, even after its bucket refills', async (t) => {
  const got: unknown[] = []
  // 20 per second: no token comes back while the 8 frames are read, several do before 'after-close'.
  const { app, port } = await startApp({ glue: { rateLimit: { messagesPerSecond: 20, burst: 5 }, onMessage: (_s, data) => { got.push(data) } } })
  t.teardown(() => app.close())
  const raw = await rawUpgrade(port)
  t.teardown(() => raw.socket.destroy())
  await until(() => app.sessions.size === 1, 'joined')
  // This peer never answers the close frame, so the socket stays CLOSING.
  raw.socket.write(Buffer.concat(Array.from({ length: 8 }, (_, i) => clientFrame(`f${i}`))))
  await until(() => closeCodeOf(raw.received()) === 1008, 'the 1008 close frame')
  await new Promise((resolve) => setTimeout(resolve, 150))
  raw.socket.write(clientFrame('after-close'))
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(got, ['f0', 'f1', 'f2', 'f3', 'f4'])
})

test('rateLimit false lets a fast client through', async (t) => {
  let count = 0
  const { app, wsUrl } = await startApp({ glue: { rateLimit: false, onMessage: () => { count++ } } })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  for (let i = 0; i < 2000; i++) client.socket.send('x')
  await until(() => count === 2000, 'all delivered')
  t.equal(app.sessions.stats().messagesIn, 2000)
})

test('socket limits per session and per address refuse the handshake with 429', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { maxSocketsPerSession: 2, maxSocketsPerAddress: 3 } })
  t.teardown(() => app.close())
  const a = await openSocket(wsUrl)
  const cookie = cookiePair(a.setCookie[0])
  const b = await openSocket(wsUrl, { headers: { cookie } })
  const refused = await refusedHandshake(wsUrl, { headers: { cookie } })
  t.equal(refused.status, 429)
  t.match(JSON.parse(refused.body), { code: 'FST_WSGLUE_TOO_MANY_SESSION_SOCKETS' })
  const c = await openSocket(wsUrl)
  const byAddress = await refusedHandshake(wsUrl)
  t.equal(byAddress.status, 429)
  t.match(JSON.parse(byAddress.body), { code: 'FST_WSGLUE_TOO_MANY_ADDRESS_SOCKETS' })
  const other = await openSocket(wsUrl, { localAddress: '127.0.0.2' })
  t.pass('another address is not affected')
  b.socket.close()
  await b.closed
  await until(() => app.sessions.stats().sockets === 3, 'b gone')
  const again = await openSocket(wsUrl, { headers: { cookie } })
  t.pass('a freed slot is usable again')
  t.equal(app.sessions.stats().refusedHandshakes, 2)
  for (const client of [a, c, other, again]) client.socket.terminate()
})

test('handshakeRateLimit refuses an address over its rate with 429, and only that address', async (t) => {
  const target = await startTarget(t, { glue: { handshakeRateLimit: { handshakesPerSecond: 1, burst: 5 } } })
  // Six at once, so a slow (cold) server cannot earn a token back between the fifth and the sixth.
  const outcomes = await Promise.allSettled(Array.from({ length: 6 }, async () => await refusedHandshake(target.wsUrl)))
  const accepted = outcomes.filter((outcome) => outcome.status === 'rejected' && String(outcome.reason).includes('handshake was accepted'))
  t.equal(accepted.length, 5, 'the burst is accepted')
  const [refused] = outcomes.flatMap((outcome) => outcome.status === 'fulfilled' ? [outcome.value] : [])
  if (refused === undefined) throw new Error('no handshake was refused')
  t.equal(refused.status, 429)
  t.match(JSON.parse(refused.body), { code: 'FST_WSGLUE_TOO_MANY_HANDSHAKES' })
  const other = await openSocket(target.wsUrl, { localAddress: '127.0.0.2' })
  t.equal(other.socket.readyState, other.socket.OPEN, 'another address still connects')
  other.socket.terminate()
  t.equal((await target.stats()).refusedHandshakes, 1)
})
