import { test, type Test } from 'tap'
import { errors } from '../plugin/index.js'
import { envelopesOf, openGlueSocket, sessionIdOf, startApp, until, cookiePair, type GlueSocket, type StartOptions } from './helpers/index.js'

// Topic history on one node: what a subscribing client asks for, in order before live messages,
// with an explicit gap when it is gone, and the bounds on what is kept and what a client may ask.

async function start (t: Test, glue: StartOptions['glue'] = {}) {
  const started = await startApp({ glue: { authorizeSubscribe: () => true, topicHistory: { limit: 5 }, ...glue } })
  t.teardown(() => started.app.close())
  return started
}

async function tab (t: Test, wsUrl: string, cookie?: string): Promise<GlueSocket> {
  const socket = await openGlueSocket(wsUrl, cookie === undefined ? {} : { headers: { cookie } })
  t.teardown(() => socket.socket.terminate())
  return socket
}

/** The envelopes after the welcome once `count` have arrived. */
async function envelopes (socket: GlueSocket, count: number): Promise<unknown[][]> {
  await until(() => socket.received.length - 1 >= count, `${count} envelopes`)
  return envelopesOf(socket)
}

test('a subscriber asking for history gets the kept messages in order, with positions, before live ones', async (t) => {
  const { app, wsUrl } = await start(t)
  for (let i = 1; i <= 7; i++) app.sessions.publish('room', { i })
  const client = await tab(t, wsUrl)
  client.sendEnvelope(['s', 1, 'room', {}])
  const got = await envelopes(client, 6)
  t.same(got[0], ['r', 1, 1, 'room'], 'the reply comes first')
  const history = got.slice(1, 6)
  t.same(history.map((envelope) => envelope[0]), ['h', 'h', 'h', 'h', 'h'])
  t.same(history.map((envelope) => envelope[3]), [{ i: 3 }, { i: 4 }, { i: 5 }, { i: 6 }, { i: 7 }], 'the last 5 (the limit), oldest first')
  const positions = history.map((envelope) => String(envelope[2]))
  const epoch = positions[0]?.split('.')[0]
  t.same(positions, [3, 4, 5, 6, 7].map((n) => `${epoch}.${n}`), 'positions count the topic\'s messages')
  app.sessions.publish('room', 'live')
  const [live] = (await envelopes(client, 7)).slice(6)
  t.same(live, ['t', 1, 'room', 'live', `${epoch}.8`], 'a live message carries its position after its data')
})

test('the last k, a clamped request, and a topic without history', async (t) => {
  const { app, wsUrl } = await start(t, { topicHistory: (topic) => topic === 'kept' ? { limit: 3 } : undefined })
  for (let i = 1; i <= 4; i++) {
    app.sessions.publish('kept', i)
    app.sessions.publish('other', i)
  }
  const client = await tab(t, wsUrl)
  client.sendEnvelope(['s', 1, 'kept', { last: 2 }])
  const first = await envelopes(client, 3)
  t.same(first.slice(1).map((envelope) => envelope[3]), [3, 4], 'the newest two')
  const second = await tab(t, wsUrl)
  second.sendEnvelope(['s', 1, 'kept', { last: 1e9 }])
  const clamped = await envelopes(second, 4)
  t.same(clamped.slice(1).map((envelope) => envelope[3]), [2, 3, 4], 'a request for 10^9 is clamped to the topic\'s limit')
  second.sendEnvelope(['s', 2, 'other', {}])
  second.sendEnvelope(['s', 3, 'other2', { since: 'abc.1' }])
  const rest = (await envelopes(second, 6)).slice(4)
  t.same(rest, [['r', 2, 1, 'other'], ['r', 3, 1, 'other2']], 'a topic without history answers with the reply alone')
  t.equal(app.sessions.publish('other', 'x'), 1, 'topics without history publish as before')
  t.same((await envelopes(second, 7)).at(-1), ['t', 1, 'other', 'x'], 'with no position')
})

