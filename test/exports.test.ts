import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { promisify } from 'node:util'
import { runInNewContext } from 'node:vm'
import { fileURLToPath } from 'node:url'
import { test } from 'tap'
import Fastify from 'fastify'
import { openSocket, redisSkip, SECRET, startRedis, uniquePrefix, until } from './helpers/index.js'

const run = promisify(execFile)

test('import by package name gives the plugin as default and as `glue`, with errors', async (t) => {
  const module = await import('fastify-websocket-glue')
  t.equal(typeof module.default, 'function')
  t.equal(module.glue, module.default)
  const meta = (module.default as unknown as Record<symbol, { name?: string } | undefined>)[Symbol.for('plugin-meta')]
  t.equal(meta?.name, 'fastify-websocket-glue')
  t.same(Object.keys(module.errors).sort(), [
    'FST_WSGLUE_CLUSTER_UNAVAILABLE',
    'FST_WSGLUE_INVALID_CLOSE_CODE', 'FST_WSGLUE_INVALID_CLOSE_REASON', 'FST_WSGLUE_INVALID_DATA', 'FST_WSGLUE_INVALID_HISTORY_REQUEST',
    'FST_WSGLUE_INVALID_LISTENER', 'FST_WSGLUE_INVALID_OPTION', 'FST_WSGLUE_INVALID_PIPE', 'FST_WSGLUE_INVALID_REQUEST', 'FST_WSGLUE_INVALID_SESSION_ID', 'FST_WSGLUE_INVALID_TOPIC',
    'FST_WSGLUE_INVALID_USER_ID',
    'FST_WSGLUE_MISSING_SECRET', 'FST_WSGLUE_REDIS_UNAVAILABLE', 'FST_WSGLUE_TOO_MANY_TOPICS'
  ])
  const app = Fastify()
  await app.register(module.default, { cookie: { secret: SECRET } })
  await app.ready()
  t.equal(typeof app.sessions.send, 'function')
  await app.close()
})

test('require() of the package works on Node 22 and 24 and registers', async (t) => {
  const require = createRequire(import.meta.url)
  const required = require('fastify-websocket-glue') as typeof import('fastify-websocket-glue')
  t.equal(typeof required.default, 'function')
  t.equal(required.glue, required.default)
  const app = Fastify()
  await app.register(required.glue, { cookie: { secret: SECRET } })
  await app.ready()
  t.equal(app.sessions.size, 0)
  await app.close()
})

test('require() from a CommonJS process works too', async (t) => {
  const { stdout } = await run(process.execPath, ['-e', `
    const { glue } = require('fastify-websocket-glue')
    const app = require('fastify')()
    app.register(glue, { cookie: { secret: '${SECRET}' } }).ready().then(() => {
      process.stdout.write(typeof app.sessions.broadcast)
      return app.close()
    })
  `], { cwd: process.cwd() })
  t.equal(stdout, 'function')
})

