// Streams benchmark: a Redis Stream fed at a steady rate to a topic with many subscribed sockets, through
// the plugin's pipe and Redis Stream source (`glue`) and through a hand-written XREAD + publish loop
// (`hand`), interleaved in one run. Usage: node bench/streams.js [--help]
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { forkChild, parseFlags, sleep, startRedis } from './lib/processes.js'
import { withTimeout } from './lib/rpc.js'
import { median, summariseLatencies } from './lib/stats.js'
import { pluginFingerprint, snapshotPlugin } from './lib/plugin-build.js'

const here = dirname(fileURLToPath(import.meta.url))
const OUT = join(here, 'results')

const DEFAULTS = {
  connections: 2000,
  clients: 2,
  reps: 5,
  rate: 10000,
  duration: 300,
  lowRate: 100,
  lowDuration: 3000,
  count: 100,
  size: 64
}

const HELP = `Usage: node bench/streams.js [flags]
  --connections N   subscribed sockets, one session each (default ${DEFAULTS.connections})
  --clients N       client processes (default ${DEFAULTS.clients})
  --reps N          interleaved repetitions (default ${DEFAULTS.reps})
  --rate N          entries/s of the high-rate phase (default ${DEFAULTS.rate})
  --duration MS     length of the high-rate phase (default ${DEFAULTS.duration})
  --low-rate N      entries/s of the low-rate phase (default ${DEFAULTS.lowRate})
  --low-duration MS length of the low-rate phase (default ${DEFAULTS.lowDuration})
  --count N         entries per XREAD/XREADGROUP, both modes (default ${DEFAULTS.count})
  --size N          bytes per entry's data, stamp included (default ${DEFAULTS.size})`

const now = () => process.hrtime.bigint()
const fit = (head, size) => head + 'x'.repeat(Math.max(0, size - head.length))

async function waitForClients (clients, expected, quietMs, limitMs) {
  const deadline = Date.now() + limitMs
  let last = -1
  let lastChange = Date.now()
  for (;;) {
    const counts = await Promise.all(clients.map((c) => c.call('counts')))
    const received = counts.reduce((total, c) => total + c.targeted, 0)
    if (received >= expected) return counts
    if (received !== last) { last = received; lastChange = Date.now() }
    if (Date.now() - lastChange > quietMs || Date.now() > deadline) return counts
    await sleep(20)
  }
}

/** XADDs `rate` entries per second for `duration` ms, each stamped with CLOCK_MONOTONIC at the XADD call. */
async function produce (admin, key, rate, duration, size) {
  const total = Math.max(1, Math.round((rate * duration) / 1000))
  const t0 = now()
  let sent = 0
  while (sent < total) {
    const elapsed = Number(now() - t0) / 1e6
    if (elapsed > duration * 3 + 1000) break
    const due = Math.min(total, Math.floor((elapsed * rate) / 1000) + 1)
    if (due > sent) {
      const batch = admin.pipeline()
      for (; sent < due; sent++) batch.xadd(key, 'MAXLEN', '~', '100000', '*', 'd', fit(`t|${now()}|`, size))
      await batch.exec()
    }
    await sleep(1)
  }
  return sent
}

async function phase (name, { server, clients, redis, key, rate, duration, opts }) {
  await Promise.all(clients.map((c) => c.call('reset', {})))
  const cpu0 = await server.call('cpu')
  const t0 = now()
  const entries = await produce(redis.admin, key, rate, duration, opts.size)
  const expected = entries * opts.connections
  const counts = await waitForClients(clients, expected, 3000, 120_000)
  const cpu1 = await server.call('cpu')
  const received = counts.reduce((total, c) => total + c.targeted, 0)
  const lastNs = counts.reduce((latest, c) => (BigInt(c.lastTargetedNs) > latest ? BigInt(c.lastTargetedNs) : latest), 0n)
  const latencyArrays = (await Promise.all(clients.map((c) => c.call('latencies')))).flatMap((byNode) => Object.values(byNode))
  const latency = summariseLatencies(latencyArrays)
  const seconds = Number((lastNs > t0 ? lastNs : now()) - t0) / 1e9
  return {
    phase: name,
    entries,
    expected,
    received,
    lost: expected - received,
    p50: latency.p50,
    p99: latency.p99,
    max: latency.max,
    cpuPerDeliveryUs: received > 0 ? (cpu1 - cpu0) / received : null,
    deliveriesPerSecond: received / seconds
  }
}

async function runMode (mode, opts, redis, entry, rep) {
  const key = `bench:${mode}:${rep}:${Date.now()}`
  const server = forkChild(join(here, 'streams-node.js'), { BENCH_GLUE_ENTRY: entry })
  const clients = Array.from({ length: opts.clients }, () => forkChild(join(here, 'cluster-client.js'), {}))
  try {
    const { port } = await withTimeout(server.call('start', { mode, url: redis.url, key, count: opts.count }), 30_000, 'server start')
    const base = `ws://127.0.0.1:${port}`
    const per = Math.ceil(opts.connections / opts.clients)
    const opened = await Promise.all(clients.map((c, i) => c.call('connect', {
      bases: [base], nodes: new Array(Math.max(0, Math.min(per, opts.connections - i * per))).fill(0), concurrency: 50, timeoutMs: 20_000
    })))
    const failed = opened.reduce((total, o) => total + o.failed, 0)
    // Warm-up nobody measures: the JIT and the group's first reads.
    await phase('warm-up', { server, clients, redis, key, rate: 1000, duration: 200, opts })
    const low = await phase('low', { server, clients, redis, key, rate: opts.lowRate, duration: opts.lowDuration, opts })
    const high = await phase('high', { server, clients, redis, key, rate: opts.rate, duration: opts.duration, opts })
    return { mode, rep, failed, low, high }
  } finally {
    await Promise.all(clients.map((c) => c.call('close').catch(() => {})))
    await withTimeout(server.call('stop'), 10_000, 'server stop').catch(() => {})
    for (const c of [server, ...clients]) c.child.kill('SIGKILL')
  }
}

