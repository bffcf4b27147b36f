import fastifyCookie from '@fastify/cookie'
import fastifyWebsocket from '@fastify/websocket'
import type { FastifyInstance } from 'fastify'
import type { Server } from 'node:http'
import fp from 'fastify-plugin'
import type { WebSocket } from 'ws'
import type { GlueAdapter } from './adapters/adapter.js'
import { loadRedisAdapter } from './adapters/load-redis.js'
import { createMemoryAdapter } from './adapters/memory.js'
import { SessionEvents } from './api/events.js'
import { createGauges } from './api/gauges.js'
import { createSessions, type Sessions } from './api/sessions.js'
import { createStats, type SessionStats } from './stats.js'
import { serveClientAssets } from './client-assets.js'
import type { GlueOptions } from './config/options.js'
import { resolveOptions, type ResolvedGlueOptions } from './config/resolve.js'
import { createConnectionHandler } from './connection/connection.js'
import { createHeartbeat } from './connection/heartbeat.js'
import { createRateLimiter } from './connection/rate-limit.js'
import { compileDataChecks } from './connection/validation.js'
import { closeSockets } from './connection/shutdown.js'
import { MAX_SWEEP_INTERVAL } from './constants.js'
import { Delivery } from './delivery/delivery.js'
import { Resume } from './delivery/resume.js'
import { SocketWriter } from './delivery/socket-writer.js'
import { errors } from './errors.js'
import { setUpHandshake } from './handshake/handshake.js'
import { UpgradeGate } from './handshake/upgrade-gate.js'
import { MAX_CLOCK_SKEW } from './handshake/identity.js'
import { createSessionCookie } from './handshake/session-cookie.js'
import { SessionStore } from './sessions/store.js'
import { Pipes, PIPE_STATS, deliverTo } from './streams/pipes.js'
import { Revocations } from './users/revocations.js'
import { createUserSessions } from './users/users.js'
import { GLUE_PROTOCOL } from './wire/protocol.js'
import { TopicHistoryReplies } from './delivery/topic-history.js'
import { TopicHistories } from './topics/history.js'
import { TopicPresence } from './topics/presence.js'
import { createTopicRules } from './topics/rules.js'
import { formatPosition } from './topics/position.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Push to browsers by session id; see the README's API section. */
    sessions: Sessions
  }
  interface FastifyRequest {
    /** The verified session id from the signed cookie (or the one minted for this response), else null. */
    sessionId: string | null
    /** The user the session cookie is bound to (`sessions.login()` or `identify`), else null. */
    sessionUserId: string | null
  }
}

/** The adapter the options ask for; the Redis one is loaded only when used, so ioredis stays optional. */
async function chooseAdapter (options: ResolvedGlueOptions): Promise<GlueAdapter> {
  if (options.adapter !== undefined) return options.adapter
  if (options.redis === undefined) return createMemoryAdapter()
  return await loadRedisAdapter(options.redis)
}

/** Registers @fastify/cookie and @fastify/websocket unless the app already has them. */
async function registerDependencies (fastify: FastifyInstance, options: ResolvedGlueOptions): Promise<boolean> {
  if (!fastify.hasDecorator('parseCookie')) {
    await fastify.register(fastifyCookie, { secret: options.cookie.secrets === null ? undefined : [...options.cookie.secrets] })
  }
  if (fastify.hasDecorator('websocketServer')) return false
  const gate = new UpgradeGate(fastify.server)
  await fastify.register(fastifyWebsocket, {
    options: {
      // @fastify/websocket listens on the gate, which passes it every upgrade of the app's server.
      server: gate as unknown as Server,
      maxPayload: options.maxPayload,
      // Select glue.v1 when offered; any other client gets no subprotocol and raw frames.
      handleProtocols: (protocols) => protocols.has(GLUE_PROTOCOL) ? GLUE_PROTOCOL : false
    },
    // ws has already sent the close frame (1002, 1007, 1009); terminating here could cut it off.
    errorHandler (error, _socket, request) {
      request.log.info({ err: error }, 'websocket peer error')
    },
    // Closing with 1001 happens in our own preClose hook.
    preClose (done) {
      this.websocketServer.close()
      done()
    }
  })
  gate.watch(fastify.websocketServer)
  return true
}

/** One timer for every session's grace period, outbox age, drain deadline and handshake buckets. */
function startSweeper (fastify: FastifyInstance, options: ResolvedGlueOptions, sweep: (now: number) => void): NodeJS.Timeout {
  const interval = Math.max(10, Math.min(MAX_SWEEP_INTERVAL,
    Math.floor(Math.min(options.sessionGrace || Infinity, options.outboxMaxAge, options.drainTimeout) / 4)))
  const timer = setInterval(() => {
    try {
      sweep(Date.now())
    } catch (err) {
      fastify.log.error({ err }, 'session sweep failed')
    }
  }, interval)
  timer.unref()
  return timer
}

