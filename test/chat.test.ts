import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { test, type Test } from 'tap'
import { BOT_NAME } from '../example/chat/bot.js'
import { buildChatApp, DEV_SECRET, MAX_TEXT, ROOM_HISTORY, roomTopic, type ChatOptions, type Room } from '../example/chat/app.js'
import {
  createBrowser,
  createLogCapture,
  envelopesOf,
  eventually,
  openGlueSocket,
  redisSkip,
  startBuiltServer,
  setEnv,
  startRedis,
  until,
  type GlueSocket
} from './helpers/index.js'

const SECRET = 'chat-test-secret-that-is-long-enough-012345'

interface Chat {
  readonly app: FastifyInstance
  readonly http: string
  readonly ws: string
}

async function start (t: Test, options: ChatOptions = {}): Promise<Chat> {
  const app = await buildChatApp({ logger: false, secret: SECRET, ...options })
  t.teardown(() => app.close())
  const http = await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, http, ws: http.replace('http:', 'ws:') + '/ws' }
}

interface Answer {
  readonly ok: boolean
  readonly value: unknown
}

let nextId = 1

/** Sends a `q` (request), `s` (subscribe, with `history` if given) or `v` (members) envelope and resolves with its reply. */
async function call (socket: GlueSocket, kind: 'q' | 's' | 'v', payload: unknown, history?: unknown): Promise<Answer> {
  const id = nextId++
  socket.sendEnvelope(history === undefined ? [kind, id, payload] : [kind, id, payload, history])
  const isReply = (envelope: unknown[]): boolean => envelope[0] === 'r' && envelope[1] === id
  await until(() => envelopesOf(socket).some(isReply), `the reply to ${kind} ${id}`)
  const reply = envelopesOf(socket).find(isReply) as unknown[]
  return { ok: reply[2] === 1, value: reply[3] }
}

/** The texts of the history (`h`) envelopes a socket received for a topic, in order. */
function historyTexts (socket: GlueSocket, topic: string): string[] {
  return envelopesOf(socket).filter((envelope) => envelope[0] === 'h' && envelope[1] === topic).map((envelope) => (envelope[3] as { text: string }).text)
}

/** The member ids of a member list reply, sorted. */
function memberIds (answer: Answer): string[] {
  return (answer.value as { members: Array<{ id: string }> }).members.map((member) => member.id).sort()
}

/** The data of the topic messages a socket received, in order. */
function roomMessages (socket: GlueSocket): unknown[] {
  return envelopesOf(socket).filter((envelope) => envelope[0] === 't').map((envelope) => envelope[3])
}

/** A browser logged in as `name`, with a socket that joined `rooms`. */
async function member (t: Test, chat: Chat, name: string, rooms: readonly Room[] = ['general']): Promise<GlueSocket> {
  const browser = createBrowser(chat.http)
  const login = await browser.fetch('/login', { method: 'POST', body: { name } })
  t.same(login.body, { user: name }, `${name} logs in`)
  const socket = await browser.open(t, chat.ws)
  for (const room of rooms) t.same(await call(socket, 's', roomTopic(room)), { ok: true, value: roomTopic(room) }, `${name} joins #${room}`)
  return socket
}

test('serves the page from static files with a strict content security policy; the page loads the shipped client', async (t) => {
  const chat = await start(t)
  const page = await fetch(chat.http + '/', { headers: { accept: 'text/html' } })
  t.equal(page.status, 200)
  t.match(page.headers.get('content-type'), /^text\/html/)
  t.match(page.headers.get('content-security-policy'), /default-src 'self'.*frame-ancestors 'none'/)
  t.match(page.headers.get('set-cookie'), /^sid=[^;]+; .*HttpOnly/, 'the page mints the session cookie')
  const html = await page.text()
  t.match(html, '<script type="module" src="/chat.js"></script>')
  t.notMatch(html, /<script>|<style>|\son[a-z]+=/, 'no inline script or handler: the policy would block it')
  for (const id of ['login', 'name', 'rooms', 'messages', 'composer', 'text', 'post', 'ask', 'error', 'logout', 'members', 'members-more', 'state']) t.match(html, `id="${id}"`)

  const script = await fetch(chat.http + '/chat.js')
  t.match(script.headers.get('content-type'), /javascript/)
  const source = await script.text()
  t.match(source, "import { GlueClient } from '/_glue/glue-client.js'")
  t.notMatch(source, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/, 'user text never becomes HTML')
  t.equal((await fetch(chat.http + '/_glue/glue-client.js')).status, 200, 'the plugin serves the client')
  t.equal((await fetch(chat.http + '/chat.css')).status, 200)

  t.same(await (await fetch(chat.http + '/rooms')).json(), {
    rooms: ['general', 'random', 'help'],
    topics: ['room:general', 'room:random', 'room:help'],
    bot: { name: BOT_NAME, room: 'help' },
    maxText: MAX_TEXT,
    history: { limit: 100, maxAge: 3_600_000 }
  })
  t.same(await (await fetch(chat.http + '/me')).json(), { user: null, rooms: [] })
})

