import { execFile } from 'node:child_process'
import { createRequire } from 'node:module'
import { promisify } from 'node:util'
import { test } from 'tap'
import Fastify from 'fastify'
import { SECRET } from './helpers/index.js'

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

test('public types compile, including declaration merging of sessions and sessionId', async (t) => {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  const result = await run(process.execPath, [tsc, '-p', 'test/types/tsconfig.json']).then(
    () => ({ ok: true, output: '' }),
    (err: { stdout: string }) => ({ ok: false, output: err.stdout })
  )
  t.ok(result.ok, result.output)
})
