import { test } from 'tap'
import Fastify from 'fastify'
import fastifyCookie from '@fastify/cookie'
import glue, { type GlueOptions } from '../plugin/index.js'
import { resolveRedisOptions } from '../plugin/redis/options.js'
import { DEFAULTS, resolveOptions } from '../plugin/config/resolve.js'
import { createLogCapture, SECRET } from './helpers/index.js'

async function registerWith (options: unknown): Promise<unknown> {
  const app = Fastify()
  try {
    await app.register(glue, options as GlueOptions)
    await app.ready()
    return undefined
  } catch (err) {
    return err
  } finally {
    await app.close()
  }
}

test('resolves defaults, keeping a 0 as 0, and freezes the result', async (t) => {
  const resolved = resolveOptions({ heartbeatInterval: 0 })
  t.equal(resolved.path, DEFAULTS.path)
  t.equal(resolved.heartbeatInterval, 0)
  t.equal(resolved.maxPayload, 65536)
  t.same(resolved.client, { prefix: '/_glue/' })
  t.match(resolved.cookie, { name: 'sid', secrets: null, path: '/', sameSite: 'lax', secure: 'auto', issueOnPages: true, lifetime: 7 * 24 * 3600 * 1000 })
  t.equal(resolveOptions({ cookie: { lifetime: 60 } }).cookie.lifetime, 60_000, 'lifetime is given in seconds')
  t.equal(resolved.maxRevocations, 100_000)
  t.equal(resolved.identify, undefined)
  t.ok(Object.isFrozen(resolved) && Object.isFrozen(resolved.cookie))
  t.same(resolveOptions(undefined).heartbeatInterval, 30_000)
  t.match(resolveOptions(undefined), {
    outboxLimit: 500,
    outboxMaxAge: 120_000,
    sessionGrace: 60_000,
    sendHighWaterMark: 1_048_576,
    rateLimit: { messagesPerSecond: 100, burst: 200 },
    maxSocketsPerSession: 32,
    maxSocketsPerAddress: 0,
    writeDelay: 0
  })
  t.match(resolveOptions({ outboxLimit: 0, sessionGrace: 0, maxSocketsPerAddress: 0, rateLimit: false }), {
    outboxLimit: 0, sessionGrace: 0, maxSocketsPerAddress: 0, rateLimit: false
  }, 'zeros stay zeros')
  t.same(resolveOptions({ rateLimit: { burst: 5 } }).rateLimit, { messagesPerSecond: 100, burst: 5 })
  t.same(resolveOptions({ client: { prefix: '/assets/glue' } }).client, { prefix: '/assets/glue/' })
  t.equal(resolveOptions({ client: false }).client, false)
  t.same([...(resolveOptions({ allowedOrigins: ['HTTPS://App.Example'] }).allowedOrigins as Set<string>)], ['https://app.example'])
})

function circular (): Record<string, unknown> {
  const value: Record<string, unknown> = {}
  value.self = value
  return value
}