test('a post reaches every member of its room with the author from the session, and no one else', async (t) => {
  const chat = await start(t)
  const ada = await member(t, chat, 'ada', ['general'])
  const bob = await member(t, chat, 'bob', ['general', 'random'])
  const carol = await member(t, chat, 'carol', ['random'])

  // A client-sent author is no part of the schema: the validator removes it, and the session names the author.
  const posted = await call(ada, 'q', { op: 'post', room: 'general', text: '  hello bob  ', author: 'mallory' })
  t.same(posted, { ok: true, value: { posted: true } })
  const expected = { room: 'general', author: 'ada', text: 'hello bob', bot: false }
  await until(() => roomMessages(bob).length === 1, 'bob gets the post')
  t.match(roomMessages(bob), [expected])
  t.match(roomMessages(ada), [expected], 'the author sees the post too')
  t.match((roomMessages(ada)[0] as { at: string }).at, /^\d{4}-\d\d-\d\dT/)

  t.same(await call(carol, 'q', { op: 'post', room: 'random', text: 'hi' }), { ok: true, value: { posted: true } })
  await until(() => roomMessages(carol).length === 1, 'carol gets her post')
  // Publishing is in order on one node, so ada's earlier post would have come first.
  t.match(roomMessages(carol), [{ room: 'random', author: 'carol', text: 'hi' }], 'carol, not in #general, got nothing of it')
  await until(() => roomMessages(bob).length === 2, 'bob gets the #random post')
  t.equal(roomMessages(ada).length, 1, 'ada is not in #random')
})

test('refuses invalid posts with GLUE_INVALID_DATA before the app sees them, and publishes nothing', async (t) => {
  const chat = await start(t)
  const ada = await member(t, chat, 'ada', ['general'])
  const invalid: Array<[string, unknown]> = [
    ['text over the cap', { op: 'post', room: 'general', text: 'x'.repeat(MAX_TEXT + 1) }],
    ['blank text', { op: 'post', room: 'general', text: ' \n\t ' }],
    ['empty text', { op: 'post', room: 'general', text: '' }],
    ['no text', { op: 'post', room: 'general' }],
    ['text not a string', { op: 'post', room: 'general', text: { html: '<b>' } }],
    ['unknown room', { op: 'post', room: 'secret', text: 'hi' }],
    ['unknown op', { op: 'delete', room: 'general', text: 'hi' }],
    ['not an object', 'hi']
  ]
  for (const [what, data] of invalid) {
    const answer = await call(ada, 'q', data)
    t.match(answer, { ok: false, value: { code: 'GLUE_INVALID_DATA', message: /^data/ } }, what)
  }
  t.equal(chat.app.sessions.stats().invalidMessages, invalid.length, 'each one counted')
  const longest = [...'é'.repeat(MAX_TEXT)].join('')
  t.same(await call(ada, 'q', { op: 'post', room: 'general', text: longest }), { ok: true, value: { posted: true } }, `${MAX_TEXT} characters pass`)
  await until(() => roomMessages(ada).length === 1, 'the valid post')
  t.match(roomMessages(ada), [{ text: longest }], 'only the valid post was published')
})

test('drops plain messages: posts go through requests only', async (t) => {
  const chat = await start(t)
  const ada = await member(t, chat, 'ada', ['general'])
  ada.sendEnvelope(['m', { op: 'post', room: 'general', text: 'sneaky' }])
  await until(() => chat.app.sessions.stats().invalidMessages === 1, 'the plain message is counted as invalid')
  t.same(await call(ada, 'q', { op: 'post', room: 'general', text: 'through a request' }), { ok: true, value: { posted: true } }, 'the socket stays open')
  await until(() => roomMessages(ada).length === 1, 'the post')
  t.match(roomMessages(ada), [{ text: 'through a request' }])
})

