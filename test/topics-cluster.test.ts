import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createSessionId, type GlueOptions } from '../plugin/index.js'
import {
  envelopesOf,
  eventually,
  forgeCookie,
  NODE_TIMEOUT,
  openGlueSocket,
  openTab,
  redisSkip,
  SECRET,
  sessionIdOf,
  startNodes,
  startRedis,
  uniquePrefix,
  until,
  type GlueSocket,
  type StartedApp
} from './helpers/index.js'

// Topic history and presence across nodes joined through Redis: the same semantics as on one node.

/** Cluster nodes with topic history and presence (batches every 50 ms); `glue` overrides. */
async function startTopicNodes (t: Test, count: number, redis: GlueOptions['redis'], glue: GlueOptions = {}): Promise<StartedApp[]> {
  return await startNodes(t, count, redis, { topicHistory: { limit: 5000 }, topicPresence: true, presenceInterval: 50, ...glue })
}

/** Topic data a socket received, history and live, in order. */
function topicData (socket: GlueSocket, topic: string): unknown[] {
  return envelopesOf(socket)
    .filter((envelope) => (envelope[0] === 'h' && envelope[1] === topic) || (envelope[0] === 't' && envelope[2] === topic))
    .map((envelope) => envelope[3])
}

/** What a socket received but presence batches (every node here shows presence). */
function withoutPresence (socket: GlueSocket): unknown[][] {
  return envelopesOf(socket).filter((envelope) => envelope[0] !== 'p')
}

function batches (socket: GlueSocket, topic: string): unknown[][] {
  return envelopesOf(socket).filter((envelope) => envelope[0] === 'p' && envelope[1] === topic)
}