async function glue (fastify: FastifyInstance, rawOptions: GlueOptions): Promise<void> {
  const options = resolveOptions(rawOptions)
  const ownsWebsocket = await registerDependencies(fastify, options)
  // Compiled before anything starts, so a schema the compiler refuses leaves nothing to stop.
  const checks = await compileDataChecks(fastify, options)
  const adapter = await chooseAdapter(options)
  const stats: SessionStats = createStats()
  // Topic presence hears every socket that opens or closes, as the adapter does (sockets open only once it exists).
  const store = new SessionStore(options, stats, {
    socketOpened (sessionId, userId) {
      adapter.socketOpened(sessionId, userId)
      topicPresence.touchSession(sessionId)
    },
    socketClosed (sessionId) {
      adapter.socketClosed(sessionId)
      topicPresence.touchSession(sessionId)
    }
  }, adapter.sequenced)
  const writer = new SocketWriter(options, stats)
  const topicRules = createTopicRules(options.topicHistory, options.topicPresence, fastify.log)
  const histories = new TopicHistories(options.maxHistoryBytes)
  const topicPresence = new TopicPresence(topicRules, store, writer, options, stats, fastify.log)
  const topicHistory = new TopicHistoryReplies(topicRules, histories, writer, adapter, stats, fastify.log)
  let warnedEviction = false
  // A revocation is needed while a cookie it refuses could still be accepted: a lifetime, plus the clock skew allowed.
  const revocationLifetime = options.cookie.lifetime + MAX_CLOCK_SKEW
  const revocations = new Revocations(revocationLifetime, options.maxRevocations, stats, () => {
    if (warnedEviction) return
    warnedEviction = true
    fastify.log.warn({ maxRevocations: options.maxRevocations }, 'fastify-websocket-glue: forgot revocations early to stay within maxRevocations')
  })
  const delivery = new Delivery(store, writer, revocations, { rules: topicRules, histories, presence: topicPresence })
  const resume = new Resume(store, writer, adapter, options, stats, fastify.log,
    (topic, epoch, seq) => topicRules.historyOf(topic) === undefined ? undefined : formatPosition(epoch, seq))
  const events = new SessionEvents(fastify.log)
  const cookie = createSessionCookie(fastify, options, revocations)
  const users = createUserSessions(adapter, revocations, cookie)
  const handshake = setUpHandshake(fastify, options, store, stats, cookie, users)

  await adapter.start({
    apply: (message, clusterSeq, among, epoch) => delivery.apply(message, clusterSeq, among, epoch),
    resync: (epoch, affects, announced) => {
      resume.resync(epoch, affects, announced)
      // Whatever this node announced of its members may be gone with it.
      topicPresence.reannounce()
    },
    setTopics: (sessionId, topics) => {
      store.setTopics(sessionId, topics)
      // The node learns a session's topics after its socket opened: its member counts here now.
      topicPresence.touchSession(sessionId)
    },
    topicsOf: (sessionId) => store.topicsOf(sessionId),
    unchanged: (sessionId, topic) => { store.unchanged(sessionId, topic) },
    subscriberCount: (topic) => store.subscriberCount(topic),
    socketCount: (sessionId) => store.socketCount(sessionId),
    localSessions: () => store.socketCounts(),
    localCounts: () => ({ sessions: stats.sessions, sockets: stats.sockets }),
    sessionsOf: (userId) => store.sessionsOfUser(userId),
    restoreRevocations (sessions, users) {
      for (const [sessionId, at] of sessions) revocations.revokeSession(sessionId, at)
      for (const [userId, before] of users) revocations.revokeUser(userId, before)
    },
    log: fastify.log
  }, { ...options, revocationLifetime, historyOf: (topic) => topicRules.historyOf(topic) })
  if (adapter.sequenced && adapter.announceMembers !== undefined && adapter.clusterMembers !== undefined) {
    const { announceMembers, clusterMembers } = adapter
    topicPresence.useCluster({
      announceMembers: announceMembers.bind(adapter),
      clusterMembers: clusterMembers.bind(adapter),
      emitPresence: (topic, joined, left) => {
        try {
          adapter.emit({ kind: 'presence', topic, joined, left })
        } catch (err) {
          fastify.log.warn({ err, topic }, 'presence event not sent')
        }
      }
    })
  }
  topicPresence.start()
  // Registered after start, so a failed start leaves nothing to stop; runs after preClose closed the sockets.
  fastify.addHook('onClose', async function stopAdapter () {
    await adapter.stop()
  })

  if (options.onConnect !== undefined) events.on('connect', options.onConnect)
  if (options.onMessage !== undefined) events.on('message', options.onMessage)
  if (options.onClose !== undefined) events.on('close', options.onClose)
  const pipes = new Pipes({
    deliver: (destination, data, volatile) => { deliverTo(sessions, destination, data, volatile) },
    settled: () => adapter.settled(),
    undelivered: () => adapter.undelivered ?? 0,
    counted: (count) => { stats[PIPE_STATS[count]]++ },
    log: fastify.log
  })
  const sessions = createSessions(store, adapter, events, stats, options, createGauges(store, writer, adapter, stats, fastify.log), users, { history: topicHistory, presence: topicPresence }, pipes)
  fastify.decorate('sessions', sessions)
  fastify.decorateRequest('sessionId', null)
  fastify.decorateRequest('sessionUserId', null)

  const heartbeat = createHeartbeat(options.heartbeatInterval, (err) => { fastify.log.error({ err }, 'heartbeat failed') })
  fastify.get(options.path, { websocket: true, onRequest: handshake.admit }, createConnectionHandler({
    store,
    writer,
    resume,
    adapter,
    events,
    heartbeat,
    log: fastify.log,
    stats,
    ownsWebsocket,
    countsAddresses: options.maxSocketsPerAddress > 0,
    maxPayload: options.maxPayload,
    rateLimiter: createRateLimiter(options.rateLimit),
    answerRequest: options.answerRequest,
    checkMessage: checks.message,
    checkRequest: checks.request,
    authorizeSubscribe: options.authorizeSubscribe,
    maxTopicsPerSession: options.maxTopicsPerSession,
    maxPendingRequests: options.maxPendingRequests,
    topicRules,
    topicHistory,
    presence: topicPresence
  }))

  const sweeper = startSweeper(fastify, options, (now) => {
    store.sweep(now)
    writer.sweep(now)
    handshake.limiter.sweep(now)
    revocations.sweep(now)
    histories.sweep(now, (topic) => topicRules.historyOf(topic))
  })
  if (options.client !== false) await serveClientAssets(fastify, options.client.prefix)

  // Before the sockets close, so what a pipe handed over still reaches them; runs before the adapter stops.
  fastify.addHook('preClose', async function stopPipes () {
    await pipes.stopAll()
  })
  fastify.addHook('preClose', async function closeAllSockets () {
    heartbeat.stop()
    topicPresence.stop()
    clearInterval(sweeper)
    // What was sent before close() reaches its clients before the 1001.
    writer.flush()
    await closeSockets(() => store.sockets())
  })
}

