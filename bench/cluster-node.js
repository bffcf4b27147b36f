// One plugin node of the cluster benchmark, in its own process, driven by bench/cluster.js over IPC.
// Usage (forked by cluster.js): node bench/cluster-node.js
// BENCH_GLUE_ENTRY names the plugin build to load (cluster.js points it at its copy of dist/).
import { pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import { serve } from './lib/rpc.js'
import { COOKIE_SECRET } from './lib/protocol.js'

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const tick = () => new Promise((resolve) => setImmediate(resolve))
const now = () => process.hrtime.bigint()
// Pads a message to `size` bytes in all (the header counts), so every configuration sends the same bytes.
const fit = (head, size) => head + 'x'.repeat(Math.max(0, size - head.length))

let app = null

serve({
  // `redis` is undefined for the memory adapter (single node), else { url, prefix } or { shards, prefix }.
  async start ({ redis }) {
    const entry = process.env.BENCH_GLUE_ENTRY
    const { default: glue } = await import(entry ? pathToFileURL(entry).href : '../dist/plugin/index.js')
    app = Fastify({ logger: false })
    await app.register(glue, {
      path: '/ws',
      cookie: { secret: COOKIE_SECRET },
      heartbeatInterval: 0,
      rateLimit: false,
      ...(redis ? { redis } : {}),
      // The client learns its session id (and that it is registered) from this first frame.
      onConnect (session, socket) {
        socket.send(`h|${session.id}`)
      }
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    return { port: app.server.address().port, pid: process.pid }
  },
  counts () {
    return app.sessions.clusterCounts()
  },
  stats () {
    return app.sessions.stats()
  },
  // CPU time of this process and the shared monotonic clock (also used for the clock check).
  cpu () {
    const c = process.cpuUsage()
    return { user: c.user, system: c.system, ns: now().toString() }
  },
  clock () {
    return now().toString()
  },
  // `count` sends at `rate` per second, round robin over `sessionIds`; each payload carries the time of
  // the send call on CLOCK_MONOTONIC (process.hrtime), which every process on the machine shares.
  // `dry` runs the same pacing loop without sending, to measure what the loop itself costs.
  async send ({ sessionIds, rate, count, size, kind = 't', dry = false }) {
    const t0 = now()
    const limitMs = (count / rate) * 2000 + 1000 // bounded even if the loop falls behind
    let sent = 0
    while (sent < count) {
      const elapsedMs = Number(now() - t0) / 1e6
      if (elapsedMs > limitMs) break
      const due = Math.min(count, Math.floor((elapsedMs * rate) / 1000) + 1)
      for (; sent < due; sent++) {
        if (!dry) app.sessions.send(sessionIds[sent % sessionIds.length], fit(`${kind}|${now()}|`, size))
      }
      await sleep(1)
    }
    return { sent, elapsedMs: Number(now() - t0) / 1e6 }
  },
  // `count` sends as fast as the plugin takes them, `batch` per turn of the event loop: the regime that
  // finds how many targeted sends Redis can carry.
  async burst ({ sessionIds, count, batch, size, kind = 't' }) {
    const t0 = now()
    let sent = 0
    while (sent < count) {
      const end = Math.min(count, sent + batch)
      for (; sent < end; sent++) app.sessions.send(sessionIds[sent % sessionIds.length], fit(`${kind}|${now()}|`, size))
      await tick()
    }
    return { sent, startNs: t0.toString(), elapsedMs: Number(now() - t0) / 1e6 }
  },
  // `count` broadcasts as fast as the plugin takes them, `batch` per turn of the event loop so the
  // node's own I/O (Redis replies, socket writes) keeps moving, as in bench/servers/host.js.
  async broadcast ({ count, batch, size, kind = 'b' }) {
    const startNs = now()
    let seq = 0
    while (seq < count) {
      const end = Math.min(count, seq + batch)
      for (; seq < end; seq++) app.sessions.broadcast(fit(`${kind}|${seq}|`, size))
      await tick()
    }
    return { sent: seq, startNs: startNs.toString(), endNs: now().toString() }
  },
  async stop () {
    if (app !== null) await app.close()
    setImmediate(() => process.exit(0))
    return true
  }
})
