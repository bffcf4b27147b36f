import t, { type Test } from 'tap'
import type { Redis } from 'ioredis'
import type { GlueOptions, Pipe } from '../plugin/index.js'
import { createRedisStreamSource, type RedisStreamEntry, type RedisStreamSourceOptions } from '../plugin/redis/index.js'
import { dataOf, eventually, openTab, redisSkip, sessionIdOf, startApp, startRedis, uniquePrefix, until, type RedisServer, type StartedApp } from './helpers/index.js'

// The Redis Stream connector against a real redis-server: consumer-group offsets, restarts, several
// nodes, dead consumers, stop and Redis restarts.

interface StreamNode extends StartedApp {
  readonly pipe: Pipe
}

/** A node whose pipe feeds topic `room` from the stream; `text` fields become the data. */
async function startStreamNode (t: Test, source: RedisStreamSourceOptions, glue: GlueOptions = {}): Promise<StreamNode> {
  let pipe: Pipe | undefined
  const node = await startApp({
    glue: { heartbeatInterval: 0, ...glue },
    after: (app) => {
      pipe = app.sessions.pipe(createRedisStreamSource(source), { topic: 'room' }, {
        name: `stream-${source.consumer ?? 'default'}`,
        map: (entry: RedisStreamEntry) => entry.fields.text,
        restart: { minDelay: 5, maxDelay: 50 }
      })
    }
  })
  t.teardown(async () => { await node.app.close() })
  return { ...node, pipe: pipe as Pipe }
}

/** A glue.v1 tab on `node` subscribed to `room`. */
async function subscribedTab (t: Test, node: StartedApp) {
  const tab = await openTab(t, node)
  node.app.sessions.subscribe(sessionIdOf(tab.cookie), 'room')
  return tab
}

async function add (admin: Redis, key: string, ...texts: string[]): Promise<void> {
  for (const text of texts) await admin.xadd(key, '*', 'text', text)
}

async function pendingCount (admin: Redis, key: string, group: string): Promise<number> {
  const [count] = await admin.xpending(key, group) as [number]
  return count
}

function texts (count: number, from = 0, label = 'e'): string[] {
  return Array.from({ length: count }, (_, i) => `${label}${from + i}`)
}

