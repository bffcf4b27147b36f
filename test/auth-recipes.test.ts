import { test, type Test } from 'tap'
import fastifyCookie from '@fastify/cookie'
import fastifyJwt from '@fastify/jwt'
import fastifySession from '@fastify/session'
import type { FastifyReply, FastifyRequest } from 'fastify'
import WebSocket from 'ws'
import glue from '../plugin/index.js'
import { claimsOf, createBrowser, dataOf, SECRET, startApp, until, type Browser, type StartedApp } from './helpers/index.js'

// The two recipes of the README's "Users and login", with the real auth plugins: the app logs
// people in over HTTP with its own auth; the plugin pushes to the user and closes on logout.

const PASSWORDS: Record<string, string> = { ada: 'lovelace', bob: 'builder' }
const JWT_SECRET = 'jwt-test-secret-that-is-long-enough-0123456789'
const SESSION_SECRET = 'session-test-secret-that-is-long-enough-0123'

interface Credentials { name: string, password: string }

function checkPassword (body: Credentials): string | null {
  return PASSWORDS[body.name] === body.password ? body.name : null
}

/** Recipe 1: @fastify/jwt in an HttpOnly cookie; `identify` verifies it at every handshake. */
async function startJwtApp (t: Test): Promise<StartedApp> {
  const started = await startApp({
    async before (app) {
      await app.register(fastifyCookie)
      await app.register(fastifyJwt, { secret: JWT_SECRET, cookie: { cookieName: 'token', signed: false } })
    },
    glue: {
      cookie: { secret: SECRET },
      async identify (request) {
        try {
          return (await request.jwtVerify<{ sub: string }>()).sub
        } catch {
          return null
        }
      }
    },
    after (app) {
      const authenticate = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
        try {
          await request.jwtVerify()
        } catch {
          await reply.code(401).send({ error: 'log in first' })
        }
      }
      app.post<{ Body: Credentials }>('/login', async (request, reply) => {
        const user = checkPassword(request.body)
        if (user === null) return await reply.code(401).send({ error: 'wrong name or password' })
        const token = await reply.jwtSign({ sub: user }, { expiresIn: '1h' })
        reply.setCookie('token', token, { httpOnly: true, sameSite: 'lax', path: '/' })
        // A new glue session bound to the user: open sockets move to it, the old id is refused.
        app.sessions.login(request, reply, user)
        return { user }
      })
      app.post('/notify', { onRequest: authenticate }, async (request) => {
        const { sub } = request.user as { sub: string }
        return { sockets: app.sessions.sendToUser(sub, `to ${sub}`) }
      })
      app.post('/logout', { onRequest: authenticate }, async (request, reply) => {
        reply.clearCookie('token', { path: '/' })
        app.sessions.logout(request, reply)
        return {}
      })
      app.post('/logout-everywhere', { onRequest: authenticate }, async (request, reply) => {
        reply.clearCookie('token', { path: '/' })
        app.sessions.logout(request, reply)
        return { sockets: app.sessions.revokeUser((request.user as { sub: string }).sub) }
      })
    }
  })
  t.teardown(() => started.app.close())
  return started
}

/** Recipe 2: @fastify/session keeps the user server-side; the login route binds, the logout route revokes. */
async function startSessionApp (t: Test): Promise<StartedApp> {
  const started = await startApp({
    async before (app) {
      await app.register(fastifyCookie)
      await app.register(fastifySession, { secret: SESSION_SECRET, cookie: { secure: false } })
    },
    glue: {
      cookie: { secret: SECRET },
      // The server session is the truth: a socket opened after it ended is anonymous again.
      identify: (request) => request.session.get('user') ?? null
    },
    after (app) {
      app.post<{ Body: Credentials }>('/login', async (request, reply) => {
        const user = checkPassword(request.body)
        if (user === null) return await reply.code(401).send({ error: 'wrong name or password' })
        await request.session.regenerate()
        request.session.set('user', user)
        app.sessions.login(request, reply, user)
        return { user }
      })
      app.post('/notify', async (request, reply) => {
        const user = request.session.get('user')
        if (user === undefined) return await reply.code(401).send({ error: 'log in first' })
        return { sockets: app.sessions.sendToUser(user, `to ${user}`) }
      })
      app.post('/logout', async (request, reply) => {
        const user = request.session.get('user')
        await request.session.destroy()
        app.sessions.logout(request, reply)
        return { user: user ?? null }
      })
      app.post('/logout-everywhere', async (request, reply) => {
        const user = request.session.get('user')
        await request.session.destroy()
        app.sessions.logout(request, reply)
        return { sockets: user === undefined ? 0 : app.sessions.revokeUser(user) }
      })
    }
  })
  t.teardown(() => started.app.close())
  return started
}

