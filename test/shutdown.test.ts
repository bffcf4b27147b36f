import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { test, type Test } from 'tap'
import fastifyWebsocket from '@fastify/websocket'
import { closeCodeOf, cookiePair, openGlueSocket, openSocket, rawUpgrade, startApp, until, upgradeRequest } from './helpers/index.js'

test('app.close() closes every socket with 1001 and runs the close listeners', async (t) => {
  const closes: number[] = []
  const { app, wsUrl } = await startApp({ glue: { onClose: (_s, _socket, code) => { closes.push(code) } } })
  const a = await openSocket(wsUrl)
  const b = await openSocket(wsUrl, { headers: { cookie: cookiePair(a.setCookie[0]) } })
  const c = await openSocket(wsUrl)
  await app.close()
  for (const client of [a, b, c]) t.same(await client.closed, { code: 1001, reason: 'server shutting down' })
  t.same(closes, [1001, 1001, 1001])
  t.equal(app.sessions.size, 0)
})

test('app.close() does not wait for a peer that never answers the close frame', async (t) => {
  const { app, port } = await startApp()
  const raw = await rawUpgrade(port)
  await until(() => app.sessions.size === 1, 'joined')
  const started = Date.now()
  await app.close()
  const elapsed = Date.now() - started
  t.equal(closeCodeOf(raw.received()), 1001, 'the peer got a 1001 close frame')
  await raw.ended
  // ws alone would wait 30 s for the peer's close frame.
  t.ok(elapsed < 10_000, `resolved in ${elapsed} ms`)
})

test('app.close() with no sockets resolves', async (t) => {
  const { app } = await startApp()
  await app.close()
  t.equal(app.sessions.size, 0)
})

test('app.close() closes glue.v1 and plain sockets alike with 1001 when the plugin registered @fastify/websocket', async (t) => {
  const { app, wsUrl } = await startApp()
  const plain = await openSocket(wsUrl)
  const enveloped = await openGlueSocket(wsUrl, { headers: { cookie: cookiePair(plain.setCookie[0]) } })
  await app.close()
  t.same(await plain.closed, { code: 1001, reason: 'server shutting down' })
  t.same(await enveloped.closed, { code: 1001, reason: 'server shutting down' })
  t.equal(app.sessions.size, 0)
})

test('documented exception: when the app registered @fastify/websocket itself, peers see 1005 and every socket still ends', async (t) => {
  const { app, wsUrl } = await startApp({ before: async (app) => { await app.register(fastifyWebsocket) } })
  const client = await openSocket(wsUrl)
  await app.close()
  // Its preClose hook was added first, so it runs first and closes every client without a code;
  // the plugin's own 1001 close then finds the sockets closing already.
  t.equal((await client.closed).code, 1005)
  t.equal(app.sessions.size, 0)
})

/** Sends an upgrade request on a new TCP connection and resolves with the head of the answer. */
async function lateHandshake (t: Test, port: number): Promise<{ socket: Socket, head: string, closed: Promise<void> }> {
  const socket = connect(port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => { socket.on('close', () => resolve()) })
  await once(socket, 'connect')
  socket.write(upgradeRequest(port))
  let received = ''
  const head = await new Promise<string>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString()
      if (received.includes('\r\n\r\n')) resolve(received.slice(0, received.indexOf('\r\n')))
    })
    socket.on('close', () => resolve(received))
  })
  return { socket, head, closed }
}

test('a handshake that arrives while the app closes is refused with 503 and cannot hold app.close()', async (t) => {
  const { app, port } = await startApp()
  // A peer that never answers the close frame keeps the app in its 1 s shutdown grace.
  const stuck = await rawUpgrade(port)
  await until(() => app.sessions.size === 1, 'joined')
  const closing = app.close()
  await until(() => closeCodeOf(stuck.received()) === 1001, 'the shutdown began')
  // A browser closes its end after a refusal; a hostile peer keeps its end open.
  const polite = await lateHandshake(t, port)
  const hostile = await lateHandshake(t, port)
  t.equal(polite.head, 'HTTP/1.1 503 Service Unavailable')
  t.equal(hostile.head, 'HTTP/1.1 503 Service Unavailable')
  polite.socket.end()
  let timer: NodeJS.Timeout | undefined
  const bound = new Promise<'hung'>((resolve) => { timer = setTimeout(() => resolve('hung'), 10_000) })
  const outcome = await Promise.race([closing.then(() => 'closed' as const), bound])
  clearTimeout(timer)
  t.equal(outcome, 'closed', 'app.close() resolved')
  // A hung close never ends them; the teardown does.
  if (outcome === 'hung') return
  await polite.closed
  await hostile.closed
  t.pass('the server ended both refused connections')
})
