import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import { shardOf } from '../plugin/redis/keys.js'
import type { GlueOptions } from '../plugin/index.js'
import {
  claimsOf,
  createBrowser,
  dataOf,
  envelopesOf,
  eventually,
  forgeCookie,
  NODE_TIMEOUT,
  openGlueSocket,
  redisSkip,
  resumeQuery,
  startNodes,
  startRedis,
  uniquePrefix,
  until,
  type Browser,
  type StartedApp
} from './helpers/index.js'

// Users across nodes joined through Redis: a login on one node moves a socket held by another,
// pushes to a user reach its sessions wherever they are, and revocations hold on every node.

function userRoutes (app: FastifyInstance): void {
  app.get('/', async (_request, reply) => reply.type('text/html').send('<!doctype html><title>page</title>'))
  app.get('/whoami', async (request) => ({ sessionId: request.sessionId, userId: request.sessionUserId }))
  app.post<{ Body: { name: string } }>('/login', async (request, reply) => ({ sessionId: app.sessions.login(request, reply, request.body.name) }))
  app.post('/logout', async (request, reply) => {
    app.sessions.logout(request, reply)
    return {}
  })
}

/** Cluster nodes with the login and logout routes. */
async function startUserNodes (t: Test, count: number, redis: GlueOptions['redis'], glue: GlueOptions = {}): Promise<StartedApp[]> {
  return await startNodes(t, count, redis, glue, { after: userRoutes })
}

async function visit (node: StartedApp): Promise<Browser> {
  const browser = createBrowser(node.httpUrl)
  await browser.fetch('/', { headers: { 'sec-fetch-dest': 'document' } })
  return browser
}

const sidOf = (browser: Browser): string => claimsOf(`sid=${browser.get('sid') as string}`).sessionId

/** Resolves once `node` answers /whoami for `cookie` with `expected`. */
async function whoamiOn (node: StartedApp, cookie: string, expected: unknown, what: string): Promise<void> {
  await eventually(async () => (await node.app.inject({ method: 'GET', url: '/whoami', headers: { cookie } })).json(), expected, what)
}