test('since a position: only what came after, a counted gap when it was trimmed, an unknown one from another epoch', async (t) => {
  const { app, wsUrl } = await start(t)
  app.sessions.publish('room', 'a')
  const [first] = (await app.sessions.history('room')).messages
  const epoch = String(first?.position).split('.')[0] as string
  for (const data of ['b', 'c']) app.sessions.publish('room', data)
  const client = await tab(t, wsUrl)
  client.sendEnvelope(['s', 1, 'room', { since: `${epoch}.1` }])
  t.same((await envelopes(client, 3)).slice(1), [['h', 'room', `${epoch}.2`, 'b'], ['h', 'room', `${epoch}.3`, 'c']])
  for (let i = 0; i < 10; i++) app.sessions.publish('room', i)
  const late = await tab(t, wsUrl)
  late.sendEnvelope(['s', 1, 'room', { since: `${epoch}.2` }])
  const got = (await envelopes(late, 7)).slice(1)
  t.same(got[0], ['l', 'room', 6], 'positions 3 to 8 are gone (limit 5): a gap of 6, before the history')
  t.same(got.slice(1).map((envelope) => envelope[3]), [5, 6, 7, 8, 9])
  const other = await tab(t, wsUrl)
  other.sendEnvelope(['s', 1, 'room', { since: 'Zm9yZWlnbg.4', last: 2 }])
  t.same((await envelopes(other, 4)).slice(1), [['l', 'room', null], ['h', 'room', `${epoch}.12`, 8], ['h', 'room', `${epoch}.13`, 9]],
    'a position of another epoch (a restart) cannot be filled: an unknown gap, then the newest')
  const current = await tab(t, wsUrl)
  current.sendEnvelope(['s', 1, 'room', { since: `${epoch}.13` }])
  await envelopes(current, 1)
  app.sessions.publish('room', 'next')
  t.same((await envelopes(current, 2)), [['r', 1, 1, 'room'], ['t', 1, 'room', 'next', `${epoch}.14`]], 'up to date: nothing missed, no gap')
})

test('no duplicate and no loss at the seam when publishes race the subscribe', async (t) => {
  const { app, wsUrl } = await start(t, { topicHistory: { limit: 10_000 } })
  const total = 2000
  let published = 0
  const publisher = setInterval(() => {
    for (let i = 0; i < 20 && published < total; i++) app.sessions.publish('race', ++published)
    if (published >= total) clearInterval(publisher)
  }, 0)
  t.teardown(() => clearInterval(publisher))
  await until(() => published >= 200, 'publishing started')
  const clients: GlueSocket[] = []
  for (let i = 0; i < 5; i++) {
    const client = await tab(t, wsUrl)
    client.sendEnvelope(['s', 1, 'race', {}])
    clients.push(client)
    await until(() => published >= 200 + 300 * (i + 1) || published >= total, 'more publishes')
  }
  await until(() => published >= total, 'every publish')
  for (const [i, client] of clients.entries()) {
    await until(() => envelopesOf(client).filter((envelope) => envelope[0] === 'h' || envelope[0] === 't').length >= total, `client ${i} got everything`)
    const data = envelopesOf(client).filter((envelope) => envelope[0] === 'h' || envelope[0] === 't').map((envelope) => envelope[0] === 'h' ? envelope[3] : envelope[3])
    t.same(data, Array.from({ length: total }, (_, n) => n + 1), `client ${i}: every message once, in order, history then live`)
  }
})

