// The server process of the streams benchmark, driven by bench/streams.js over IPC. Every socket's
// session is subscribed to topic `feed` on connect; a Redis Stream feeds the topic either through the
// plugin's pipe and Redis Stream source (`glue`) or through a hand-written XREAD + publish loop (`hand`).
// BENCH_GLUE_ENTRY names the plugin build to load (streams.js points it at its copy of dist/).
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { serve } from './lib/rpc.js'
import { COOKIE_SECRET } from './lib/protocol.js'

let app = null
let stopHand = null

/** What an app writes without the pipe: read new entries, publish each (no consumer group, no acknowledgement). */
function handWrittenLoop ({ url, key, count }) {
  const reader = new Redis(url, { maxRetriesPerRequest: null })
  reader.on('error', () => {})
  const state = { stopped: false }
  const done = (async () => {
    // Each run uses a fresh key, so reading from the start misses nothing and repeats nothing.
    let last = '0-0'
    while (!state.stopped) {
      const read = await reader.xread('COUNT', count, 'BLOCK', 500, 'STREAMS', key, last).catch(() => null)
      const entries = read?.[0]?.[1] ?? []
      for (const [id, fields] of entries) {
        last = id
        app.sessions.publish('feed', fields[1])
      }
    }
  })()
  return async () => { state.stopped = true; await done; reader.disconnect() }
}

serve({
  async start ({ mode, url, key, count }) {
    const entry = process.env.BENCH_GLUE_ENTRY
    const pluginUrl = entry ? pathToFileURL(entry).href : '../dist/plugin/index.js'
    const { default: glue } = await import(pluginUrl)
    const { createRedisStreamSource } = await import(entry ? pathToFileURL(join(dirname(entry), 'redis', 'index.js')).href : '../dist/plugin/redis/index.js')
    app = Fastify({ logger: false })
    await app.register(glue, {
      path: '/ws',
      cookie: { secret: COOKIE_SECRET },
      heartbeatInterval: 0,
      rateLimit: false,
      onConnect (session, socket) {
        app.sessions.subscribe(session.id, 'feed')
        socket.send(`h|${session.id}`)
      }
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    if (mode === 'glue') {
      app.sessions.pipe(createRedisStreamSource({ redis: url, key, group: 'bench', consumer: 'node-1', groupStart: '0', count, claimIdle: 0 }),
        { topic: 'feed' }, { name: 'bench', map: (entry) => entry.fields.d })
    } else {
      stopHand = handWrittenLoop({ url, key, count })
    }
    return { port: app.server.address().port, pid: process.pid }
  },
  cpu () {
    const c = process.cpuUsage()
    return c.user + c.system
  },
  clock () {
    return process.hrtime.bigint().toString()
  },
  pipes () {
    return app.sessions.pipes()
  },
  async stop () {
    if (stopHand !== null) await stopHand()
    if (app !== null) await app.close()
    setImmediate(() => process.exit(0))
    return true
  }
})
