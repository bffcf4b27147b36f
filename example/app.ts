import { createHash } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import glue from 'fastify-websocket-glue'
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

/** Answers `client.request(data)`: `{ op: 'time' }` and `{ op: 'echo', value }`. */
function answer (data: unknown): unknown {
  const { op, value } = (data ?? {}) as { op?: unknown, value?: unknown }
  if (op === 'time') return { now: new Date().toISOString() }
  if (op === 'echo') return value ?? null
  throw new ExposedError('UNKNOWN_OP', `Expected op to be "time" or "echo", got ${JSON.stringify(op) ?? 'nothing'}`)
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
 * `POST /logout`) and the delivery counters at `GET /stats`.
 */
export async function buildApp (options: ExampleOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: options.logger ?? true })
  const secret = options.secret ?? process.env.SESSION_SECRET ?? DEV_SECRET
  if (secret === DEV_SECRET) app.log.warn('using the built-in development secret: set SESSION_SECRET outside local development')
  const broadcastInterval = options.broadcastInterval ?? readInterval('BROADCAST_INTERVAL', 3000, 0)
  const streamInterval = options.streamInterval ?? readInterval('STREAM_INTERVAL', 100, 1)
  const redisUrl = options.redisUrl ?? (process.env.REDIS_URL === '' ? undefined : process.env.REDIS_URL)
  const nodeName = options.nodeName ?? process.env.NODE_NAME ?? `pid ${process.pid}`

  await app.register(glue, {
    path: '/ws',
    cookie: { secret },
    onConnect (session, socket) {
      socket.send(`welcome ${sessionTag(session.id)}`)
    },
    onMessage (_session, data, socket) {
      // A reply to this one socket; the shipped client shows such a plain frame as a message without seq.
      socket.send(data === 'ping' ? 'pong' : 'ok')
    },
    authorizeSubscribe: (_session, topic) => topic === NEWS_TOPIC,
    answerRequest: (_session, data) => answer(data),
    // With REDIS_URL every node started against that Redis is one cluster.
    redis: redisUrl
  })
  if (redisUrl !== undefined) app.log.info({ node: nodeName }, 'example node joined the cluster through Redis')

  app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').send(PAGE))

  app.post('/notify', async (request, reply) => {
    if (request.sessionId === null) {
      return reply.code(401).send({ error: 'No session: open the page first, it sets the session cookie', code: 'NO_SESSION' })
    }
    const sockets = app.sessions.send(request.sessionId, `notify: hello ${sessionTag(request.sessionId)}, this came from POST /notify on ${nodeName}`)
    // With Redis, delivery is asynchronous (sockets is 0); presence counts the session's sockets on every node.
    return { sockets, online: await app.sessions.presence(request.sessionId) }
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
