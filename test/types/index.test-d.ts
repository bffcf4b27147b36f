// Compiled by test/exports.test.ts with `tsc -p test/types`: a type error fails the suite.
import Fastify, { type FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import glue, {
  errors,
  glue as namedGlue,
  GLUE_PROTOCOL,
  type CloseListener,
  type IdentifyUser,
  type GlueOptions,
  type RequestHandler,
  type Session,
  type Sessions,
  type SessionStats,
  type SubscribeAuthorizer,
  type ClusterCounts,
  type GlueAdapter,
  type SessionGauges,
  type TypedSchema,
  type TopicHistory,
  type MemberList,
  type TopicMember,
  type Pipe,
  type PipeContext,
  type PipeOutcome,
  type PipeStats,
  createMemoryAdapter,
  defineGlueOptions
} from 'fastify-websocket-glue'
import { Type, type Static } from '@sinclair/typebox'
import { Registry } from 'prom-client'
import glueMetrics, { glueMetrics as namedGlueMetrics, type GlueMetricsOptions } from 'fastify-websocket-glue/metrics'
import WebSocketClass from 'ws'
import {
  GlueClient,
  GlueClientError,
  type GlueClientOptions,
  type GlueMessageEvent,
  type GlueReconnectingEvent,
  type GlueRevokedEvent,
  type GlueState,
  type GlueMember,
  type GlueMemberList,
  type GluePresenceEvent,
  type GlueSubscribeOptions
} from 'fastify-websocket-glue/client'
import { createRedisAdapter, createRedisStreamSource, decodeClusterMessage, type RedisAdapterOptions, type RedisStreamEntry } from 'fastify-websocket-glue/redis'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
function expectType<T extends true> (_value?: T): void {}

const app = Fastify()
await app.register(glue, {
  path: '/ws',
  cookie: { name: '__Host-sid', secret: ['new', 'old'], secure: true, sameSite: 'strict', maxAge: 60 },
  allowedOrigins: (origin: string, request: FastifyRequest) => origin === request.headers.host,
  heartbeatInterval: 30_000,
  maxPayload: 65_536,
  client: false,
  onConnect (session, socket, request) {
    expectType<Equal<typeof session, Session>>()
    expectType<Equal<typeof socket, WebSocket>>()
    expectType<Equal<typeof request, FastifyRequest>>()
  },
  async onMessage (session, data) {
    expectType<Equal<typeof data, string | Buffer>>()
    expectType<Equal<typeof session.id, string>>()
  },
  onClose (_session, _socket, code, reason) {
    expectType<Equal<typeof code, number>>()
    expectType<Equal<typeof reason, string>>()
  }
})
await app.register(namedGlue, { allowedOrigins: ['https://app.example'] })

// Declaration merging: app.sessions and request.sessionId.
expectType<Equal<typeof app.sessions, Sessions>>()
expectType<Equal<ReturnType<Sessions['send']>, number>>()
expectType<Equal<ReturnType<Sessions['broadcast']>, number>>()
expectType<Equal<ReturnType<Sessions['close']>, number>>()
expectType<Equal<Sessions['size'], number>>()
expectType<Equal<ReturnType<Sessions['get']>, Session | undefined>>()
app.get('/', async (request) => {
  expectType<Equal<typeof request.sessionId, string | null>>()
  if (request.sessionId !== null) app.sessions.send(request.sessionId, { hello: 'world' })
  return null
})
// What `for (const session of app.sessions)` gives.
type IteratedSession = typeof app.sessions extends Iterable<infer S> ? S : never
expectType<Equal<IteratedSession['sockets'], ReadonlySet<WebSocket>>>()
app.sessions.broadcast('x', { except: 'sid' })
const onClose: CloseListener = () => {}
app.sessions.on('close', onClose).off('close', onClose)
app.sessions.on('message', (_session, data) => { expectType<Equal<typeof data, string | Buffer>>() })

// @ts-expect-error unknown event name
app.sessions.on('open', () => {})
// @ts-expect-error the reason must be a string
app.sessions.close('sid', 4000, 42)
// @ts-expect-error sameSite is a closed set
const badSameSite: GlueOptions = { cookie: { sameSite: 'loose' } }
// @ts-expect-error heartbeatInterval is a number
const badInterval: GlueOptions = { heartbeatInterval: '30s' }
app.post('/', async (request) => {
  // @ts-expect-error request.sessionId is data, not a function
  request.sessionId()
  // @ts-expect-error request.sessionId may be null
  app.sessions.send(request.sessionId, 'x')
})

// Topics, requests, delivery and limits.
const authorize: SubscribeAuthorizer = async (session, topic) => session.id !== '' && topic.startsWith('public:')
const answer: RequestHandler = (_session, data) => ({ echo: data })
await app.register(glue, {
  authorizeSubscribe: authorize,
  answerRequest: answer,
  outboxLimit: 100,
  outboxMaxAge: 60_000,
  sessionGrace: 0,
  sendHighWaterMark: 1 << 20,
  rateLimit: { messagesPerSecond: 10, burst: 20 },
  maxSocketsPerSession: 4,
  maxSocketsPerAddress: 100
})
await app.register(glue, { rateLimit: false })
expectType<Equal<ReturnType<Sessions['subscribe']>, boolean>>()
expectType<Equal<ReturnType<Sessions['unsubscribe']>, boolean>>()
expectType<Equal<ReturnType<Sessions['publish']>, number>>()
expectType<Equal<ReturnType<Sessions['topicsOf']>, string[]>>()
expectType<Equal<ReturnType<Sessions['subscriberCount']>, number>>()
expectType<Equal<ReturnType<Sessions['isKnown']>, boolean>>()
expectType<Equal<ReturnType<Sessions['stats']>, SessionStats>>()
expectType<Equal<SessionStats['replayed'], number>>()
expectType<Equal<typeof GLUE_PROTOCOL, 'glue.v1'>>()
app.sessions.publish('news', { headline: 'x' }, { except: 'sid', volatile: true })
app.sessions.send('sid', 'cursor', { volatile: true })
// @ts-expect-error rateLimit is an object or false
const badRate: GlueOptions = { rateLimit: true }
// @ts-expect-error volatile is a boolean
app.sessions.send('sid', 'x', { volatile: 'yes' })

// Many nodes: the redis option, adapters and the cluster-wide queries.
await app.register(glue, { redis: 'redis://127.0.0.1:6379' })
await app.register(glue, { redis: { url: 'rediss://cache.internal:6380', prefix: 'shop', streamLimit: 50_000, bufferLimit: 100, nodeTimeout: 5000 } })
const redisAdapter: GlueAdapter = createRedisAdapter({ url: 'redis://127.0.0.1:6379' })
const redisOptions: RedisAdapterOptions = { url: 'redis://127.0.0.1:6379', prefix: 'shop' }
await app.register(glue, { redis: redisOptions })
expectType<Equal<Parameters<typeof decodeClusterMessage>[0], Buffer>>()
await app.register(glue, { adapter: redisAdapter })
await app.register(glue, { adapter: createMemoryAdapter() })
expectType<Equal<ReturnType<Sessions['presence']>, Promise<number>>>()
expectType<Equal<ReturnType<Sessions['clusterCounts']>, Promise<ClusterCounts>>>()
expectType<Equal<ClusterCounts['nodes'], number>>()
// @ts-expect-error redis takes a URL string, a client or an options object
const badRedis: GlueOptions = { redis: 6379 }
// @ts-expect-error an adapter needs the whole interface
const badAdapter: GlueOptions = { adapter: { name: 'x' } }
export { badRedis, badAdapter }

const code: 'FST_WSGLUE_INVALID_OPTION' = new errors.FST_WSGLUE_INVALID_OPTION('x').code

// Users and login: the binding, rotation, revocation, and what hooks and routes see.
const identify: IdentifyUser = async (request) => request.headers['x-user'] === undefined ? null : 'ada'
await app.register(glue, { cookie: { secret: 's', lifetime: 3600 }, identify, maxRevocations: 1000 })
await app.register(glue, { identify: () => undefined })
app.post('/login', async (request, reply) => {
  expectType<Equal<typeof request.sessionUserId, string | null>>()
  expectType<Equal<ReturnType<Sessions['login']>, string>>()
  app.sessions.send(app.sessions.login(request, reply, 'ada'), 'welcome')
  app.sessions.logout(request, reply)
  // @ts-expect-error login needs the reply to set the cookie on
  app.sessions.login(request, 'ada')
  return null
})
app.sessions.on('connect', (session) => { expectType<Equal<typeof session.userId, string | null>>() })
expectType<Equal<ReturnType<Sessions['sendToUser']>, number>>()
expectType<Equal<ReturnType<Sessions['closeUser']>, number>>()
expectType<Equal<ReturnType<Sessions['revoke']>, number>>()
expectType<Equal<ReturnType<Sessions['revokeUser']>, number>>()
expectType<Equal<ReturnType<Sessions['sessionsOf']>, string[]>>()
expectType<Equal<ReturnType<Sessions['clusterSessionsOf']>, Promise<string[]>>>()
expectType<Equal<SessionStats['revocations'], number>>()
app.sessions.sendToUser('ada', { hello: 'ada' }, { volatile: true })
app.sessions.closeUser('ada', 4000, 'bye')
// @ts-expect-error user ids are strings
app.sessions.sendToUser(42, 'x')
// @ts-expect-error identify names a user with a string
const badIdentify: GlueOptions = { identify: () => 42 }
export { badIdentify }

// The browser client, by its package name: the declarations of the bundled ES module.
const clientOptions: GlueClientOptions = { url: 'ws://127.0.0.1/ws', WebSocket: WebSocketClass, reconnectionDelayMax: 5000, autoConnect: false }
const client = new GlueClient(clientOptions)
expectType<Equal<typeof client.state, GlueState>>()
expectType<Equal<ReturnType<typeof client.request<{ now: string }>>, Promise<{ now: string }>>>()
expectType<Equal<ReturnType<typeof GlueClient.isDoNotComeBack>, boolean>>()
client.on('message', (event) => { expectType<Equal<typeof event, GlueMessageEvent>>() })
client.on('reconnecting', (event) => { expectType<Equal<typeof event, GlueReconnectingEvent>>() })
client.on('error', (error) => { expectType<Equal<typeof error, GlueClientError>>() })
client.on('revoked', (event) => { expectType<Equal<typeof event, GlueRevokedEvent>>() })
// @ts-expect-error there is no such event
client.on('reconnected', () => {})
// @ts-expect-error reconnectionDelayMax is a number of milliseconds
const badClient: GlueClientOptions = { reconnectionDelayMax: '5s' }
export { badClient }
export { badSameSite, badInterval, badRate, code }

// Validated, typed messages: defineGlueOptions infers the data types from TypeBox schemas.
const ChatMessage = Type.Object({ text: Type.String(), room: Type.Optional(Type.String()) })
const TimeRequest = Type.Object({ op: Type.Literal('time') })
await app.register(glue, defineGlueOptions({
  messageSchema: ChatMessage,
  requestSchema: TimeRequest,
  onMessage (session, data, socket) {
    expectType<Equal<typeof data, Static<typeof ChatMessage>>>()
    expectType<Equal<typeof data.text, string>>()
    expectType<Equal<typeof session, Session>>()
    expectType<Equal<typeof socket, WebSocket>>()
  },
  answerRequest (_session, data, _socket, signal) {
    expectType<Equal<typeof data, { op: 'time' }>>()
    expectType<Equal<typeof signal, AbortSignal>>()
    return { now: Date.now() }
  },
  onConnect (_session, _socket, request) { expectType<Equal<typeof request, FastifyRequest>>() }
}))
// Without schemas the data is what it always was.
defineGlueOptions({
  onMessage (_session, data) { expectType<Equal<typeof data, string | Buffer>>() },
  answerRequest (_session, data) { expectType<Equal<typeof data, unknown>>() }
})
// A plain JSON Schema carries no type: the data is unknown until typed with TypedSchema.
defineGlueOptions({
  requestSchema: { type: 'object', properties: { op: { type: 'string' } } },
  answerRequest (_session, data) { expectType<Equal<typeof data, unknown>>() }
})
const pointSchema = { type: 'object', properties: { x: { type: 'number' } }, required: ['x'] } as const
defineGlueOptions({
  messageSchema: pointSchema as typeof pointSchema & TypedSchema<{ x: number }>,
  onMessage (_session, data) { expectType<Equal<typeof data, { x: number }>>() }
})
defineGlueOptions({
  messageSchema: ChatMessage,
  // @ts-expect-error data has no field the schema does not declare
  onMessage (_session, data) { return data.missing }
})
defineGlueOptions({
  requestSchema: TimeRequest,
  answerRequest (_session, data) {
    // @ts-expect-error 'time' is the only op the schema allows
    if (data.op === 'date') return null
    return null
  }
})
// @ts-expect-error a schema is a JSON Schema object or a boolean
const badSchema: GlueOptions = { messageSchema: 'chat' }
export { badSchema }
await app.register(glue, { messageSchema: true, requestSchema: { type: 'object' } })

// Typed sends: a view of app.sessions with the type of what the server sends.
interface ServerMessage { type: 'order-created', id: number }
const typedSessions: Sessions<ServerMessage> = app.sessions
typedSessions.send('sid', { type: 'order-created', id: 42 })
typedSessions.broadcast({ type: 'order-created', id: 1 }, { except: 'sid' })
typedSessions.publish('orders', { type: 'order-created', id: 2 })
// @ts-expect-error id is a number
typedSessions.send('sid', { type: 'order-created', id: '42' })
// @ts-expect-error not a ServerMessage
typedSessions.publish('orders', 'text')
app.sessions.send('sid', 'untyped app.sessions takes any data')

// Metrics: stats().closesByCode, gauges() and the metrics subpath.
expectType<Equal<SessionStats['closesByCode']['app'], number>>()
expectType<Equal<SessionStats['invalidMessages'], number>>()
expectType<Equal<ReturnType<Sessions['gauges']>, Promise<SessionGauges>>>()
expectType<Equal<SessionGauges['adapter'], ({ readonly name: string } & { readonly connected: boolean, readonly lag?: number }) | undefined>>()
// @ts-expect-error closes are counted under a fixed set of labels
expectType<SessionStats['closesByCode']['4000']>()
await app.register(glueMetrics, { registry: new Registry(), prefix: 'shop_' })
await app.register(namedGlueMetrics)
const metricsOptions: GlueMetricsOptions = { prefix: 'glue_' }
// @ts-expect-error the registry is a prom-client Registry
const badMetrics: GlueMetricsOptions = { registry: 'global' }
export { metricsOptions, badMetrics }

// Topic history and presence (issue 17).
await app.register(glue, { topicHistory: { limit: 50, maxAge: 60_000 }, maxHistoryBytes: 1 << 20, topicPresence: true, presenceInterval: 500, maxMembers: 100 })
await app.register(glue, { topicHistory: (topic) => topic.startsWith('room:') ? { limit: 100 } : undefined, topicPresence: (topic) => topic.startsWith('room:') })
// @ts-expect-error limit is a number
const badHistory: GlueOptions = { topicHistory: { limit: '100' } }
// @ts-expect-error topicPresence is a boolean or a function
const badPresence: GlueOptions = { topicPresence: 'all' }
export { badHistory, badPresence }
const kept: TopicHistory = await app.sessions.history('room:1', { last: 20 })
expectType<Equal<typeof kept.missed, number | null>>()
expectType<Equal<typeof kept.messages[number]['position'], string>>()
await app.sessions.history('room:1', { since: kept.messages[0]?.position })
// @ts-expect-error since is a position string
await app.sessions.history('room:1', { since: 3 })
const list: MemberList = await app.sessions.members('room:1')
expectType<Equal<typeof list.members[number], TopicMember>>()
expectType<Equal<TopicMember['user'], boolean>>()
expectType<Equal<SessionStats['historyRequests'], number>>()
await client.subscribe('room:1', { history: true })
await client.subscribe('room:1', { history: { last: 20 } })
// @ts-expect-error history is true or { last }
await client.subscribe('room:1', { history: 'all' })
const members: GlueMemberList = await client.members('room:1')
expectType<Equal<typeof members.members[number], GlueMember>>()
client.on('join', (event) => { expectType<Equal<typeof event, GluePresenceEvent>>() })
client.on('leave', (event) => { expectType<Equal<typeof event.member.id, string>>() })
client.on('membersstale', (event) => { expectType<Equal<typeof event.topic, string>>() })
client.on('gap', (event) => { expectType<Equal<typeof event.topic, string | undefined>>() })
client.onTopic('room:1', (event) => {
  expectType<Equal<typeof event.history, boolean>>()
  expectType<Equal<typeof event.position, string | undefined>>()
})
const subscribeOptions: GlueSubscribeOptions = { history: false }
export { subscribeOptions, list, members }
// Streams in: pipe() from iterables and factories, typed items, the Redis Stream source.
const numbers: Pipe = app.sessions.pipe([1, 2, 3], { topic: 'numbers' }, { map: (n) => n * 2, name: 'numbers' })
expectType<Equal<ReturnType<Pipe['stats']>, PipeStats>>()
expectType<Equal<Pipe['done'], Promise<PipeOutcome>>>()
expectType<Equal<PipeOutcome['state'], 'ended' | 'stopped' | 'failed'>>()
await numbers.stop()
app.sessions.pipe(async function * ({ signal, accepted }: PipeContext) {
  while (!signal.aborted) {
    yield { room: 'a', text: 'hi' }
    await accepted()
  }
}, { to: (item) => ({ topic: item.room }) }, { map: (item) => item.text, restart: { retries: 5, minDelay: 50, maxDelay: 1000 }, maxInFlight: 16 })
app.sessions.pipe(createRedisStreamSource({ redis: 'redis://127.0.0.1:6379', key: 'in', group: 'glue', count: 50, block: 1000, claimIdle: 10_000 }),
  { sessionId: 'sid' }, { map: (entry: RedisStreamEntry) => entry.fields.text, restart: false })
typedSessions.pipe(['x'], { userId: 'u1' }, { map: (id) => ({ type: 'order-created', id: id.length }) })
// @ts-expect-error map returns what the typed sessions send
typedSessions.pipe(['x'], { topic: 'orders' }, { map: (text) => text })
// @ts-expect-error a target is a topic, a session, a user or to()
app.sessions.pipe([1], { room: 'a' })
// @ts-expect-error the source is an iterable or a factory
app.sessions.pipe(42, { topic: 'a' })