/** The fastify-websocket-glue plugin: signed-cookie sessions that own websockets, and `app.sessions`. */
const plugin = fp(glue, { fastify: '5.x', name: 'fastify-websocket-glue' })

export default plugin
export { plugin as glue, errors }
export { createSessionId } from './handshake/identity.js'
export { createMemoryAdapter } from './adapters/memory.js'
export type {
  GlueAdapter,
  LocalAdapter,
  SequencedAdapter,
  AdapterHost,
  AdapterLimits,
  AdapterHealth,
  ClusterMessage,
  ClusterMessageKind,
  ClusterCounts,
  ReplayResult,
  StreamPosition,
  WelcomePosition
} from './adapters/adapter.js'
export { defineGlueOptions } from './config/define.js'
export type { SchemaData, TypedSchema, SchemaTypedOptions, MessageDataOf, RequestDataOf } from './config/define.js'
export type {
  JsonSchema,
  GlueOptions,
  GlueCookieOptions,
  GlueClientAssetsOptions,
  HandshakeRateLimitOptions,
  RateLimitOptions,
  TopicHistoryOptions
} from './config/options.js'
export type { Sessions, BroadcastOptions, SendOptions, HistoryOptions } from './api/sessions.js'
export type { Pipe, PipeStats, PipeState, PipeOutcome } from './streams/pipe.js'
export type { PipeContext, PipeDestination, PipeIterable, PipeOptions, PipeRestartOptions, PipeSource, PipeTarget } from './streams/pipe-options.js'
export type { TopicHistory } from './delivery/topic-history.js'
export type { MemberList } from './topics/presence.js'
export type { TopicMember } from './wire/protocol.js'
export type { TopicHistoryResult } from './adapters/adapter.js'
export type { SessionStats, SessionGauges, CloseCounts, CloseCodeLabel } from './stats.js'
export type { Session } from './sessions/live-session.js'
export type { SessionEventMap, SessionEventName } from './api/events.js'
export type { ConnectListener, MessageListener, CloseListener, RequestHandler, SubscribeAuthorizer, OriginCheck, IdentifyUser } from './api/hooks.js'
export { GLUE_PROTOCOL } from './wire/protocol.js'
export type { WebSocket }