const invalid: Array<[string, unknown, RegExp]> = [
  ['options', 'nope', /expected `options` to be an object, got `"nope"` \(string\)/],
  ['path', 'ws', /`path` to be a URL path starting with "\/".*got `"ws"`/],
  ['path', '/ws?x', /`path`/],
  ['heartbeatInterval', -1, /`heartbeatInterval` to be an integer >= 0, got `-1` \(number\)/],
  ['heartbeatInterval', 1.5, /`heartbeatInterval`/],
  ['heartbeatInterval', '30000', /`heartbeatInterval`.*\(string\)/],
  ['maxPayload', 0, /`maxPayload` to be an integer >= 1, got `0`/],
  ['cookie', 'sid', /`cookie` to be an object/],
  ['cookie.name', 'bad name', /`cookie.name` to be a cookie name/],
  ['cookie.secret', '', /`cookie.secret`/],
  ['cookie.secret', [], /`cookie.secret`.*\(array\)/],
  ['cookie.secret', ['ok-secret', 42], /`cookie.secret`/],
  ['cookie.maxAge', -5, /`cookie.maxAge` to be an integer >= 0/],
  ['cookie.domain', '', /`cookie.domain` to be a non-empty string/],
  ['cookie.path', 'x', /`cookie.path`/],
  ['cookie.sameSite', 'loose', /`cookie.sameSite` to be one of 'lax', 'strict' or 'none'/],
  ['cookie.secure', 'yes', /`cookie.secure` to be true, false or 'auto'/],
  ['cookie.issueOnPages', 'yes', /`cookie.issueOnPages` to be a boolean/],
  ['cookie.lifetime', 59, /`cookie.lifetime` to be an integer from 60 to 34560000, got `59`/],
  ['cookie.lifetime', 34_560_001, /`cookie.lifetime` to be an integer from 60 to 34560000/],
  ['cookie.lifetime', '1d', /`cookie.lifetime`.*\(string\)/],
  ['identify', 'header', /`identify` to be a function/],
  ['maxRevocations', 0, /`maxRevocations` to be an integer >= 1, got `0`/],
  ['allowedOrigins', 'https://a.example', /`allowedOrigins` to be an array of origins or a function/],
  ['allowedOrigins', ['https://a.example/path'], /origins of the form "scheme:\/\/host\[:port\]", got `"https:\/\/a.example\/path"`/],
  ['allowedOrigins', [42], /`allowedOrigins`/],
  ['allowedOrigins', ['not a url'], /got `"not a url"`/],
  ['allowedOrigins', circular(), /got `\[unserialisable\]` \(object\)/],
  ['client', true, /`client` to be an object or false/],
  ['client.prefix', 'glue', /`client.prefix`/],
  ['outboxLimit', -1, /`outboxLimit` to be an integer >= 0, got `-1`/],
  ['outboxMaxAge', 0, /`outboxMaxAge` to be an integer >= 1, got `0`/],
  ['sessionGrace', 'long', /`sessionGrace` to be an integer >= 0, got `"long"` \(string\)/],
  ['sendHighWaterMark', 0, /`sendHighWaterMark` to be an integer >= 1/],
  ['rateLimit', true, /`rateLimit` to be an object or false, got `true` \(boolean\)/],
  ['rateLimit.messagesPerSecond', 0, /`rateLimit.messagesPerSecond` to be an integer >= 1/],
  ['rateLimit.burst', 1.5, /`rateLimit.burst` to be an integer >= 1, got `1.5`/],
  ['maxSocketsPerSession', 0, /`maxSocketsPerSession` to be an integer >= 1/],
  ['maxSocketsPerAddress', -1, /`maxSocketsPerAddress` to be an integer >= 0/],
  ['drainTimeout', 0, /`drainTimeout` to be an integer >= 1/],
  ['writeDelay', -1, /`writeDelay` to be an integer from 0 to 1000, got `-1`/],
  ['writeDelay', 2.5, /`writeDelay` to be an integer from 0 to 1000, got `2.5`/],
  ['writeDelay', 1001, /`writeDelay` to be an integer from 0 to 1000, got `1001`/],
  ['maxDetachedSessions', -1, /`maxDetachedSessions` to be an integer >= 0/],
  ['maxDetachedBytes', 'lots', /`maxDetachedBytes` to be an integer >= 0/],
  ['maxTopicsPerSession', 0, /`maxTopicsPerSession` to be an integer >= 1/],
  ['maxPendingRequests', 0, /`maxPendingRequests` to be an integer >= 1/],
  ['handshakeRateLimit', true, /`handshakeRateLimit` to be an object or false, got `true`/],
  ['handshakeRateLimit.handshakesPerSecond', 0, /`handshakeRateLimit.handshakesPerSecond` to be an integer >= 1/],
  ['handshakeRateLimit.burst', 0.5, /`handshakeRateLimit.burst` to be an integer >= 1/],
  ['answerRequest', 'fn', /`answerRequest` to be a function/],
  ['onRequest', () => null, /`onRequest` to be unset: it is now called `answerRequest`/],
  ['authorizeSubscribe', 1, /`authorizeSubscribe` to be a function/],
  ['onConnect', 'fn', /`onConnect` to be a function/],
  ['onMessage', {}, /`onMessage` to be a function/],
  ['onClose', 1, /`onClose` to be a function/],
  ['redis', 42, /`redis` to be a redis:\/\/ URL, an ioredis client or an options object, got `42`/],
  ['redis', 'http://localhost', /`redis.url` to be a URL starting with redis:\/\/ or rediss:\/\//],
  ['redis', {}, /`redis` to be a `url`, a `client` or `shards`/],
  ['adapter', {}, /`adapter` to be an adapter object/],
  ['topicHistory', 5, /`topicHistory` to be an object with `limit` and `maxAge`, or a function, got `5`/],
  ['topicHistory.limit', 0, /`topicHistory.limit` to be an integer from 1 to 10000, got `0`/],
  ['topicHistory.limit', 10_001, /`topicHistory.limit` to be an integer from 1 to 10000, got `10001`/],
  ['topicHistory.maxAge', 0, /`topicHistory.maxAge` to be an integer >= 1, got `0`/],
  ['maxHistoryBytes', -1, /`maxHistoryBytes` to be an integer >= 0, got `-1`/],
  ['topicPresence', 'yes', /`topicPresence` to be a boolean or a function, got `"yes"`/],
  ['presenceInterval', 5, /`presenceInterval` to be an integer from 10 to 60000, got `5`/],
  ['maxMembers', 0, /`maxMembers` to be an integer from 1 to 100000, got `0`/]
]

test('rejects each invalid option at register with FST_WSGLUE_INVALID_OPTION naming option, rule and value', async (t) => {
  for (const [option, value, message] of invalid) {
    const options: Record<string, unknown> = { cookie: { secret: SECRET } }
    if (option === 'options') {
      t.match(await registerWith(value), { code: 'FST_WSGLUE_INVALID_OPTION', message }, option)
      continue
    }
    const [head, tail] = option.split('.') as [string, string | undefined]
    if (tail === undefined) options[head] = value
    else options[head] = { ...(options[head] as object), [tail]: value }
    t.match(await registerWith(options), { code: 'FST_WSGLUE_INVALID_OPTION', message }, `${option}: ${String(value)}`)
  }
})

test('validates the cookie attribute combinations browsers require', async (t) => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ name: '__Host-sid' }, /`cookie.secure` to be true for a `__Host-` cookie name, got `undefined`/],
    [{ name: '__Host-sid', secure: 'auto' }, /`cookie.secure` to be true for a `__Host-`/],
    [{ name: '__Host-sid', secure: true, path: '/app' }, /`cookie.path` to be "\/" for a `__Host-` cookie name/],
    [{ name: '__Host-sid', secure: true, domain: 'example.com' }, /`cookie.domain` to be unset for a `__Host-` cookie name/],
    [{ name: '__Secure-sid', secure: false }, /`cookie.secure` to be true for a `__Secure-` cookie name/],
    [{ sameSite: 'none' }, /`cookie.secure` to be true when `cookie.sameSite` is 'none'/]
  ]
  for (const [cookie, message] of cases) {
    t.match(await registerWith({ cookie: { secret: SECRET, ...cookie } }), { code: 'FST_WSGLUE_INVALID_OPTION', message })
  }
  t.equal(await registerWith({ cookie: { secret: SECRET, name: '__Host-sid', secure: true } }), undefined, 'a valid __Host- setup boots')
  t.equal(await registerWith({ cookie: { secret: SECRET, sameSite: 'none', secure: true } }), undefined)
})

