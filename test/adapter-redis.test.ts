import { spawn } from 'node:child_process'
import { once } from 'node:events'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import glue, { errors, type GlueOptions } from '../plugin/index.js'
import { createRedisAdapter } from '../plugin/redis/index.js'
import {
  adapterContract,
  cookiePair,
  dataOf,
  envelopesOf,
  eventually,
  NODE_TIMEOUT,
  openGlueSocket,
  openTab,
  redisSkip,
  resumeQuery,
  SECRET,
  sessionIdOf,
  startApp,
  startRedis,
  uniquePrefix,
  until,
  type ContractNode,
  type RedisServer,
  type StartedApp
} from './helpers/index.js'

/** Starts `count` nodes joined through one Redis under a prefix of their own; closed in teardown. */
async function startCluster (t: Test, redis: RedisServer, count: number, glueOptions: GlueOptions = {}, prefix = uniquePrefix()): Promise<StartedApp[]> {
  const nodes: StartedApp[] = []
  for (let i = 0; i < count; i++) {
    nodes.push(await startApp({
      glue: { redis: { url: redis.url, prefix, nodeTimeout: NODE_TIMEOUT }, heartbeatInterval: 0, authorizeSubscribe: () => true, ...glueOptions }
    }))
  }
  t.teardown(async () => { await Promise.all(nodes.map(async (node) => await node.app.close())) })
  return nodes
}

