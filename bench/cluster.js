// Cluster benchmark: the plugin on one node with the memory adapter, one node with the Redis adapter,
// and several nodes joined through Redis, side by side in one run.
// Usage: npm run bench:cluster -- [flags]   (see bench/README.md, or --help)
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { forkChild, parseFlags, sleep, startRedis } from './lib/processes.js'
import { withTimeout } from './lib/rpc.js'
import { median, summariseLatencies } from './lib/stats.js'
import { pluginFingerprint, snapshotPlugin } from './lib/plugin-build.js'

const here = dirname(fileURLToPath(import.meta.url))
const OUT = join(here, 'results')

const DEFAULTS = {
  connections: 1500,
  broadcasts: 200,
  rate: 1000,
  duration: 3000,
  sessions: 500,
  nodes: 3,
  shards: 3,
  burst: 20000,
  clients: 2,
  reps: 1,
  size: 64
}

const HELP = `Usage: node bench/cluster.js [flags]
  --connections N   sockets (one session each), dealt round robin over the nodes (default ${DEFAULTS.connections})
  --broadcasts N    broadcasts issued from node 0 in the broadcast phase (default ${DEFAULTS.broadcasts})
  --rate N          targeted sends per second from node 0 in the latency phase (default ${DEFAULTS.rate})
  --duration MS     length of the latency phase (default ${DEFAULTS.duration})
  --sessions N      sessions the targeted sends go to, round robin; in the multi-node configurations
                    only sessions on node 1, so the others hold none of them (default ${DEFAULTS.sessions})
  --nodes N         nodes of the multi-node configurations, at least 2 (default ${DEFAULTS.nodes})
  --shards N        Redis servers of the sharded configuration (default ${DEFAULTS.shards})
  --burst N         targeted sends of the burst phase, sent as fast as the plugin takes them (default ${DEFAULTS.burst})
  --clients N       websocket client processes (default ${DEFAULTS.clients})
  --reps N          repetitions; the table shows the median (default ${DEFAULTS.reps})
  --size N          bytes per message, header included (default ${DEFAULTS.size})
  --help            this text
Or: node bench/cluster.js --render bench/results/cluster-<time>.json   (the table of a saved run)`

function parseArgs (argv) {
  const opts = parseFlags(argv, DEFAULTS, HELP)
  if (opts.nodes < 2) throw new Error('--nodes must be at least 2 (redis-1 already covers one node)')
  if (opts.size < 24) throw new Error('--size must be at least 24 (the timestamp header must fit)')
  return opts
}

const sum = (xs) => xs.reduce((a, b) => a + b, 0)
const big = (s) => BigInt(s)

function isAlive (pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return err.code === 'EPERM'
  }
}

// Redis CPU time in microseconds, from INFO (finer than /proc's 10 ms ticks).
async function redisCpu (admin) {
  const info = await admin.info('cpu')
  const read = (name) => Number(info.match(new RegExp(`^${name}:([\\d.]+)`, 'm'))?.[1] ?? 0)
  return Math.round((read('used_cpu_user') + read('used_cpu_sys')) * 1e6)
}

// Polls until `done(counts)` holds, nothing changed for `quietMs`, or `limitMs` passed.
async function waitForClients (clients, done, quietMs, limitMs) {
  const deadline = Date.now() + limitMs
  let last = ''
  let lastChange = Date.now()
  for (;;) {
    const counts = await Promise.all(clients.map((c) => c.call('counts')))
    if (done(counts)) return counts
    const key = counts.map((x) => `${x.received},${x.targeted},${x.warm}`).join(';')
    if (key !== last) { last = key; lastChange = Date.now() }
    if (Date.now() - lastChange > quietMs || Date.now() > deadline) return counts
    await sleep(20)
  }
}

// Every process stamps with process.hrtime (CLOCK_MONOTONIC, one clock for the whole machine). Checks
// that a child's reading falls between two readings of ours around an IPC call; the narrowest of three
// windows per process says how tightly that was shown.
async function clockCheck (processes) {
  let ok = true
  let widestUs = 0
  for (const p of processes) {
    let narrowest = Infinity
    for (let i = 0; i < 3; i++) {
      const before = process.hrtime.bigint()
      const theirs = big(await p.call('clock'))
      const after = process.hrtime.bigint()
      if (theirs < before || theirs > after) ok = false
      narrowest = Math.min(narrowest, Number(after - before) / 1000)
    }
    widestUs = Math.max(widestUs, narrowest)
  }
  return { ok, widestUs }
}

