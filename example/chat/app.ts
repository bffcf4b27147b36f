import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import fastifyStatic from '@fastify/static'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import glue, { defineGlueOptions, type JsonSchema, type Session, type TypedSchema } from 'fastify-websocket-glue'
import { answerQuestion, BOT_NAME } from './bot.js'
import { createPostLimit, type PostLimitOptions } from './post-limit.js'

/** The secret the chat signs cookies with unless SESSION_SECRET is set. Fine for a demo, never for production. */
export const DEV_SECRET = 'fastify-websocket-glue chat example secret, dev only!!'

/** The rooms, each a topic (`room:<name>`); no other topic may be subscribed. */
export const ROOMS = ['general', 'random', 'help'] as const

/** A room's name. */
export type Room = typeof ROOMS[number]

/** The room where the bot answers. */
export const BOT_ROOM: Room = 'help'

/** Longest message text, in characters (code points). */
export const MAX_TEXT = 500

/**
 * What each room keeps for members who join later or reload: its last 100 messages of the last hour.
 * A hundred is a few screens of talk, half of what the page shows per room, and enough to pick up a
 * conversation; an hour keeps a quiet room from greeting a newcomer with yesterday. Bounded: three
 * rooms of 100 messages of at most 500 characters are under 1 MiB, far inside `maxHistoryBytes`.
 */
export const ROOM_HISTORY = { limit: 100, maxAge: 60 * 60_000 } as const

/** The topic a room's messages are published to. */
export function roomTopic (room: Room): string {
  return `room:${room}`
}

/** What the server publishes to a room's topic: the author always comes from the session. */
export interface ChatMessage {
  readonly room: Room
  readonly author: string
  readonly text: string
  /** When the server accepted it, ISO 8601. */
  readonly at: string
  /** Whether the bot wrote it. */
  readonly bot: boolean
}

/** What a client may ask: post `text` to `room`, or (in the bot's room) ask the bot. */
export interface ChatRequest {
  readonly op: 'post' | 'ask'
  readonly room: Room
  readonly text: string
}

const requestSchema: JsonSchema = {
  type: 'object',
  required: ['op', 'room', 'text'],
  additionalProperties: false,
  properties: {
    op: { enum: ['post', 'ask'] },
    room: { enum: [...ROOMS] },
    // At least one character that is not white space.
    text: { type: 'string', minLength: 1, maxLength: MAX_TEXT, pattern: '\\S' }
  }
}

/** The data of `client.request()`: anything else is answered `GLUE_INVALID_DATA` and never reaches the app. */
export const chatRequestSchema = requestSchema as TypedSchema<ChatRequest>

/** Options of {@link buildChatApp}. */
export interface ChatOptions {
  /**
   * Cookie signing secret.
   * @default process.env.SESSION_SECRET, else DEV_SECRET (with a warning)
   */
  secret?: string
  /**
   * Redis URL that joins this node to the others using the same Redis; unset runs one node in memory.
   * @default process.env.REDIS_URL
   */
  redisUrl?: string
  /**
   * Posts per session: a token bucket (posts and questions to the bot count alike).
   * @default { postsPerSecond: process.env.POSTS_PER_SECOND ?? 1, burst: process.env.POST_BURST ?? 5, maxTracked: 10000 }
   */
  postLimit?: PostLimitOptions
  /**
   * Fastify's logger option.
   * @default true
   */
  logger?: FastifyServerOptions['logger']
}

/** An error `answerRequest` shows to the client: `expose` lets its code and message through. */
class ChatError extends Error {
  readonly expose = true
  readonly code: string

  constructor (code: string, message: string) {
    super(message)
    this.code = code
  }
}

/** A name to log in with: 1 to 32 letters, digits, spaces, `.`, `_` or `-`, not the bot's. A demo, not authentication. */
function readName (body: unknown): string | null {
  const raw = (body as { name?: unknown } | null)?.name
  const name = typeof raw === 'string' ? raw.trim() : ''
  return /^[\w .-]{1,32}$/.test(name) && name.toLowerCase() !== BOT_NAME ? name : null
}

function readNumber (name: string, fallback: number): number {
  const value = process.env[name]
  if (value === undefined || value === '') return fallback
  const number = Number(value)
  if (!(number > 0) || !Number.isFinite(number)) throw new RangeError(`Expected ${name} to be a positive number, got "${value}"`)
  return number
}

// The page's files sit in example/chat/public: beside this module when it runs from source, three
// levels up from dist/example/chat when built.
function publicDirectory (): string {
  const beside = new URL('./public/', import.meta.url)
  if (existsSync(new URL('index.html', beside))) return fileURLToPath(beside)
  return fileURLToPath(new URL('../../../example/chat/public/', import.meta.url))
}

// The page loads its own script, its stylesheet and the plugin's client from this origin, and
// talks to this origin's socket: nothing inline, nothing from elsewhere, no framing.
const CONTENT_SECURITY_POLICY = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

