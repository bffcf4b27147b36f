import Fastify from 'fastify'
import t, { test } from 'tap'
import glue, { createMemoryAdapter, type AdapterHost, type ClusterMessage, type GlueAdapter } from '../plugin/index.js'
import { adapterContract, openGlueSocket, SECRET, startApp, until, type ContractNode } from './helpers/index.js'

// The memory adapter is a cluster of one node: every role in the contract falls to that node.
adapterContract(t, async (t, options) => {
  const adapter = createMemoryAdapter()
  const node: ContractNode = { ...await startApp({ glue: { ...options, adapter } }), adapter }
  t.teardown(() => node.app.close())
  return [node]
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
    socketOpened: (sessionId, userId) => memory.socketOpened(sessionId, userId),
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
