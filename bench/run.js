// Side-by-side benchmark of fastify-websocket-glue against raw ws, bare @fastify/websocket and socket.io.
// Usage: npm run bench -- [flags]   (see bench/README.md, or --help)
import { fork } from 'node:child_process'
import { loadavg } from 'node:os'
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createCaller, withTimeout } from './lib/rpc.js'
import { pluginFingerprint, snapshotPlugin } from './lib/plugin-build.js'
import { median, summariseLatencies } from './lib/stats.js'
import { GOALS, metricsOf, renderMarkdown } from './lib/report.js'
import { ALL_SCENARIOS, VARIANTS, kindOf, targetsOf } from './lib/scenarios.js'

const here = dirname(fileURLToPath(import.meta.url))
const ALL_TARGETS = ['glue', 'ws', 'fastify-ws', 'socketio', 'glue-b']
// glue-b: a second build of the plugin (--glue-b DIR, a checkout with its own dist/), run as glue
// side by side with the first, for A/B comparisons of a change.
const MAX_SOCKETS_PER_CLIENT = 15_000

const DEFAULTS = {
  targets: ALL_TARGETS.filter((t) => t !== 'glue-b').join(','),
  scenarios: ALL_SCENARIOS.join(','),
  connections: 2000,
  twoTabRatio: 0.1,
  reps: 3,
  clients: 0,
  concurrency: 50,
  messages: 100,
  batch: 10,
  interval: 0,
  size: 64,
  rate: 5000,
  writeDelay: 5,
  warmRounds: 3,
  deflateSize: 1024,
  duration: 2000,
  echoSockets: 100,
  echoDuration: 2000,
  timeout: 120_000,
  host: '127.0.0.1',
  out: join(here, 'results'),
  cpuProf: '',
  diagnose: 0,
  sourceAddresses: 0,
  label: '',
  glueB: ''
}

const HELP = `Usage: node bench/run.js [flags]
  --targets a,b        targets to run (default ${DEFAULTS.targets})
  --scenarios a,b      scenarios to run (default ${DEFAULTS.scenarios})
  --connections N      sockets per scenario, about 10% of sessions hold two (default ${DEFAULTS.connections})
  --two-tab-ratio R    share of sessions with two tabs (default ${DEFAULTS.twoTabRatio})
  --reps N             repetitions; the table reports the median (default ${DEFAULTS.reps})
  --clients N          client processes (default: one per ${MAX_SOCKETS_PER_CLIENT} sockets)
  --concurrency N      sessions connecting at once per client process (default ${DEFAULTS.concurrency})
  --messages N         broadcasts per broadcast run (default ${DEFAULTS.messages})
  --batch N            broadcasts per event-loop turn (default ${DEFAULTS.batch})
  --interval MS        pause between broadcast batches; 0 sends the next batch on the next loop turn (default ${DEFAULTS.interval})
  --size N             padding bytes per message (default ${DEFAULTS.size})
  --rate N             targeted sends per second (default ${DEFAULTS.rate})
  --warm-rounds N      connect-warm: rounds of --connections handshakes served first (default ${DEFAULTS.warmRounds})
  --write-delay MS     glue's writeDelay in the *-delay scenarios (default ${DEFAULTS.writeDelay})
  --deflate-size N     bytes per broadcast in broadcast-deflate (default ${DEFAULTS.deflateSize})
  --duration MS        targeted-send duration (default ${DEFAULTS.duration})
  --echo-sockets N     sockets running the echo loop (default ${DEFAULTS.echoSockets})
  --echo-duration MS   echo duration (default ${DEFAULTS.echoDuration})
  --timeout MS         limit for one scenario run of one target (default ${DEFAULTS.timeout})
  --source-addresses N bind client process k to loopback address k mod N (127.0.x.2, ...); 0 lets the
                       kernel pick (default ${DEFAULTS.sourceAddresses}); needed only past ~28,000 sockets
                       to one server port
  --diagnose 1         record event-loop delay in the servers during targeted sends (a 10 ms timer)
  --cpu-prof a,b       CPU-profile these targets' servers during the measured phase (<out>/prof)
  --out DIR            results directory (default bench/results)
  --label NAME         suffix for the result file names
  --glue-b DIR         a checkout whose built dist/ runs as target glue-b (A/B of two builds)`