test('fails to boot without a secret when @fastify/cookie has none', async (t) => {
  t.match(await registerWith({}), { code: 'FST_WSGLUE_MISSING_SECRET', message: /cookie\.secret/ })
  const app = Fastify()
  await app.register(fastifyCookie)
  app.register(glue)
  await t.rejects(async () => { await app.ready() }, { code: 'FST_WSGLUE_MISSING_SECRET' })
  await app.close()
})

test('warns once at boot about a short secret, without logging it', async (t) => {
  const logs = createLogCapture()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await app.register(glue, { cookie: { secret: 'short-secret' } })
  await app.ready()
  await app.close()
  const warnings = logs.lines.filter((line) => line.level === 40)
  t.equal(warnings.length, 1)
  t.match(warnings[0], { msg: /cookie secret is shorter than recommended/, minLength: 32 })
  t.notOk(JSON.stringify(logs.lines).includes('short-secret'))
})

test('serves the browser client at the prefix, or not at all with client: false', async (t) => {
  const app = Fastify()
  await app.register(glue, { cookie: { secret: SECRET }, client: { prefix: '/assets/' } })
  const served = await app.inject({ method: 'GET', url: '/assets/glue-client.js' })
  t.equal(served.statusCode, 200)
  t.match(served.headers['content-type'], /javascript/)
  await app.close()

  const off = Fastify()
  await off.register(glue, { cookie: { secret: SECRET }, client: false })
  t.equal((await off.inject({ method: 'GET', url: '/_glue/glue-client.js' })).statusCode, 404)
  await off.close()
})