t.test('users across nodes', { skip: redisSkip }, async (t) => {
  const redis = await startRedis(t)

  t.test('a login on one node moves the socket another node holds; every node refuses the old cookie', async (t) => {
    const [a, b, c] = await startUserNodes(t, 3, { url: redis.url, prefix: uniquePrefix(), nodeTimeout: NODE_TIMEOUT }) as [StartedApp, StartedApp, StartedApp]
    const browser = await visit(a)
    const before = sidOf(browser)
    const oldCookie = browser.cookie
    const tab = await browser.open(t, b.wsUrl)
    b.app.sessions.subscribe(before, 'room')
    await eventually(() => c.app.sessions.clusterTopicsOf(before), ['room'], 'the topic')
    c.app.sessions.send(before, 'before login')
    await until(() => dataOf(tab).length === 1, 'before login')

    // The login route runs on a, the socket is on b.
    const login = await a.app.inject({ method: 'POST', url: '/login', headers: { cookie: oldCookie }, payload: { name: 'ada' } })
    const sessionId = (login.json() as { sessionId: string }).sessionId
    t.not(sessionId, before)
    t.same(claimsOf(String(login.headers['set-cookie'])), { sessionId, userId: 'ada', issuedAt: claimsOf(String(login.headers['set-cookie'])).issuedAt })
    const cookie = String(login.headers['set-cookie']).split(';')[0] as string
    await until(() => b.app.sessions.get(sessionId)?.sockets.size === 1, 'the socket moved to the new id on b')
    t.equal(tab.socket.readyState, WebSocket.OPEN, 'and stayed open')
    t.equal(b.app.sessions.get(sessionId)?.userId, 'ada')
    t.same(await c.app.sessions.clusterSessionsOf('ada'), [sessionId])
    t.same(await c.app.sessions.clusterTopicsOf(sessionId), ['room'], 'its topics moved, cluster-wide')
    t.equal(await c.app.sessions.presence(sessionId), 1, 'its presence moved')
    t.equal(await c.app.sessions.presence(before), 0)

    c.app.sessions.sendToUser('ada', 'to ada')
    c.app.sessions.publish('room', 'to the room')
    await until(() => dataOf(tab).length === 3, 'the push to the user and the publish')
    const envelopes = envelopesOf(tab)
    t.same(envelopes.map((e) => e[0]), ['m', 'm', 't'], 'the push to the user is a plain message')
    t.ok((envelopes[1]?.[1] as number) > (envelopes[0]?.[1] as number), 'numbered after what came before')

    for (const node of [a, b, c]) await whoamiOn(node, oldCookie, { sessionId: null, userId: null }, 'the old cookie refused')
    for (const node of [a, b, c]) await whoamiOn(node, cookie, { sessionId, userId: 'ada' }, 'the new cookie accepted')
    const replay = await openGlueSocket(c.wsUrl, { headers: { cookie: oldCookie } })
    t.teardown(() => replay.socket.terminate())
    t.not(claimsOf(replay.setCookie[0] as string).sessionId, before, 'a handshake with the old cookie gets a fresh session')
  })

  t.test('two browsers of one user on two nodes: pushes, resume, closeUser, revokeUser', async (t) => {
    const [a, b, c] = await startUserNodes(t, 3, { url: redis.url, prefix: uniquePrefix(), nodeTimeout: NODE_TIMEOUT }) as [StartedApp, StartedApp, StartedApp]
    const laptop = await visit(a)
    const phone = await visit(b)
    await laptop.fetch('/login', { method: 'POST', body: { name: 'ada' } })
    await phone.fetch('/login', { method: 'POST', body: { name: 'ada' } })
    const onA = await laptop.open(t, a.wsUrl)
    const onB = await phone.open(t, b.wsUrl)
    await eventually(async () => (await c.app.sessions.clusterSessionsOf('ada')).sort(), [sidOf(laptop), sidOf(phone)].sort(), 'both sessions of the user')
    c.app.sessions.sendToUser('ada', 'one')
    await until(() => dataOf(onA).includes('one') && dataOf(onB).includes('one'), 'both browsers')

    t.comment('the phone goes away; a push meanwhile is read back on another node')
    const seen = (onB.received.slice(1).map((frame) => JSON.parse(String(frame)) as unknown[]).find((e) => e[2] === 'one')?.[1]) as number
    onB.socket.close()
    await onB.closed
    await eventually(() => c.app.sessions.presence(sidOf(phone)), 0, 'the phone offline')
    c.app.sessions.sendToUser('ada', 'two')
    await until(() => dataOf(onA).includes('two'), 'the laptop')
    const back = await phone.open(t, c.wsUrl, resumeQuery(onB.welcome.epoch, seen))
    await until(() => dataOf(back).includes('two'), 'the phone resumes on c')
    t.notOk(envelopesOf(back).some((e) => e[0] === 'g'), 'no gap')

    t.comment('closeUser and revokeUser reach both nodes')
    a.app.sessions.closeUser('ada', 4001, 'bye')
    t.same(await onA.closed, { code: 4001, reason: 'bye' })
    t.same(await back.closed, { code: 4001, reason: 'bye' })
    const again = [await laptop.open(t, a.wsUrl), await phone.open(t, b.wsUrl)]
    const cookies = [laptop.cookie, phone.cookie]
    c.app.sessions.revokeUser('ada')
    for (const tab of again) t.same(await tab.closed, { code: 3000, reason: 'session revoked' })
    for (const node of [a, b, c]) {
      for (const cookie of cookies) await whoamiOn(node, cookie, { sessionId: null, userId: null }, 'every cookie of the user refused')
    }
    await eventually(() => c.app.sessions.clusterSessionsOf('ada'), [], 'no session left for the user')
  })

  t.test('identify rotates a handshake on a node that holds the other tabs: they join the new id there', async (t) => {
    const [a, b] = await startUserNodes(t, 2, { url: redis.url, prefix: uniquePrefix(), nodeTimeout: NODE_TIMEOUT }, {
      identify: (request) => (request.headers['x-user'] as string | undefined) ?? null
    }) as [StartedApp, StartedApp]
    const browser = await visit(a)
    const before = sidOf(browser)
    const first = await browser.open(t, b.wsUrl)
    const socket = await openGlueSocket(b.wsUrl, { headers: { cookie: browser.cookie, 'x-user': 'ada' } })
    t.teardown(() => socket.socket.terminate())
    const sessionId = claimsOf(socket.setCookie[0] as string).sessionId
    t.not(sessionId, before, 'rotated on the 101')
    await until(() => b.app.sessions.get(sessionId)?.sockets.size === 2, 'both tabs under the new id on b')
    t.notOk(b.app.sessions.has(before))
    await eventually(() => a.app.sessions.presence(sessionId), 2, 'two sockets, cluster-wide')
    a.app.sessions.sendToUser('ada', 'to both tabs')
    await until(() => dataOf(first).includes('to both tabs') && dataOf(socket).includes('to both tabs'), 'both tabs')
    t.equal(b.app.sessions.size, 1)
  })

  t.test('logout on one node closes the socket on another; a node started later refuses the cookie too', async (t) => {
    const prefix = uniquePrefix()
    const [a, b] = await startUserNodes(t, 2, { url: redis.url, prefix, nodeTimeout: NODE_TIMEOUT }) as [StartedApp, StartedApp]
    const browser = await visit(a)
    await browser.fetch('/login', { method: 'POST', body: { name: 'ada' } })
    const cookie = browser.cookie
    const tab = await browser.open(t, b.wsUrl)
    const logout = await browser.fetch('/logout', { method: 'POST' })
    t.match(logout.setCookie, [/^sid=; Max-Age=0;/])
    t.same(await tab.closed, { code: 3000, reason: 'session revoked' })
    await whoamiOn(b, cookie, { sessionId: null, userId: null }, 'refused on b')
    const [late] = await startUserNodes(t, 1, { url: redis.url, prefix, nodeTimeout: NODE_TIMEOUT }) as [StartedApp]
    t.same((await late.app.inject({ method: 'GET', url: '/whoami', headers: { cookie } })).json(), { sessionId: null, userId: null },
      'a node that started after the logout loads the revocations from Redis')
    t.ok(late.app.sessions.stats().revocations >= 1)
  })

  t.test('with shards, a rotated session stays on its shard and pushes reach users on every shard', async (t) => {
    const second = await startRedis(t)
    const third = await startRedis(t)
    const shards = [redis.url, second.url, third.url]
    const [a, b] = await startUserNodes(t, 2, { shards, prefix: uniquePrefix(), nodeTimeout: NODE_TIMEOUT }) as [StartedApp, StartedApp]
    // Ids are random: visit until the sessions sit on at least two shards (six on one shard happen 1 time in 243).
    const browsers: Browser[] = []
    const shardsHeld = (): number => new Set(browsers.map((browser) => shardOf(sidOf(browser), 3))).size
    while (browsers.length < 6 || (shardsHeld() < 2 && browsers.length < 40)) browsers.push(await visit(a))
    const tabs = []
    for (const browser of browsers) {
      const before = sidOf(browser)
      await browser.fetch('/login', { method: 'POST', body: { name: 'ada' } })
      t.equal(shardOf(sidOf(browser), 3), shardOf(before, 3), 'the new id lives on the old one\'s shard')
      tabs.push(await browser.open(t, b.wsUrl))
    }
    t.ok(shardsHeld() > 1, 'the sessions are spread over shards')
    await eventually(async () => (await a.app.sessions.clusterSessionsOf('ada')).length, browsers.length, 'every session of the user')
    a.app.sessions.sendToUser('ada', 'everywhere')
    for (const tab of tabs) await until(() => dataOf(tab).includes('everywhere'), 'each session')
    a.app.sessions.revokeUser('ada')
    for (const tab of tabs) t.same(await tab.closed, { code: 3000, reason: 'session revoked' })
  })

  t.test('Redis keeps nothing for logins that never connect, and at most maxRevocations revocations', async (t) => {
    const own = await startRedis(t)
    const prefix = uniquePrefix()
    const [a] = await startUserNodes(t, 1, { url: own.url, prefix, nodeTimeout: NODE_TIMEOUT }, { maxRevocations: 20 }) as [StartedApp]
    const browser = await visit(a)
    for (let i = 0; i < 200; i++) await browser.fetch('/login', { method: 'POST', body: { name: 'mallory' } })
    for (let i = 0; i < 30; i++) a.app.sessions.revokeUser(`user${i}`)
    const admin = own.client()
    await eventually(() => admin.zcard(`{${prefix}}:rv`), 20, 'revoked sessions capped in Redis')
    await eventually(() => admin.zcard(`{${prefix}}:rvu`), 20, 'revoked users capped in Redis')
    const keys = await admin.keys(`{${prefix}}:*`)
    t.same(keys.filter((key) => /:(ts|tm|at|hist|th):/.test(key)), [], 'no session, topic or user key for sessions that never connected')
    t.equal(a.app.sessions.stats().revocations, 40, 'and at most maxRevocations of each kind on the node')
  })

  t.test('a push to a user while Redis is away is delivered once it is back', async (t) => {
    const own = await startRedis(t)
    const [a, b] = await startUserNodes(t, 2, { url: own.url, prefix: uniquePrefix(), nodeTimeout: NODE_TIMEOUT }) as [StartedApp, StartedApp]
    const browser = await visit(a)
    await browser.fetch('/login', { method: 'POST', body: { name: 'ada' } })
    const tab = await browser.open(t, b.wsUrl)
    await eventually(() => a.app.sessions.clusterSessionsOf('ada'), [sidOf(browser)], 'bound')
    await own.kill()
    await a.logs.waitFor('redis adapter: connection to Redis lost; buffering messages until it returns')
    t.equal(a.app.sessions.sendToUser('ada', 'during the outage'), 0, 'buffered')
    await own.start()
    await until(() => dataOf(tab).includes('during the outage'), 'delivered after the outage', 15_000)
  })

  t.test('a cookie from the far past is refused on every node, whatever Redis holds', async (t) => {
    const [a] = await startUserNodes(t, 1, { url: redis.url, prefix: uniquePrefix() }, { cookie: { lifetime: 60 } }) as [StartedApp]
    const stale = forgeCookie('FFFFFFFFFFFFFFFFFFFFFFFF', { age: 60_000, userId: 'ada' })
    t.same((await a.app.inject({ method: 'GET', url: '/whoami', headers: { cookie: stale } })).json(), { sessionId: null, userId: null })
  })
})