t.test('topics across nodes', { skip: redisSkip }, async (t) => {
  const redis = await startRedis(t)

  t.test('a subscriber on another node gets the history, then live messages, with positions of the cluster', async (t) => {
    const [a, b] = await startTopicNodes(t, 2, { url: redis.url, prefix: uniquePrefix(), nodeTimeout: NODE_TIMEOUT }) as [StartedApp, StartedApp]
    for (let i = 1; i <= 5; i++) a.app.sessions.publish('room', { i })
    await eventually(async () => (await b.app.sessions.history('room')).messages.length, 5, 'kept in Redis')
    const client = await openTab(t, b)
    client.sendEnvelope(['s', 1, 'room', { last: 3 }])
    await until(() => withoutPresence(client).length >= 4, 'reply and history')
    const got = withoutPresence(client)
    t.same(got[0], ['r', 1, 1, 'room'])
    t.same(got.slice(1).map((envelope) => envelope[3]), [{ i: 3 }, { i: 4 }, { i: 5 }])
    const positions = got.slice(1).map((envelope) => String(envelope[2]))
    const epoch = positions[0]?.split('.')[0] as string
    t.ok(positions.every((position) => position.startsWith(`${epoch}.`)), 'one epoch: the shard\'s dataset')
    a.app.sessions.publish('room', 'live')
    // Its own join (a presence batch) may come between: look for the topic message.
    await until(() => envelopesOf(client).some((envelope) => envelope[0] === 't'), 'live')
    const live = envelopesOf(client).find((envelope) => envelope[0] === 't') as unknown[]
    t.same(live.slice(0, 4), ['t', live[1], 'room', 'live'])
    t.equal(live[4], `${epoch}.${String(live[1])}`, 'a live message\'s position is its cluster number')
    const history = await a.app.sessions.history('room', { since: positions[1] })
    t.same(history.messages.map((message) => message.data), [{ i: 5 }, 'live'], 'since a position, on any node')
    t.equal(history.missed, 0)
    const foreign = await a.app.sessions.history('room', { since: 'Zm9yZWlnbg.3', last: 1 })
    t.same(foreign, { messages: [{ position: String(live[4]), data: 'live' }], missed: null }, 'another dataset\'s position: an unknown gap')
  })

  t.test('no duplicate and no loss at the seam when another node publishes while clients subscribe', async (t) => {
    const [a, b] = await startTopicNodes(t, 2, { url: redis.url, prefix: uniquePrefix(), nodeTimeout: NODE_TIMEOUT }) as [StartedApp, StartedApp]
    const total = 1500
    let published = 0
    const publisher = setInterval(() => {
      for (let i = 0; i < 10 && published < total; i++) a.app.sessions.publish('race', ++published)
      if (published >= total) clearInterval(publisher)
    }, 1)
    t.teardown(() => clearInterval(publisher))
    await until(() => published >= 100, 'publishing started')
    const clients: GlueSocket[] = []
    for (let i = 0; i < 4; i++) {
      const client = await openTab(t, i % 2 === 0 ? b : a)
      client.sendEnvelope(['s', 1, 'race', {}])
      clients.push(client)
      await until(() => published >= 100 + 250 * (i + 1) || published >= total, 'more publishes')
    }
    await until(() => published >= total, 'every publish', 20000)
    for (const [i, client] of clients.entries()) {
      await until(() => topicData(client, 'race').length >= total, `client ${i} got everything`, 20000)
      t.same(topicData(client, 'race'), Array.from({ length: total }, (_, n) => n + 1), `client ${i}: every message once, in order`)
    }
  })

  t.test('a client that comes back on another node asks for what came after its position', async (t) => {
    const [a, b] = await startTopicNodes(t, 2, { url: redis.url, prefix: uniquePrefix(), nodeTimeout: NODE_TIMEOUT }) as [StartedApp, StartedApp]
    const first = await openTab(t, a)
    first.sendEnvelope(['s', 1, 'room', {}])
    await until(() => withoutPresence(first).length >= 1, 'subscribed')
    a.app.sessions.publish('room', 'one')
    await until(() => withoutPresence(first).length >= 2, 'one')
    const position = String((withoutPresence(first)[1] as unknown[])[4])
    first.socket.terminate()
    for (const data of ['two', 'three']) b.app.sessions.publish('room', data)
    await eventually(async () => (await a.app.sessions.history('room')).messages.length, 3, 'kept')
    // A new session (its cookie is gone), on the other node: only the history position remains.
    const back = await openTab(t, b)
    back.sendEnvelope(['s', 1, 'room', { since: position }])
    await until(() => withoutPresence(back).length >= 3, 'history since')
    t.same(withoutPresence(back).map((envelope) => envelope[0] === 'h' ? envelope[3] : envelope[0]), ['r', 'two', 'three'], 'no gap, nothing twice')
  })

  t.test('members across nodes: join and leave events everywhere, each member once', async (t) => {
    const [a, b] = await startTopicNodes(t, 2, { url: redis.url, prefix: uniquePrefix(), nodeTimeout: NODE_TIMEOUT }) as [StartedApp, StartedApp]
    const watcher = await openTab(t, a)
    watcher.sendEnvelope(['s', 1, 'room'])
    await until(() => batches(watcher, 'room').length === 1, 'its own join')
    const [, , [self]] = batches(watcher, 'room')[0] as [string, string, Array<{ id: string, user: boolean }>]
    const adaCookie = forgeCookie(createSessionId(), { userId: 'ada' })
    const adaOnB = await openTab(t, b, adaCookie)
    adaOnB.sendEnvelope(['s', 1, 'room'])
    await until(() => batches(watcher, 'room').length === 2, 'ada joins, seen on the other node')
    t.same(batches(watcher, 'room')[1], ['p', 'room', [{ id: 'ada', user: true }], []])
    // Ada on a second device, on node a: still one member.
    const adaOnA = await openTab(t, a, forgeCookie(createSessionId(), { userId: 'ada' }))
    adaOnA.sendEnvelope(['s', 1, 'room'])
    await until(() => envelopesOf(adaOnA).some((envelope) => envelope[0] === 'r'), 'her second device subscribed')
    // Let a batch interval pass: her second device changes nothing the others see.
    await new Promise((resolve) => setTimeout(resolve, 150))
    await eventually(async () => (await b.app.sessions.members('room')).count, 2, 'two members')
    t.equal(batches(watcher, 'room').length, 2, 'no second join for ada')
    const list = await a.app.sessions.members('room')
    t.same(list.members.map((member) => member.id).sort(), ['ada', self?.id].sort(), 'ada once, from both nodes')
    adaOnB.socket.close()
    await eventually(async () => (await a.app.sessions.members('room')).count, 2, 'ada is still there from node a')
    adaOnA.socket.close()
    await until(() => batches(watcher, 'room').some((batch) => JSON.stringify(batch[3]) === JSON.stringify([{ id: 'ada', user: true }])), 'ada leaves')
    t.equal(batches(watcher, 'room').filter((batch) => (batch[3] as unknown[]).length > 0).length, 1, 'one leave for ada')
    watcher.sendEnvelope(['v', 2, 'room'])
    await until(() => envelopesOf(watcher).some((envelope) => envelope[0] === 'r' && envelope[1] === 2), 'member list')
    t.same(envelopesOf(watcher).find((envelope) => envelope[0] === 'r' && envelope[1] === 2), ['r', 2, 1, { members: [self], count: 1 }])
  })

  t.test('a client churning on another node costs the room at most one join and one leave per interval', async (t) => {
    const interval = 100
    const [a, b] = await startTopicNodes(t, 2, { url: redis.url, prefix: uniquePrefix(), nodeTimeout: NODE_TIMEOUT }, { presenceInterval: interval, rateLimit: false }) as [StartedApp, StartedApp]
    const watcher = await openTab(t, a)
    watcher.sendEnvelope(['s', 1, 'room'])
    await until(() => batches(watcher, 'room').length === 1, 'its own join')
    const churner = await openTab(t, b)
    const churnerId = sessionIdOf(churner.cookie)
    const started = Date.now()
    const rounds = 100
    // Each change waits for its reply: with Redis a node knows a change once it reads it back.
    for (let i = 0; i < 2 * rounds; i++) {
      churner.sendEnvelope([i % 2 === 0 ? 's' : 'u', i + 10, 'room'])
      await until(() => envelopesOf(churner).some((envelope) => envelope[0] === 'r' && envelope[1] === i + 10), 'the reply')
      await until(() => b.app.sessions.topicsOf(churnerId).includes('room') === (i % 2 === 0), 'the node read the change back')
    }
    await new Promise((resolve) => setTimeout(resolve, 3 * interval))
    const events = batches(watcher, 'room').slice(1).reduce((sum, batch) => sum + (batch[2] as unknown[]).length + (batch[3] as unknown[]).length, 0)
    const windows = Math.ceil((Date.now() - started) / interval) + 1
    t.ok(events <= 2 * windows, `${events} events for ${2 * rounds} changes on another node: at most a join and a leave per interval`)
    t.ok(events < rounds / 2, 'far fewer events than changes')
    t.equal((await a.app.sessions.members('room')).count, 1, 'the churner is gone')
  })

  t.test('binary and aged messages are not in a history read back from Redis; a member list is capped', async (t) => {
    const [a, b] = await startTopicNodes(t, 2, { url: redis.url, prefix: uniquePrefix(), nodeTimeout: NODE_TIMEOUT }, { topicHistory: { limit: 10, maxAge: 1500 }, maxMembers: 2 }) as [StartedApp, StartedApp]
    // A wide age, so 'old' and then 'new' are still young when a loaded machine reads them back.
    a.app.sessions.publish('room', 'old')
    await eventually(async () => (await a.app.sessions.history('room')).messages.length, 1, 'kept')
    const [old] = (await a.app.sessions.history('room')).messages
    a.app.sessions.publish('room', Buffer.from([1, 2]))
    await new Promise((resolve) => setTimeout(resolve, 1600))
    a.app.sessions.publish('room', 'new')
    await eventually(async () => (await b.app.sessions.history('room')).messages.map((message) => message.data), ['new'], 'the old one aged out')
    const since = await b.app.sessions.history('room', { since: `${String(old?.position).split('.')[0]}.0` })
    t.same(since.messages.map((message) => message.data), ['new'])
    t.equal(since.missed, 2, 'the aged one and the binary one are missed')
    const tabs = []
    for (let i = 0; i < 3; i++) {
      const tab = await openTab(t, i === 0 ? a : b)
      tab.sendEnvelope(['s', 1, 'room'])
      tabs.push(tab)
    }
    await eventually(async () => (await a.app.sessions.members('room')).count, 3, 'three members')
    const list = await b.app.sessions.members('room')
    t.equal(list.members.length, 2, 'at most maxMembers')
    t.equal(list.count, 3)
  })

  t.test('the members of a killed node leave when the cluster reaps it', async (t) => {
    const prefix = uniquePrefix()
    const [a] = await startTopicNodes(t, 1, { url: redis.url, prefix, nodeTimeout: NODE_TIMEOUT }) as [StartedApp]
    const child = spawn(process.execPath, ['test/fixtures/cluster-node.mjs', redis.url, prefix, SECRET, JSON.stringify({ topicPresence: true, presenceInterval: 50 })], { stdio: ['ignore', 'pipe', 'inherit'] })
    t.teardown(() => { child.kill('SIGKILL') })
    const [line] = await once(child.stdout, 'data') as [Buffer]
    const port = Number(line.toString().trim())
    const watcher = await openTab(t, a)
    watcher.sendEnvelope(['s', 1, 'room'])
    await until(() => batches(watcher, 'room').length === 1, 'its own join')
    const remote = await openGlueSocket(`ws://127.0.0.1:${port}/ws`)
    t.teardown(() => remote.socket.terminate())
    a.app.sessions.subscribe(sessionIdOf(remote.setCookie[0]?.split(';')[0] as string), 'room')
    await until(() => batches(watcher, 'room').length === 2, 'the remote member joins')
    await eventually(async () => (await a.app.sessions.members('room')).count, 2, 'two members')
    child.kill('SIGKILL')
    await until(() => batches(watcher, 'room').length === 3, 'the killed node\'s member leaves', 10000)
    t.same((batches(watcher, 'room')[2] as unknown[])[2], [], 'a leave')
    t.equal(((batches(watcher, 'room')[2] as unknown[])[3] as unknown[]).length, 1)
    t.equal((await a.app.sessions.members('room')).count, 1)
  })
})