t.test('redis adapter', { skip: redisSkip }, async (t) => {
  const redis = await startRedis(t)

  // Three nodes per cluster, as socket.io's Redis adapter suite runs them, each test under its own prefix.
  adapterContract(t, async (t, options) => {
    const prefix = uniquePrefix()
    const nodes: ContractNode[] = []
    for (let i = 0; i < 3; i++) {
      const adapter = createRedisAdapter({ url: redis.url, prefix, nodeTimeout: NODE_TIMEOUT })
      nodes.push({ ...await startApp({ glue: { ...options, adapter } }), adapter })
    }
    t.teardown(async () => { await Promise.all(nodes.map(async (node) => await node.app.close())) })
    return nodes
  })

  t.test('a killed node is cleaned out of presence within the node timeout', async (t) => {
    const prefix = uniquePrefix()
    const [a] = await startCluster(t, redis, 1, {}, prefix) as [StartedApp]
    const child = spawn(process.execPath, ['test/fixtures/cluster-node.mjs', redis.url, prefix, SECRET], { stdio: ['ignore', 'pipe', 'inherit'] })
    t.teardown(() => { child.kill('SIGKILL') })
    const [line] = await once(child.stdout, 'data') as [Buffer]
    const port = Number(line.toString().trim())
    const remote = await openGlueSocket(`ws://127.0.0.1:${port}/ws`)
    const sessionId = sessionIdOf(cookiePair(remote.setCookie[0]))
    await eventually(() => a.app.sessions.clusterCounts(), { nodes: 2, sessions: 1, sockets: 1 }, 'the other node')
    a.app.sessions.send(sessionId, 'hello')
    t.same(dataOf(remote).length === 1 ? dataOf(remote) : (await remote.nextEnvelope()).slice(2), ['hello'], 'reached the other process')
    const killedAt = Date.now()
    child.kill('SIGKILL')
    await eventually(() => a.app.sessions.clusterCounts(), { nodes: 1, sessions: 0, sockets: 0 }, 'dead node cleaned out', 5000)
    t.ok(Date.now() - killedAt < 3000, `cleaned within ${Date.now() - killedAt} ms (node timeout 600 ms)`)
    t.equal(await a.app.sessions.presence(sessionId), 0)
  })

  t.test('dropped Redis connections lose nothing: nodes read on from where they stopped', async (t) => {
    const [a, b] = await startCluster(t, redis, 2) as [StartedApp, StartedApp]
    const listener = await openTab(t, b)
    const sessionId = sessionIdOf(listener.cookie)
    const admin = redis.client()
    for (let i = 0; i < 100; i++) {
      a.app.sessions.send(sessionId, i)
      if (i === 30) await admin.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
      if (i % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 5))
    }
    await until(() => dataOf(listener).length === 100, 'all 100 messages', 10000)
    t.same(dataOf(listener), Array.from({ length: 100 }, (_, i) => i), 'every message once, in order')
    t.notOk(envelopesOf(listener).some((e) => e[0] === 'g'), 'no gap')
  })

  t.test('a malformed inbox entry is dropped and logged; delivery goes on', async (t) => {
    const prefix = uniquePrefix()
    const [a] = await startCluster(t, redis, 1, {}, prefix) as [StartedApp]
    const listener = await openTab(t, a)
    // A first message creates the node's inbox.
    a.app.sessions.broadcast('first')
    await until(() => dataOf(listener).length === 1, 'first message')
    const admin = redis.client()
    const [inbox] = await admin.keys(`{${prefix}}:in:*`)
    const seq = await admin.incr(`{${prefix}}:seq`)
    await admin.xadd(inbox as string, `${seq}-0`, 'm', Buffer.from([9, 9, 9]))
    await a.logs.waitFor('redis adapter: dropped a malformed cluster message')
    a.app.sessions.broadcast('still here')
    await until(() => dataOf(listener).length === 2, 'next message')
    t.same(dataOf(listener), ['first', 'still here'])
  })

  t.test('a Redis crash: sends are buffered within limits, volatile ones stay local, everything resumes', async (t) => {
    const own = await startRedis(t)
    const [a, b] = await startCluster(t, own, 2, { redis: { url: own.url, prefix: uniquePrefix(), nodeTimeout: NODE_TIMEOUT, bufferLimit: 3 } }) as [StartedApp, StartedApp]
    const local = await openTab(t, a)
    const remote = await openTab(t, b, local.cookie)
    const sessionId = sessionIdOf(local.cookie)
    a.app.sessions.subscribe(sessionId, 'kept')
    await until(() => b.app.sessions.subscriberCount('kept') === 1, 'subscribed')
    await own.kill()
    await a.logs.waitFor('redis adapter: connection to Redis lost; buffering messages until it returns')
    t.equal(a.app.sessions.send(sessionId, { volatile: true }, { volatile: true }), 1, 'a volatile send reaches this node at once')
    for (let i = 1; i <= 3; i++) a.app.sessions.send(sessionId, `buffered-${i}`)
    t.throws(() => a.app.sessions.send(sessionId, 'one too many'), errors.FST_WSGLUE_CLUSTER_UNAVAILABLE)
    await t.rejects(a.app.sessions.clusterCounts(), errors.FST_WSGLUE_CLUSTER_UNAVAILABLE)
    await t.rejects(a.app.sessions.presence(sessionId), errors.FST_WSGLUE_CLUSTER_UNAVAILABLE)
    t.equal(local.socket.readyState, local.socket.OPEN, 'local sockets stay open')
    // A new subscription needs the cluster (one the session has already needs nothing: answered at once).
    local.sendEnvelope(['s', 8, 'kept'])
    await until(() => envelopesOf(local).some((e) => e[0] === 'r' && e[1] === 8), 'no-op subscribe reply during the outage')
    t.same(envelopesOf(local).find((e) => e[0] === 'r' && e[1] === 8), ['r', 8, 1, 'kept'])
    local.sendEnvelope(['s', 9, 'new-topic'])
    await until(() => envelopesOf(local).some((e) => e[0] === 'r' && e[1] === 9), 'subscribe reply during the outage')
    t.same(envelopesOf(local).find((e) => e[0] === 'r' && e[1] === 9), ['r', 9, 0, { code: 'GLUE_UNAVAILABLE', message: 'the cluster is unavailable; try again' }])
    // A resume needs the stream: while Redis is away the client is told plainly that it may miss messages.
    const resuming = await openTab(t, a, local.cookie, resumeQuery(local.welcome.epoch, 0))
    t.same(await resuming.nextEnvelope(), ['g', null], 'a resume during the outage reports an unknown gap')
    resuming.socket.close()
    await resuming.closed
    await until(() => a.app.sessions.stats().sockets === 1, 'the extra tab is gone')
    await own.start()
    await a.logs.waitFor('redis adapter: connection to Redis restored')
    // Redis came back empty: every client hears of a possible gap, then the buffered messages arrive.
    for (const socket of [local, remote]) {
      await until(() => dataOf(socket).includes('buffered-3'), 'buffered messages delivered', 10000)
      t.ok(envelopesOf(socket).some((e) => e[0] === 'g' && e[1] === null), 'told of a gap')
      t.same(dataOf(socket).filter((d) => typeof d === 'string'), ['buffered-1', 'buffered-2', 'buffered-3'])
    }
    t.same(dataOf(local)[0], { volatile: true })
    t.notOk(dataOf(remote).some((d) => typeof d === 'object'), 'the volatile send stayed on its node')
    // The subscription was written back from the node that holds the session.
    await until(() => b.app.sessions.subscriberCount('kept') === 1, 'subscription restored', 10000)
    b.app.sessions.publish('kept', 'after')
    await until(() => dataOf(local).includes('after') && dataOf(remote).includes('after'), 'publish after recovery')
    await eventually(() => b.app.sessions.clusterCounts(), { nodes: 2, sessions: 1, sockets: 2 }, 'presence announced again')
  })

  t.test('an existing ioredis client is accepted; its settings are duplicated', async (t) => {
    const client = new Redis(redis.port, '127.0.0.1', { lazyConnect: true })
    const prefix = uniquePrefix()
    const node = await startApp({ glue: { redis: { client, prefix } } })
    t.teardown(() => node.app.close())
    const other = await startApp({ glue: { redis: client } })
    t.teardown(() => other.app.close())
    const third = await startApp({ glue: { adapter: createRedisAdapter({ url: redis.url, prefix }) } })
    t.teardown(() => third.app.close())
    t.equal(client.status, 'wait', 'the given client itself is never connected')
    t.same(await node.app.sessions.clusterCounts(), { nodes: 2, sessions: 0, sockets: 0 }, 'two nodes share the prefix')
  })

  t.test('a node presumed dead announces its sessions again', async (t) => {
    const prefix = uniquePrefix()
    const [a, b] = await startCluster(t, redis, 2, {}, prefix) as [StartedApp, StartedApp]
    const socket = await openTab(t, a)
    const sessionId = sessionIdOf(socket.cookie)
    await eventually(() => b.app.sessions.presence(sessionId), 1, 'presence')
    const admin = redis.client()
    // As if the nodes had been reaped after missing their heartbeats: the next heartbeat notices.
    await admin.del(`{${prefix}}:nodes`)
    const message = 'redis adapter: this node was presumed dead; announcing its sessions again'
    await Promise.race([a.logs.waitFor(message), b.logs.waitFor(message)])
    await eventually(() => b.app.sessions.presence(sessionId), 1, 'presence announced again')
    await eventually(() => b.app.sessions.clusterCounts(), { nodes: 2, sessions: 1, sockets: 1 }, 'counts')
  })

  t.test('a resume past what the histories keep reports an unknown gap; old messages count as missed', async (t) => {
    const [a, b] = await startCluster(t, redis, 2, { outboxLimit: 5, outboxMaxAge: 1500 }) as [StartedApp, StartedApp]
    const first = await openTab(t, a)
    const sessionId = sessionIdOf(first.cookie)
    first.socket.close()
    await first.closed
    // A wide age, so 'fresh' is still young when a loaded machine gets round to the resume.
    a.app.sessions.send(sessionId, 'old')
    await new Promise((resolve) => setTimeout(resolve, 1600))
    a.app.sessions.send(sessionId, 'fresh')
    await a.app.sessions.presence(sessionId)
    const aged = await openTab(t, b, first.cookie, resumeQuery(first.welcome.epoch, first.welcome.seq))
    await until(() => dataOf(aged).length === 1, 'the fresh message')
    t.same(envelopesOf(aged)[0], ['g', 1], 'the message older than outboxMaxAge is reported missing')
    t.same(dataOf(aged), ['fresh'])
    aged.socket.close()
    await aged.closed
    // The session's history keeps about twice outboxLimit: far more pushes its oldest out.
    for (let i = 0; i < 400; i++) a.app.sessions.send(sessionId, i)
    await a.app.sessions.presence(sessionId)
    const trimmed = await openTab(t, b, first.cookie, resumeQuery(first.welcome.epoch, first.welcome.seq))
    t.same(await trimmed.nextEnvelope(), ['g', null], 'trimmed past the resume point: unknown how many')
  })

  t.test('stopping while Redis is away says how many messages were not delivered', async (t) => {
    const own = await startRedis(t)
    const node = await startApp({ glue: { redis: { url: own.url, prefix: uniquePrefix(), nodeTimeout: NODE_TIMEOUT } } })
    await own.kill()
    await node.logs.waitFor('redis adapter: connection to Redis lost; buffering messages until it returns')
    node.app.sessions.broadcast('lost')
    await node.app.close()
    t.match(await node.logs.waitFor('redis adapter: stopped while Redis was unreachable; buffered messages were not delivered'), { messages: 1 })
  })

  t.test('registration fails with a clear error when Redis is unreachable', async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => await app.register(glue, { cookie: { secret: SECRET }, redis: 'redis://127.0.0.1:1' }).ready(), errors.FST_WSGLUE_REDIS_UNAVAILABLE)
  })
})