test('only logged-in sessions join rooms, only the listed rooms, and they post only where they joined', async (t) => {
  const chat = await start(t)
  const anonymous = await openGlueSocket(chat.ws)
  t.teardown(() => anonymous.socket.terminate())
  t.match(await call(anonymous, 's', roomTopic('general')), { ok: false, value: { code: 'GLUE_SUBSCRIBE_REFUSED' } }, 'anonymous: no room')
  t.match(await call(anonymous, 'q', { op: 'post', room: 'general', text: 'hi' }), { ok: false, value: { code: 'NOT_LOGGED_IN' } })

  const ada = await member(t, chat, 'ada', [])
  for (const topic of ['room:secret', 'general', 'news', 'room:general ']) {
    t.match(await call(ada, 's', topic), { ok: false, value: { code: 'GLUE_SUBSCRIBE_REFUSED' } }, `no topic ${JSON.stringify(topic)}`)
  }
  t.match(await call(ada, 'q', { op: 'post', room: 'general', text: 'hi' }), { ok: false, value: { code: 'NOT_IN_ROOM', message: 'Join #general before posting to it' } })
  t.same(chat.app.sessions.subscriberCount(roomTopic('general')), 0)
})

test('limits posts per session: past the burst a post is refused RATE_LIMITED, the socket stays open, others post on', async (t) => {
  const chat = await start(t, { postLimit: { postsPerSecond: 0.001, burst: 3 } })
  const ada = await member(t, chat, 'ada', ['help'])
  const bob = await member(t, chat, 'bob', ['help'])
  for (let i = 1; i <= 3; i++) t.same(await call(ada, 'q', { op: 'post', room: 'help', text: `post ${i}` }), { ok: true, value: { posted: true } })
  t.match(await call(ada, 'q', { op: 'ask', room: 'help', text: 'time?' }), { ok: false, value: { code: 'RATE_LIMITED', message: /too fast/ } }, 'questions count too')
  t.match(await call(ada, 'q', { op: 'post', room: 'help', text: 'post 4' }), { ok: false, value: { code: 'RATE_LIMITED' } })
  t.same(await call(bob, 'q', { op: 'post', room: 'help', text: 'bob' }), { ok: true, value: { posted: true } }, 'the budget is per session')
  await until(() => roomMessages(bob).length === 4, 'the accepted posts')
  t.same(roomMessages(bob).map((message) => (message as { text: string }).text), ['post 1', 'post 2', 'post 3', 'bob'])
  t.equal(ada.socket.readyState, ada.socket.OPEN)
})

test('the bot answers a question in #help through the request, and posts the answer to the room after the question', async (t) => {
  const chat = await start(t)
  const ada = await member(t, chat, 'ada', ['general', 'help'])
  const bob = await member(t, chat, 'bob', ['help'])
  const answer = 'The rooms are #general, #random, #help.'
  t.same(await call(ada, 'q', { op: 'ask', room: 'help', text: 'Which rooms are there?' }), { ok: true, value: { answer } })
  await until(() => roomMessages(bob).length === 2, 'bob sees the question and the answer')
  t.match(roomMessages(bob), [
    { room: 'help', author: 'ada', text: 'Which rooms are there?', bot: false },
    { room: 'help', author: BOT_NAME, text: answer, bot: true }
  ])
  t.match(await call(ada, 'q', { op: 'ask', room: 'general', text: 'time?' }), { ok: false, value: { code: 'NO_BOT_HERE', message: `${BOT_NAME} answers in #help only` } })
  t.match(await call(ada, 'q', { op: 'ask', room: 'help', text: 'what time is it' }), { ok: true, value: { answer: /^It is \d\d:\d\d:\d\d UTC\.$/ } })
  await until(() => roomMessages(bob).length === 4, 'the second question and answer')
  t.notOk(roomMessages(ada).some((message) => (message as { room: string }).room === 'general'), 'nothing reached #general')
})