t.test('subscription changes in quick succession end as the last one asked, though the node learns them from Redis', { skip: redisSkip }, async (t) => {
  const redis = await startRedis(t)
  const [node] = await startTopicNodes(t, 1, { url: redis.url, prefix: uniquePrefix() }, { topicPresence: false, topicHistory: undefined }) as [StartedApp]
  const client = await openTab(t, node)
  const sessionId = sessionIdOf(client.cookie)
  let id = 0
  const replied = async (ids: number[]): Promise<void> => {
    await until(() => ids.every((wanted) => envelopesOf(client).some((envelope) => envelope[0] === 'r' && envelope[1] === wanted)), `replies ${ids.join(', ')}`)
  }
  for (let round = 0; round < 20; round++) {
    const topic = `t${round}`
    // Sent together: the unsubscribe reaches the node before it has read the subscribe back.
    client.sendEnvelope(['s', ++id, topic])
    client.sendEnvelope(['u', ++id, topic])
    await replied([id - 1, id])
    // One after the other: the unsubscribe follows the subscribe's reply at once.
    client.sendEnvelope(['s', ++id, `${topic}-b`])
    await replied([id])
    client.sendEnvelope(['u', ++id, `${topic}-b`])
    await replied([id])
    // And the other way round, ending subscribed.
    client.sendEnvelope(['s', ++id, `${topic}-c`])
    await replied([id])
    client.sendEnvelope(['u', ++id, `${topic}-c`])
    client.sendEnvelope(['s', ++id, `${topic}-c`])
    await replied([id - 1, id])
  }
  const expected = Array.from({ length: 20 }, (_, round) => `t${round}-c`).sort()
  t.same((await node.app.sessions.clusterTopicsOf(sessionId)).sort(), expected, 'Redis holds the last change of each topic')
  await until(() => node.app.sessions.topicsOf(sessionId).length === 20, 'the node reads the changes back')
  t.same(node.app.sessions.topicsOf(sessionId).sort(), expected, 'and so does the node')
  node.app.sessions.publish('t0', 'gone')
  node.app.sessions.publish('t0-c', 'kept')
  await until(() => envelopesOf(client).some((envelope) => envelope[0] === 't'), 'a topic message')
  t.same(envelopesOf(client).filter((envelope) => envelope[0] === 't').map((envelope) => envelope[3]), ['kept'])
})