// Busy CPU time of the whole machine (µs) from /proc/stat, or null off Linux. Compared with the CPU of
// this run's own processes, it shows whether something else was using the cores during a phase.
function machineBusyUs () {
  try {
    const [, user, nice, system, , , irq, softirq] = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0].split(/\s+/).map(Number)
    return (user + nice + system + irq + softirq) * 10_000 // USER_HZ is 100
  } catch {
    return null
  }
}

// CPU used so far by every process of the run: nodes, clients, Redis, this one, and the machine.
async function cpuOf ({ nodes, clients, redis }) {
  const [perNode, perClient, perShard] = await Promise.all([
    Promise.all(nodes.map((n) => n.call('cpu'))),
    Promise.all(clients.map((c) => c.call('cpu'))),
    Promise.all(redis.map((r) => redisCpu(r.admin)))
  ])
  const self = process.cpuUsage()
  return {
    perNode: perNode.map((c) => c.user + c.system),
    clientsUs: sum(perClient),
    perShard,
    redisUs: sum(perShard),
    selfUs: self.user + self.system,
    machineUs: machineBusyUs(),
    ns: process.hrtime.bigint()
  }
}
function cpuDelta (a, b) {
  const perNodeUs = b.perNode.map((us, i) => us - a.perNode[i])
  const perShardUs = b.perShard.map((us, i) => us - a.perShard[i])
  const d = (key) => b[key] - a[key]
  const ownUs = sum(perNodeUs) + d('clientsUs') + d('redisUs') + d('selfUs')
  const wallUs = Number(b.ns - a.ns) / 1000
  return {
    perNodeUs,
    perShardUs,
    nodesUs: sum(perNodeUs),
    clientsUs: d('clientsUs'),
    redisUs: d('redisUs'),
    // The share of the machine's CPU capacity that went to other processes during the phase.
    otherShare: a.machineUs === null ? null : (d('machineUs') - ownUs) / (wallUs * availableParallelism())
  }
}

// Sessions the targeted sends go to: with several nodes only those on node 1, so the sender (node 0)
// and every other node hold none of them and show what a send costs a node that is not concerned.
function pickTargets (sessions, nodeCount, count) {
  const home = nodeCount === 1 ? 0 : 1
  return sessions.filter((s) => s.node === home).slice(0, count).map((s) => s.sessionId)
}