test('binary and volatile messages are not kept; history requests are counted', async (t) => {
  const { app, wsUrl } = await start(t)
  app.sessions.publish('room', 'a')
  app.sessions.publish('room', Buffer.from([1]))
  app.sessions.publish('room', 'v', { volatile: true })
  app.sessions.publish('room', 'b')
  const history = await app.sessions.history('room')
  t.same(history.messages.map((message) => message.data), ['a', 'b'])
  t.match(history.messages.map((message) => message.position), [/\.1$/, /\.3$/], 'a binary message takes a position but is not kept')
  const since = await app.sessions.history('room', { since: history.messages[0]?.position })
  t.same(since, { messages: [history.messages[1]], missed: 1 }, 'the binary one counts as missed after a position')
  const client = await tab(t, wsUrl)
  client.sendEnvelope(['s', 1, 'room', { last: 1 }])
  await envelopes(client, 2)
  t.equal(app.sessions.stats().historyRequests, 1)
  t.equal(app.sessions.stats().historyMessages, 1)
})

test('sessions.history: all, last, since, and bad input', async (t) => {
  const { app } = await start(t)
  t.same(await app.sessions.history('empty'), { messages: [], missed: 0 })
  for (let i = 1; i <= 3; i++) app.sessions.publish('room', { i })
  const all = await app.sessions.history('room')
  t.same(all.messages.map((message) => message.data), [{ i: 1 }, { i: 2 }, { i: 3 }])
  t.same((await app.sessions.history('room', { last: 1 })).messages.map((message) => message.data), [{ i: 3 }])
  t.throws(() => app.sessions.history('room', { last: -1 }), errors.FST_WSGLUE_INVALID_HISTORY_REQUEST)
  t.throws(() => app.sessions.history('room', { since: 'not a position' }), errors.FST_WSGLUE_INVALID_HISTORY_REQUEST)
  t.throws(() => app.sessions.history('room', { every: true } as never), errors.FST_WSGLUE_INVALID_HISTORY_REQUEST)
  t.throws(() => app.sessions.history(''), errors.FST_WSGLUE_INVALID_TOPIC)
})

test('a malformed history request is answered GLUE_BAD_ENVELOPE and the socket stays open', async (t) => {
  const { wsUrl } = await start(t)
  const client = await tab(t, wsUrl)
  for (const [id, history] of [[1, []], [2, { last: 1.5 }], [3, { since: 12 }], [4, { all: true }], [5, null]] as Array<[number, unknown]>) {
    client.sendEnvelope(['s', id, 'room', history])
  }
  client.sendEnvelope(['s', 6, 'room', {}, 'extra'])
  const got = await envelopes(client, 6)
  for (const [i, envelope] of got.entries()) {
    t.same(envelope, ['r', i + 1, 0, { code: 'GLUE_BAD_ENVELOPE', message: i < 5 ? 'invalid history request' : 'subscription envelope needs an id and a topic' }])
  }
})

test('all histories together stay within maxHistoryBytes: the oldest message of the node goes first', async (t) => {
  const { app, wsUrl } = await start(t, { topicHistory: { limit: 1000 }, maxHistoryBytes: 20_000 })
  const text = 'x'.repeat(900)
  for (let i = 0; i < 10; i++) app.sessions.publish('first', `${i}${text}`)
  for (let i = 0; i < 10; i++) app.sessions.publish('second', `${i}${text}`)
  const first = await app.sessions.history('first')
  const second = await app.sessions.history('second')
  t.ok(first.messages.length + second.messages.length <= 20, 'about a kilobyte each: at most 20 fit')
  t.equal(second.messages.length, 10, 'the newest topic keeps all of its messages')
  t.ok(first.messages.length < 10, 'the older topic lost its oldest ones')
  const client = await tab(t, wsUrl)
  const epoch = String(second.messages[0]?.position).split('.')[0] as string
  client.sendEnvelope(['s', 1, 'first', { since: `${String(first.messages[0]?.position).split('.')[0]}.0` }])
  const got = await envelopes(client, 2)
  t.same(got[1], ['l', 'first', 10 - first.messages.length], 'what the budget dropped is a counted gap')
  t.not(epoch, '')
})

