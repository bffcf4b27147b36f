import { test, type Test } from 'tap'
import { GlueClient, type GlueClientOptions, type GlueTopicEvent } from '../plugin/client/glue-client.js'
import { closeClient, cookieWebSocket, nextEvent, onlySession, startServer, until, type GlueServer } from './helpers/index.js'

// The browser client's side of topic history and presence, under Node with real ws sockets.

const FAST: GlueClientOptions = { reconnectionDelay: 20, reconnectionDelayMax: 50, randomizationFactor: 0 }

async function open (t: Test, server: GlueServer, options: GlueClientOptions = {}): Promise<GlueClient> {
  const client = new GlueClient({ ...FAST, url: server.url, WebSocket: cookieWebSocket().WebSocket, ...options })
  t.teardown(() => closeClient(client))
  await nextEvent(client, 'open')
  return client
}

function collect (client: GlueClient, topic: string): GlueTopicEvent[] {
  const events: GlueTopicEvent[] = []
  client.onTopic(topic, (event) => { events.push(event) })
  return events
}

test('subscribe with history: kept messages first, flagged, with positions; then live ones', async (t) => {
  const server = await startServer({ authorizeSubscribe: () => true, topicHistory: { limit: 3 } })
  t.teardown(() => server.app.close())
  for (let i = 1; i <= 4; i++) server.app.sessions.publish('room', i)
  const client = await open(t, server)
  const events = collect(client, 'room')
  await client.subscribe('room', { history: true })
  await until(() => events.length === 3, 'the history')
  t.same(events.map((event) => [event.data, event.history]), [[2, true], [3, true], [4, true]])
  t.match(events[2]?.position, /^[\w-]+\.4$/)
  server.app.sessions.publish('room', 5)
  await until(() => events.length === 4, 'live')
  t.same([events[3]?.data, events[3]?.history], [5, false])
  t.match(events[3]?.position, /\.5$/)
  const last = await open(t, server)
  const lastEvents = collect(last, 'room')
  await last.subscribe('room', { history: { last: 1 } })
  await until(() => lastEvents.length === 1, 'the last one')
  t.equal(lastEvents[0]?.data, 5)
})

test('after a reconnect the client asks only for what came after its position, even when its session was lost', async (t) => {
  // No grace period: the session's own resume cannot fill anything; the topic's history can.
  const server = await startServer({ authorizeSubscribe: () => true, topicHistory: { limit: 100 }, sessionGrace: 0 })
  t.teardown(() => server.app.close())
  const { WebSocket } = cookieWebSocket()
  const client = await open(t, server, { WebSocket })
  const events = collect(client, 'room')
  const gaps: Array<{ missed: number | null, topic?: string }> = []
  client.on('gap', (gap) => { gaps.push(gap) })
  await client.subscribe('room', { history: true })
  for (let i = 1; i <= 3; i++) server.app.sessions.publish('room', i)
  await until(() => events.length === 3, 'live')
  const sessionId = onlySession(server)
  for (const socket of server.app.sessions.get(sessionId)?.sockets ?? []) socket.terminate()
  await nextEvent(client, 'close')
  for (let i = 4; i <= 6; i++) server.app.sessions.publish('room', i)
  await until(() => events.length === 6, 'what was missed, then nothing twice', 5000)
  server.app.sessions.publish('room', 7)
  await until(() => events.length === 7, 'live again')
  t.same(events.map((event) => event.data), [1, 2, 3, 4, 5, 6, 7], 'each once, in order')
  t.same(events.map((event) => event.history), [false, false, false, true, true, true, false])
  t.same(gaps, [{ missed: null }], 'the session\'s own gap, none for the topic')
})

test('a gap in a topic\'s history is a gap event with the topic', async (t) => {
  const server = await startServer({ authorizeSubscribe: () => true, topicHistory: { limit: 2 } })
  t.teardown(() => server.app.close())
  const first = await open(t, server)
  const events = collect(first, 'room')
  await first.subscribe('room', { history: true })
  server.app.sessions.publish('room', 'a')
  await until(() => events.length === 1, 'a')
  for (let i = 0; i < 5; i++) server.app.sessions.publish('room', i)
  await until(() => events.length === 6, 'all')
  const other = await open(t, server)
  const gap = nextEvent(other, 'gap', (event) => event.topic !== undefined)
  const otherEvents = collect(other, 'room')
  other.subscribe('room', { history: true }).catch(() => {})
  await until(() => otherEvents.length === 2, 'what is kept')
  t.same(otherEvents.map((event) => event.data), [3, 4])
  // Its reconnect asks from its position: more was published meanwhile than the topic keeps.
  for (const socket of [...server.app.sessions].flatMap((session) => [...session.sockets])) socket.terminate()
  for (let i = 5; i < 10; i++) server.app.sessions.publish('room', i)
  t.same(await gap, { missed: 3, topic: 'room' }, 'positions 7 to 9 are gone (limit 2)')
})

test('members() and the join and leave events', async (t) => {
  const server = await startServer({ authorizeSubscribe: () => true, topicPresence: true, presenceInterval: 20 })
  t.teardown(() => server.app.close())
  const watcher = await open(t, server)
  const joins: string[] = []
  const leaves: string[] = []
  watcher.on('join', ({ topic, member }) => { if (topic === 'room') joins.push(member.id) })
  watcher.on('leave', ({ topic, member }) => { if (topic === 'room') leaves.push(member.id) })
  await watcher.subscribe('room')
  await until(() => joins.length === 1, 'its own join')
  const other = await open(t, server)
  await other.subscribe('room')
  await until(() => joins.length === 2, 'the other joins')
  const list = await watcher.members('room')
  t.equal(list.count, 2)
  t.same(list.members.map((member) => member.id).sort(), [...joins].sort())
  t.ok(list.members.every((member) => !member.user), 'anonymous members')
  await other.unsubscribe('room')
  await until(() => leaves.length === 1, 'the other leaves')
  t.equal(leaves[0], joins[1])
  await t.rejects(watcher.members('elsewhere'), { code: 'GLUE_NOT_SUBSCRIBED' })
  await closeClient(watcher)
  await t.rejects(watcher.members('room'), { code: 'GLUE_CLOSED' })
})

test('members() needs an open connection, and a topic without presence is refused', async (t) => {
  const server = await startServer({ authorizeSubscribe: () => true })
  t.teardown(() => server.app.close())
  const client = await open(t, server)
  await client.subscribe('room')
  await t.rejects(client.members('room'), { code: 'GLUE_NO_PRESENCE' })
  const offline = new GlueClient({ ...FAST, url: server.url, WebSocket: cookieWebSocket().WebSocket, autoConnect: false })
  offline.connect()
  t.teardown(() => closeClient(offline))
  await t.rejects(offline.members('room'), { code: 'GLUE_DISCONNECTED' })
})
