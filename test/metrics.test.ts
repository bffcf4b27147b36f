import Fastify from 'fastify'
import { Registry, register as globalRegistry } from 'prom-client'
import { test } from 'tap'
import glue, { createMemoryAdapter } from '../plugin/index.js'
import { closeCodeLabel } from '../plugin/stats.js'
import glueMetrics from '../plugin/metrics/index.js'
import {
  cookiePair,
  openGlueSocket,
  openSocket,
  redisSkip,
  SECRET,
  sessionIdOf,
  startApp,
  startRedis,
  uniquePrefix,
  until,
  type StartedApp
} from './helpers/index.js'

/** The value of one sample line (`name{labels} value`) in Prometheus text, or undefined when absent. */
function sample (text: string, series: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(series + ' '))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

async function startWithMetrics (registry: Registry, options: Parameters<typeof startApp>[0] = {}): Promise<StartedApp> {
  return await startApp({
    ...options,
    after: async (app) => {
      await app.register(glueMetrics, { registry })
      await options.after?.(app)
    }
  })
}

test('exposes the counters, closes by code and the gauges, with the values of real sockets', async (t) => {
  const registry = new Registry()
  const { app, wsUrl } = await startWithMetrics(registry, { glue: { heartbeatInterval: 0, onMessage: () => {} } })
  t.teardown(() => app.close())

  const first = await openGlueSocket(wsUrl)
  const cookie = cookiePair(first.setCookie[0])
  const sessionId = sessionIdOf(cookie)
  const second = await openGlueSocket(wsUrl, { headers: { cookie } })
  const plain = await openSocket(wsUrl)
  const other = await openSocket(wsUrl)
  t.teardown(() => { for (const socket of [first, second, plain, other]) socket.socket.terminate() })
  first.sendEnvelope(['m', 'one'])
  plain.socket.send('two')
  await until(() => app.sessions.stats().messagesIn === 2, 'two messages in')
  app.sessions.send(sessionId, 'a')
  app.sessions.send(sessionId, 'b')
  app.sessions.send(sessionId, 'c')
  await until(() => second.received.length === 4, 'three messages after the welcome')

  let text = await registry.metrics()
  t.equal(sample(text, 'glue_sockets'), 4)
  t.equal(sample(text, 'glue_sessions'), 3, 'two tabs of one session, and two sessions of one socket each')
  t.equal(sample(text, 'glue_detached_sessions'), 0)
  t.equal(sample(text, 'glue_outbox_messages'), 3, 'the glue.v1 session keeps its three messages for resume')
  t.equal(sample(text, 'glue_buffered_bytes'), 0, 'the readers took everything')
  t.equal(sample(text, 'glue_detached_bytes'), 0)
  t.equal(sample(text, 'glue_messages_in_total'), 2)
  t.equal(sample(text, 'glue_messages_out_total'), 6, 'three messages to two sockets')
  t.equal(sample(text, 'glue_closes_total{code="1000"}'), 0, 'every close code label is there from the start')
  t.equal(sample(text, 'glue_adapter_connected{adapter="memory"}'), undefined, 'the memory adapter reports no link')
  t.match(text, '# TYPE glue_messages_in_total counter')
  t.match(text, '# TYPE glue_sockets gauge')
  for (const name of ['replayed', 'gaps', 'slow_consumer_closes', 'rate_limit_closes', 'volatile_dropped',
    'refused_handshakes', 'detached_evictions', 'internal_errors', 'invalid_messages', 'revocation_evictions']) {
    t.equal(sample(text, `glue_${name}_total`), 0, `glue_${name}_total`)
  }

  plain.socket.close(1000)
  other.socket.close(4001, 'app reason')
  second.socket.terminate()
  await until(() => app.sessions.stats().sockets === 1, 'three sockets gone')
  app.sessions.close(sessionId, 4002)
  await until(() => app.sessions.stats().sockets === 0, 'the last socket gone')
  text = await registry.metrics()
  t.equal(sample(text, 'glue_sockets'), 0)
  t.equal(sample(text, 'glue_sessions'), 0)
  t.equal(sample(text, 'glue_detached_sessions'), 1, 'the glue.v1 session waits for its client')
  t.ok((sample(text, 'glue_detached_bytes') ?? 0) > 0, 'and is charged to the detached budget')
  t.equal(sample(text, 'glue_closes_total{code="1000"}'), 1)
  t.equal(sample(text, 'glue_closes_total{code="1006"}'), 1, 'a terminated socket is 1006')
  t.equal(sample(text, 'glue_closes_total{code="app"}'), 2, 'codes 3000-4999 share one label')
  t.equal(sample(text, 'glue_closes_total{code="other"}'), 0)
  t.equal(sample(text, 'glue_revocations'), 0, 'nothing revoked yet')
  app.sessions.revoke(sessionId)
  t.equal(sample(await registry.metrics(), 'glue_revocations'), 1, 'a revoked session is remembered')
  t.same(app.sessions.stats().closesByCode, {
    1000: 1, 1001: 0, 1002: 0, 1005: 0, 1006: 1, 1007: 0, 1008: 0, 1009: 0, 1011: 0, 1013: 0, app: 2, other: 0
  }, 'the same counts in stats()')
  t.notMatch(text, sessionId, 'no session id in the output')
  t.notMatch(text, cookie.slice(cookie.indexOf('=') + 1), 'nor a cookie value')
  t.match(text, /^# HELP glue_closes_total /m)
})

test('counts the items of every pipe by outcome, and keeps counting after a pipe ends', async (t) => {
  const registry = new Registry()
  const { app } = await startWithMetrics(registry)
  t.teardown(() => app.close())
  // 1 and 3 delivered, 2 skipped by map, 4 refused (an invalid topic): the pipe ends with its source.
  const ended = app.sessions.pipe([1, 2, 3, 4], { to: (n: number) => ({ topic: n === 4 ? '' : 'numbers' }) }, { map: (n: number) => n === 2 ? undefined : n })
  t.equal((await ended.done).state, 'ended')
  let runs = 0
  const failing = app.sessions.pipe(() => {
    runs++
    // A source that breaks before its first item: one restart, then the pipe gives up.
    return (function * () { throw new Error('source broke') })()
  }, { topic: 'numbers' }, { restart: { retries: 1, minDelay: 1, maxDelay: 1 } })
  t.equal((await failing.done).state, 'failed')
  t.equal(runs, 2, 'one restart')
  let text = await registry.metrics()
  t.equal(sample(text, 'glue_pipe_items_total{outcome="delivered"}'), 2, 'the items of a pipe that ended still count')
  t.equal(sample(text, 'glue_pipe_items_total{outcome="skipped"}'), 1)
  t.equal(sample(text, 'glue_pipe_items_total{outcome="invalid"}'), 1)
  t.equal(sample(text, 'glue_pipe_errors_total'), 2)
  t.equal(sample(text, 'glue_pipe_restarts_total'), 1)
  t.equal(sample(text, 'glue_pipes'), 0, 'no pipe running')
  const stats = app.sessions.stats()
  t.same([stats.pipeDelivered, stats.pipeSkipped, stats.pipeInvalid, stats.pipeErrors, stats.pipeRestarts], [2, 1, 1, 2, 1], 'the same counts in stats()')
  const running = app.sessions.pipe(async function * ({ signal }) {
    await new Promise((resolve) => { signal.addEventListener('abort', resolve, { once: true }) })
  }, { topic: 'numbers' })
  text = await registry.metrics()
  t.equal(sample(text, 'glue_pipes'), 1, 'a running pipe')
  await running.stop()
})

test('counts bytes a non-reading socket leaves buffered', async (t) => {
  const registry = new Registry()
  const { app, wsUrl } = await startWithMetrics(registry, { glue: { heartbeatInterval: 0, sendHighWaterMark: 64 * 1024 * 1024 } })
  t.teardown(() => app.close())
  const reader = await openSocket(wsUrl)
  t.teardown(() => reader.socket.terminate())
  const transport = (reader.socket as unknown as { _socket: { pause: () => void } })._socket
  transport.pause()
  const chunk = 'x'.repeat(64 * 1024)
  const sessionId = [...app.sessions][0]?.id as string
  // Until the kernel's buffers are full, nothing stays in the server's.
  for (let i = 0; i < 400 && (await app.sessions.gauges()).bufferedBytes === 0; i++) {
    app.sessions.send(sessionId, chunk)
    await new Promise((resolve) => setImmediate(resolve))
  }
  const { bufferedBytes } = await app.sessions.gauges()
  t.ok(bufferedBytes > 0, `bytes wait in the server (${bufferedBytes})`)
  t.equal(sample(await registry.metrics(), 'glue_buffered_bytes'), bufferedBytes)
})

test('joins prom-client\'s global registry by default and leaves it when the app closes', async (t) => {
  const app = Fastify()
  await app.register(glue, { cookie: { secret: SECRET } })
  await app.register(glueMetrics)
  await app.ready()
  t.ok(globalRegistry.getSingleMetric('glue_sockets'), 'glue_sockets is in the global registry')
  t.equal(sample(await globalRegistry.metrics(), 'glue_sockets'), 0)
  await app.close()
  t.equal(globalRegistry.getSingleMetric('glue_sockets'), undefined, 'removed on close')
  t.equal(globalRegistry.getSingleMetric('glue_closes_total'), undefined)
})

test('takes a prefix, and refuses a registry that already has metrics of that prefix', async (t) => {
  const registry = new Registry()
  const first = Fastify()
  t.teardown(() => first.close())
  await first.register(glue, { cookie: { secret: SECRET } })
  await first.register(glueMetrics, { registry })
  await first.ready()

  const second = Fastify()
  t.teardown(() => second.close())
  await second.register(glue, { cookie: { secret: SECRET } })
  await t.rejects(async () => { await second.register(glueMetrics, { registry }) }, {
    code: 'FST_WSGLUE_INVALID_OPTION',
    message: /expected `prefix` to be a prefix whose metrics the registry does not have yet \(it has glue_messages_in_total: give each app its own prefix or registry\), got `"glue_"`/
  })

  const third = Fastify()
  t.teardown(() => third.close())
  await third.register(glue, { cookie: { secret: SECRET } })
  await third.register(glueMetrics, { registry, prefix: 'shop_ws_' })
  await third.ready()
  const text = await registry.metrics()
  t.equal(sample(text, 'shop_ws_sockets'), 0)
  t.equal(sample(text, 'glue_sockets'), 0)
})

test('validates its options and needs the plugin registered first', async (t) => {
  const register = async (options: unknown): Promise<void> => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(glue, { cookie: { secret: SECRET } })
    await app.register(glueMetrics, options as never).ready()
  }
  await t.rejects(register({ prefix: '1glue_' }), {
    code: 'FST_WSGLUE_INVALID_OPTION',
    message: 'Invalid option: expected `prefix` to be a Prometheus metric name prefix (letters, digits, "_" and ":", not starting with a digit), got `"1glue_"` (string)'
  })
  await t.rejects(register({ prefix: 7 }), { code: 'FST_WSGLUE_INVALID_OPTION', message: /`prefix`.*got `7` \(number\)/ })
  await t.rejects(register({ registry: {} }), { code: 'FST_WSGLUE_INVALID_OPTION', message: /expected `registry` to be a prom-client Registry, got `\{\}` \(object\)/ })
  await t.rejects(register('glue_'), { code: 'FST_WSGLUE_INVALID_OPTION', message: /expected `options` to be an object/ })

  const alone = Fastify()
  t.teardown(() => alone.close())
  await t.rejects(async () => { await alone.register(glueMetrics, { registry: new Registry() }) }, { message: /fastify-websocket-glue/ }, 'fastify-plugin names the missing dependency')
})

