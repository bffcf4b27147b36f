import { test, type Test } from 'tap'
import { createSessionId } from '../plugin/index.js'
import { envelopesOf, forgeCookie, openGlueSocket, sessionIdOf, startApp, until, cookiePair, type GlueSocket, type StartOptions } from './helpers/index.js'

// Presence per topic on one node: who is subscribed, join and leave events to the topic's
// subscribers, member lists, and the bounds that keep a churning client from flooding a room.

type T = Test

async function start (t: T, glue: StartOptions['glue'] = {}) {
  const started = await startApp({ glue: { authorizeSubscribe: () => true, topicPresence: true, presenceInterval: 30, ...glue } })
  t.teardown(() => started.app.close())
  return started
}

async function tab (t: T, wsUrl: string, cookie?: string): Promise<GlueSocket> {
  const socket = await openGlueSocket(wsUrl, cookie === undefined ? {} : { headers: { cookie } })
  t.teardown(() => socket.socket.terminate())
  return socket
}

/** Subscribes and waits for the reply. */
async function join (socket: GlueSocket, topic: string, id = 1): Promise<void> {
  socket.sendEnvelope(['s', id, topic])
  await until(() => envelopesOf(socket).some((envelope) => envelope[0] === 'r' && envelope[1] === id), 'subscribed')
}

/** The presence batches a socket received for a topic. */
function batches (socket: GlueSocket, topic: string): unknown[][] {
  return envelopesOf(socket).filter((envelope) => envelope[0] === 'p' && envelope[1] === topic)
}

/** Asks for the member list and resolves with the reply's value. */
async function members (socket: GlueSocket, topic: string, id: number): Promise<unknown[]> {
  socket.sendEnvelope(['v', id, topic])
  await until(() => envelopesOf(socket).some((envelope) => envelope[0] === 'r' && envelope[1] === id), 'member list')
  return envelopesOf(socket).find((envelope) => envelope[0] === 'r' && envelope[1] === id) as unknown[]
}

const user = (id: string): string => forgeCookie(createSessionId(), { userId: id })

test('subscribers see who joins and leaves, each member once however many tabs and sessions it has', async (t) => {
  const { app, wsUrl } = await start(t)
  const adaCookie = user('ada')
  const ada = await tab(t, wsUrl, adaCookie)
  await join(ada, 'room')
  await until(() => batches(ada, 'room').length === 1, 'ada sees herself join')
  t.same(batches(ada, 'room')[0], ['p', 'room', [{ id: 'ada', user: true }], []])
  const anonymous = await tab(t, wsUrl)
  await join(anonymous, 'room')
  await until(() => batches(ada, 'room').length === 2, 'a join')
  const [, , joined] = batches(ada, 'room')[1] as [string, string, Array<{ id: string, user: boolean }>]
  t.equal(joined.length, 1)
  t.equal(joined[0]?.user, false, 'an anonymous member')
  t.not(joined[0]?.id, sessionIdOf(cookiePair(anonymous.setCookie[0])), 'its id is not the session id')
  t.notMatch(sessionIdOf(cookiePair(anonymous.setCookie[0])), joined[0]?.id as string)
  // Ada in a second tab and on a second device (another session bound to her): still one member.
  const adaTab = await tab(t, wsUrl, adaCookie)
  const adaPhone = await tab(t, wsUrl, user('ada'))
  await join(adaPhone, 'room')
  const list = await members(anonymous, 'room', 2)
  t.same(list, ['r', 2, 1, { members: [{ id: 'ada', user: true }, joined[0]], count: 2 }], 'ada is listed once')
  t.same(await app.sessions.members('room'), { members: [{ id: 'ada', user: true }, joined[0]], count: 2 }, 'the server sees the same list')
  adaTab.socket.close()
  adaPhone.socket.close()
  ada.socket.close()
  await until(() => batches(anonymous, 'room').some((batch) => JSON.stringify(batch[3]) === JSON.stringify([{ id: 'ada', user: true }])), 'ada leaves once her last socket is gone')
  const seen = batches(anonymous, 'room')
  t.equal(seen.filter((batch) => (batch[3] as unknown[]).length > 0).length, 1, 'one leave event for ada')
  t.same(await app.sessions.members('room'), { members: [joined[0]], count: 1 })
  t.equal(app.sessions.stats().presenceEvents, 3, 'ada joined, the anonymous member joined, ada left')
})