/**
 * Builds the chat: the page at `/` (static files), the websocket at `/ws`, rooms as topics with
 * history and presence, posts
 * and questions to the bot through `client.request()`, `POST /login`, `POST /logout`, `GET /me` (the user and the rooms
 * the session is in) and `GET /rooms`.
 */
export async function buildChatApp (options: ChatOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: options.logger ?? true })
  const secret = options.secret ?? process.env.SESSION_SECRET ?? DEV_SECRET
  if (secret === DEV_SECRET) app.log.warn('using the built-in development secret: set SESSION_SECRET outside local development')
  const redisUrl = options.redisUrl ?? (process.env.REDIS_URL === '' ? undefined : process.env.REDIS_URL)
  const postLimit = createPostLimit(options.postLimit ?? {
    postsPerSecond: readNumber('POSTS_PER_SECOND', 1),
    burst: Math.ceil(readNumber('POST_BURST', 5))
  })
  const topics = new Map<string, Room>(ROOMS.map((room) => [roomTopic(room), room]))

  const publish = (message: ChatMessage): void => {
    app.sessions.publish(roomTopic(message.room), message)
  }

  // Runs for every request that passed the schema: who may post where, how often, and the bot.
  const answer = (session: Session, request: ChatRequest): unknown => {
    const author = session.userId
    if (author === null) throw new ChatError('NOT_LOGGED_IN', 'Log in to post')
    // The requesting socket is on this node, so topicsOf is complete for its session, with Redis too.
    if (!app.sessions.topicsOf(session.id).includes(roomTopic(request.room))) {
      throw new ChatError('NOT_IN_ROOM', `Join #${request.room} before posting to it`)
    }
    if (request.op === 'ask' && request.room !== BOT_ROOM) {
      throw new ChatError('NO_BOT_HERE', `${BOT_NAME} answers in #${BOT_ROOM} only`)
    }
    if (!postLimit.take(session.id)) throw new ChatError('RATE_LIMITED', 'You are posting too fast: wait a moment')
    const text = request.text.trim()
    publish({ room: request.room, author, text, at: new Date().toISOString(), bot: false })
    if (request.op === 'post') return { posted: true }
    const reply = answerQuestion(text, author, ROOMS)
    publish({ room: BOT_ROOM, author: BOT_NAME, text: reply, at: new Date().toISOString(), bot: true })
    return { answer: reply }
  }

  await app.register(glue, defineGlueOptions({
    path: '/ws',
    cookie: { secret },
    // Posts go through requests, which carry an answer; a plain message has no place here and is
    // dropped and counted (stats().invalidMessages).
    messageSchema: false,
    requestSchema: chatRequestSchema,
    answerRequest: answer,
    // Logged-in sessions may join the rooms, and nothing else.
    authorizeSubscribe: (session, topic) => session.userId !== null && topics.has(topic),
    // Each room keeps its last messages, which a page asks for when it joins (and after a reload).
    topicHistory: (topic) => topics.has(topic) ? ROOM_HISTORY : undefined,
    // Each room's subscribers see who is in it: members are user ids, since only logged-in sessions join.
    topicPresence: (topic) => topics.has(topic),
    redis: redisUrl
  }))
  if (redisUrl !== undefined) app.log.info('chat node joined the cluster through Redis')

  await app.register(fastifyStatic, {
    root: publicDirectory(),
    // The page changes with the code; revalidate each load (ETag) rather than cache it.
    cacheControl: false,
    setHeaders (reply) {
      reply.header('cache-control', 'no-cache')
      reply.header('x-content-type-options', 'nosniff')
      reply.header('content-security-policy', CONTENT_SECURITY_POLICY)
    }
  })

  app.get('/rooms', async () => ({ rooms: ROOMS, topics: ROOMS.map(roomTopic), bot: { name: BOT_NAME, room: BOT_ROOM }, maxText: MAX_TEXT, history: ROOM_HISTORY }))
  // The rooms the session is in, so a reloaded page joins them again (membership outlives a reload).
  app.get('/me', async (request) => {
    const { sessionId } = request
    const joined = sessionId === null ? [] : await app.sessions.clusterTopicsOf(sessionId)
    const rooms = joined.flatMap((topic) => topics.get(topic) ?? [])
    return { user: request.sessionUserId, rooms }
  })

  // A login by name only (no password): the session moves to a new id bound to the name, which
  // becomes the author of everything posted from it.
  app.post('/login', async (request, reply) => {
    const name = readName(request.body)
    if (name === null) {
      return reply.code(400).send({ error: `Expected a name of 1 to 32 letters, digits, spaces, ".", "_" or "-", other than ${BOT_NAME}`, code: 'BAD_NAME' })
    }
    app.sessions.login(request, reply, name)
    return { user: name }
  })
  // Logout revokes the session: its sockets close with 3000 and its room memberships end.
  app.post('/logout', async (request, reply) => {
    const user = request.sessionUserId
    app.sessions.logout(request, reply)
    return { user }
  })

  return app
}