function parseArgs (argv) {
  const opts = { ...DEFAULTS }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--help' || arg === '-h') { console.log(HELP); process.exit(0) }
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}`)
    let [key, value] = arg.slice(2).split('=', 2)
    if (value === undefined) value = argv[++i]
    const name = key.replace(/-([a-z])/g, (_, c) => c.toUpperCase())
    if (!(name in DEFAULTS)) throw new Error(`unknown flag --${key}\n${HELP}`)
    if (value === undefined) throw new Error(`flag --${key} needs a value`)
    if (typeof DEFAULTS[name] === 'number') {
      const n = Number(value)
      if (!Number.isFinite(n) || n < 0) throw new Error(`--${key} must be a non-negative number, received ${value}`)
      opts[name] = n
    } else {
      opts[name] = value
    }
  }
  opts.targets = opts.targets.split(',').filter(Boolean)
  opts.scenarios = opts.scenarios.split(',').filter(Boolean)
  opts.cpuProf = opts.cpuProf.split(',').filter(Boolean)
  for (const t of opts.targets) if (!ALL_TARGETS.includes(t)) throw new Error(`unknown target ${t}`)
  for (const s of opts.scenarios) if (!ALL_SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s}`)
  if (opts.clients === 0) opts.clients = Math.max(1, Math.ceil(opts.connections / MAX_SOCKETS_PER_CLIENT))
  opts.out = resolve(opts.out)
  return opts
}

// The session model shared by every target: `connections` sockets, a `ratio` share of sessions with two
// tabs spread evenly, sessions dealt round robin to client processes (a session's tabs stay together).
function sessionPlan (connections, ratio, clients) {
  const sessions = Math.max(1, Math.round(connections / (1 + ratio)))
  const twoTab = Math.min(sessions, connections - sessions)
  const perClient = Array.from({ length: clients }, () => [])
  for (let i = 0; i < sessions; i++) {
    const tabs = Math.floor(((i + 1) * twoTab) / sessions) > Math.floor((i * twoTab) / sessions) ? 2 : 1
    perClient[i % clients].push(tabs)
  }
  return { sessions, twoTab, perClient }
}

const sum = (xs) => xs.reduce((a, b) => a + b, 0)
const big = (s) => BigInt(s)