test('login refuses bad names and the bot\'s name; /me shows the user of the cookie', async (t) => {
  const chat = await start(t)
  const browser = createBrowser(chat.http)
  for (const name of ['', '   ', 'x'.repeat(33), '<b>bold</b>', 'a\nb', BOT_NAME, 'HelpBot', 42, null]) {
    const reply = await browser.fetch('/login', { method: 'POST', body: { name } })
    t.match(reply, { status: 400, body: { code: 'BAD_NAME' } }, `refuses ${JSON.stringify(name)}`)
  }
  t.same((await browser.fetch('/me')).body, { user: null, rooms: [] })
  t.same((await browser.fetch('/login', { method: 'POST', body: { name: ' Ada L. ' } })).body, { user: 'Ada L.' }, 'trims the name')
  t.same((await browser.fetch('/me')).body, { user: 'Ada L.', rooms: [] })
})

test('/me names the rooms the session is in; logout revokes the session: its socket closes with 3000 and it leaves its rooms', async (t) => {
  const chat = await start(t)
  const browser = createBrowser(chat.http)
  await browser.fetch('/login', { method: 'POST', body: { name: 'ada' } })
  const socket = await browser.open(t, chat.ws)
  t.same(await call(socket, 's', roomTopic('general')), { ok: true, value: roomTopic('general') })
  t.same(await call(socket, 's', roomTopic('help')), { ok: true, value: roomTopic('help') })
  t.equal(chat.app.sessions.subscriberCount(roomTopic('general')), 1)
  t.same((await browser.fetch('/me')).body, { user: 'ada', rooms: ['general', 'help'] }, 'a reloaded page learns its rooms')
  t.same((await browser.fetch('/logout', { method: 'POST', body: {} })).body, { user: 'ada' })
  t.same(await socket.closed, { code: 3000, reason: 'session revoked' })
  t.equal(chat.app.sessions.subscriberCount(roomTopic('general')), 0)
  t.same((await browser.fetch('/me')).body, { user: null, rooms: [] })
})

test('a member who joins later gets the room\'s history, in order, before live posts; the room keeps its last 100', async (t) => {
  const chat = await start(t, { postLimit: { postsPerSecond: 1000, burst: 200 } })
  const ada = await member(t, chat, 'ada', ['general', 'random'])
  for (let i = 1; i <= 3; i++) t.same(await call(ada, 'q', { op: 'post', room: 'general', text: `earlier ${i}` }), { ok: true, value: { posted: true } })
  t.same(await call(ada, 'q', { op: 'post', room: 'random', text: 'elsewhere' }), { ok: true, value: { posted: true } })

  const bob = await member(t, chat, 'bob', [])
  t.same(await call(bob, 's', roomTopic('general'), {}), { ok: true, value: roomTopic('general') }, 'bob joins asking for the history')
  await until(() => historyTexts(bob, roomTopic('general')).length === 3, 'bob gets the three earlier posts')
  t.same(historyTexts(bob, roomTopic('general')), ['earlier 1', 'earlier 2', 'earlier 3'], 'oldest first, only #general\'s')
  const history = envelopesOf(bob).filter((envelope) => envelope[0] === 'h')
  t.match(history[0], ['h', roomTopic('general'), /^[\w-]+\.\d+$/, { room: 'general', author: 'ada', text: 'earlier 1', bot: false }], 'each with its position and the message as published')

  t.same(await call(ada, 'q', { op: 'post', room: 'general', text: 'live' }), { ok: true, value: { posted: true } })
  await until(() => roomMessages(bob).length === 1, 'bob gets the live post')
  const kinds = envelopesOf(bob).filter((envelope) => envelope[0] === 'h' || envelope[0] === 't').map((envelope) => envelope[0])
  t.same(kinds, ['h', 'h', 'h', 't'], 'the history came before the live post, and each message once')
  const lastKept = history[2]?.[2] as string
  const livePosition = envelopesOf(bob).find((envelope) => envelope[0] === 't')?.[4] as string
  t.ok(Number(livePosition.split('.')[1]) > Number(lastKept.split('.')[1]), 'the live post is numbered after the history')

  t.comment('a page that comes back with the position of the last post it showed gets only what came after it')
  const carol = await member(t, chat, 'carol', [])
  t.same(await call(carol, 's', roomTopic('general'), { since: history[1]?.[2] }), { ok: true, value: roomTopic('general') })
  await until(() => historyTexts(carol, roomTopic('general')).length === 2, 'carol gets what came after "earlier 2"')
  t.same(historyTexts(carol, roomTopic('general')), ['earlier 3', 'live'])
  t.equal(envelopesOf(carol).some((envelope) => envelope[0] === 'l'), false, 'nothing of it is gone: no gap')

  t.comment('the room keeps its last 100 posts: one who asks for more gets 100, and one from an old position a gap')
  for (let i = 1; i <= ROOM_HISTORY.limit + 1; i++) ada.sendEnvelope(['q', nextId++, { op: 'post', room: 'general', text: `flood ${i}` }])
  await until(() => roomMessages(bob).filter((message) => (message as { text: string }).text === `flood ${ROOM_HISTORY.limit + 1}`).length === 1, 'the last post is out')
  const dave = await member(t, chat, 'dave', [])
  t.same(await call(dave, 's', roomTopic('general'), { last: 1_000_000_000 }), { ok: true, value: roomTopic('general') })
  await until(() => historyTexts(dave, roomTopic('general')).length === ROOM_HISTORY.limit, 'dave gets the last 100')
  t.equal(historyTexts(dave, roomTopic('general'))[0], 'flood 2', 'the oldest kept is the 100th from the end')
  const erin = await member(t, chat, 'erin', [])
  t.same(await call(erin, 's', roomTopic('general'), { since: history[0]?.[2] }), { ok: true, value: roomTopic('general') })
  await until(() => historyTexts(erin, roomTopic('general')).length === ROOM_HISTORY.limit, 'erin gets what is kept')
  t.same(envelopesOf(erin).find((envelope) => envelope[0] === 'l'), ['l', roomTopic('general'), 4], 'the four posts after her position that are gone, as a gap before the history')
  t.same((await chat.app.sessions.history(roomTopic('random'))).messages.map((message) => (message.data as { text: string }).text), ['elsewhere'], 'each room keeps its own')
})