test('registers on a custom path only', async (t) => {
  const app = Fastify()
  await app.register(glue, { cookie: { secret: SECRET }, path: '/realtime' })
  await app.ready()
  t.ok(app.hasRoute({ method: 'GET', url: '/realtime' }))
  t.notOk(app.hasRoute({ method: 'GET', url: '/ws' }))
  await app.close()
})

test('validates the redis options and fills in their defaults', async (t) => {
  // The Redis adapter validates its options itself, under the name of the plugin's `redis` option.
  const resolveRedis = (value: unknown): ReturnType<typeof resolveRedisOptions> => resolveRedisOptions(value, 'redis')
  t.same(resolveRedis('redis://127.0.0.1:6379'), {
    shards: [{ url: 'redis://127.0.0.1:6379', client: undefined }],
    prefix: 'glue',
    streamLimit: 100_000,
    bufferLimit: 10_000,
    nodeTimeout: 10_000,
    queryTimeout: 1000
  })
  const client = { duplicate: () => client }
  t.equal(resolveRedis(client).shards[0]?.client, client, 'an ioredis client as is')
  t.match(resolveRedis({ client, prefix: 'app:1', bufferLimit: 0 }), { shards: [{ client }], prefix: 'app:1', bufferLimit: 0 })
  t.same(resolveRedis({ shards: ['redis://a:1', client, 'rediss://c:3'] }).shards,
    [{ url: 'redis://a:1', client: undefined }, { url: undefined, client }, { url: 'rediss://c:3', client: undefined }], 'shards, in order')
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ url: 'redis://x', prefix: '' }, /`redis.prefix` to be 1 to 64 letters/],
    [{ url: 'redis://x', prefix: 'a b' }, /`redis.prefix`/],
    [{ url: 'redis://x', prefix: 'x'.repeat(65) }, /`redis.prefix`/],
    [{ url: 'redis://x', streamLimit: 10 }, /`redis.streamLimit` to be an integer >= 100/],
    [{ url: 'redis://x', bufferLimit: -1 }, /`redis.bufferLimit` to be an integer >= 0/],
    [{ url: 'redis://x', nodeTimeout: 100 }, /`redis.nodeTimeout` to be an integer >= 300/],
    [{ client: {} }, /`redis.client` to be an ioredis client/],
    [{ url: 42 }, /`redis.url`/],
    [{ shards: [] }, /`redis.shards` to be a non-empty array/],
    [{ shards: ['redis://a', 'http://b'] }, /`redis.shards\[1\]` to be a URL starting with redis:\/\//],
    [{ url: 'redis://x', queryTimeout: 1 }, /`redis.queryTimeout` to be an integer >= 10/]
  ]
  for (const [redis, message] of cases) {
    t.throws(() => resolveRedis(redis), { code: 'FST_WSGLUE_INVALID_OPTION', message }, JSON.stringify(redis))
  }
})

test('topic history and presence: defaults and what each option resolves to', async (t) => {
  t.match(resolveOptions(undefined), { topicHistory: undefined, maxHistoryBytes: 33_554_432, topicPresence: false, presenceInterval: 1000, maxMembers: 1000 })
  t.same(resolveOptions({ topicHistory: {} }).topicHistory, { limit: 100, maxAge: 3_600_000 })
  t.same(resolveOptions({ topicHistory: { limit: 10_000, maxAge: 5 } }).topicHistory, { limit: 10_000, maxAge: 5 })
  const perTopic = (): undefined => undefined
  t.equal(resolveOptions({ topicHistory: perTopic }).topicHistory, perTopic, 'a function is kept and called per topic')
  t.equal(resolveOptions({ topicPresence: true }).topicPresence, true)
  t.equal(resolveOptions({ maxHistoryBytes: 0 }).maxHistoryBytes, 0, 'zero keeps nothing')
})