test('the client entry is a bundled ES module with GlueClient, and the classic build defines it globally', async (t) => {
  const client = await import('fastify-websocket-glue/client')
  t.equal(typeof client.GlueClient, 'function')
  t.equal(typeof client.GlueClientError, 'function')
  const idle = new client.GlueClient({ url: 'ws://127.0.0.1:1/ws', WebSocket: class {} as never, autoConnect: false })
  t.equal(idle.state, 'closed')
  const dist = new URL('../dist/client/', import.meta.url)
  for (const name of ['glue-client.js', 'glue-client.global.js']) {
    const code = await readFile(new URL(name, dist), 'utf8')
    t.notMatch(code, /^\s*import\b|\bfrom\s*["']\.\//m, `${name} imports nothing: one file`)
    t.match(code, new RegExp(`\\n//# sourceMappingURL=${name.replaceAll('.', '\\.')}\\.map\\n?$`), `${name} names its source map`)
    const map = JSON.parse(await readFile(new URL(name + '.map', dist), 'utf8')) as { sources: string[], sourcesContent: string[] }
    t.ok(map.sources.some((source) => /plugin\/client\/[\w-]+\.ts$/.test(source)), `${name}.map maps to the TypeScript sources`)
    t.equal(map.sourcesContent.length, map.sources.length, `${name}.map carries the sources, which the package does not ship`)
  }
  // A classic script has no exports: run it as a page would and look on the global object.
  const page: Record<string, unknown> = {}
  runInNewContext(await readFile(new URL('glue-client.global.js', dist), 'utf8'), page)
  t.equal(typeof page.GlueClient, 'function', 'the classic build sets GlueClient on the global object')
})

test('public types compile, including declaration merging of sessions and sessionId', async (t) => {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  const result = await run(process.execPath, [tsc, '-p', 'test/types/tsconfig.json']).then(
    () => ({ ok: true, output: '' }),
    (err: { stdout: string }) => ({ ok: false, output: err.stdout })
  )
  t.ok(result.ok, result.output)
})

test('the redis subpath exports the adapter, the codec and the stream source; the core entry does not', async (t) => {
  const redis = await import('fastify-websocket-glue/redis')
  t.same(Object.keys(redis).sort(), ['CODEC_VERSION', 'createRedisAdapter', 'createRedisStreamSource', 'decodeClusterMessage', 'encodeClusterMessage'])
  const message = { kind: 'expire', sessionId: 'sid' } as const
  t.same(redis.decodeClusterMessage(redis.encodeClusterMessage(message, 1))?.message, message)
  const core = await import('fastify-websocket-glue')
  for (const name of Object.keys(redis)) t.notOk(name in core, `${name} is not in the core entry`)
  const required = createRequire(import.meta.url)('fastify-websocket-glue/redis') as typeof redis
  t.equal(required.createRedisAdapter, redis.createRedisAdapter, 'require() gives the same module')
  const { stdout } = await run(process.execPath, ['-e', `
    process.stdout.write(typeof require('fastify-websocket-glue/redis').createRedisAdapter)
  `], { cwd: process.cwd() })
  t.equal(stdout, 'function', 'require() from a CommonJS process')
})

test('the metrics subpath exports the plugin by default and as glueMetrics; the core entry does not', async (t) => {
  const metrics = await import('fastify-websocket-glue/metrics')
  t.same(Object.keys(metrics).sort(), ['default', 'glueMetrics'])
  t.equal(metrics.default, metrics.glueMetrics)
  const meta = (metrics.default as unknown as Record<symbol, { name?: string, dependencies?: string[] } | undefined>)[Symbol.for('plugin-meta')]
  t.match(meta, { name: 'fastify-websocket-glue-metrics', dependencies: ['fastify-websocket-glue'] })
  const core = await import('fastify-websocket-glue')
  t.notOk('glueMetrics' in core, 'glueMetrics is not in the core entry')
  const { stdout } = await run(process.execPath, ['-e', `
    process.stdout.write(typeof require('fastify-websocket-glue/metrics').glueMetrics)
  `], { cwd: process.cwd() })
  t.equal(stdout, 'function', 'require() from a CommonJS process')
})

test('a node with createRedisAdapter from the redis subpath delivers to a socket on another node', { skip: redisSkip }, async (t) => {
  const redis = await startRedis(t)
  const { default: glue } = await import('fastify-websocket-glue')
  const { createRedisAdapter } = await import('fastify-websocket-glue/redis')
  const prefix = uniquePrefix()
  const sender = Fastify()
  t.teardown(async () => { await sender.close() })
  await sender.register(glue, { cookie: { secret: SECRET }, heartbeatInterval: 0, adapter: createRedisAdapter({ url: redis.url, prefix }) })
  const receiver = Fastify()
  t.teardown(async () => { await receiver.close() })
  const connected: string[] = []
  await receiver.register(glue, { cookie: { secret: SECRET }, heartbeatInterval: 0, redis: { url: redis.url, prefix }, onConnect (session) { connected.push(session.id) } })
  await receiver.listen({ host: '127.0.0.1', port: 0 })
  const client = await openSocket(`ws://127.0.0.1:${(receiver.server.address() as { port: number }).port}/ws`)
  t.teardown(() => client.socket.terminate())
  await until(() => connected.length === 1, 'the socket joined a session on the receiving node')
  sender.sessions.send(connected[0] as string, 'across nodes')
  await until(() => client.received.includes('across nodes'), 'the message from the other node')
  t.same(client.received, ['across nodes'])
})

test('without ioredis and prom-client installed the core entry works; only the redis option and the subpaths fail, naming what to install', async (t) => {
  const child = fileURLToPath(new URL('./fixtures/without-optional-peers.mjs', import.meta.url))
  const { stdout } = await run(process.execPath, [child, SECRET], { cwd: process.cwd() })
  const result = JSON.parse(stdout) as Record<string, unknown>
  t.match(result.ioredis, { code: 'ERR_MODULE_NOT_FOUND' }, 'the child cannot resolve ioredis')
  t.match(result.promClient, { code: 'ERR_MODULE_NOT_FOUND' }, 'nor prom-client')
  t.equal(result.echo, 'echo:ping', 'import, register and a websocket round trip succeed')
  t.match(result.gauges, { sockets: 1, sessions: 1, outboxMessages: 0 }, 'the gauges need no prom-client')
  t.match(result.register, { code: 'FST_WSGLUE_INVALID_OPTION', message: /install ioredis \(npm install ioredis\)/ }, 'the redis option fails registration')
  t.match(result.subpath, { code: 'ERR_MODULE_NOT_FOUND', message: /'ioredis'/ }, 'the redis subpath needs ioredis')
  t.match(result.metricsSubpath, { code: 'ERR_MODULE_NOT_FOUND', message: /'prom-client'/ }, 'the metrics subpath needs prom-client')
  t.equal(result.ioredisInCache, false, 'ioredis was never loaded')
  t.equal(result.promClientInCache, false, 'prom-client was never loaded')
})