test('messages past maxAge are gone: a counted gap after a position', async (t) => {
  const { app } = await start(t, { topicHistory: { limit: 10, maxAge: 300 } })
  app.sessions.publish('room', 'old')
  const [old] = (await app.sessions.history('room')).messages
  app.sessions.publish('room', 'old2')
  await new Promise((resolve) => setTimeout(resolve, 400))
  app.sessions.publish('room', 'new')
  const after = await app.sessions.history('room', { since: `${String(old?.position).split('.')[0]}.0` })
  t.same(after.messages.map((message) => message.data), ['new'])
  t.equal(after.missed, 2)
})

test('a topicHistory function that throws or returns junk keeps nothing, logged once', async (t) => {
  const { app, logs } = await start(t, {
    topicHistory: (topic) => {
      if (topic === 'bad') throw new Error('boom')
      return { limit: -1 }
    }
  })
  app.sessions.publish('bad', 1)
  app.sessions.publish('bad', 2)
  app.sessions.publish('junk', 1)
  t.same(await app.sessions.history('bad'), { messages: [], missed: 0 })
  t.same(await app.sessions.history('junk'), { messages: [], missed: 0 })
  t.equal(logs.lines.filter((line) => line.msg === 'topicHistory failed; the topic is treated as having none').length, 1, 'logged once')
})

test('a history request costs the client\'s rate limit in proportion to its size', async (t) => {
  const { app, wsUrl } = await start(t, { topicHistory: { limit: 2000 }, rateLimit: { messagesPerSecond: 1, burst: 15 } })
  for (let i = 0; i < 2000; i++) app.sessions.publish('room', i)
  const client = await tab(t, wsUrl)
  client.sendEnvelope(['s', 1, 'room', {}])
  await until(() => client.received.length >= 2002, 'the history')
  // 2000 messages cost 20 tokens: the bucket (15, one spent on the subscribe) is empty now. Five more
  // messages overflow it unless the history took over 4 s; without the charge, 14 tokens would be left.
  for (let i = 0; i < 5; i++) client.sendEnvelope(['m', 'one more'])
  t.same(await client.closed, { code: 1008, reason: 'rate limit exceeded' })
  const cheap = await tab(t, wsUrl)
  cheap.sendEnvelope(['s', 1, 'room', { last: 50 }])
  await until(() => cheap.received.length >= 52, 'a short history')
  cheap.sendEnvelope(['m', 'fine'])
  cheap.sendEnvelope(['s', 2, 'x'])
  t.same((await envelopes(cheap, 52)).at(-1), ['r', 2, 1, 'x'], 'a short history costs nothing extra')
  t.ok(app.sessions.stats().rateLimitCloses >= 1)
})

test('a session resuming its outbox and asking since its position gets each message once', async (t) => {
  const { app, wsUrl } = await start(t)
  const first = await tab(t, wsUrl)
  const cookie = cookiePair(first.setCookie[0])
  first.sendEnvelope(['s', 1, 'room', {}])
  await envelopes(first, 1)
  app.sessions.publish('room', 'a')
  const [, live] = await envelopes(first, 2)
  const position = String(live?.[4])
  first.socket.terminate()
  await until(() => !app.sessions.has(sessionIdOf(cookie)), 'detached')
  app.sessions.publish('room', 'b')
  const back = await openGlueSocket(`${wsUrl}?glue_resume=${first.welcome.epoch}.1`, { headers: { cookie } })
  t.teardown(() => back.socket.terminate())
  back.sendEnvelope(['s', 2, 'room', { since: position }])
  const got = await envelopes(back, 3)
  t.same(got[0]?.slice(0, 4), ['t', 2, 'room', 'b'], 'the outbox replays b')
  t.same(got.slice(1), [['r', 2, 1, 'room'], ['h', 'room', position.replace(/\.1$/, '.2'), 'b']], 'the history repeats it with the same position: a client drops it by position')
})
