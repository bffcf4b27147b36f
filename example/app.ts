import { createHash } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import glue, { type Session } from 'fastify-websocket-glue'
import glueMetrics from 'fastify-websocket-glue/metrics'
import { Registry } from 'prom-client'
import { PAGE } from './page.js'

/** The secret the example signs cookies with unless SESSION_SECRET is set. Fine for a demo, never for production. */
export const DEV_SECRET = 'fastify-websocket-glue example secret, dev only!!'

/** Options of {@link buildApp}. */
export interface ExampleOptions {
  /**
   * Cookie signing secret.
   * @default process.env.SESSION_SECRET, else DEV_SECRET (with a warning)
   */
  secret?: string
  /**
   * Milliseconds between server broadcasts; 0 turns them off.
   * @default process.env.BROADCAST_INTERVAL, else 3000
   */
  broadcastInterval?: number
  /**
   * Milliseconds between the numbers of a stream started with `POST /stream`.
   * @default process.env.STREAM_INTERVAL, else 100
   */
  streamInterval?: number
  /**
   * Redis URL that joins this node to the others using the same Redis; unset runs one node in memory.
   * @default process.env.REDIS_URL
   */
  redisUrl?: string
  /**
   * Name of this node in broadcasts, so a page shows which node a message came from.
   * @default process.env.NODE_NAME, else the process id
   */
  nodeName?: string
  /**
   * Origins of pages elsewhere (another port, another host) whose sockets are allowed, besides the
   * example's own page; `'null'` admits file: pages and sandboxed frames (any of them, so only locally).
   * @default process.env.ALLOWED_ORIGINS split on commas, else none
   */
  allowedOrigins?: readonly string[]
  /**
   * Fastify's logger option.
   * @default true
   */
  logger?: FastifyServerOptions['logger']
}

/** A short, stable tag of a session id, safe to show on the page (the id itself stays in the HttpOnly cookie). */
export function sessionTag (sessionId: string): string {
  return createHash('sha256').update(sessionId).digest('base64url').slice(0, 12)
}

function readInterval (name: string, fallback: number, min: number): number {
  const value = process.env[name]
  if (value === undefined || value === '') return fallback
  const interval = Number(value)
  if (!Number.isInteger(interval) || interval < min) {
    throw new RangeError(`Expected ${name} to be an integer >= ${min} (milliseconds), got "${value}"`)
  }
  return interval
}

/** Reads ALLOWED_ORIGINS: comma-separated `scheme://host[:port]` origins, or `null`. */
function readOrigins (): string[] {
  const value = process.env.ALLOWED_ORIGINS ?? ''
  const origins = value.split(',').map((origin) => origin.trim()).filter((origin) => origin !== '')
  for (const origin of origins) {
    if (origin !== 'null' && !isOrigin(origin)) {
      throw new RangeError(`Expected ALLOWED_ORIGINS to be comma-separated origins such as http://localhost:5173 (or null), got "${origin}"`)
    }
  }
  return origins
}

function isOrigin (value: string): boolean {
  try {
    return new URL(value).origin === value
  } catch {
    return false
  }
}

/**
 * The example's origin rule: its own page (an http(s) origin naming the Host the socket came to),
 * plus the listed origins. The plugin's `allowedOrigins` list replaces its same-host rule, so the
 * example keeps it in a function.
 */
function originPolicy (allowed: readonly string[]): ((origin: string, request: FastifyRequest) => boolean) | undefined {
  if (allowed.length === 0) return undefined
  const listed = new Set(allowed)
  return (origin, request) => {
    if (listed.has(origin)) return true
    if (!isOrigin(origin)) return false
    const url = new URL(origin)
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.host === request.headers.host
  }
}

/** The one topic browsers may subscribe to; the periodic broadcast also publishes to it. */
export const NEWS_TOPIC = 'news'

/** An error `answerRequest` shows to the client: `expose` lets its code and message through. */
class ExposedError extends Error {
  readonly expose = true
  readonly code: string

  constructor (code: string, message: string) {
    super(message)
    this.code = code
  }
}