test('the members of a room are its logged-in users; members join and leave, and only a member may ask', async (t) => {
  const chat = await start(t)
  const ada = await member(t, chat, 'ada', ['general'])
  const bob = await member(t, chat, 'bob', ['general', 'random'])
  const carol = await member(t, chat, 'carol', ['random'])
  const general = await call(ada, 'v', roomTopic('general'))
  t.equal(general.ok, true)
  t.same(memberIds(general), ['ada', 'bob'], 'ada and bob are in #general')
  t.match(general.value, { members: [{ user: true }, { user: true }], count: 2 }, 'members are user ids')
  t.same(memberIds(await call(carol, 'v', roomTopic('random'))), ['bob', 'carol'])
  t.match(await call(carol, 'v', roomTopic('general')), { ok: false, value: { code: 'GLUE_NOT_SUBSCRIBED' } }, 'carol is not in #general: she may not ask who is')
  t.match(await call(carol, 'v', 'room:secret'), { ok: false, value: { code: 'GLUE_NO_PRESENCE' } }, 'no other topic shows presence')
  t.same((await chat.app.sessions.members(roomTopic('general'))).count, 2)

  t.comment('a second tab of bob is still one member; carol joins #general, then bob logs out')
  const isBatch = (envelope: unknown[]): boolean => envelope[0] === 'p' && envelope[1] === roomTopic('general')
  const heardJoining = (): string[] => envelopesOf(ada).filter(isBatch).flatMap((envelope) => (envelope[2] as Array<{ id: string }>).map((joined) => joined.id)).sort()
  // Ada and bob joined within a batch or two.
  await until(() => heardJoining().join() === 'ada,bob', 'ada hears ada and bob join')
  const before = envelopesOf(ada).filter(isBatch).length
  t.same(await call(carol, 's', roomTopic('general')), { ok: true, value: roomTopic('general') })
  await until(() => envelopesOf(ada).filter(isBatch).length > before, 'ada hears carol join')
  t.same(envelopesOf(ada).filter(isBatch).at(-1), ['p', roomTopic('general'), [{ id: 'carol', user: true }], []])
  const bobBrowser = createBrowser(chat.http)
  await bobBrowser.fetch('/login', { method: 'POST', body: { name: 'bob' } })
  const bobTab = await bobBrowser.open(t, chat.ws)
  t.same(await call(bobTab, 's', roomTopic('general')), { ok: true, value: roomTopic('general') })
  t.same(memberIds(await call(ada, 'v', roomTopic('general'))), ['ada', 'bob', 'carol'], 'bob\'s two sessions are one member')
  t.same((await bobBrowser.fetch('/logout', { method: 'POST', body: {} })).body, { user: 'bob' })
  await bobTab.closed
  t.same(memberIds(await call(ada, 'v', roomTopic('general'))), ['ada', 'bob', 'carol'], 'bob\'s first session is still in the room')
  bob.socket.close()
  await bob.closed
  await until(() => envelopesOf(ada).some((envelope) => isBatch(envelope) && JSON.stringify(envelope[3]) === '[{"id":"bob","user":true}]'), 'ada hears bob leave')
  t.same(memberIds(await call(ada, 'v', roomTopic('general'))), ['ada', 'carol'])
})

