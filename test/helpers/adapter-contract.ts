// One conformance suite for every adapter, as socket.io's adapters share one: test/adapter-memory.test.ts
// runs it on a one-node "cluster", test/adapter-redis.test.ts on three nodes joined through a real Redis.
// What an adapter does on its own (Redis outages, the codec, reaping dead nodes) stays in its own file.
import type { Test } from 'tap'
import { errors, type ClusterCounts, type GlueAdapter, type GlueOptions } from '../../plugin/index.js'
import { sessionIdOf, type StartedApp } from './server.js'
import { dataOf, envelopesOf, eventually, openSocket, openTab, resumeQuery, until, type GlueSocket, type Tab } from './sockets.js'

/** One node of a cluster under test: an app listening with the plugin, and the adapter it was given. */
export interface ContractNode extends StartedApp {
  readonly adapter: GlueAdapter
}

/**
 * Starts the nodes of one cluster, each an app with the plugin, `options` and an adapter of its own,
 * all joined together (a memory "cluster" has exactly one node); closes them in `t`'s teardown.
 */
export type ClusterFactory = (t: Test, options: GlueOptions) => Promise<readonly ContractNode[]>

// No pings to wait for; client subscriptions are granted unless a test says otherwise.
const BASE_OPTIONS: GlueOptions = { heartbeatInterval: 0, authorizeSubscribe: () => true }

/** `count` nodes of the cluster, repeating when it has fewer: with one node every role is that node. */
function pick (nodes: readonly ContractNode[], count: number): ContractNode[] {
  return Array.from({ length: count }, (_, i) => nodes[i % nodes.length] as ContractNode)
}

/**
 * What send/broadcast/publish/close return when called on `node`: a local adapter delivers at once
 * and counts the sockets; a sequenced one delivers once the cluster has numbered the message, and returns 0.
 */
function reach (node: ContractNode, sockets: number): number {
  return node.adapter.sequenced ? 0 : sockets
}

/** A local adapter answers cluster queries at once; a sequenced one may take a round trip to settle. */
async function expectCounts (t: Test, node: ContractNode, expected: ClusterCounts, what: string): Promise<void> {
  if (node.adapter.sequenced) await eventually(() => node.app.sessions.clusterCounts(), expected, what)
  else t.same(await node.app.sessions.clusterCounts(), expected, what)
}

async function expectPresence (t: Test, node: ContractNode, sessionId: string, expected: number, what: string): Promise<void> {
  if (node.adapter.sequenced) await eventually(() => node.app.sessions.presence(sessionId), expected, what)
  else t.equal(await node.app.sessions.presence(sessionId), expected, what)
}

