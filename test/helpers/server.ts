// Fastify apps with the plugin for tests: startApp on 127.0.0.1 port 0, cluster nodes, log capture, session lookups, environment.
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Test } from 'tap'
import glue, { type GlueOptions } from '../../plugin/index.js'
import { createCookieSigner, decodeSessionValue, encodeSessionValue } from '../../plugin/handshake/identity.js'

/** The cookie secret of every app startApp starts (unless a test gives its own). */
export const SECRET = 'test-secret-that-is-long-enough-0123456789'

/** Captures the JSON log lines of a Fastify app. */
export interface LogCapture {
  readonly stream: Writable
  readonly lines: Array<Record<string, unknown>>
  /** Resolves with the first line whose msg matches (already logged or logged later). */
  waitFor (msg: string | RegExp): Promise<Record<string, unknown>>
}

export function createLogCapture (): LogCapture {
  const lines: Array<Record<string, unknown>> = []
  const waiters: Array<{ match: (line: Record<string, unknown>) => boolean, resolve: (line: Record<string, unknown>) => void }> = []
  const matcher = (msg: string | RegExp) => (line: Record<string, unknown>) =>
    typeof msg === 'string' ? line.msg === msg : msg.test(String(line.msg))
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const text of chunk.toString().split('\n')) {
        if (text === '') continue
        const line = JSON.parse(text) as Record<string, unknown>
        lines.push(line)
        for (let i = waiters.length - 1; i >= 0; i--) {
          const waiter = waiters[i]
          if (waiter !== undefined && waiter.match(line)) {
            waiters.splice(i, 1)
            waiter.resolve(line)
          }
        }
      }
      callback()
    }
  })
  return {
    stream,
    lines,
    waitFor (msg) {
      const match = matcher(msg)
      const found = lines.find(match)
      if (found !== undefined) return Promise.resolve(found)
      return new Promise((resolve) => { waiters.push({ match, resolve }) })
    }
  }
}

export interface StartedApp {
  readonly app: FastifyInstance
  readonly port: number
  readonly httpUrl: string
  readonly wsUrl: string
  readonly logs: LogCapture
}

export interface StartOptions {
  /** Options for glue; `cookie.secret` defaults to SECRET. */
  glue?: GlueOptions
  fastify?: FastifyServerOptions
  /** Runs before glue is registered (e.g. to register @fastify/cookie first). */
  before?: (app: FastifyInstance) => Promise<void> | void
  /** Runs after glue is registered (routes, listeners). */
  after?: (app: FastifyInstance) => Promise<void> | void
  port?: number
}

/** Builds a Fastify app with glue and listens on 127.0.0.1 (port 0 unless given). */
export async function startApp (options: StartOptions = {}): Promise<StartedApp> {
  const logs = createLogCapture()
  const app = Fastify({ logger: { level: 'debug', stream: logs.stream }, ...options.fastify })
  await options.before?.(app)
  const glueOptions = options.glue ?? {}
  await app.register(glue, { ...glueOptions, cookie: { secret: SECRET, ...glueOptions.cookie } })
  await options.after?.(app)
  await app.listen({ host: '127.0.0.1', port: options.port ?? 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  const path = glueOptions.path ?? '/ws'
  return {
    app,
    logs,
    port: address.port,
    httpUrl: `http://127.0.0.1:${address.port}`,
    wsUrl: `ws://127.0.0.1:${address.port}${path}`
  }
}

/**
 * Starts `count` nodes of one cluster, closed in teardown: each with the `redis` option, no
 * heartbeat and every subscription allowed unless `glue` says otherwise.
 */
export async function startNodes (t: Test, count: number, redis: GlueOptions['redis'], glue: GlueOptions = {}, start: Omit<StartOptions, 'glue'> = {}): Promise<StartedApp[]> {
  const nodes: StartedApp[] = []
  for (let i = 0; i < count; i++) {
    nodes.push(await startApp({ ...start, glue: { redis, heartbeatInterval: 0, authorizeSubscribe: () => true, ...glue } }))
  }
  t.teardown(async () => { await Promise.all(nodes.map(async (node) => await node.app.close())) })
  return nodes
}

/**
 * Sets (or with undefined, deletes) an environment variable for the rest of test `t`; teardown
 * restores the value it had before, so the test may assign it again freely. Once per name and test.
 */
export function setEnv (t: Test, name: string, value: string | undefined): void {
  const saved = process.env[name]
  t.teardown(() => { assignEnv(name, saved) })
  assignEnv(name, value)
}

function assignEnv (name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name]
  else process.env[name] = value
}

/** The id of the first session with an open socket (in the order they connected). */
export function firstSessionId (app: { sessions: Iterable<{ id: string }> }): string {
  const [session] = [...app.sessions]
  if (session === undefined) throw new Error('no session')
  return session.id
}

/** The session id inside a `name=value` cookie pair signed with SECRET (as every startApp node signs). */
export function sessionIdOf (cookie: string): string {
  // Session cookies are signed through a key derived from the secret (identity.ts), not the raw secret.
  const claims = claimsOf(cookie)
  return claims.sessionId
}

/** What a session cookie signed with SECRET carries (a `name=value` pair or a whole Set-Cookie line): its id, user and issue time. */
export function claimsOf (cookie: string): { sessionId: string, userId: string | null, issuedAt: number } {
  const pair = cookie.split(';', 1)[0] as string
  const unsigned = createCookieSigner([SECRET]).unsign(decodeURIComponent(pair.slice(pair.indexOf('=') + 1)))
  const claims = unsigned.valid && unsigned.value !== null ? decodeSessionValue(unsigned.value) : undefined
  if (claims === undefined) throw new Error('bad cookie')
  return claims
}

/**
 * A `sid=value` cookie signed with `secret` (SECRET by default) as the plugin would have issued it,
 * for a session of our choosing: issued `age` ms ago, bound to `userId`.
 */
export function forgeCookie (sessionId: string, options: { age?: number, userId?: string | null, secret?: string, name?: string } = {}): string {
  const value = encodeSessionValue({ sessionId, userId: options.userId ?? null, issuedAt: Date.now() - (options.age ?? 0) })
  return `${options.name ?? 'sid'}=${encodeURIComponent(createCookieSigner([options.secret ?? SECRET]).sign(value))}`
}

/**
 * The TCP socket under the server side of the first socket of the first session: its
 * `writableLength` is what the server holds for a slow reader.
 */
export function serverTransport (app: { sessions: Iterable<{ sockets: ReadonlySet<unknown> }> }): { readonly writableLength: number } {
  const [session] = [...app.sessions]
  const [socket] = [...session?.sockets ?? []]
  return (socket as { _socket: { writableLength: number } })._socket
}