/**
 * Answers `client.request(data)`: `{ op: 'time' }`, `{ op: 'echo', value }`, `{ op: 'topics' }` (the
 * session's topics) and `{ op: 'share-topics' }` (the same, also sent to every tab of the session).
 */
function answer (app: FastifyInstance, session: Session, data: unknown): unknown {
  const { op, value } = (data ?? {}) as { op?: unknown, value?: unknown }
  if (op === 'time') return { now: new Date().toISOString() }
  if (op === 'echo') return value ?? null
  if (op === 'topics' || op === 'share-topics') {
    // Subscriptions belong to the session, so every tab shows the same state.
    const topics = app.sessions.topicsOf(session.id)
    if (op === 'share-topics') app.sessions.send(session.id, { topics })
    return { topics }
  }
  throw new ExposedError('UNKNOWN_OP', `Expected op to be "time", "echo", "topics" or "share-topics", got ${JSON.stringify(op) ?? 'nothing'}`)
}

/** A name to log in with: 1 to 32 letters, digits, spaces, `.`, `_` or `-`. A demo, not authentication. */
function readName (body: unknown): string | null {
  const name = typeof (body as { name?: unknown } | null)?.name === 'string' ? (body as { name: string }).name.trim() : ''
  return /^[\w .-]{1,32}$/.test(name) ? name : null
}

/**
 * Builds the example app: the page at `/`, the websocket at `/ws`, a periodic broadcast (also
 * published to the "news" topic), requests answered by `answerRequest`, `POST /notify`, a numbered
 * stream (`POST /stream`, `DELETE /stream`), a login by name (`POST /login`, `POST /to-user`,
 * `POST /logout`), the delivery counters at `GET /stats` and Prometheus metrics at `GET /metrics`.
 */