t.test('a client that fires subscribes faster than the node reads them back from Redis still gets at most maxTopicsPerSession', { skip: redisSkip }, async (t) => {
  const redis = await startRedis(t)
  const [node] = await startTopicNodes(t, 1, { url: redis.url, prefix: uniquePrefix() }, { topicPresence: false, topicHistory: undefined, maxTopicsPerSession: 5 }) as [StartedApp]
  const client = await openTab(t, node)
  const sessionId = sessionIdOf(client.cookie)
  // Sent together: none of them is back from Redis when the next arrives, so the joins on their way must count.
  for (let id = 1; id <= 20; id++) client.sendEnvelope(['s', id, `flood-${id}`])
  await until(() => envelopesOf(client).filter((envelope) => envelope[0] === 'r').length === 20, 'twenty replies')
  const replies = envelopesOf(client).filter((envelope) => envelope[0] === 'r')
  t.equal(replies.filter((envelope) => envelope[2] === 1).length, 5, 'five granted')
  t.equal(replies.filter((envelope) => envelope[2] === 0 && (envelope[3] as { code?: string }).code === 'GLUE_TOO_MANY_TOPICS').length, 15, 'the rest refused by the node, never written to Redis')
  t.equal((await node.app.sessions.clusterTopicsOf(sessionId)).length, 5, 'Redis holds five')
})