t.test('redis stream source', { skip: redisSkip }, async (t) => {
  const redis: RedisServer = await startRedis(t)
  const admin = redis.client()

  t.test('delivers entries written before start, then during, and acknowledges each', async (t) => {
    const key = uniquePrefix()
    await add(admin, key, ...texts(3))
    const node = await startStreamNode(t, { redis: redis.url, key, group: 'g', consumer: 'a', groupStart: '0' })
    const tab = await subscribedTab(t, node)
    // The pipe may run before the tab subscribes: read what arrives once the first entry after it does.
    await add(admin, key, ...texts(3, 3))
    await until(() => dataOf(tab).includes('e5'), 'the entries written during')
    const got = dataOf(tab)
    t.same(got, texts(6).slice(6 - got.length), 'in stream order, nothing twice')
    await until(() => node.pipe.stats().delivered === 6, 'all six handed over')
    t.equal(await pendingCount(admin, key, 'g'), 0, 'every delivered entry is acknowledged')
  })

  t.test('a restarted node reads its own pending entries first, then what came while it was down', async (t) => {
    const key = uniquePrefix()
    await admin.xgroup('CREATE', key, 'g', '$', 'MKSTREAM')
    await add(admin, key, ...texts(3))
    // As if the node had read them and died before acknowledging them.
    await admin.xreadgroup('GROUP', 'g', 'a', 'COUNT', 2, 'STREAMS', key, '>')
    const [deleted] = (await admin.xrange(key, '-', '+', 'COUNT', 1))[0] as [string, string[]]
    await admin.xdel(key, deleted)
    const first = await startStreamNode(t, { redis: redis.url, key, group: 'g', consumer: 'a' })
    t.equal(first.pipe.state, 'running')
    await until(() => first.pipe.stats().delivered === 2, 'the pending one left and the new one')
    await first.app.close()
    await add(admin, key, ...texts(2, 3))
    const second = await startStreamNode(t, { redis: redis.url, key, group: 'g', consumer: 'a' })
    const tab = await subscribedTab(t, second)
    await add(admin, key, 'e5')
    await until(() => dataOf(tab).includes('e5'), 'the new entry')
    t.same(dataOf(tab), ['e3', 'e4', 'e5'].slice(3 - dataOf(tab).length), 'what came while the node was down, then new ones')
    await until(() => second.pipe.stats().delivered === 3, 'e3, e4, e5')
    t.equal(await pendingCount(admin, key, 'g'), 0, 'the deleted pending entry was acknowledged too')
  })

  t.test('a pipe stopped in the middle of a batch acknowledges what it handed over; the rest comes first next time', async (t) => {
    const key = uniquePrefix()
    await admin.xgroup('CREATE', key, 'g', '$', 'MKSTREAM')
    await admin.multi(texts(5).map((text) => ['xadd', key, '*', 'text', text])).exec()
    const node = await startApp({ glue: { heartbeatInterval: 0 } })
    t.teardown(() => node.app.close())
    const handed: string[] = []
    const pipe = node.app.sessions.pipe(createRedisStreamSource({ redis: redis.url, key, group: 'g', consumer: 'a' }), { topic: 'room' }, {
      map: (entry: RedisStreamEntry) => {
        handed.push(entry.fields.text as string)
        if (handed.length === 3) pipe.stop().catch(() => {})
        return entry.fields.text
      }
    })
    t.equal((await pipe.done).state, 'stopped')
    t.same(handed, ['e0', 'e1', 'e2'])
    t.equal(await pendingCount(admin, key, 'g'), 2, 'e3 and e4 were not handed over')
    const next = await startStreamNode(t, { redis: redis.url, key, group: 'g', consumer: 'a' })
    await until(() => next.pipe.stats().delivered === 2, 'the two left')
    await eventually(async () => await pendingCount(admin, key, 'g'), 0, 'acknowledged')
  })

  t.test('two nodes in one group: every subscriber gets every entry once', async (t) => {
    const key = uniquePrefix()
    const prefix = uniquePrefix()
    await admin.xgroup('CREATE', key, 'g', '$', 'MKSTREAM')
    const cluster = { redis: { url: redis.url, prefix } }
    const a = await startStreamNode(t, { redis: redis.url, key, group: 'g', consumer: 'a', count: 7 }, cluster)
    const b = await startStreamNode(t, { redis: redis.url, key, group: 'g', consumer: 'b', count: 7 }, cluster)
    const onA = await subscribedTab(t, a)
    const onB = await subscribedTab(t, b)
    await eventually(() => a.app.sessions.clusterSubscriberCount('room'), 2, 'both subscribed')
    const sent = texts(200)
    await admin.pipeline(sent.map((text) => ['xadd', key, '*', 'text', text])).exec()
    await until(() => dataOf(onA).length >= 200 && dataOf(onB).length >= 200, 'every entry on both tabs', 10_000)
    for (const tab of [onA, onB]) t.same([...dataOf(tab)].sort(), [...sent].sort(), 'each entry once')
    const byA = a.pipe.stats().delivered
    const byB = b.pipe.stats().delivered
    t.equal(byA + byB, 200, 'the nodes shared the entries: no entry was delivered by both')
    await eventually(async () => await pendingCount(admin, key, 'g'), 0, 'every entry acknowledged')
  })

  t.test('claims the entries of a consumer that died after claimIdle', async (t) => {
    const key = uniquePrefix()
    await admin.xgroup('CREATE', key, 'g', '$', 'MKSTREAM')
    await add(admin, key, ...texts(3))
    await admin.xreadgroup('GROUP', 'g', 'dead', 'STREAMS', key, '>')
    const node = await startStreamNode(t, { redis: redis.url, key, group: 'g', consumer: 'alive', claimIdle: 50 })
    await until(() => node.pipe.stats().delivered === 3, 'the dead consumer\'s entries')
    await eventually(async () => await pendingCount(admin, key, 'g'), 0, 'acknowledged')
    const consumers = await admin.xinfo('CONSUMERS', key, 'g') as unknown[][]
    const pendingOf = Object.fromEntries(consumers.map((fields) => [fields[1], fields[3]]))
    t.same(pendingOf, { dead: 0, alive: 0 })
  })

  t.test('app.close() ends a blocking read at once and closes the connection', async (t) => {
    const key = uniquePrefix()
    const node = await startStreamNode(t, { redis: redis.url, key, group: 'g', consumer: 'blocked', block: 60_000, claimIdle: 0 })
    const blocked = /name=glue-stream:blocked .*cmd=xreadgroup/
    await eventually(async () => blocked.test(await admin.client('LIST') as string), true, 'blocked in XREADGROUP')
    await node.app.close()
    t.equal(node.pipe.state, 'stopped')
    t.notOk((await admin.client('LIST') as string).includes('glue-stream:blocked'), 'its connection is gone')
    t.notOk(node.logs.lines.some((line) => /stopTimeout|failed/.test(String(line.msg))), 'no timeout, no error')
  })

  t.test('survives a Redis restart: the run fails, the pipe opens a new connection and group', async (t) => {
    const own = await startRedis(t)
    const ownAdmin = own.client()
    const key = uniquePrefix()
    const node = await startStreamNode(t, { redis: own.url, key, group: 'g', consumer: 'a', groupStart: '0', block: 100 })
    const tab = await subscribedTab(t, node)
    await add(ownAdmin, key, 'before')
    await until(() => dataOf(tab).includes('before'), 'before the restart')
    await own.kill()
    await node.logs.waitFor('pipe: source failed')
    await own.start()
    // The new server is empty: the pipe creates the group again, from '0'.
    await until(() => node.pipe.stats().restarts > 0 && node.pipe.state === 'running', 'restarted')
    await eventually(async () => await ownAdmin.exists(key).catch(() => 0), 1, 'the group is back', 10_000)
    await add(ownAdmin, key, 'after')
    await until(() => dataOf(tab).includes('after'), 'after the restart', 10_000)
    t.ok(node.pipe.stats().errors >= 1)
  })

  t.test('with the Redis adapter an entry is acknowledged only once Redis has numbered its message', async (t) => {
    const cluster = await startRedis(t)
    t.teardown(() => { cluster.thaw() })
    const key = uniquePrefix()
    await admin.xgroup('CREATE', key, 'g', '$', 'MKSTREAM')
    const node = await startStreamNode(t, { redis: redis.url, key, group: 'g', consumer: 'a' }, { redis: { url: cluster.url, prefix: uniquePrefix() } })
    const tab = await subscribedTab(t, node)
    await eventually(() => node.app.sessions.clusterSubscriberCount('room'), 1, 'subscribed')
    cluster.freeze()
    // One transaction, so the blocked read gets the three as one batch: the next batch waits for this one's acknowledgement.
    await admin.multi(texts(3).map((text) => ['xadd', key, '*', 'text', text])).exec()
    await until(() => node.pipe.stats().delivered === 3, 'handed over')
    for (let i = 0; i < 5; i++) t.equal(await pendingCount(admin, key, 'g'), 3, 'not acknowledged while the adapter\'s Redis does not answer')
    cluster.thaw()
    await until(() => dataOf(tab).length === 3, 'delivered once Redis answers')
    await eventually(async () => await pendingCount(admin, key, 'g'), 0, 'then acknowledged')
  })

  t.test('an entry whose message Redis refused is not acknowledged, and comes again once Redis accepts writes', async (t) => {
    const cluster = await startRedis(t)
    const clusterAdmin = cluster.client()
    const key = uniquePrefix()
    await admin.xgroup('CREATE', key, 'g', '$', 'MKSTREAM')
    const node = await startStreamNode(t, { redis: redis.url, key, group: 'g', consumer: 'a' }, { redis: { url: cluster.url, prefix: uniquePrefix() } })
    const tab = await subscribedTab(t, node)
    await eventually(() => node.app.sessions.clusterSubscriberCount('room'), 1, 'subscribed')
    // Above maxmemory with noeviction, Redis answers every write (the adapter's scripts) with an OOM error.
    await clusterAdmin.config('SET', 'maxmemory-policy', 'noeviction')
    await clusterAdmin.config('SET', 'maxmemory', '1')
    t.teardown(async () => { await clusterAdmin.config('SET', 'maxmemory', '0') })
    await add(admin, key, 'refused')
    await until(() => node.pipe.stats().errors >= 1, 'the run fails: Redis refused the message')
    t.equal(await pendingCount(admin, key, 'g'), 1, 'not acknowledged')
    t.notOk(dataOf(tab).includes('refused'), 'nor delivered')
    await clusterAdmin.config('SET', 'maxmemory', '0')
    await until(() => dataOf(tab).includes('refused'), 'delivered once Redis accepts writes again')
    await eventually(async () => await pendingCount(admin, key, 'g'), 0, 'then acknowledged')
    t.equal(dataOf(tab).filter((data) => data === 'refused').length, 1, 'once')
  })

  t.test('rejects invalid options', async (t) => {
    const bad: Array<[string, unknown, RegExp]> = [
      ['options', 'redis://x', /`createRedisStreamSource` to be an options object/],
      ['redis', { redis: 'http://x', key: 'k', group: 'g' }, /`createRedisStreamSource.redis`/],
      ['key', { redis: redis.url, key: '', group: 'g' }, /`createRedisStreamSource.key`/],
      ['group', { redis: redis.url, key: 'k' }, /`createRedisStreamSource.group`/],
      ['consumer', { redis: redis.url, key: 'k', group: 'g', consumer: 7 }, /`createRedisStreamSource.consumer`/],
      ['groupStart', { redis: redis.url, key: 'k', group: 'g', groupStart: '>' }, /`createRedisStreamSource.groupStart`/],
      ['count', { redis: redis.url, key: 'k', group: 'g', count: 10_001 }, /`createRedisStreamSource.count` to be an integer from 1 to 10000/],
      ['block', { redis: redis.url, key: 'k', group: 'g', block: 0 }, /`createRedisStreamSource.block`/],
      ['claimIdle', { redis: redis.url, key: 'k', group: 'g', claimIdle: -1 }, /`createRedisStreamSource.claimIdle`/]
    ]
    for (const [what, options, message] of bad) {
      t.throws(() => createRedisStreamSource(options as RedisStreamSourceOptions), { code: 'FST_WSGLUE_INVALID_OPTION', message }, what)
    }
  })
})