test('reads POSTS_PER_SECOND and POST_BURST from the environment and rejects bad ones', async (t) => {
  setEnv(t, 'POSTS_PER_SECOND', '0.001')
  setEnv(t, 'POST_BURST', '1')
  const chat = await start(t)
  const ada = await member(t, chat, 'ada', ['general'])
  t.same(await call(ada, 'q', { op: 'post', room: 'general', text: 'one' }), { ok: true, value: { posted: true } })
  t.match(await call(ada, 'q', { op: 'post', room: 'general', text: 'two' }), { ok: false, value: { code: 'RATE_LIMITED' } }, 'a burst of 1')
  for (const [name, value] of [['POSTS_PER_SECOND', '0'], ['POSTS_PER_SECOND', 'fast'], ['POST_BURST', '-1']] as const) {
    process.env.POSTS_PER_SECOND = '1'
    process.env.POST_BURST = '5'
    process.env[name] = value
    await t.rejects(buildChatApp({ logger: false, secret: SECRET }), { name: 'RangeError', message: `Expected ${name} to be a positive number, got "${value}"` })
  }
})

test('warns once when the built-in development secret is used', async (t) => {
  setEnv(t, 'SESSION_SECRET', undefined)
  const { stream, lines } = createLogCapture()
  const dev = await buildChatApp({ logger: { stream } })
  await dev.close()
  t.same(lines.filter((line) => /development secret/.test(String(line.msg))).map((line) => line.level), [40])
  lines.length = 0
  const configured = await buildChatApp({ logger: { stream }, secret: SECRET })
  await configured.close()
  t.equal(lines.some((line) => /development secret/.test(String(line.msg))), false, 'a secret silences it')
  t.ok(DEV_SECRET.length >= 32, 'the dev secret itself is not weak')
})

test('the chat server listens on PORT and HOST, logs its url and stops on SIGTERM', async (t) => {
  const server = await startBuiltServer(t, fileURLToPath(new URL('../dist/example/chat/server.js', import.meta.url)), { PORT: '0', HOST: '127.0.0.1', SESSION_SECRET: SECRET, REDIS_URL: '' })
  t.match(server.message, /chat example listening/)
  const url = server.url
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+$/)
  const page = await fetch(url + '/', { headers: { accept: 'text/html' } })
  t.equal(page.status, 200, 'the built server finds the page files')
  t.match(await page.text(), 'glue chat')
  t.equal(await server.stop(), 0, 'exits cleanly')
})

test('runs as several nodes with REDIS_URL: a post on one node reaches a member on another', { skip: redisSkip }, async (t) => {
  const redis = await startRedis(t)
  const a = await start(t, { redisUrl: redis.url })
  const b = await start(t, { redisUrl: redis.url })
  const ada = await member(t, a, 'ada', ['general'])
  const bob = await member(t, b, 'bob', ['general'])
  t.same(await call(ada, 'q', { op: 'post', room: 'general', text: 'across nodes' }), { ok: true, value: { posted: true } })
  await until(() => roomMessages(bob).length === 1, 'bob on node b gets the post')
  t.match(roomMessages(bob), [{ room: 'general', author: 'ada', text: 'across nodes' }])

  t.comment('carol joins later on node b: the history and the member list are the cluster\'s')
  const carol = await member(t, b, 'carol', [])
  t.same(await call(carol, 's', roomTopic('general'), {}), { ok: true, value: roomTopic('general') })
  await until(() => historyTexts(carol, roomTopic('general')).length === 1, 'carol gets ada\'s post from the history')
  t.same(historyTexts(carol, roomTopic('general')), ['across nodes'])
  // Each node writes its members to Redis once per presence interval.
  await eventually(async () => memberIds(await call(carol, 'v', roomTopic('general'))), ['ada', 'bob', 'carol'], 'the three members, from both nodes')
  t.match((await call(carol, 'v', roomTopic('general'))).value, { count: 3 }, 'ada on node a, bob and carol on node b')
})