test('reports the Redis link and the cluster lag, and a lost link', { skip: redisSkip }, async (t) => {
  const redis = await startRedis(t)
  const registry = new Registry()
  const { app, wsUrl, logs } = await startWithMetrics(registry, { glue: { heartbeatInterval: 0, redis: { url: redis.url, prefix: uniquePrefix() } } })
  t.teardown(() => app.close())
  const socket = await openGlueSocket(wsUrl)
  t.teardown(() => socket.socket.terminate())
  app.sessions.send(sessionIdOf(cookiePair(socket.setCookie[0])), 'through redis')
  await until(() => socket.received.length === 2, 'the message through the stream')

  let text = await registry.metrics()
  t.equal(sample(text, 'glue_adapter_connected{adapter="redis"}'), 1)
  t.equal(sample(text, 'glue_cluster_lag_messages{adapter="redis"}'), 0, 'this node applied every message')
  t.equal(sample(text, 'glue_outbox_messages'), 0, 'Redis keeps the messages for resume, not the node')
  t.match(await app.sessions.gauges(), { sockets: 1, adapter: { name: 'redis', connected: true, lag: 0 } })

  await redis.kill()
  await logs.waitFor('redis adapter: connection to Redis lost; buffering messages until it returns')
  text = await registry.metrics()
  t.equal(sample(text, 'glue_adapter_connected{adapter="redis"}'), 0)
  t.equal(sample(text, 'glue_cluster_lag_messages{adapter="redis"}'), undefined, 'no lag while it is unknown')
  t.equal(sample(text, 'glue_sockets'), 1, 'the node still serves its socket')
})

