import t from 'tap'
import type { Redis } from 'ioredis'
import { errors } from '../plugin/index.js'
import { shardOf } from '../plugin/redis/keys.js'
import {
  dataOf,
  envelopesOf,
  eventually,
  NODE_TIMEOUT,
  openTab,
  redisSkip,
  resumeQuery,
  sessionIdOf,
  startNodes,
  startRedis,
  uniquePrefix,
  until,
  type RedisServer,
  type StartedApp
} from './helpers/index.js'

// How nodes share the work through Redis: what a node reads, what survives Redis going away, what
// a client can make Redis do, and shards.

/** Entries in the inboxes of a prefix, per node inbox key. */
async function inboxLengths (admin: Redis, prefix: string): Promise<number[]> {
  const keys = (await admin.keys(`{${prefix}}:in:*`)).sort()
  return await Promise.all(keys.map(async (key) => await admin.xlen(key)))
}

/** Script calls Redis has run so far: every write of the adapter is one. */
async function scriptCalls (admin: Redis): Promise<number> {
  const stats = await admin.info('commandstats')
  let calls = 0
  for (const match of stats.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)) calls += Number(match[1])
  return calls
}

t.test('cluster', { skip: redisSkip }, async (t) => {
  const redis = await startRedis(t)

  t.test('a node reads only what concerns the sessions it holds', async (t) => {
    const prefix = uniquePrefix()
    const [a, b, c] = await startNodes(t, 3, { url: redis.url, prefix, nodeTimeout: NODE_TIMEOUT }) as [StartedApp, StartedApp, StartedApp]
    const onC = await openTab(t, c)
    const onB = await openTab(t, b)
    const admin = redis.client()
    const idC = sessionIdOf(onC.cookie)
    for (let i = 0; i < 50; i++) a.app.sessions.send(idC, i)
    await until(() => dataOf(onC).length === 50, 'the sends')
    t.same((await inboxLengths(admin, prefix)).filter((length) => length > 0), [50], 'only the node holding the session got the 50 sends')
    b.app.sessions.subscribe(sessionIdOf(onB.cookie), 'room')
    await eventually(() => b.app.sessions.clusterSubscriberCount('room'), 1, 'subscribed')
    a.app.sessions.publish('room', 'only for b')
    await until(() => dataOf(onB).includes('only for b'), 'the publish')
    t.equal(dataOf(onC).length, 50, 'the node without a subscriber got nothing')
    a.app.sessions.broadcast('to all')
    await until(() => dataOf(onB).includes('to all') && dataOf(onC).includes('to all'), 'the broadcast reaches every node')
    // c: 50 sends and the broadcast; b: its subscription, the publish and the broadcast; a: the broadcast only.
    t.same((await inboxLengths(admin, prefix)).sort((x, y) => x - y), [1, 3, 51], 'each node read only what concerns its sessions')
  })

  t.test('sends made as Redis dies are kept and delivered once it is back', async (t) => {
    const own = await startRedis(t)
    const [a, b] = await startNodes(t, 2, { url: own.url, prefix: uniquePrefix(), nodeTimeout: NODE_TIMEOUT, queryTimeout: 200 }) as [StartedApp, StartedApp]
    const tab = await openTab(t, b)
    const sessionId = sessionIdOf(tab.cookie)
    let sent = 0
    const send = (): void => { a.app.sessions.send(sessionId, ++sent) }
    for (let i = 0; i < 20; i++) send()
    // Redis stops answering mid-stream, then dies: the commands written meanwhile never get a reply.
    own.freeze()
    for (let i = 0; i < 20; i++) {
      send()
      await new Promise((resolve) => setImmediate(resolve))
    }
    await own.kill()
    await a.logs.waitFor('redis adapter: connection to Redis lost; buffering messages until it returns')
    for (let i = 0; i < 20; i++) send()
    await own.start()
    await until(() => dataOf(tab).includes(sent), 'the last send', 15_000)
    const numbers = dataOf(tab).filter((data): data is number => typeof data === 'number')
    // Redis restarted empty: sends it had numbered but not yet delivered may be gone (the client is told),
    // but every send written while it was frozen, dying or away arrives, in order.
    t.same(numbers.filter((n) => n > 20), Array.from({ length: sent - 20 }, (_, i) => i + 21), 'every send from the freeze on arrives once, in order')
    t.ok(envelopesOf(tab).some((e) => e[0] === 'g'), 'the client hears of the restart')
  })

  t.test('a query waiting when Redis stops answering rejects within queryTimeout', async (t) => {
    const own = await startRedis(t)
    const [a] = await startNodes(t, 1, { url: own.url, prefix: uniquePrefix(), queryTimeout: 300 }) as [StartedApp]
    own.freeze()
    t.teardown(() => { own.thaw() })
    const started = Date.now()
    await t.rejects(a.app.sessions.presence('someone'), errors.FST_WSGLUE_CLUSTER_UNAVAILABLE)
    await t.rejects(a.app.sessions.clusterCounts(), errors.FST_WSGLUE_CLUSTER_UNAVAILABLE)
    await t.rejects(a.app.sessions.clusterTopicsOf('someone'), errors.FST_WSGLUE_CLUSTER_UNAVAILABLE)
    // Generous: what matters is that they settle at all while Redis is frozen (they used to wait for the outage).
    t.ok(Date.now() - started < 10_000, 'they settle while Redis is still frozen')
  })

  t.test('a resume from a number the cluster never reached gets the current position and a gap', async (t) => {
    const [a, b] = await startNodes(t, 2, { url: redis.url, prefix: uniquePrefix(), nodeTimeout: NODE_TIMEOUT }) as [StartedApp, StartedApp]
    const first = await openTab(t, a)
    a.app.sessions.send(sessionIdOf(first.cookie), 'one')
    await until(() => dataOf(first).length === 1, 'one')
    const future = await openTab(t, b, first.cookie, resumeQuery(first.welcome.epoch, 1_000_001))
    t.equal(future.welcome.epoch, first.welcome.epoch)
    t.ok(future.welcome.seq < 1_000_001, `welcomed at the current position (${future.welcome.seq})`)
    t.same(await future.nextEnvelope(), ['g', null], 'with a gap')
    a.app.sessions.send(sessionIdOf(first.cookie), 'two')
    await until(() => dataOf(future).includes('two'), 'new messages reach it')
  })

  t.test('a client cannot make Redis work for changes that change nothing', async (t) => {
    const own = await startRedis(t)
    const [a] = await startNodes(t, 1, { url: own.url, prefix: uniquePrefix() }) as [StartedApp]
    const tab = await openTab(t, a)
    tab.sendEnvelope(['s', 1, 'news'])
    t.same(await tab.nextEnvelope(), ['r', 1, 1, 'news'])
    const admin = own.client()
    const before = await scriptCalls(admin)
    for (let i = 0; i < 50; i++) tab.sendEnvelope(['u', 100 + i, `not-subscribed-${i}`])
    for (let i = 0; i < 50; i++) tab.sendEnvelope(['s', 200 + i, 'news'])
    const replies = []
    for (let i = 0; i < 100; i++) replies.push(await tab.nextEnvelope())
    t.ok(replies.slice(0, 50).every((reply) => reply[2] === 1 && reply[3] === false), 'unsubscribing from a topic it does not have: false')
    t.ok(replies.slice(50).every((reply) => reply[2] === 1 && reply[3] === 'news'), 'subscribing again: the topic')
    t.equal(await scriptCalls(admin) - before, 0, 'not one script ran in Redis')
  })

  t.test('a flood of detached sessions drains within one upkeep', async (t) => {
    const own = await startRedis(t)
    const prefix = uniquePrefix()
    // A short timeout: upkeep runs every nodeTimeout / 3, and this test times the upkeep.
    const [a] = await startNodes(t, 1, { url: own.url, prefix, nodeTimeout: 600 }) as [StartedApp]
    const admin = own.client()
    const due = Date.now() - 1000
    // One transaction: an upkeep running meanwhile sees all of the flood or none of it.
    const flood = admin.multi()
    for (let i = 0; i < 4000; i++) {
      flood.zadd(`{${prefix}}:detached`, due, `s${i}`)
      flood.sadd(`{${prefix}}:ts:s${i}`, 'room')
      flood.sadd(`{${prefix}}:tm:room`, `s${i}`)
    }
    flood.scard(`{${prefix}}:tm:room`)
    const results = await flood.exec()
    t.same(results?.at(-1), [null, 4000], '4,000 sessions due at once')
    // One upkeep every nodeTimeout / 3; each ends up to 1000 sessions per call and calls again while there are more.
    await eventually(() => a.app.sessions.clusterSubscriberCount('room'), 0, 'all 4,000 ended', 3000)
    t.equal(await admin.zcard(`{${prefix}}:detached`), 0)
  })

  t.test('three shards share the sessions; everything works across them', async (t) => {
    const shards: RedisServer[] = [redis, await startRedis(t), await startRedis(t)]
    const prefix = uniquePrefix()
    const options = { shards: shards.map((shard) => shard.url), prefix, nodeTimeout: NODE_TIMEOUT }
    const [a, b] = await startNodes(t, 2, options) as [StartedApp, StartedApp]
    const tabs = []
    for (let i = 0; i < 24; i++) tabs.push(await openTab(t, i % 2 === 0 ? a : b))
    const admins = shards.map((shard) => shard.client())
    // Targeted sends: each session's messages are numbered by its own shard.
    for (const tab of tabs) a.app.sessions.send(sessionIdOf(tab.cookie), 'hello')
    for (const tab of tabs) await until(() => dataOf(tab).includes('hello'), 'every send')
    const perShard = await Promise.all(admins.map(async (admin) => Number(await admin.get(`{${prefix}}:seq`) ?? 0)))
    const expected = [0, 0, 0]
    for (const tab of tabs) {
      const shard = shardOf(sessionIdOf(tab.cookie), 3)
      expected[shard] = (expected[shard] ?? 0) + 1
    }
    t.same(perShard, expected, 'each send was numbered by the shard its session hashes to')
    t.equal(perShard.reduce((sum, count) => sum + count, 0), 24, 'together, each send once')
    // Broadcasts and publishes go to every shard, so every session gets each exactly once.
    for (const tab of tabs.slice(0, 12)) b.app.sessions.subscribe(sessionIdOf(tab.cookie), 'room')
    await eventually(() => a.app.sessions.clusterSubscriberCount('room'), 12, 'subscribed on every shard')
    a.app.sessions.broadcast('all')
    b.app.sessions.publish('room', 'some')
    for (const [i, tab] of tabs.entries()) {
      await until(() => dataOf(tab).includes('all') && (i >= 12 || dataOf(tab).includes('some')), 'broadcast and publish')
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
    t.ok(tabs.every((tab, i) => dataOf(tab).length === (i < 12 ? 3 : 2)), 'each message once')
    t.same(await a.app.sessions.clusterCounts(), { nodes: 2, sessions: 24, sockets: 24 })
    // A resume on the other node reads back from the session's shard.
    const [first] = tabs
    const sessionId = sessionIdOf(first?.cookie as string)
    first?.socket.close()
    await eventually(() => a.app.sessions.presence(sessionId), 0, 'gone')
    a.app.sessions.send(sessionId, 'missed')
    await a.app.sessions.presence(sessionId)
    const seen = envelopesOf(first as never).filter((e) => e[0] === 'm' || e[0] === 't').map((e) => e[1] as number)
    const back = await openTab(t, b, first?.cookie, resumeQuery(first?.welcome.epoch as string, Math.max(first?.welcome.seq ?? 0, ...seen)))
    await until(() => dataOf(back).includes('missed'), 'the missed message')
    t.notOk(envelopesOf(back).some((e) => e[0] === 'g'), 'no gap')
  })
})