async function runConfig (config, opts, env, redisServers, rep) {
  const nodes = Array.from({ length: config.nodes }, () => forkChild(join(here, 'cluster-node.js'), env))
  const clients = Array.from({ length: opts.clients }, () => forkChild(join(here, 'cluster-client.js'), {}))
  const prefix = `bench-${config.name}-r${rep}-${Date.now().toString(36)}`
  // Every Redis server runs for every configuration; only those a configuration uses are charged to it.
  const redis = redisServers.slice(0, Math.max(1, config.shards))
  const all = { nodes, clients, redis }
  const redisOption = config.shards === 0
    ? undefined
    : config.shards === 1 ? { url: redis[0].url, prefix } : { shards: redis.map((r) => r.url), prefix }
  try {
    return await withTimeout((async () => {
      const started = await Promise.all(nodes.map((n) => n.call('start', { redis: redisOption })))
      const bases = started.map((s) => `ws://127.0.0.1:${s.port}`)
      const clock = await clockCheck([...nodes, ...clients])

      // Socket i goes to node i mod nodes, and to client process i mod clients.
      const plans = clients.map(() => [])
      for (let i = 0; i < opts.connections; i++) plans[i % clients.length].push(i % config.nodes)
      const connected = await Promise.all(clients.map((c, k) => c.call('connect', { bases, nodes: plans[k], concurrency: 50, timeoutMs: 15_000 })))
      const sessions = connected.flatMap((r) => r.sessions)
      const failed = sum(connected.map((r) => r.failed))
      const open = sessions.length
      if (open === 0) throw new Error(`no connection opened: ${connected.flatMap((r) => r.errors).slice(0, 2).join('; ')}`)
      // Presence reaches Redis asynchronously: measure only once every node's sockets are counted.
      const registeredBy = Date.now() + 15_000
      let registered = await nodes[0].call('counts')
      while (registered.sockets < open && Date.now() < registeredBy) {
        await sleep(50)
        registered = await nodes[0].call('counts')
      }
      if (registered.sockets < open || registered.nodes !== config.nodes) {
        throw new Error(`cluster counts ${JSON.stringify(registered)}, expected ${config.nodes} nodes and ${open} sockets`)
      }
      const targets = pickTargets(sessions, config.nodes, opts.sessions)

      // Warm-up: the same code paths once over, so the JIT is not measured in the first phase.
      await Promise.all(clients.map((c) => c.call('reset', {})))
      const warmBroadcasts = 20
      await nodes[0].call('broadcast', { count: warmBroadcasts, batch: 10, size: opts.size, kind: 'w' })
      await nodes[0].call('send', { sessionIds: targets, rate: 5000, count: targets.length, size: opts.size, kind: 'w' })
      const warmExpected = warmBroadcasts * open + targets.length
      await waitForClients(clients, (cs) => sum(cs.map((x) => x.warm)) >= warmExpected, 3000, 15_000)

      // The 1 ms pacing loop of the latency phase, run dry (no sends): its own CPU is part of every
      // configuration's CPU per send, and on a VM a timer wake-up is not cheap.
      const dryCount = Math.max(1, Math.floor((opts.rate * Math.min(1000, opts.duration)) / 1000))
      const dryCpu0 = await nodes[0].call('cpu')
      const dry = await nodes[0].call('send', { sessionIds: targets, rate: opts.rate, count: dryCount, size: opts.size, dry: true })
      const dryCpu1 = await nodes[0].call('cpu')
      const pacingCpuPerSendUs = (dryCpu1.user + dryCpu1.system - dryCpu0.user - dryCpu0.system) / dry.sent

      // Latency phase: sends from node 0 at a fixed rate to sessions on the other nodes.
      await Promise.all(clients.map((c) => c.call('reset', {})))
      const sendCpu0 = await cpuOf(all)
      const sent = await nodes[0].call('send', {
        sessionIds: targets, rate: opts.rate, count: Math.floor((opts.rate * opts.duration) / 1000), size: opts.size
      })
      const sendCounts = await waitForClients(clients, (cs) => sum(cs.map((x) => x.targeted)) >= sent.sent, 2000, 15_000)
      const sendCpu = cpuDelta(sendCpu0, await cpuOf(all))
      const byNode = {}
      for (const l of await Promise.all(clients.map((c) => c.call('latencies')))) {
        for (const [node, samples] of Object.entries(l)) (byNode[node] ??= []).push(samples)
      }
      const latency = summariseLatencies(Object.values(byNode).flat())
      const latencyByNode = Object.fromEntries(Object.entries(byNode).map(([node, arrays]) => [node, summariseLatencies(arrays)]))
      const delivered = sum(sendCounts.map((x) => x.targeted))

      // Burst phase: targeted sends as fast as the plugin takes them; Redis CPU per send here says
      // how many one Redis can carry.
      await Promise.all(clients.map((c) => c.call('reset', {})))
      const burstCpu0 = await cpuOf(all)
      const burst = await nodes[0].call('burst', { sessionIds: targets, count: opts.burst, batch: 500, size: opts.size })
      const burstCounts = await waitForClients(clients, (cs) => sum(cs.map((x) => x.targeted)) >= burst.sent, 2000, 30_000)
      const burstCpu = cpuDelta(burstCpu0, await cpuOf(all))
      const burstLastNs = burstCounts.reduce((m, x) => (big(x.lastTargetedNs) > m ? big(x.lastTargetedNs) : m), 0n)
      const burstDelivered = sum(burstCounts.map((x) => x.targeted))

      // Broadcast phase: every socket must receive every broadcast, counted per socket.
      await Promise.all(clients.map((c) => c.call('reset', { broadcasts: opts.broadcasts })))
      const castCpu0 = await cpuOf(all)
      const cast = await nodes[0].call('broadcast', { count: opts.broadcasts, batch: 10, size: opts.size })
      const counts = await waitForClients(clients, (cs) => sum(cs.map((x) => x.complete)) >= open, 3000, 30_000)
      const castCpu = cpuDelta(castCpu0, await cpuOf(all))
      const received = sum(counts.map((x) => x.received))
      const lastNs = counts.reduce((m, x) => (big(x.lastBroadcastNs) > m ? big(x.lastBroadcastNs) : m), 0n)
      const seconds = Number(lastNs - big(cast.startNs)) / 1e9
      const stats = await Promise.all(nodes.map((n) => n.call('stats')))

      // The nodes close first, so TIME_WAIT lands on their side.
      await Promise.all(nodes.map((n) => withTimeout(n.call('stop'), 10_000, 'node stop').catch(() => {})))
      await Promise.all(clients.map((c) => c.call('close')))
      return {
        connections: open,
        failed,
        connectErrors: connected.flatMap((r) => r.errors).slice(0, 5),
        clock,
        targetSessions: targets.length,
        sends: sent.sent,
        sendRate: sent.sent / (sent.elapsedMs / 1000),
        sendsDelivered: delivered,
        sendDeliveredRatio: sent.sent === 0 ? null : delivered / sent.sent,
        sendP50Ms: latency.p50 / 1000,
        sendP99Ms: latency.p99 / 1000,
        sendMaxMs: latency.max / 1000,
        latencyByNodeUs: latencyByNode,
        sendNodeCpuPerSendUs: sendCpu.nodesUs / sent.sent,
        sendPerNodeCpuPerSendUs: sendCpu.perNodeUs.map((us) => us / sent.sent),
        pacingCpuPerSendUs,
        // Redis runs for every configuration; its CPU is charged only to those that use it.
        sendRedisCpuPerSendUs: config.shards > 0 ? sendCpu.redisUs / sent.sent : null,
        sendCpuUs: sendCpu,
        burstSends: burst.sent,
        burstDelivered,
        // From the first send to the last delivery.
        burstSendsPerSec: burstDelivered / (Number(burstLastNs - big(burst.startNs)) / 1e9),
        burstRedisCpuPerSendUs: config.shards > 0 ? burstCpu.redisUs / burst.sent : null,
        burstPerShardRedisShare: config.shards > 1 ? burstCpu.perShardUs.map((us) => us / Math.max(1, burstCpu.redisUs)) : null,
        burstPerNodeCpuPerSendUs: burstCpu.perNodeUs.map((us) => us / burst.sent),
        // One Redis at 100% of a core: what its CPU per send allows.
        redisCeilingPerSec: config.shards > 0 ? 1e6 / (burstCpu.redisUs / burst.sent / Math.max(1, config.shards)) : null,
        broadcasts: cast.sent,
        expected: cast.sent * open,
        received,
        lost: sum(counts.map((x) => x.lost)),
        extra: sum(counts.map((x) => x.extra)),
        outOfOrder: sum(counts.map((x) => x.outOfOrder)),
        broadcastSeconds: seconds,
        deliveriesPerSec: received / seconds,
        nodeCpuPerDeliveryUs: castCpu.nodesUs / received,
        perNodeCpuPerDeliveryUs: castCpu.perNodeUs.map((us) => us / received),
        redisCpuPerDeliveryUs: config.shards > 0 ? castCpu.redisUs / received : null,
        totalCpuPerDeliveryUs: (castCpu.nodesUs + (config.shards > 0 ? castCpu.redisUs : 0)) / received,
        // The clients share the two cores too; this shows how much of the wall time they took.
        clientCpuPerDeliveryUs: castCpu.clientsUs / received,
        broadcastCpuUs: castCpu,
        otherCpuShare: Math.max(sendCpu.otherShare ?? 0, castCpu.otherShare ?? 0),
        closes: sum(counts.map((x) => x.closes)),
        closeReasons: [...new Set(counts.flatMap((x) => x.closeReasons))],
        slowConsumerCloses: sum(stats.map((s) => s.slowConsumerCloses))
      }
    })(), 100_000, config.name)
  } catch (err) {
    return { error: String(err?.message ?? err).split('\n')[0] }
  } finally {
    await sleep(200)
    for (const p of [...nodes, ...clients]) {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL')
    }
  }
}