test('an adapter whose health check fails reads as not connected, and the failure is logged', async (t) => {
  const registry = new Registry()
  const adapter = { ...createMemoryAdapter(), name: 'flaky', async health (): Promise<never> { throw new Error('no answer') } }
  const { app, logs } = await startWithMetrics(registry, { glue: { adapter } })
  t.teardown(() => app.close())
  const text = await registry.metrics()
  t.equal(sample(text, 'glue_adapter_connected{adapter="flaky"}'), 0)
  t.equal(sample(text, 'glue_cluster_lag_messages{adapter="flaky"}'), undefined)
  t.match(await logs.waitFor('adapter health check failed'), { level: 40, err: { message: 'no answer' } })
})

test('an adapter whose health check does not answer reads as not connected after a second', async (t) => {
  const adapter = { ...createMemoryAdapter(), name: 'stuck', health: async (): Promise<never> => await new Promise<never>(() => {}) }
  const { app, logs } = await startApp({ glue: { adapter } })
  t.teardown(() => app.close())
  const started = Date.now()
  t.match(await app.sessions.gauges(), { adapter: { name: 'stuck', connected: false } })
  t.ok(Date.now() - started < 5000, 'the scrape did not wait for it')
  t.match(await logs.waitFor('adapter health check timed out'), { level: 40, timeout: 1000 })
})

test('close codes fall under a fixed set of labels', async (t) => {
  t.same([1000, 1001, 1005, 1006, 1011, 1013].map(closeCodeLabel), ['1000', '1001', '1005', '1006', '1011', '1013'])
  t.same([3000, 4000, 4999].map(closeCodeLabel), ['app', 'app', 'app'], '3000-4999 are the application\'s')
  t.same([1003, 1010, 1015, 2999, 5000, 65535].map(closeCodeLabel), ['other', 'other', 'other', 'other', 'other', 'other'])
})