function spawnServer (target) {
  const env = { ...process.env }
  if (glueSnapshot !== null) env.BENCH_GLUE_ENTRY = glueSnapshot.entry
  if (target === 'glue-b') env.BENCH_GLUE_ENTRY = glueBEntry
  const child = fork(join(here, 'servers', 'host.js'), [target], { env, execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return { child, call: createCaller(child) }
}

// With --cpu-prof, the server profiles only the measured phase of a scenario (not start-up or shutdown).
const profiled = { scenario: '', target: '', rep: 0 }
async function phaseStart (server, opts) {
  if (opts.cpuProf.includes(profiled.target)) await server.call('profileStart')
}
async function phaseEnd (server, opts) {
  if (!opts.cpuProf.includes(profiled.target)) return
  mkdirSync(join(opts.out, 'prof'), { recursive: true })
  const { scenario, target, rep } = profiled
  const { file } = await server.call('profileStop', { file: join(opts.out, 'prof', `${scenario}-${target}-rep${rep + 1}-${Date.now()}.cpuprofile`) })
  console.log(`  profile written to ${file}`)
}

function spawnClient () {
  const child = fork(join(here, 'client.js'), [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return { child, call: createCaller(child) }
}

// With --source-addresses, each client process binds to its own loopback source address, which gives
// it its own ~28,000 ephemeral ports. The third octet moves on with every run: bind() gets slow on an
// address whose ports are held by TIME_WAIT sockets of an earlier run. Off by default: an explicit
// bind() costs the client far more kernel time per socket than connect()'s own port choice.
let runIndex = 0
function sourceAddress (k, opts) {
  if (opts.sourceAddresses === 0) return undefined
  return `127.0.${1 + (runIndex % 250)}.${2 + (k % opts.sourceAddresses)}`
}

async function connectAll (clients, target, base, plans, opts) {
  const results = await Promise.all(clients.map((c, k) => c.call('connect', {
    target: kindOf(target),
    base,
    plan: plans[k],
    concurrency: opts.concurrency,
    localAddress: sourceAddress(k, opts),
    timeoutMs: 15_000
  })))
  const startNs = results.reduce((m, r) => (big(r.startNs) < m ? big(r.startNs) : m), big(results[0].startNs))
  const endNs = results.reduce((m, r) => (big(r.endNs) > m ? big(r.endNs) : m), big(results[0].endNs))
  const open = sum(results.map((r) => r.open))
  if (open === 0) throw new Error(`no connection opened: ${results.flatMap((r) => r.errors).slice(0, 2).join('; ')}`)
  return {
    open,
    failed: sum(results.map((r) => r.failed)),
    mismatched: sum(results.map((r) => r.mismatched)),
    errors: results.flatMap((r) => r.errors).slice(0, 5),
    seconds: Number(endNs - startNs) / 1e9
  }
}

const cpuMicros = (a, b) => ({ user: b.user - a.user, system: b.system - a.system, total: b.user - a.user + b.system - a.system })

// Polls the clients until `done(counts)` holds or nothing arrived for `quietMs`.
async function waitForDelivery (clients, done, quietMs, limitMs) {
  const deadline = Date.now() + limitMs
  let last = -1
  let lastChange = Date.now()
  for (;;) {
    const counts = await Promise.all(clients.map((c) => c.call('counts')))
    const total = sum(counts.map((x) => x.broadcastReceived + x.targetedReceived))
    if (done(counts)) return counts
    if (total !== last) { last = total; lastChange = Date.now() }
    if (Date.now() - lastChange > quietMs || Date.now() > deadline) return counts
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const SCENARIOS = {
  // Handshakes/s and memory per connection. A warm-up tenth of the connections opens first so lazily
  // built objects are not charged to the nine tenths being measured. The memory snapshots force GCs,
  // and a forced GC flushes V8's compiled code: so `connect` measures handshakes on code being compiled
  // again, as in a freshly started process. `connect-warm` first serves --warm-rounds rounds and takes
  // no snapshot (no memory figures), so its handshakes run on compiled code, as in a server that has run a while.
  async connect ({ server, clients, target, base, opts }) {
    // Each warm round is opened, then reset by the clients. What those sessions leave behind (glue keeps
    // a closed glue.v1 session for its grace period) stays, as it would in a running server.
    for (let round = 0; round < opts.warmRounds; round++) {
      const plan = sessionPlan(opts.connections, opts.twoTabRatio, clients.length)
      await connectAll(clients, target, base, plan.perClient, opts)
      await Promise.all(clients.map((c) => c.call('close')))
      await new Promise((resolve) => setTimeout(resolve, 300))
    }
    const measureMemory = opts.warmRounds === 0
    const warmCount = Math.max(1, Math.round(opts.connections / 10))
    const warmPlan = sessionPlan(warmCount, opts.twoTabRatio, clients.length)
    const warm = await connectAll(clients, target, base, warmPlan.perClient, opts)
    const mem0 = measureMemory ? await server.call('mem') : null
    await phaseStart(server, opts)
    const cpu0 = await server.call('cpu')
    const plan = sessionPlan(Math.max(1, opts.connections - warmCount), opts.twoTabRatio, clients.length)
    const main = await connectAll(clients, target, base, plan.perClient, opts)
    const cpu1 = await server.call('cpu')
    await phaseEnd(server, opts)
    const mem1 = measureMemory ? await server.call('mem') : null
    const n = main.open
    const cpu = cpuMicros(cpu0, cpu1)
    const result = {
      connections: n,
      sessions: plan.sessions,
      failed: main.failed + warm.failed,
      sessionMismatches: main.mismatched + warm.mismatched,
      errors: [...warm.errors, ...main.errors],
      handshakesPerSec: n / main.seconds,
      serverCpuPerHandshakeUs: cpu.total / n,
      serverUserPerHandshakeUs: cpu.user / n,
      serverSystemPerHandshakeUs: cpu.system / n,
      serverMainThreadPerHandshakeUs: cpu0.mainNs === null ? undefined : Number(big(cpu1.mainNs) - big(cpu0.mainNs)) / 1000 / n,
      gcCount: cpu1.gcCount - cpu0.gcCount,
      gcMs: cpu1.gcMs - cpu0.gcMs
    }
    if (!measureMemory) return result
    return {
      ...result,
      heapPerConnBytes: (mem1.heapUsed - mem0.heapUsed) / n,
      rssPerConnBytes: (mem1.rss - mem0.rss) / n,
      externalPerConnBytes: (mem1.external - mem0.external) / n,
      heapPerSessionBytes: (mem1.heapUsed - mem0.heapUsed) / plan.sessions,
      totalHeapBytes: mem1.heapUsed,
      totalRssBytes: mem1.rss
    }
  },

  // Fan-out: every socket receives every broadcast. Server CPU is measured from the first broadcast until
  // the last client has its last message, so queued writes are charged too.
  async broadcast ({ server, clients, target, base, opts }) {
    const plan = sessionPlan(opts.connections, opts.twoTabRatio, clients.length)
    const conn = await connectAll(clients, target, base, plan.perClient, opts)
    await Promise.all(clients.map((c) => c.call('reset')))
    const mem0 = await server.call('mem')
    await phaseStart(server, opts)
    const cpu0 = await server.call('cpu')
    const sent = await server.call('broadcast', { messages: opts.messages, batch: opts.batch, size: opts.size, maxMs: opts.timeout / 2, intervalMs: opts.interval })
    const expected = sent.sent * conn.open
    const counts = await waitForDelivery(clients, (cs) => sum(cs.map((x) => x.broadcastReceived)) >= expected, 3000, opts.timeout / 3)
    const cpu1 = await server.call('cpu')
    await phaseEnd(server, opts)
    const mem1 = await server.call('mem')
    const delivered = sum(counts.map((x) => x.broadcastReceived))
    const lat = summariseLatencies((await Promise.all(clients.map((c) => c.call('latencies', { kind: 'b' })))).map((l) => l.samples))
    const wire = sum(counts.map((x) => x.bytesRead))
    const lastNs = counts.reduce((m, x) => (big(x.lastReceiveNs) > m ? big(x.lastReceiveNs) : m), 0n)
    const cpu = cpuMicros(cpu0, cpu1)
    return {
      connections: conn.open,
      failed: conn.failed,
      sessionMismatches: conn.mismatched,
      errors: conn.errors,
      broadcasts: sent.sent,
      expected,
      delivered,
      lost: expected - delivered,
      deliveriesPerSec: delivered / (Number(lastNs - big(sent.startNs)) / 1e9),
      serverCpuPerDeliveryUs: cpu.total / delivered,
      serverUserPerDeliveryUs: cpu.user / delivered,
      serverSystemPerDeliveryUs: cpu.system / delivered,
      messagesPerWrite: delivered / Math.max(1, cpu1.writes - cpu0.writes),
      wireBytesPerDelivery: target === 'socketio' ? null : wire / delivered,
      broadcastP50Us: lat.p50,
      broadcastP99Us: lat.p99,
      // What the server still holds per connection once every broadcast is delivered (after a GC).
      heapRetainedPerConnBytes: (mem1.heapUsed - mem0.heapUsed) / conn.open,
      totalHeapBytes: mem1.heapUsed,
      totalRssBytes: mem1.rss
    }
  },

  // Server-initiated sends to one session at a fixed rate, round robin over all sessions. Latency is the
  // client's receive time minus the send time stamped in the payload: process.hrtime is CLOCK_MONOTONIC,
  // which is system-wide on Linux, so two processes on one machine share it.
  async targeted ({ server, clients, target, base, opts }) {
    const plan = sessionPlan(opts.connections, opts.twoTabRatio, clients.length)
    const conn = await connectAll(clients, target, base, plan.perClient, opts)
    const sessions = (await Promise.all(clients.map((c) => c.call('sessions')))).flat()
    await Promise.all(clients.map((c) => c.call('reset')))
    if (sessions.length === 0) throw new Error('no session connected')
    const sessionIds = sessions.map((s) => s.sessionId)
    await phaseStart(server, opts)
    await server.call('loopDelay', { reset: true })
    const cpu0 = await server.call('cpu')
    const sent = await server.call('targeted', { sessionIds, rate: opts.rate, durationMs: opts.duration, size: opts.size })
    let expected = 0
    for (let k = 0; k < sent.sent; k++) expected += sessions[k % sessions.length].tabs
    const counts = await waitForDelivery(clients, (cs) => sum(cs.map((x) => x.targetedReceived)) >= expected, 2000, opts.timeout / 3)
    const cpu1 = await server.call('cpu')
    const delay = await server.call('loopDelay')
    await phaseEnd(server, opts)
    const delivered = sum(counts.map((x) => x.targetedReceived))
    const lat = summariseLatencies((await Promise.all(clients.map((c) => c.call('latencies')))).map((l) => l.samples))
    return {
      connections: conn.open,
      failed: conn.failed,
      sessionMismatches: conn.mismatched,
      errors: conn.errors,
      sends: sent.sent,
      achievedRate: sent.sent / (sent.elapsedMs / 1000),
      expected,
      delivered,
      deliveredRatio: expected === 0 ? null : delivered / expected,
      // The pacing loop (a 1 ms timer) is included, the same for every target.
      serverCpuPerSendUs: cpuMicros(cpu0, cpu1).total / Math.max(1, sent.sent),
      writesPerSend: (cpu1.writes - cpu0.writes) / Math.max(1, sent.sent),
      gcCount: cpu1.gcCount - cpu0.gcCount,
      gcMs: cpu1.gcMs - cpu0.gcMs,
      loopDelayP99Us: delay?.p99 ?? null,
      loopDelayMaxUs: delay?.max ?? null,
      targetedP50Us: lat.p50,
      targetedP99Us: lat.p99,
      targetedMaxUs: lat.max
    }
  },

  // Closed-loop echo, one message in flight per socket, on `echoSockets` sockets with all others idle.
  async echo ({ server, clients, target, base, opts }) {
    const plan = sessionPlan(opts.connections, opts.twoTabRatio, clients.length)
    const conn = await connectAll(clients, target, base, plan.perClient, opts)
    const per = Math.ceil(opts.echoSockets / clients.length)
    await phaseStart(server, opts)
    const results = await Promise.all(clients.map((c) => c.call('echo', {
      count: per, durationMs: opts.echoDuration, maxPerSocket: 1_000_000, size: opts.size
    })))
    await phaseEnd(server, opts)
    const roundTrips = sum(results.map((r) => r.roundTrips))
    const seconds = Math.max(...results.map((r) => r.elapsedMs)) / 1000
    const lat = summariseLatencies(results.map((r) => r.samples))
    return {
      connections: conn.open,
      failed: conn.failed,
      sessionMismatches: conn.mismatched,
      errors: conn.errors,
      echoSockets: per * clients.length,
      stalled: sum(results.map((r) => r.stalled)),
      closed: sum(results.map((r) => r.closed)),
      closeReasons: [...new Set(results.flatMap((r) => r.closeReasons))],
      echoPerSec: roundTrips / seconds,
      echoP50Us: lat.p50,
      echoP99Us: lat.p99
    }
  }
}

async function runOne (scenario, target, opts) {
  runIndex++
  const variant = VARIANTS[scenario]
  const base = variant?.base ?? scenario
  if (variant !== undefined) opts = { ...opts, batch: variant.batch ?? opts.batch, warmRounds: variant.warm === true ? opts.warmRounds : 0 }
  else opts = { ...opts, warmRounds: 0 }
  const settings = { ...variant?.server?.(opts), ...(opts.diagnose ? { diagnose: true } : {}) }
  const server = spawnServer(target)
  const clients = Array.from({ length: opts.clients }, spawnClient)
  const children = [server.child, ...clients.map((c) => c.child)]
  try {
    return await withTimeout((async () => {
      const { port } = await server.call('start', { host: opts.host, server: settings })
      const url = target === 'socketio' ? `http://${opts.host}:${port}` : `ws://${opts.host}:${port}`
      const result = await SCENARIOS[base]({ server, clients, target, base: url, opts })
      // The server closes first, so TIME_WAIT lands on its side and not on the clients' source ports.
      // A clean stop also lets --cpu-prof write its profile.
      await withTimeout(server.call('stop'), 10_000, 'server stop').catch(() => {})
      await Promise.all(clients.map((c) => c.call('close')))
      return result
    })(), opts.timeout, `${scenario}/${target}`)
  } catch (err) {
    return { error: String(err?.message ?? err).split('\n')[0] }
  } finally {
    await new Promise((resolve) => setTimeout(resolve, 200))
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
  }
}

function summarise (runs, opts) {
  const summary = {}
  for (const scenario of opts.scenarios) {
    summary[scenario] = {}
    for (const target of targetsOf(scenario, opts)) {
      const reps = runs.filter((r) => r.scenario === scenario && r.target === target)
      const ok = reps.filter((r) => r.result.error === undefined)
      const medians = {}
      for (const metric of metricsOf(scenario)) {
        medians[metric.key] = median(ok.map((r) => r.result[metric.key]))
      }
      for (const key of ['lost', 'failed', 'sessionMismatches', 'stalled', 'closed']) {
        const vals = ok.map((r) => r.result[key]).filter((v) => typeof v === 'number')
        if (vals.length > 0) medians[`max_${key}`] = Math.max(...vals)
      }
      medians.errors = reps.filter((r) => r.result.error !== undefined).map((r) => r.result.error)
      medians.closeReasons = [...new Set(ok.flatMap((r) => r.result.closeReasons ?? []))]
      summary[scenario][target] = medians
    }
  }
  // Ratios to raw ws from the same run, and their spread: the ratio of each repetition to the raw ws
  // run of the same repetition (interleaved, so the two ran minutes apart at most), min and max.
  const ratios = {}
  const spreads = {}
  for (const scenario of opts.scenarios) {
    ratios[scenario] = {}
    spreads[scenario] = {}
    const floor = summary[scenario].ws
    for (const target of targetsOf(scenario, opts)) {
      ratios[scenario][target] = {}
      spreads[scenario][target] = {}
      for (const metric of metricsOf(scenario)) {
        const v = summary[scenario][target][metric.key]
        const w = floor?.[metric.key]
        ratios[scenario][target][metric.key] = (typeof v === 'number' && typeof w === 'number' && w !== 0) ? v / w : null
        const perRep = []
        for (let rep = 0; rep < opts.reps; rep++) {
          const a = runs.find((r) => r.scenario === scenario && r.target === target && r.rep === rep)?.result[metric.key]
          const b = runs.find((r) => r.scenario === scenario && r.target === 'ws' && r.rep === rep)?.result[metric.key]
          if (typeof a === 'number' && typeof b === 'number' && b !== 0) perRep.push(a / b)
        }
        spreads[scenario][target][metric.key] = perRep.length === 0 ? null : { min: Math.min(...perRep), max: Math.max(...perRep) }
      }
    }
  }
  return { summary, ratios, spreads }
}

// The glue servers load a copy of dist/ taken when the run starts (lib/plugin-build.js), so a rebuild
// during the run cannot mix two builds in one table.
let glueSnapshot = null
let glueBEntry = ''

async function main () {
  const opts = parseArgs(process.argv.slice(2))
  if (opts.targets.includes('glue') && !existsSync(join(here, '..', 'dist', 'plugin', 'index.js'))) {
    console.log('dist/plugin/index.js is missing (run npm run build); skipping the glue target')
    opts.targets = opts.targets.filter((t) => t !== 'glue')
  }
  if (opts.targets.includes('glue-b')) {
    glueBEntry = join(resolve(opts.glueB), 'dist', 'plugin', 'index.js')
    if (opts.glueB === '' || !existsSync(glueBEntry)) throw new Error('target glue-b needs --glue-b DIR, a checkout with a built dist/plugin/index.js')
  }
  mkdirSync(opts.out, { recursive: true })
  const started = new Date()
  const loadBefore = loadavg()[0]
  const pluginBefore = pluginFingerprint()
  if (opts.targets.includes('glue')) glueSnapshot = snapshotPlugin(pluginBefore.sha256)
  console.log(`bench: targets ${opts.targets.join(', ')}; scenarios ${opts.scenarios.join(', ')}; ` +
    `${opts.connections} connections, ${opts.reps} reps, ${opts.clients} client process(es)`)

  const runs = []
  for (const scenario of opts.scenarios) {
    for (let rep = 0; rep < opts.reps; rep++) {
      // Rotate the order each repetition so no target always runs first (cold caches) or last.
      const targets = targetsOf(scenario, opts)
      const order = targets.map((_, i) => targets[(i + rep) % targets.length])
      for (const target of order) {
        const t0 = Date.now()
        Object.assign(profiled, { scenario, target, rep })
        const result = await runOne(scenario, target, opts)
        runs.push({ scenario, target, rep, ms: Date.now() - t0, result })
        const brief = result.error ?? metricsOf(scenario)
          .map((m) => `${m.short}=${m.format(result[m.key])}`).join(' ')
        console.log(`  ${scenario.padEnd(9)} rep ${rep + 1} ${target.padEnd(10)} ${brief}`)
      }
    }
  }

  const { summary, ratios, spreads } = summarise(runs, opts)
  const meta = {
    started: started.toISOString(),
    seconds: (Date.now() - started.getTime()) / 1000,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    // Other work on the machine skews every figure; a high load average here means rerun on a quiet box.
    loadAverage1m: { before: loadBefore, after: loadavg()[0] },
    plugin: { before: pluginBefore, after: pluginFingerprint() },
    options: { ...opts, out: undefined }
  }
  const stamp = started.toISOString().replace(/[:.]/g, '-')
  const suffix = opts.label ? `-${opts.label}` : ''
  const json = { meta, goals: GOALS, summary, ratios, spreads, runs }
  const markdown = renderMarkdown({ meta, summary, ratios, spreads, opts })
  const files = [`bench-${stamp}${suffix}.json`, `bench-${stamp}${suffix}.md`, `latest${suffix}.json`, `latest${suffix}.md`]
  writeFileSync(join(opts.out, files[0]), JSON.stringify(json, null, 2))
  writeFileSync(join(opts.out, files[1]), markdown)
  writeFileSync(join(opts.out, files[2]), JSON.stringify(json, null, 2))
  writeFileSync(join(opts.out, files[3]), markdown)
  if (glueSnapshot !== null) rmSync(glueSnapshot.root, { recursive: true, force: true })
  console.log('\n' + markdown)
  console.log(`results: ${files.slice(0, 2).map((f) => join(opts.out, f)).join(', ')}`)
}

main().catch((err) => {
  console.error(err?.stack ?? err)
  process.exit(1)
})