// Rows of the table: key, label, format, and whether a ratio to `single` makes sense.
const ms = (v) => (typeof v === 'number' ? v.toFixed(2) : 'n/a')
const us = (v) => (typeof v === 'number' ? v.toFixed(2) : 'n/a')
const list = (v) => (Array.isArray(v) ? v.map(us).join(' / ') : 'n/a')
const int = (v) => (typeof v === 'number' ? Math.round(v).toLocaleString('en-US') : 'n/a')
const ROWS = [
  { key: 'sendP50Ms', label: 'cross-node send p50 (ms)', format: ms, ratio: true },
  { key: 'sendP99Ms', label: 'cross-node send p99 (ms)', format: ms, ratio: true },
  { key: 'sendMaxMs', label: 'cross-node send max (ms)', format: ms, ratio: true },
  { key: 'sendDeliveredRatio', label: 'sends delivered / sent', format: (v) => (typeof v === 'number' ? v.toFixed(4) : 'n/a') },
  { key: 'sendNodeCpuPerSendUs', label: 'node CPU per send, all nodes (µs)', format: us, ratio: true },
  { key: 'sendPerNodeCpuPerSendUs', label: '  of which node 0 / 1 / … (µs)', format: list },
  { key: 'pacingCpuPerSendUs', label: '  node 0 pacing loop alone, run apart (µs)', format: us },
  { key: 'sendRedisCpuPerSendUs', label: 'Redis CPU per send (µs)', format: us },
  { key: 'burstSendsPerSec', label: 'burst: targeted sends delivered/s', format: int, ratio: true },
  { key: 'burstRedisCpuPerSendUs', label: 'burst: Redis CPU per send, all shards (µs)', format: us },
  { key: 'burstPerShardRedisShare', label: '  share of shard 0 / 1 / …', format: list },
  { key: 'burstPerNodeCpuPerSendUs', label: 'burst: node CPU per send, node 0 / 1 / … (µs)', format: list },
  { key: 'redisCeilingPerSec', label: 'sends/s one Redis core carries at this cost', format: int },
  { key: 'deliveriesPerSec', label: 'broadcast deliveries/s', format: int, ratio: true },
  { key: 'lost', label: 'lost (expected − received)', format: int },
  { key: 'nodeCpuPerDeliveryUs', label: 'node CPU per delivery, all nodes (µs)', format: us, ratio: true },
  { key: 'perNodeCpuPerDeliveryUs', label: '  of which node 0 / 1 / … (µs)', format: list },
  { key: 'redisCpuPerDeliveryUs', label: 'Redis CPU per delivery (µs)', format: us },
  { key: 'totalCpuPerDeliveryUs', label: 'nodes + Redis CPU per delivery (µs)', format: us, ratio: true },
  { key: 'clientCpuPerDeliveryUs', label: 'client CPU per delivery (µs)', format: us },
  { key: 'otherCpuShare', label: 'CPU taken by other processes, worst phase', format: (v) => (typeof v === 'number' ? `${Math.max(0, v * 100).toFixed(0)}%` : 'n/a') }
]

