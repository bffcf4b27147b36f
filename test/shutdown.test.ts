import { test } from 'tap'
import fastifyWebsocket from '@fastify/websocket'
import { closeCodeOf, cookiePair, openGlueSocket, openSocket, rawUpgrade, startApp, until } from './helpers/index.js'

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
