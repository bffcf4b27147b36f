import Fastify from 'fastify'
import { test } from 'tap'
import glue, { createMemoryAdapter, errors, type AdapterHost, type ClusterMessage, type GlueAdapter } from '../plugin/index.js'
import { cookiePair, openGlueSocket, SECRET, startApp, until } from './helpers/index.js'

test('with the memory adapter, presence and clusterCounts answer for this one node', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  t.same(await app.sessions.clusterCounts(), { nodes: 1, sessions: 0, sockets: 0 })
  const first = await openGlueSocket(wsUrl)
  const cookie = cookiePair(first.setCookie[0])
  const second = await openGlueSocket(wsUrl, { headers: { cookie } })
  t.teardown(() => { first.socket.terminate(); second.socket.terminate() })
  const [sessionId] = [...app.sessions].map((session) => session.id)
  t.equal(await app.sessions.presence(sessionId as string), 2)
  t.equal(await app.sessions.presence('nobody'), 0)
  t.same(await app.sessions.clusterCounts(), { nodes: 1, sessions: 1, sockets: 2 })
  t.throws(() => app.sessions.presence(42 as unknown as string), errors.FST_WSGLUE_INVALID_SESSION_ID)
})

test('a custom adapter receives every message and delivers through the host', async (t) => {
  const emitted: ClusterMessage['kind'][] = []
  const memory = createMemoryAdapter()
  let started: AdapterHost | undefined
  let stopped = false
  const spy: GlueAdapter = {
    ...memory,
    name: 'spy',
    async start (host, limits) {
      started = host
      t.match(limits, { outboxLimit: 500, sessionGrace: 60_000 })
      await memory.start(host, limits)
    },
    async stop () { stopped = true },
    emit (message) {
      emitted.push(message.kind)
      return memory.emit(message)
    },
    settled: () => memory.settled(),
    socketOpened: (sessionId) => memory.socketOpened(sessionId),
    socketClosed: (sessionId) => memory.socketClosed(sessionId),
    presence: async (sessionId) => await memory.presence(sessionId),
    clusterCounts: async () => await memory.clusterCounts()
  }
  const { app, wsUrl } = await startApp({ glue: { adapter: spy, authorizeSubscribe: () => true } })
  const socket = await openGlueSocket(wsUrl)
  t.teardown(() => socket.socket.terminate())
  const [sessionId] = [...app.sessions].map((session) => session.id) as [string]
  t.equal(app.sessions.send(sessionId, 'hi'), 1)
  t.ok(app.sessions.subscribe(sessionId, 'room'))
  t.same(app.sessions.topicsOf(sessionId), ['room'])
  t.equal(app.sessions.publish('room', 'news'), 1)
  socket.sendEnvelope(['u', 1, 'room'])
  await until(() => socket.received.some((frame) => String(frame) === '["r",1,1,true]'), 'unsubscribe reply')
  t.equal(app.sessions.subscriberCount('room'), 0)
  t.equal(app.sessions.broadcast('all'), 1)
  t.equal(app.sessions.close(sessionId, 4000, 'done'), 1)
  t.same(await socket.closed, { code: 4000, reason: 'done' })
  t.same(emitted, ['send', 'subscribe', 'publish', 'unsubscribe', 'broadcast', 'close'])
  t.ok(started !== undefined)
  await app.close()
  t.ok(stopped, 'stopped when the app closes')
})

test('an adapter that fails to start fails registration', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const failing: GlueAdapter = { ...createMemoryAdapter(), async start () { throw new Error('no transport') } }
  await t.rejects(async () => await app.register(glue, { cookie: { secret: SECRET }, adapter: failing }).ready(), /no transport/)
})

test('the memory adapter refuses use before start', async (t) => {
  t.throws(() => createMemoryAdapter().emit({ kind: 'expire', sessionId: 'x' }), /before start/)
})