const fmt = (v, digits = 2) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : 'n/a')
const int = (v) => (typeof v === 'number' && Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : 'n/a')

function spread (values, format) {
  const xs = values.filter((v) => typeof v === 'number' && Number.isFinite(v))
  if (xs.length === 0) return 'n/a'
  return `${format(median(xs))} [${format(Math.min(...xs))}–${format(Math.max(...xs))}]`
}

const METRICS = [
  ['p50 latency (ms)', (r) => r.p50 / 1000, (v) => fmt(v)],
  ['p99 latency (ms)', (r) => r.p99 / 1000, (v) => fmt(v)],
  ['server CPU per delivery (µs)', (r) => r.cpuPerDeliveryUs, (v) => fmt(v, 3)],
  ['deliveries/s', (r) => r.deliveriesPerSecond, int],
  ['lost', (r) => r.lost, int]
]

function render (runs, opts, meta) {
  const lines = [`# Streams benchmark, ${meta.time}`, '',
    `${opts.connections} subscribed sockets (one session each, ${opts.clients} client processes), memory adapter; entries of ${opts.size} bytes, read ${opts.count} per call. ` +
    `Low: ${opts.lowRate} entries/s for ${opts.lowDuration} ms. High: ${opts.rate} entries/s for ${opts.duration} ms. ${opts.reps} interleaved repetitions: median [min–max]. ` +
    `Build ${meta.build?.sha256 ?? 'n/a'} (${meta.build?.built ?? 'n/a'}); load average ${meta.loadBefore.map((v) => v.toFixed(2)).join(' ')} before, ${meta.loadAfter.map((v) => v.toFixed(2)).join(' ')} after.`, '']
  for (const phaseName of ['low', 'high']) {
    lines.push(`## ${phaseName === 'low' ? `Low rate (${opts.lowRate} entries/s)` : `High rate (${opts.rate} entries/s)`}`, '',
      '| figure | glue (pipe + Redis Stream source) | hand (XREAD + publish) | glue / hand |', '| --- | --- | --- | --- |')
    for (const [label, pick, format] of METRICS) {
      const of = (mode) => runs.filter((r) => r.mode === mode).map((r) => pick(r[phaseName]))
      const ratios = []
      for (let rep = 0; rep < opts.reps; rep++) {
        const glue = runs.find((r) => r.mode === 'glue' && r.rep === rep)
        const hand = runs.find((r) => r.mode === 'hand' && r.rep === rep)
        if (glue && hand && pick(hand[phaseName]) > 0) ratios.push(pick(glue[phaseName]) / pick(hand[phaseName]))
      }
      lines.push(`| ${label} | ${spread(of('glue'), format)} | ${spread(of('hand'), format)} | ${label === 'lost' ? '' : spread(ratios, (v) => fmt(v)) + 'x'} |`)
    }
    lines.push('')
  }
  const failed = runs.filter((r) => r.failed > 0)
  if (failed.length > 0) lines.push(`Failed connections: ${failed.map((r) => `${r.mode} rep ${r.rep + 1}: ${r.failed}`).join(', ')}`, '')
  return lines.join('\n')
}

async function main () {
  const opts = parseFlags(process.argv.slice(2), DEFAULTS, HELP)
  const build = pluginFingerprint()
  if (build === null) throw new Error('no build in dist/: run npm run build first')
  const snapshot = snapshotPlugin(`streams-${process.pid}`)
  const redis = await startRedis()
  const meta = { time: new Date().toISOString(), build, loadBefore: loadavg(), loadAfter: [] }
  const runs = []
  try {
    for (let rep = 0; rep < opts.reps; rep++) {
      const order = rep % 2 === 0 ? ['glue', 'hand'] : ['hand', 'glue']
      for (const mode of order) {
        const run = await runMode(mode, opts, redis, snapshot.entry, rep)
        runs.push(run)
        console.log(`rep ${rep + 1} ${mode}: low p50 ${fmt(run.low.p50 / 1000)} ms p99 ${fmt(run.low.p99 / 1000)} ms cpu/delivery ${fmt(run.low.cpuPerDeliveryUs, 3)} µs lost ${run.low.lost}; ` +
          `high p50 ${fmt(run.high.p50 / 1000)} ms p99 ${fmt(run.high.p99 / 1000)} ms cpu/delivery ${fmt(run.high.cpuPerDeliveryUs, 3)} µs ${int(run.high.deliveriesPerSecond)}/s lost ${run.high.lost}`)
      }
    }
  } finally {
    await redis.stop()
    rmSync(snapshot.root, { recursive: true, force: true })
  }
  meta.loadAfter = loadavg()
  const markdown = render(runs, opts, meta)
  mkdirSync(OUT, { recursive: true })
  const stamp = meta.time.replace(/[:.]/g, '-')
  writeFileSync(join(OUT, `streams-${stamp}.json`), JSON.stringify({ meta, opts, runs }, null, 2))
  writeFileSync(join(OUT, `streams-${stamp}.md`), markdown + '\n')
  console.log('\n' + markdown)
}

main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1) })
