// One target server in its own process, driven by the orchestrator over IPC.
// Usage (forked by run.js): node --expose-gc bench/servers/host.js <target>
import { readFileSync } from 'node:fs'
import { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks'
import { serve } from '../lib/rpc.js'
import { payload } from '../lib/protocol.js'
import { kindOf } from '../lib/scenarios.js'

const name = process.argv[2]
const { start } = await import(`./${kindOf(name)}.js`)
let target = null
// Distinct payloads per broadcast for the deflate scenario, built at start so no run times their making.
let payloads = []
let profiler = null
const post = (method, params = {}) => new Promise((resolve, reject) => {
  profiler.post(method, params, (err, result) => (err ? reject(err) : resolve(result)))
})

// Counters every target pays the same for: stream writes handed to TCP sockets (each one libuv write,
// normally one syscall; a writev of corked frames counts once), and garbage collections.
let writes = 0
const writeGeneric = Socket.prototype._writeGeneric
Socket.prototype._writeGeneric = function (...args) {
  writes++
  return writeGeneric.apply(this, args)
}
let gcCount = 0
let gcMs = 0
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gcCount++
    gcMs += entry.duration
  }
}).observe({ entryTypes: ['gc'] })
// With --diagnose: event-loop delay over a measured phase (its 10 ms timer wakes every target alike).
let loopDelay = null

// CPU time of the main (JavaScript) thread alone, in ns: the rest of process.cpuUsage() is V8's
// compiler and GC helper threads and libuv's pool. Linux only; null elsewhere.
function mainThreadNs () {
  try {
    return readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]
  } catch {
    return null
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const tick = () => new Promise((resolve) => setImmediate(resolve))

async function collect () {
  if (typeof globalThis.gc !== 'function') throw new Error('run servers with --expose-gc')
  // Several passes with turns of the loop in between, so weak callbacks and finalizers settle.
  for (let i = 0; i < 4; i++) {
    globalThis.gc()
    await tick()
    await sleep(20)
  }
}

serve({
  // `server`: per-scenario settings a target may honour ({ writeDelay, deflate }); see run.js VARIANTS.
  async start ({ host, server = {} }) {
    const { payloads: wanted, diagnose, ...settings } = server
    if (diagnose === true) loopDelay = monitorEventLoopDelay({ resolution: 10 })
    if (wanted !== undefined) payloads = Array.from({ length: wanted.count }, (_, i) => payload(wanted.size, 'json', 1000 + i))
    target = await start({ host, ...settings })
    return { port: target.port, pid: process.pid }
  },
  async mem () {
    await collect()
    const m = process.memoryUsage()
    return { heapUsed: m.heapUsed, rss: m.rss, external: m.external, arrayBuffers: m.arrayBuffers }
  },
  // A heap snapshot after a forced GC, for bench/heap-diff.js.
  async snapshot () {
    await collect()
    const { writeHeapSnapshot } = await import('node:v8')
    return { file: writeHeapSnapshot(join(tmpdir(), `bench-${name}-${process.pid}-${Date.now()}.heapsnapshot`)) }
  },
  // CPU profile of the measured phase only (--cpu-prof), written as a .cpuprofile file.
  async profileStart () {
    const { Session } = await import('node:inspector')
    profiler = new Session()
    profiler.connect()
    await post('Profiler.enable')
    await post('Profiler.setSamplingInterval', { interval: 100 })
    await post('Profiler.start')
    return true
  },
  async profileStop ({ file }) {
    const { profile } = await post('Profiler.stop')
    profiler.disconnect()
    profiler = null
    const { writeFileSync } = await import('node:fs')
    writeFileSync(file, JSON.stringify(profile))
    return { file }
  },
  cpu () {
    const c = process.cpuUsage()
    return { user: c.user, system: c.system, mainNs: mainThreadNs(), ns: process.hrtime.bigint().toString(), writes, gcCount, gcMs }
  },
  // Event-loop delay since the last call (--diagnose only), in µs.
  loopDelay ({ reset = false } = {}) {
    if (loopDelay === null) return null
    const result = { p50: loopDelay.percentile(50) / 1000, p99: loopDelay.percentile(99) / 1000, max: loopDelay.max / 1000 }
    loopDelay.disable()
    loopDelay.reset()
    if (reset) loopDelay.enable()
    return result
  },
  // Fan-out: `messages` broadcasts, `batch` of them per turn of the event loop (or, with `intervalMs` > 0,
  // a batch then a pause). Each carries the start time of its batch, so the clients can time it.
  async broadcast ({ messages, batch, size, maxMs, intervalMs = 0 }) {
    const pad = payload(size)
    const startNs = process.hrtime.bigint()
    const deadline = Date.now() + maxMs
    let seq = 0
    while (seq < messages && Date.now() < deadline) {
      const end = Math.min(messages, seq + batch)
      // Every message of a batch carries the batch's start: the app had all of them then, so the
      // time a target spends on the batch's earlier messages counts toward the later ones' latency.
      const batchNs = process.hrtime.bigint()
      for (; seq < end; seq++) target.broadcast(`b|${batchNs}|${payloads[seq] ?? pad}`)
      await (intervalMs > 0 ? sleep(intervalMs) : tick())
    }
    return { sent: seq, startNs: startNs.toString(), endNs: process.hrtime.bigint().toString() }
  },
  // Targeted sends at a fixed rate, round robin over `sessionIds`; each payload carries the send time.
  async targeted ({ sessionIds, rate, durationMs, size }) {
    const pad = payload(size)
    const n = sessionIds.length
    const total = Math.floor((rate * durationMs) / 1000)
    const t0 = process.hrtime.bigint()
    let sent = 0
    while (sent < total) {
      const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6
      if (elapsedMs > durationMs * 2 + 1000) break
      const due = Math.min(total, Math.floor((elapsedMs * rate) / 1000) + 1)
      for (; sent < due; sent++) {
        target.send(sessionIds[sent % n], `t|${process.hrtime.bigint()}|${pad}`)
      }
      await sleep(1)
    }
    return { sent, elapsedMs: Number(process.hrtime.bigint() - t0) / 1e6 }
  },
  async stop () {
    if (target !== null) await target.close()
    setImmediate(() => process.exit(0))
    return true
  }
})