function summarise (runs, configs) {
  const summary = {}
  for (const config of configs) {
    const ok = runs.filter((r) => r.config === config.name && r.result.error === undefined).map((r) => r.result)
    const row = {}
    for (const { key } of ROWS) {
      if (key.startsWith('sendPerNode') || key.startsWith('perNode') || key.startsWith('burstPerNode')) {
        row[key] = ok.length === 0 ? null : Array.from({ length: config.nodes }, (_, i) => median(ok.map((r) => r[key][i])))
      } else if (key === 'burstPerShardRedisShare') {
        row[key] = ok.length === 0 || ok[0][key] === null ? null : ok[0][key].map((_, i) => median(ok.map((r) => r[key][i])))
      } else {
        const values = ok.map((r) => r[key]).filter((v) => typeof v === 'number')
        row[key] = median(ok.map((r) => r[key]))
        // The spread over the repetitions, shown next to the median.
        if (values.length > 1) row.spread = { ...row.spread, [key]: [Math.min(...values), Math.max(...values)] }
      }
    }
    // Problems count the worst repetition, not the median.
    for (const key of ['lost', 'extra', 'outOfOrder', 'failed', 'closes', 'slowConsumerCloses', 'otherCpuShare']) {
      row[key] = ok.length === 0 ? null : Math.max(...ok.map((r) => r[key]))
    }
    row.errors = runs.filter((r) => r.config === config.name && r.result.error !== undefined).map((r) => r.result.error)
    row.reps = ok.length
    summary[config.name] = row
  }
  const ratios = {}
  for (const config of configs.slice(1)) {
    ratios[config.name] = {}
    for (const { key, ratio } of ROWS) {
      const v = summary[config.name][key]
      const base = summary.single[key]
      if (ratio) ratios[config.name][key] = typeof v === 'number' && typeof base === 'number' && base !== 0 ? v / base : null
    }
  }
  return { summary, ratios }
}