// What the app keeps in its server-side session (@fastify/session's typing).
declare module 'fastify' {
  interface Session {
    user?: string
  }
}

async function logIn (browser: Browser, name: string): Promise<void> {
  const response = await browser.fetch('/login', { method: 'POST', body: { name, password: PASSWORDS[name] } })
  if (response.status !== 200) throw new Error(`login failed: ${response.status}`)
}

for (const [recipe, start] of [['@fastify/jwt', startJwtApp], ['@fastify/session', startSessionApp]] as const) {
  test(`${recipe}: log in over HTTP, pushes reach the user in two browsers, logout closes them`, async (t) => {
    const { app, httpUrl, wsUrl } = await start(t)
    const laptop = createBrowser(httpUrl)
    const phone = createBrowser(httpUrl)
    const other = createBrowser(httpUrl)
    t.equal((await laptop.fetch('/login', { method: 'POST', body: { name: 'ada', password: 'wrong' } })).status, 401, 'a wrong password binds nothing')
    t.equal(laptop.get('sid'), undefined)

    t.comment('a socket opened before logging in moves with the login')
    const early = await laptop.open(t, wsUrl)
    const anonymous = claimsOf(`sid=${laptop.get('sid') as string}`)
    t.equal(anonymous.userId, null)
    await logIn(laptop, 'ada')
    await logIn(phone, 'ada')
    await logIn(other, 'bob')
    t.equal(claimsOf(`sid=${laptop.get('sid') as string}`).userId, 'ada')
    t.not(claimsOf(`sid=${laptop.get('sid') as string}`).sessionId, anonymous.sessionId, 'login rotated the glue session')

    const tabs = [early, await laptop.open(t, wsUrl), await phone.open(t, wsUrl)]
    const bob = await other.open(t, wsUrl)
    t.same(tabs.slice(1).map((tab) => tab.setCookie), [[], []], 'identify agrees with the login cookie: nothing rotates')
    t.same((await phone.fetch('/notify', { method: 'POST' })).body, { sockets: 3 }, 'the app pushes to its user')
    for (const tab of tabs) await until(() => dataOf(tab).includes('to ada'), 'every tab of both browsers')
    t.same(dataOf(bob), [], 'not to another user')

    t.comment('logout closes this browser\'s sockets; logging out everywhere closes the rest')
    await laptop.fetch('/logout', { method: 'POST' })
    for (const tab of tabs.slice(0, 2)) t.same(await tab.closed, { code: 3000, reason: 'session revoked' })
    t.equal(tabs[2]?.socket.readyState, WebSocket.OPEN, 'the phone is still logged in')
    t.equal((await laptop.fetch('/notify', { method: 'POST' })).status, 401, "the app's own auth is gone too")
    const afterLogout = await laptop.open(t, wsUrl)
    t.equal(claimsOf(afterLogout.setCookie[0] as string).userId, null, 'a socket opened after logout is anonymous')
    await phone.fetch('/logout-everywhere', { method: 'POST' })
    t.same(await tabs[2]?.closed, { code: 3000, reason: 'session revoked' })
    t.equal(bob.socket.readyState, WebSocket.OPEN, 'another user is untouched')
    t.same(app.sessions.sessionsOf('ada'), [])
  })
}

test('the recipes register in the order the README gives', async (t) => {
  const { default: Fastify } = await import('fastify')
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyCookie)
  await app.register(fastifySession, { secret: SESSION_SECRET, cookie: { secure: false } })
  await app.register(glue, { cookie: { secret: SECRET }, identify: (request) => request.session.get('user') ?? null })
  await app.ready()
  t.equal(typeof app.sessions.login, 'function')
})
