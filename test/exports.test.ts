import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { promisify } from 'node:util'
import { runInNewContext } from 'node:vm'
import { test } from 'tap'
import Fastify from 'fastify'
import { SECRET } from './helpers.js'

const run = promisify(execFile)

test('import by package name gives the plugin as default and as `glue`, with errors', async (t) => {
  const module = await import('fastify-websocket-glue')
  t.equal(typeof module.default, 'function')
  t.equal(module.glue, module.default)
  const meta = (module.default as unknown as Record<symbol, { name?: string } | undefined>)[Symbol.for('plugin-meta')]
  t.equal(meta?.name, 'fastify-websocket-glue')
  t.same(Object.keys(module.errors).sort(), [
    'FST_WSGLUE_CLUSTER_UNAVAILABLE',
    'FST_WSGLUE_INVALID_CLOSE_CODE', 'FST_WSGLUE_INVALID_CLOSE_REASON', 'FST_WSGLUE_INVALID_DATA',
    'FST_WSGLUE_INVALID_LISTENER', 'FST_WSGLUE_INVALID_OPTION', 'FST_WSGLUE_INVALID_SESSION_ID', 'FST_WSGLUE_INVALID_TOPIC',
    'FST_WSGLUE_MISSING_SECRET', 'FST_WSGLUE_REDIS_UNAVAILABLE', 'FST_WSGLUE_TOO_MANY_TOPICS'
  ])
  const app = Fastify()
  await app.register(module.default, { cookie: { secret: SECRET } })
  await app.ready()
  t.equal(typeof app.sessions.send, 'function')
  await app.close()
})

test('require() of the package works on Node >= 20.19 and registers', async (t) => {
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