/** Registers the conformance tests on `t`; each starts a cluster of its own through `factory`. */
export function adapterContract (t: Test, factory: ClusterFactory): void {
  const cluster = async (t: Test, options: GlueOptions = {}): Promise<readonly ContractNode[]> =>
    await factory(t, { ...BASE_OPTIONS, ...options })

  t.test('send from one node reaches every tab of the session on every node, with one sequence', async (t) => {
    const [a, b, c] = pick(await cluster(t), 3) as [ContractNode, ContractNode, ContractNode]
    const first = await openTab(t, b)
    const second = await openTab(t, c, first.cookie)
    const other = await openTab(t, a)
    const sessionId = sessionIdOf(first.cookie)
    t.equal(a.app.sessions.send(sessionId, { n: 1 }), reach(a, 2), a.adapter.sequenced ? 'delivery is asynchronous' : 'returns how many sockets')
    a.app.sessions.send(sessionId, 'two')
    b.app.sessions.send(sessionId, Buffer.from([7]))
    const got1 = [await first.nextEnvelope(), await first.nextEnvelope()]
    const got2 = [await second.nextEnvelope(), await second.nextEnvelope()]
    t.same(got1.map((e) => e[2]), [{ n: 1 }, 'two'])
    t.same(got2, got1, 'both tabs see the same envelopes and sequence numbers')
    t.ok((got1[1]?.[1] as number) > (got1[0]?.[1] as number), 'sequence numbers increase')
    const binary1 = await first.nextMessage()
    const binary2 = await second.nextMessage()
    t.same(binary1, binary2, 'binary envelopes carry the same sequence number too')
    t.equal((binary1 as Buffer).at(-1), 7)
    c.app.sessions.send(sessionIdOf(other.cookie), 'marker')
    t.same((await other.nextEnvelope()).slice(2), ['marker'], 'another session got nothing before')
  })

  t.test('broadcast and publish reach every socket on every node exactly once', async (t) => {
    const nodes = await cluster(t)
    const [a, b, c] = pick(nodes, 3) as [ContractNode, ContractNode, ContractNode]
    const tabs = [await openTab(t, a), await openTab(t, b), await openTab(t, c)]
    tabs.push(await openTab(t, b, tabs[0]?.cookie))
    const raw = await openSocket(c.wsUrl)
    t.teardown(() => raw.socket.terminate())
    await expectCounts(t, a, { nodes: nodes.length, sessions: 4, sockets: 5 }, 'presence')
    a.app.sessions.broadcast('from-a')
    b.app.sessions.broadcast('from-b')
    c.app.sessions.broadcast('from-c', { except: sessionIdOf(tabs[1]?.cookie as string) })
    a.app.sessions.broadcast('end')
    for (const socket of tabs) await until(() => dataOf(socket).length === (socket === tabs[1] ? 3 : 4), 'every broadcast')
    await until(() => raw.received.length === 4, 'every broadcast (raw)')
    // Anything sent twice would be in the stream before this one.
    a.app.sessions.broadcast('final')
    for (const socket of tabs) await until(() => dataOf(socket).includes('final'), 'final marker')
    const before = (socket: GlueSocket): unknown[] => dataOf(socket).filter((data) => data !== 'final')
    // Three nodes broadcast at once: the adapter decides their order, the same one for every socket.
    const order = before(tabs[0] as Tab)
    t.same([...order].sort(), ['end', 'from-a', 'from-b', 'from-c'], 'each broadcast once')
    t.same(before(tabs[2] as Tab), order, 'in the same order on every node')
    t.same(before(tabs[1] as Tab), order.filter((data) => data !== 'from-c'), 'except skips that session on every node')
    t.same(before(tabs[3] as Tab), order, 'the second tab of a session gets each message once')
    await until(() => raw.received.includes('final'), 'final marker (raw)')
    t.same(raw.received.slice(0, -1), order, 'raw clients get raw frames')

    // Subscriptions are cluster-wide: made through one node, effective on all.
    const subscriber = tabs[1] as Tab
    subscriber.sendEnvelope(['s', 1, 'news'])
    await until(() => envelopesOf(subscriber).some((e) => e[0] === 'r' && e[1] === 1), 'subscribe reply')
    t.ok(c.app.sessions.subscribe(sessionIdOf(tabs[2]?.cookie as string), 'news'), 'server-side subscribe from another node')
    for (const node of [a, b, c]) await eventually(() => node.app.sessions.clusterSubscriberCount('news'), 2, 'subscriber count, cluster-wide')
    await eventually(() => a.app.sessions.clusterTopicsOf(sessionIdOf(subscriber.cookie)), ['news'], 'topics, cluster-wide')
    a.app.sessions.publish('news', { headline: 1 })
    await until(() => dataOf(subscriber).length === 5 && dataOf(tabs[2] as Tab).length === 6, 'published')
    t.same(envelopesOf(subscriber).at(-1)?.slice(0, 1).concat(envelopesOf(subscriber).at(-1)?.slice(2) ?? []), ['t', 'news', { headline: 1 }])
    t.same(dataOf(tabs[0] as Tab).length, 5, 'non-subscribers get nothing')
    subscriber.sendEnvelope(['u', 2, 'news'])
    await until(() => envelopesOf(subscriber).some((e) => e[0] === 'r' && e[1] === 2), 'unsubscribe reply')
    t.same(envelopesOf(subscriber).find((e) => e[0] === 'r' && e[1] === 2), ['r', 2, 1, true])
    await eventually(() => c.app.sessions.clusterSubscriberCount('news'), 1, 'subscriber count after unsubscribe')
  })

  t.test('volatile messages reach the open sockets of every node unsequenced and are never replayed', async (t) => {
    const nodes = await cluster(t)
    const [a, b] = pick(nodes, 2) as [ContractNode, ContractNode]
    const first = await openTab(t, a)
    const second = await openTab(t, b, first.cookie)
    const raw = await openSocket(b.wsUrl)
    t.teardown(() => raw.socket.terminate())
    const sessionId = sessionIdOf(first.cookie)
    a.app.sessions.send(sessionId, 'cursor', { volatile: true })
    a.app.sessions.broadcast('tick', { volatile: true })
    a.app.sessions.send(sessionId, 'kept')
    for (const tab of [first, second]) {
      t.same(await tab.nextEnvelope(), ['m', 0, 'cursor'])
      t.same(await tab.nextEnvelope(), ['m', 0, 'tick'])
      const kept = await tab.nextEnvelope()
      t.same([kept[0], kept[2]], ['m', 'kept'])
      t.ok((kept[1] as number) > 0, 'a sequenced message has a number')
    }
    t.same(envelopesOf(second), envelopesOf(first), 'the same envelopes on every tab')
    t.equal(await raw.nextMessage(), 'tick', 'raw clients get volatile data as is')
    const lastSeq = envelopesOf(first).at(-1)?.[1] as number
    first.socket.close()
    second.socket.close()
    await Promise.all([first.closed, second.closed])
    await until(() => nodes.every((node) => !node.app.sessions.has(sessionId)), 'no tab left on any node')
    a.app.sessions.send(sessionId, 'lost on purpose', { volatile: true })
    a.app.sessions.send(sessionId, 'after')
    await a.adapter.settled()
    const again = await openTab(t, b, first.cookie, resumeQuery(first.welcome.epoch, lastSeq))
    await until(() => dataOf(again).length === 1, 'the replay')
    t.same(dataOf(again), ['after'], 'only the sequenced message is replayed')
    t.notOk(envelopesOf(again).some((e) => e[0] === 'g'), 'a volatile message missed is no gap')
  })

  t.test('close ends the session on every node; presence and counts are cluster-wide', async (t) => {
    const nodes = await cluster(t)
    const [a, b, c] = pick(nodes, 3) as [ContractNode, ContractNode, ContractNode]
    const first = await openTab(t, b)
    const second = await openTab(t, c, first.cookie)
    const sessionId = sessionIdOf(first.cookie)
    await expectPresence(t, a, sessionId, 2, 'presence')
    await expectCounts(t, c, { nodes: nodes.length, sessions: 1, sockets: 2 }, 'counts')
    t.equal(a.app.sessions.has(sessionId), a === b || a === c, 'has() is about this node')
    t.equal(a.app.sessions.close(sessionId, 4001, 'bye'), reach(a, 2))
    t.same(await first.closed, { code: 4001, reason: 'bye' })
    t.same(await second.closed, { code: 4001, reason: 'bye' })
    await eventually(() => b.app.sessions.presence(sessionId), 0, 'presence after close')
    await eventually(() => b.app.sessions.clusterCounts(), { nodes: nodes.length, sessions: 0, sockets: 0 }, 'counts after close')
  })

  t.test('presence and clusterCounts count the sockets of every node', async (t) => {
    const nodes = await cluster(t)
    const [a, b] = pick(nodes, 2) as [ContractNode, ContractNode]
    await expectCounts(t, a, { nodes: nodes.length, sessions: 0, sockets: 0 }, 'no socket yet')
    const first = await openTab(t, a)
    await openTab(t, b, first.cookie)
    const sessionId = sessionIdOf(first.cookie)
    for (const node of nodes) {
      await expectPresence(t, node, sessionId, 2, 'two tabs')
      t.equal(await node.app.sessions.presence('nobody'), 0)
      await expectCounts(t, node, { nodes: nodes.length, sessions: 1, sockets: 2 }, 'one session, two tabs')
      t.throws(() => node.app.sessions.presence(42 as unknown as string), errors.FST_WSGLUE_INVALID_SESSION_ID)
    }
  })

  t.test('subscribe, unsubscribe, topicsOf and subscriberCount agree on every node', async (t) => {
    const nodes = await cluster(t)
    const [a, b, c] = pick(nodes, 3) as [ContractNode, ContractNode, ContractNode]
    const one = await openTab(t, a)
    const two = await openTab(t, b)
    const oneAgain = await openTab(t, c, one.cookie)
    const idOne = sessionIdOf(one.cookie)
    const idTwo = sessionIdOf(two.cookie)
    t.ok(c.app.sessions.subscribe(idOne, 'x'))
    t.ok(a.app.sessions.subscribe(idOne, 'y'))
    t.ok(b.app.sessions.subscribe(idTwo, 'x'))
    for (const node of nodes) {
      await eventually(() => node.app.sessions.clusterSubscriberCount('x'), 2, 'x, cluster-wide')
      await eventually(() => node.app.sessions.clusterSubscriberCount('y'), 1, 'y, cluster-wide')
      await eventually(async () => (await node.app.sessions.clusterTopicsOf(idOne)).sort(), ['x', 'y'], 'topics of one, cluster-wide')
      await eventually(() => node.app.sessions.clusterTopicsOf(idTwo), ['x'], 'topics of two, cluster-wide')
    }
    // A node knows the topics of the sessions it holds, synchronously.
    await until(() => a.app.sessions.topicsOf(idOne).length === 2 && c.app.sessions.topicsOf(idOne).length === 2 && b.app.sessions.topicsOf(idTwo).length === 1, 'topics where the sessions are')
    t.same(c.app.sessions.topicsOf(idOne).sort(), ['x', 'y'])
    t.same(b.app.sessions.topicsOf(idTwo), ['x'])
    c.app.sessions.publish('x', 'to both')
    a.app.sessions.publish('x', 'not to one', { except: idOne })
    b.app.sessions.publish('y', 'to one')
    a.app.sessions.broadcast('marker')
    await until(() => [one, two, oneAgain].every((tab) => dataOf(tab).includes('marker')), 'the marker after them')
    // Two nodes publish at once: compare what arrived, not in which order.
    const topicMessages = (tab: Tab): string[] => envelopesOf(tab).filter((e) => e[0] === 't').map((e) => `${String(e[2])}:${String(e[3])}`).sort()
    t.same(topicMessages(one), ['x:to both', 'y:to one'], 'each subscribed topic once, except skips its session')
    t.same(topicMessages(two), ['x:not to one', 'x:to both'], 'only the topics of the session')
    t.equal(dataOf(one).length, 3, 'nothing twice')
    t.equal(dataOf(two).length, 3, 'nothing twice')
    t.same(envelopesOf(oneAgain), envelopesOf(one), 'every tab of a session gets the same envelopes, sequence numbers included')
    t.ok(c.app.sessions.unsubscribe(idOne, 'y'), 'was subscribed')
    for (const node of nodes) await eventually(() => node.app.sessions.clusterSubscriberCount('y'), 0, 'unsubscribed, cluster-wide')
    await until(() => a.app.sessions.topicsOf(idOne).length === 1, 'unsubscribed where the session is')
    for (const node of nodes) {
      t.notOk(node.app.sessions.unsubscribe(idOne, 'y'), 'not subscribed any more')
      t.same(await node.app.sessions.clusterTopicsOf(idOne), ['x'])
      t.equal(await node.app.sessions.clusterSubscriberCount('x'), 2)
    }
    t.same(a.app.sessions.topicsOf(idOne), ['x'])
  })

  t.test('a client subscription the authorizer refuses joins no topic on any node', async (t) => {
    const nodes = await cluster(t, { authorizeSubscribe: (_session, topic) => topic !== 'secret' })
    const [a, b] = pick(nodes, 2) as [ContractNode, ContractNode]
    const client = await openTab(t, b)
    const sessionId = sessionIdOf(client.cookie)
    client.sendEnvelope(['s', 1, 'secret'])
    t.same(await client.nextEnvelope(), ['r', 1, 0, { code: 'GLUE_SUBSCRIBE_REFUSED', message: 'subscription refused' }])
    client.sendEnvelope(['s', 2, 'open'])
    t.same(await client.nextEnvelope(), ['r', 2, 1, 'open'])
    for (const node of nodes) {
      await eventually(() => node.app.sessions.clusterSubscriberCount('open'), 1, 'subscribed, cluster-wide')
      t.equal(await node.app.sessions.clusterSubscriberCount('secret'), 0)
      t.same(await node.app.sessions.clusterTopicsOf(sessionId), ['open'])
    }
    t.same(b.app.sessions.topicsOf(sessionId), ['open'], 'the node holding the session knows')
    a.app.sessions.publish('secret', 'hidden')
    a.app.sessions.publish('open', 'shown')
    t.same((await client.nextEnvelope()).slice(2), ['open', 'shown'], 'only the granted topic delivers')
  })

  t.test('settled() is undefined until something is emitted; once it resolves, a resume on any node replays it', async (t) => {
    const nodes = await cluster(t)
    const [a, b] = pick(nodes, 2) as [ContractNode, ContractNode]
    for (const node of nodes) t.equal(node.adapter.settled(), undefined, 'nothing pending on a new node')
    const first = await openTab(t, a)
    t.equal(a.adapter.settled(), undefined, 'a socket opening emits nothing')
    const sessionId = sessionIdOf(first.cookie)
    first.socket.close()
    await first.closed
    for (let i = 1; i <= 3; i++) a.app.sessions.send(sessionId, i)
    const pending = a.adapter.settled()
    if (a.adapter.sequenced) t.ok(pending instanceof Promise, 'a sequenced adapter has messages in flight')
    else t.equal(pending, undefined, 'a local adapter delivers in the same tick')
    await pending
    const resumed = await openTab(t, b, first.cookie, resumeQuery(first.welcome.epoch, first.welcome.seq))
    await until(() => dataOf(resumed).length === 3, 'replayed')
    t.same(dataOf(resumed), [1, 2, 3])
    t.notOk(envelopesOf(resumed).some((e) => e[0] === 'g'), 'no gap')
  })

  t.test('a client resumes on another node and gets what it missed, in order, once', async (t) => {
    const [a, b] = pick(await cluster(t), 2) as [ContractNode, ContractNode]
    const first = await openTab(t, a)
    const sessionId = sessionIdOf(first.cookie)
    a.app.sessions.send(sessionId, 1)
    a.app.sessions.send(sessionId, 2)
    await until(() => dataOf(first).length === 2, 'first two')
    const lastSeq = envelopesOf(first).at(-1)?.[1] as number
    first.socket.close()
    await first.closed
    // One sender, so the cluster order is the call order (two nodes' sends may interleave either way).
    b.app.sessions.send(sessionId, 3)
    b.app.sessions.broadcast(4)
    b.app.sessions.send(sessionId, 5)
    // Everything above has its place in the cluster order once a later query of the same node has answered.
    await b.app.sessions.presence(sessionId)
    const resumed = await openTab(t, b, first.cookie, resumeQuery(first.welcome.epoch, lastSeq))
    t.same(resumed.welcome, { epoch: first.welcome.epoch, seq: lastSeq })
    b.app.sessions.send(sessionId, 6)
    await until(() => dataOf(resumed).length === 4, 'replayed and live')
    t.same(dataOf(resumed), [3, 4, 5, 6], 'missed messages first, then live ones')
    const seqs = envelopesOf(resumed).map((e) => e[1] as number)
    t.same([...seqs].sort((x, y) => x - y), seqs, 'in sequence order')
    t.notOk(envelopesOf(resumed).some((e) => e[0] === 'g'), 'no gap')
  })

  t.test('a resume beyond the outbox limit reports the gap', async (t) => {
    const [a, b] = pick(await cluster(t, { outboxLimit: 2 }), 2) as [ContractNode, ContractNode]
    const first = await openTab(t, a)
    const sessionId = sessionIdOf(first.cookie)
    first.socket.close()
    await first.closed
    for (let i = 1; i <= 5; i++) a.app.sessions.send(sessionId, i)
    // A witness on b: once it has a message sent after the five, b has read past them too.
    const witness = await openTab(t, b)
    a.app.sessions.send(sessionIdOf(witness.cookie), 'after')
    await until(() => dataOf(witness).includes('after'), 'b read past the five')
    const resumed = await openTab(t, b, first.cookie, resumeQuery(first.welcome.epoch, first.welcome.seq))
    await until(() => dataOf(resumed).length === 2, 'the last two')
    t.same(envelopesOf(resumed)[0], ['g', 3], 'three messages are reported missing')
    t.same(dataOf(resumed), [4, 5])
  })

  t.test('a resume from another epoch is told of a gap', async (t) => {
    const [a] = pick(await cluster(t), 1) as [ContractNode]
    const resumed = await openTab(t, a, undefined, resumeQuery('AAAAAAAA', 5))
    t.not(resumed.welcome.epoch, 'AAAAAAAA')
    t.same(await resumed.nextEnvelope(), ['g', null])
  })

  t.test('sessions expire cluster-wide after the grace period, ending their subscriptions', async (t) => {
    const [a, b] = pick(await cluster(t, { sessionGrace: 200 }), 2) as [ContractNode, ContractNode]
    const first = await openTab(t, a)
    const sessionId = sessionIdOf(first.cookie)
    b.app.sessions.subscribe(sessionId, 'room')
    await eventually(() => a.app.sessions.clusterSubscriberCount('room'), 1, 'subscribed everywhere')
    first.socket.close()
    for (const node of [a, b]) await eventually(() => node.app.sessions.clusterSubscriberCount('room'), 0, 'expired everywhere')
    t.same(await b.app.sessions.clusterTopicsOf(sessionId), [])
    t.same(a.app.sessions.topicsOf(sessionId), [])
  })

  t.test('invalid arguments throw on every node before anything reaches the adapter', async (t) => {
    const nodes = await cluster(t, { maxTopicsPerSession: 1 })
    const [a, b] = pick(nodes, 2) as [ContractNode, ContractNode]
    const tab = await openTab(t, a)
    const sessionId = sessionIdOf(tab.cookie)
    const circular: Record<string, unknown> = {}
    circular.self = circular
    for (const { app, adapter } of nodes) {
      t.throws(() => app.sessions.send('', 'x'), errors.FST_WSGLUE_INVALID_SESSION_ID)
      t.throws(() => app.sessions.send(sessionId, circular), errors.FST_WSGLUE_INVALID_DATA)
      t.throws(() => app.sessions.broadcast(10n), errors.FST_WSGLUE_INVALID_DATA)
      t.throws(() => app.sessions.broadcast('x', { except: 7 as unknown as string }), errors.FST_WSGLUE_INVALID_SESSION_ID)
      t.throws(() => app.sessions.publish('', 'x'), errors.FST_WSGLUE_INVALID_TOPIC)
      t.throws(() => app.sessions.subscribe(sessionId, 'x'.repeat(256)), errors.FST_WSGLUE_INVALID_TOPIC)
      t.throws(() => app.sessions.unsubscribe(sessionId, '\ud800'), errors.FST_WSGLUE_INVALID_TOPIC)
      t.throws(() => app.sessions.close(sessionId, 1001), errors.FST_WSGLUE_INVALID_CLOSE_CODE)
      t.throws(() => app.sessions.close(sessionId, 4000, 'x'.repeat(124)), errors.FST_WSGLUE_INVALID_CLOSE_REASON)
      t.throws(() => app.sessions.presence(42 as unknown as string), errors.FST_WSGLUE_INVALID_SESSION_ID)
      t.equal(adapter.settled(), undefined, 'nothing reached the adapter')
    }
    t.ok(b.app.sessions.subscribe(sessionId, 'one'))
    for (const node of nodes) await eventually(() => node.app.sessions.clusterTopicsOf(sessionId), ['one'], 'subscribed, cluster-wide')
    await until(() => a.app.sessions.topicsOf(sessionId).length === 1, 'known where the session is')
    // The node holding the session refuses at once; any other leaves the check to the shared store.
    t.throws(() => a.app.sessions.subscribe(sessionId, 'two'), errors.FST_WSGLUE_TOO_MANY_TOPICS)
    for (const { app } of nodes) {
      try {
        app.sessions.subscribe(sessionId, 'three')
      } catch (err) {
        t.equal((err as { code?: string }).code, 'FST_WSGLUE_TOO_MANY_TOPICS')
      }
      t.equal(app.sessions.send('no-such-session', 'x'), 0, 'an unknown session is not an error')
    }
    await Promise.all(nodes.map(async (node) => { await node.adapter.settled() }))
    for (const node of nodes) t.same(await node.app.sessions.clusterTopicsOf(sessionId), ['one'], 'no node went beyond maxTopicsPerSession')
    a.app.sessions.send(sessionId, 'after')
    t.same((await tab.nextEnvelope()).slice(2), ['after'], 'nothing was sent before')
  })
}