test('member lists: only for subscribers of a topic that shows presence, capped at maxMembers', async (t) => {
  const { app, wsUrl } = await start(t, { topicPresence: (topic) => topic.startsWith('room'), maxMembers: 2 })
  const clients: GlueSocket[] = []
  for (let i = 0; i < 4; i++) {
    const client = await tab(t, wsUrl)
    await join(client, 'room')
    clients.push(client)
  }
  const first = clients[0] as GlueSocket
  const reply = await members(first, 'room', 5) as [string, number, number, { members: unknown[], count: number }]
  t.equal(reply[3].members.length, 2, 'at most maxMembers')
  t.equal(reply[3].count, 4, 'and how many there are')
  t.same(await members(first, 'room-other', 6), ['r', 6, 0, { code: 'GLUE_NOT_SUBSCRIBED', message: 'subscribe to the topic to see its members' }])
  await join(first, 'news', 7)
  t.same(await members(first, 'news', 8), ['r', 8, 0, { code: 'GLUE_NO_PRESENCE', message: 'this topic does not show its members' }])
  t.same(await app.sessions.members('news'), { members: [], count: 0 }, 'a topic without presence has no members')
  first.sendEnvelope(['v', 9])
  await until(() => envelopesOf(first).some((envelope) => envelope[1] === 9), 'bad envelope reply')
  t.same(envelopesOf(first).find((envelope) => envelope[1] === 9), ['r', 9, 0, { code: 'GLUE_BAD_ENVELOPE', message: 'subscription envelope needs an id and a topic' }])
  t.equal(batches(first, 'news').length, 0, 'no presence events for a topic without presence')
})

test('more changes than maxMembers in one interval: one batch that says to ask again', async (t) => {
  const { app, wsUrl } = await start(t, { maxMembers: 2, presenceInterval: 200 })
  const watcher = await tab(t, wsUrl)
  await join(watcher, 'room')
  await until(() => batches(watcher, 'room').length === 1, 'its own join')
  const ids: string[] = []
  for (let i = 0; i < 3; i++) ids.push(sessionIdOf(cookiePair((await tab(t, wsUrl)).setCookie[0])))
  for (const id of ids) app.sessions.subscribe(id, 'room')
  await until(() => batches(watcher, 'room').length === 2, 'the batch')
  t.same(batches(watcher, 'room')[1], ['p', 'room', null, null])
  t.equal(app.sessions.stats().presenceOverflows, 1)
})

test('a client churning its subscription, or its socket, costs the room at most one join and one leave per interval', async (t) => {
  const interval = 100
  const { app, wsUrl } = await start(t, { presenceInterval: interval, rateLimit: false })
  const watcher = await tab(t, wsUrl)
  await join(watcher, 'room')
  await until(() => batches(watcher, 'room').length === 1, 'its own join')
  const churner = await tab(t, wsUrl)
  const started = Date.now()
  const rounds = 300
  for (let i = 0; i < rounds; i++) {
    churner.sendEnvelope(['s', 2 * i + 10, 'room'])
    churner.sendEnvelope(['u', 2 * i + 11, 'room'])
  }
  await until(() => envelopesOf(churner).filter((envelope) => envelope[0] === 'r').length === 2 * rounds, 'every change answered')
  // Reconnect churn: a member of the room whose tab reconnects in a loop.
  const cookie = cookiePair(churner.setCookie[0])
  app.sessions.subscribe(sessionIdOf(cookie), 'room')
  for (let i = 0; i < 20; i++) {
    const again = await tab(t, wsUrl, cookie)
    again.socket.terminate()
    await new Promise((resolve) => { again.socket.once('close', resolve) })
  }
  churner.socket.terminate()
  const elapsed = Date.now() - started
  // Let the last batch go out, then count what the watcher saw.
  await new Promise((resolve) => setTimeout(resolve, 3 * interval))
  const events = batches(watcher, 'room').slice(1).reduce((sum, batch) => sum + (batch[2] as unknown[]).length + (batch[3] as unknown[]).length, 0)
  const windows = Math.ceil((Date.now() - started) / interval) + 1
  t.ok(events <= 2 * windows, `${events} events for ${2 * rounds} subscription changes and 20 reconnects over ${elapsed} ms: at most one join and one leave per interval`)
  t.ok(events < 2 * rounds / 4, 'far fewer events than changes')
  t.ok(batches(watcher, 'room').length - 1 <= windows, 'at most one batch per interval')
})