function renderMarkdown ({ meta, summary, ratios, configs, runs }) {
  const names = configs.map((c) => c.name)
  const others = names.slice(1)
  const o = meta.options
  const lines = [
    `# Cluster benchmark, ${meta.started}`,
    '',
    `${o.connections} sockets (one session each, round robin over the nodes, ${o.clients} client processes); ` +
      `latency: ${o.rate} sends/s for ${o.duration} ms from node 0 to ${o.sessions} sessions on the other nodes; ` +
      `broadcast: ${o.broadcasts} broadcasts of ${o.size} bytes from node 0. ` +
      `Median of ${o.reps} interleaved repetition(s)${o.reps > 1 ? ', with the lowest–highest in brackets' : ''}. Node ${meta.node}, Redis ${meta.redis}, ${meta.cpus} CPUs, ` +
      `load average ${meta.loadAverage1m.before.toFixed(2)} before, ${meta.loadAverage1m.after.toFixed(2)} after. ` +
      `Plugin build ${meta.plugin.before?.sha256} (${meta.plugin.before?.built}).`,
    '',
    `| metric | ${names.join(' | ')} | ${others.map((n) => `${n} / single`).join(' | ')} |`,
    `| --- | ${names.map(() => '---:').join(' | ')} | ${others.map(() => '---:').join(' | ')} |`
  ]
  for (const row of ROWS) {
    const values = names.map((n) => {
      const spread = summary[n].spread?.[row.key]
      const median = row.format(summary[n][row.key])
      return spread === undefined ? median : `${median} (${row.format(spread[0])}–${row.format(spread[1])})`
    })
    const rs = others.map((n) => (row.ratio && typeof ratios[n][row.key] === 'number' ? `${ratios[n][row.key].toFixed(2)}x` : ''))
    lines.push(`| ${row.label} | ${values.join(' | ')} | ${rs.join(' | ')} |`)
  }
  lines.push('', 'For latency and CPU, below 1x is better; for deliveries/s, above 1x is better. ' +
    `In single and redis-1 the sender and the sockets share node 0; in redis-${o.nodes} and redis-${o.nodes}x${o.shards} every targeted socket is on node 1, ` +
    'so node 0 only sends and the other nodes hold none of them. ' +
    'CPU covers the measured phase until the last client has the last message.')
  const checks = runs.filter((r) => r.result.clock !== undefined).map((r) => r.result.clock)
  const widest = Math.max(0, ...checks.map((c) => c.widestUs))
  lines.push('', checks.length === 0
    ? 'Clock check: not run.'
    : `Clock check: ${checks.every((c) => c.ok) ? 'every' : 'NOT every'} process's process.hrtime reading fell inside the orchestrator's readings around an IPC call (narrowest of three windows per process, at most ${widest.toFixed(0)} µs).`)
  const problems = []
  for (const n of names) {
    const s = summary[n]
    for (const e of s.errors) problems.push(`${n}: ${e}`)
    for (const key of ['lost', 'extra', 'outOfOrder', 'failed', 'closes', 'slowConsumerCloses']) {
      if (s[key] > 0) problems.push(`${n}: ${key} ${s[key]}`)
    }
    if (s.otherCpuShare > 0.1) problems.push(`${n}: other processes took ${(s.otherCpuShare * 100).toFixed(0)}% of the machine's CPU during a measured phase; rerun on a quiet machine`)
    if (typeof s.sendDeliveredRatio === 'number' && s.sendDeliveredRatio < 1) problems.push(`${n}: only ${(s.sendDeliveredRatio * 100).toFixed(2)}% of sends delivered`)
  }
  lines.push('', '## Problems', '', problems.length === 0 ? 'None.' : problems.map((p) => `- ${p}`).join('\n'), '')
  return lines.join('\n')
}

