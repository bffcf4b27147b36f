// Topic history and presence costs (issue 17), in one process: what history adds to a publish, and
// how long a client waits for a history of 1000 messages, on one node and through Redis.
// Usage: node bench/topic-history.js [--reps 5] [--redis redis-server]
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { connect, createServer } from 'node:net'
import { performance } from 'node:perf_hooks'
import Fastify from 'fastify'
import WebSocket from 'ws'
import glue from '../dist/plugin/index.js'

const args = process.argv.slice(2)
const flag = (name, fallback) => {
  const index = args.indexOf(`--${name}`)
  return index === -1 ? fallback : args[index + 1]
}
const reps = Number(flag('reps', 5))
const redisBinary = flag('redis', 'redis-server')
const SECRET = 'bench-secret-that-is-long-enough-0123456789'

async function startNode (options) {
  const app = Fastify()
  await app.register(glue, { cookie: { secret: SECRET }, heartbeatInterval: 0, rateLimit: false, authorizeSubscribe: () => true, ...options })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, url: `ws://127.0.0.1:${app.server.address().port}/ws` }
}

function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

function quantile (values, q) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

/** ns per publish to a topic nobody is subscribed to, history on or off. */
async function publishCost (history) {
  const { app } = await startNode(history ? { topicHistory: { limit: 100 } } : {})
  const count = 200_000
  for (let i = 0; i < 10_000; i++) app.sessions.publish('room', { i, text: 'hello world' })
  const start = process.hrtime.bigint()
  for (let i = 0; i < count; i++) app.sessions.publish('room', { i, text: 'hello world' })
  const ns = Number(process.hrtime.bigint() - start) / count
  await app.close()
  return ns
}

/** ms from a subscribe asking for `last` messages to the last one received, over `samples` fresh sockets. */
async function historyLatency (node, publishers, last, samples) {
  for (let i = 0; i < last; i++) publishers.app.sessions.publish('room', { i, text: 'hello world' })
  // Let Redis number every publish before clients ask.
  await new Promise((resolve) => setTimeout(resolve, 200))
  const times = []
  for (let s = 0; s < samples; s++) {
    const socket = new WebSocket(node.url, 'glue.v1')
    await once(socket, 'message')
    let got = 0
    const done = new Promise((resolve) => {
      socket.on('message', (frame) => {
        if (String(frame).startsWith('["h"') && ++got === last) resolve()
      })
    })
    const start = performance.now()
    socket.send(JSON.stringify(['s', 1, 'room', { last }]))
    await done
    times.push(performance.now() - start)
    socket.terminate()
  }
  return times
}

async function freePort () {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  server.close()
  return port
}

async function startRedis () {
  const port = await freePort()
  const proc = spawn(redisBinary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  for (let i = 0; i < 100; i++) {
    const up = await new Promise((resolve) => {
      const probe = connect(port, '127.0.0.1')
      probe.on('error', () => resolve(false))
      probe.on('connect', () => { probe.destroy(); resolve(true) })
    })
    if (up) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { url: `redis://127.0.0.1:${port}`, stop: () => proc.kill('SIGKILL') }
}

const lines = []
const off = []
const on = []
for (let r = 0; r < reps; r++) {
  off.push(await publishCost(false))
  on.push(await publishCost(true))
}
lines.push(`publish, no subscriber, history off: median ${median(off).toFixed(0)} ns (min ${Math.min(...off).toFixed(0)}, max ${Math.max(...off).toFixed(0)}), ${reps} interleaved runs`)
lines.push(`publish, no subscriber, history on (limit 100): median ${median(on).toFixed(0)} ns (min ${Math.min(...on).toFixed(0)}, max ${Math.max(...on).toFixed(0)})`)

const single = await startNode({ topicHistory: { limit: 1000 } })
const local = await historyLatency(single, single, 1000, 20 * reps)
await single.app.close()
lines.push(`history of 1000 messages, one node: p50 ${quantile(local, 0.5).toFixed(2)} ms, p99 ${quantile(local, 0.99).toFixed(2)} ms, max ${Math.max(...local).toFixed(2)} ms (${local.length} subscribes)`)

const redis = await startRedis()
try {
  const prefix = `bench${Date.now()}`
  const a = await startNode({ topicHistory: { limit: 1000 }, redis: { url: redis.url, prefix } })
  const b = await startNode({ topicHistory: { limit: 1000 }, redis: { url: redis.url, prefix } })
  const clustered = await historyLatency(b, a, 1000, 20 * reps)
  lines.push(`history of 1000 messages, 2 nodes + Redis (published on the other node): p50 ${quantile(clustered, 0.5).toFixed(2)} ms, p99 ${quantile(clustered, 0.99).toFixed(2)} ms, max ${Math.max(...clustered).toFixed(2)} ms (${clustered.length} subscribes)`)
  await a.app.close()
  await b.app.close()
} finally {
  redis.stop()
}
console.log(`Node ${process.version}, ${process.platform}/${process.arch}, one process (server and clients share 1 core)`)
for (const line of lines) console.log(line)