export async function buildApp (options: ExampleOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: options.logger ?? true })
  const secret = options.secret ?? process.env.SESSION_SECRET ?? DEV_SECRET
  if (secret === DEV_SECRET) app.log.warn('using the built-in development secret: set SESSION_SECRET outside local development')
  const broadcastInterval = options.broadcastInterval ?? readInterval('BROADCAST_INTERVAL', 3000, 0)
  const streamInterval = options.streamInterval ?? readInterval('STREAM_INTERVAL', 100, 1)
  const redisUrl = options.redisUrl ?? (process.env.REDIS_URL === '' ? undefined : process.env.REDIS_URL)
  const nodeName = options.nodeName ?? process.env.NODE_NAME ?? `pid ${process.pid}`
  const allowedOrigins = options.allowedOrigins ?? readOrigins()

  await app.register(glue, {
    path: '/ws',
    cookie: { secret },
    allowedOrigins: originPolicy(allowedOrigins),
    onConnect (session, socket) {
      socket.send(`welcome ${sessionTag(session.id)}`)
    },
    onMessage (_session, data, socket) {
      // A reply to this one socket; the shipped client shows such a plain frame as a message without seq.
      socket.send(data === 'ping' ? 'pong' : 'ok')
    },
    authorizeSubscribe: (_session, topic) => topic === NEWS_TOPIC,
    answerRequest: (session, data) => answer(app, session, data),
    // With REDIS_URL every node started against that Redis is one cluster.
    redis: redisUrl
  })
  if (redisUrl !== undefined) app.log.info({ node: nodeName }, 'example node joined the cluster through Redis')
  if (allowedOrigins.length > 0) app.log.info({ allowedOrigins }, 'sockets from these origins are allowed too')

  // Its own registry, so several apps in one process (the tests) do not share metrics.
  const metrics = new Registry()
  await app.register(glueMetrics, { registry: metrics })
  app.get('/metrics', async (_request, reply) => reply.type(metrics.contentType).send(await metrics.metrics()))

  app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').send(PAGE))

  app.post('/notify', async (request, reply) => {
    if (request.sessionId === null) {
      return reply.code(401).send({ error: 'No session: open the page first, it sets the session cookie', code: 'NO_SESSION' })
    }
    const sockets = app.sessions.send(request.sessionId, `notify: hello ${sessionTag(request.sessionId)}, this came from POST /notify on ${nodeName}`)
    // presence() counts the session's sockets on every node. With Redis, send() returns 0: every
    // node delivers the message to its sockets once Redis has numbered it, after this answer.
    const online = await app.sessions.presence(request.sessionId)
    return { delivered: redisUrl === undefined ? sockets : 'asynchronously, through Redis', online }
  })

  // A numbered stream to the caller's session shows resume at work: each number arrives once, in order.
  const streams = new Map<string, NodeJS.Timeout>()
  const stopStream = (sessionId: string): boolean => {
    clearInterval(streams.get(sessionId))
    return streams.delete(sessionId)
  }
  app.post<{ Querystring: { from?: number } }>('/stream', {
    schema: { querystring: { type: 'object', properties: { from: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER } } } }
  }, async (request, reply) => {
    const { sessionId } = request
    if (sessionId === null) {
      return reply.code(401).send({ error: 'No session: open the page first, it sets the session cookie', code: 'NO_SESSION' })
    }
    const from = request.query.from ?? 1
    let next = from
    stopStream(sessionId)
    streams.set(sessionId, setInterval(() => {
      // Sends to a session without sockets wait in its outbox; once its grace period is over, the stream ends.
      // With Redis the session may sit on another node: the stream runs while it is online anywhere.
      if (app.sessions.isKnown(sessionId)) app.sessions.send(sessionId, { stream: next++ })
      else if (redisUrl === undefined) stopStream(sessionId)
      else {
        app.sessions.presence(sessionId).then((sockets) => {
          if (sockets > 0 && streams.has(sessionId)) app.sessions.send(sessionId, { stream: next++ })
          else stopStream(sessionId)
        }, () => stopStream(sessionId))
      }
    }, streamInterval))
    return { from, interval: streamInterval }
  })
  app.delete('/stream', async (request) => ({ stopped: request.sessionId !== null && stopStream(request.sessionId) }))
  app.addHook('preClose', async () => { for (const sessionId of [...streams.keys()]) stopStream(sessionId) })

  // A login by name only (no password): the session moves to a new id bound to the user, and
  // every tab of every browser logged in with that name gets what is sent to the user.
  app.post('/login', async (request, reply) => {
    const name = readName(request.body)
    if (name === null) return reply.code(400).send({ error: 'Expected a name of 1 to 32 letters, digits, spaces, ".", "_" or "-"', code: 'BAD_NAME' })
    app.sessions.login(request, reply, name)
    app.sessions.sendToUser(name, `logged in as ${name} (on ${nodeName})`)
    return { user: name }
  })
  app.get('/me', async (request) => ({ user: request.sessionUserId }))
  app.post('/to-user', async (request, reply) => {
    const user = request.sessionUserId
    if (user === null) return reply.code(401).send({ error: 'Log in first', code: 'NOT_LOGGED_IN' })
    app.sessions.sendToUser(user, `to user ${user}: hello from POST /to-user on ${nodeName}`)
    return { user, sessions: (await app.sessions.clusterSessionsOf(user)).length }
  })
  // Logout revokes the session: its sockets close with 3000 and the page's client stays closed.
  app.post('/logout', async (request, reply) => {
    const user = request.sessionUserId
    app.sessions.logout(request, reply)
    return { user }
  })

  app.get('/stats', async () => ({ ...app.sessions.stats(), node: nodeName, cluster: await app.sessions.clusterCounts() }))

  if (broadcastInterval > 0) {
    let timer: NodeJS.Timeout | undefined
    let count = 0
    app.addHook('onReady', async () => {
      timer = setInterval(() => {
        count += 1
        const at = new Date().toISOString()
        app.sessions.broadcast(`broadcast #${count} from ${nodeName} at ${at}`)
        app.sessions.publish(NEWS_TOPIC, { headline: `news #${count}`, at })
      }, broadcastInterval)
    })
    app.addHook('preClose', async () => { clearInterval(timer) })
  }

  return app
}