async function main () {
  // `--render <file>.json`: the table of a saved run again (after a change to how it is drawn).
  if (process.argv[2] === '--render') {
    const saved = JSON.parse(readFileSync(process.argv[3], 'utf8'))
    const configs = Object.keys(saved.summary).map((name) => ({ name, nodes: saved.runs.find((r) => r.config === name)?.result.sendPerNodeCpuPerSendUs?.length ?? 1 }))
    const { summary, ratios } = summarise(saved.runs, configs)
    console.log(renderMarkdown({ meta: saved.meta, summary, ratios, configs, runs: saved.runs }))
    return
  }
  const opts = parseArgs(process.argv.slice(2))
  const pluginBefore = pluginFingerprint()
  if (pluginBefore === null) throw new Error('dist/plugin/index.js is missing: run npm run build first')
  // Node processes load a private copy of the build (see lib/plugin-build.js). Copies left by a run
  // that was killed outright (its pid is gone) are removed first.
  const copies = join(OUT, '.plugin')
  for (const name of existsSync(copies) ? readdirSync(copies) : []) {
    const pid = Number(name.match(/-cluster-(\d+)$/)?.[1])
    if (pid > 0 && !isAlive(pid)) rmSync(join(copies, name), { recursive: true, force: true })
  }
  const snapshot = snapshotPlugin(`${pluginBefore.sha256}-cluster-${process.pid}`)
  process.on('exit', () => rmSync(snapshot.root, { recursive: true, force: true }))
  const env = { BENCH_GLUE_ENTRY: snapshot.entry }
  const configs = [
    { name: 'single', nodes: 1, shards: 0 },
    { name: 'redis-1', nodes: 1, shards: 1 },
    { name: `redis-${opts.nodes}`, nodes: opts.nodes, shards: 1 },
    { name: `redis-${opts.nodes}x${opts.shards}`, nodes: opts.nodes, shards: opts.shards }
  ]
  // A hard limit for the whole run, on top of the one per configuration.
  setTimeout(() => { console.error('cluster bench: overall time limit reached'); process.exit(1) }, opts.reps * configs.length * 110_000 + 30_000).unref()

  const started = new Date()
  const loadBefore = loadavg()[0]
  const redis = []
  for (let i = 0; i < Math.max(1, opts.shards); i++) redis.push(await startRedis())
  const runs = []
  try {
    for (let rep = 0; rep < opts.reps; rep++) {
      // Rotate the order each repetition, so no configuration always runs first.
      for (let i = 0; i < configs.length; i++) {
        const config = configs[(i + rep) % configs.length]
        const t0 = Date.now()
        const result = await runConfig(config, opts, env, redis, rep)
        runs.push({ config: config.name, rep, ms: Date.now() - t0, result })
      }
    }
  } finally {
    await Promise.all(redis.map((r) => r.stop()))
  }

  const { summary, ratios } = summarise(runs, configs)
  const meta = {
    started: started.toISOString(),
    seconds: (Date.now() - started.getTime()) / 1000,
    node: process.version,
    redis: redis[0].version,
    cpus: availableParallelism(),
    loadAverage1m: { before: loadBefore, after: loadavg()[0] },
    plugin: { before: pluginBefore, after: pluginFingerprint() },
    options: opts
  }
  const markdown = renderMarkdown({ meta, summary, ratios, configs, runs })
  const stamp = started.toISOString().replace(/[:.]/g, '-')
  mkdirSync(OUT, { recursive: true })
  const files = [join(OUT, `cluster-${stamp}.json`), join(OUT, `cluster-${stamp}.md`)]
  writeFileSync(files[0], JSON.stringify({ meta, summary, ratios, runs }, null, 2))
  writeFileSync(files[1], markdown)
  console.log(markdown)
  console.log(`results: ${files.join(', ')}`)
  const failed = configs.some((c) => summary[c.name].reps === 0 || summary[c.name].lost > 0)
  process.exit(failed ? 1 : 0)
}

main().catch((err) => {
  console.error(err?.stack ?? err)
  process.exit(1)
})
