// Metric definitions, goals and the markdown rendering of a run.
import { baseOf, targetsOf, VARIANTS } from './scenarios.js'

const int = (v) => (typeof v === 'number' ? Math.round(v).toLocaleString('en-US') : 'n/a')
const fixed = (digits) => (v) => (typeof v === 'number' ? v.toFixed(digits) : 'n/a')
const kib = (v) => (typeof v === 'number' ? (v / 1024).toFixed(2) : 'n/a')
const ratio = (v) => (typeof v === 'number' ? `${v.toFixed(2)}x` : 'n/a')

/** Every figure in the table. `better` says which direction wins. */
export const METRICS = [
  { scenario: 'connect', key: 'handshakesPerSec', short: 'hs/s', label: 'handshakes/s', unit: '1/s', better: 'higher', format: int },
  { scenario: 'connect', key: 'serverCpuPerHandshakeUs', short: 'cpu/hs', label: 'server CPU per handshake', unit: 'us', better: 'lower', format: fixed(1) },
  { scenario: 'connect', key: 'serverUserPerHandshakeUs', short: 'user', label: '  of which user', unit: 'us', better: 'lower', format: fixed(1) },
  { scenario: 'connect', key: 'serverSystemPerHandshakeUs', short: 'sys', label: '  of which system', unit: 'us', better: 'lower', format: fixed(1) },
  { scenario: 'connect', key: 'serverMainThreadPerHandshakeUs', short: 'main', label: '  of which the main thread', unit: 'us', better: 'lower', format: fixed(1) },
  { scenario: 'connect', key: 'heapPerConnBytes', short: 'heap/conn', label: 'heap per connection', unit: 'KiB', better: 'lower', format: kib },
  { scenario: 'connect', key: 'rssPerConnBytes', short: 'rss/conn', label: 'RSS per connection', unit: 'KiB', better: 'lower', format: kib },
  { scenario: 'connect', key: 'heapPerSessionBytes', short: 'heap/session', label: 'heap per session', unit: 'KiB', better: 'lower', format: kib },
  { scenario: 'broadcast', key: 'deliveriesPerSec', short: 'deliv/s', label: 'broadcast deliveries/s', unit: '1/s', better: 'higher', format: int },
  { scenario: 'broadcast', key: 'serverCpuPerDeliveryUs', short: 'cpu/deliv', label: 'server CPU per delivery', unit: 'us', better: 'lower', format: fixed(2) },
  { scenario: 'broadcast', key: 'serverUserPerDeliveryUs', short: 'user', label: '  of which user', unit: 'us', better: 'lower', format: fixed(2) },
  { scenario: 'broadcast', key: 'serverSystemPerDeliveryUs', short: 'sys', label: '  of which system', unit: 'us', better: 'lower', format: fixed(2) },
  { scenario: 'broadcast', key: 'messagesPerWrite', short: 'msg/write', label: 'messages per socket write', unit: 'count', better: 'higher', format: fixed(2) },
  { scenario: 'broadcast', key: 'wireBytesPerDelivery', short: 'wire', label: 'bytes on the wire per delivery', unit: 'B', better: 'lower', format: fixed(1) },
  { scenario: 'broadcast', key: 'broadcastP50Us', short: 'p50', label: 'broadcast latency p50', unit: 'us', better: 'lower', format: int },
  { scenario: 'broadcast', key: 'broadcastP99Us', short: 'p99', label: 'broadcast latency p99', unit: 'us', better: 'lower', format: int },
  { scenario: 'broadcast', key: 'heapRetainedPerConnBytes', short: 'kept/conn', label: 'heap kept per connection after the broadcasts', unit: 'KiB', better: 'lower', format: kib, noRatio: true },
  { scenario: 'broadcast', key: 'lost', short: 'lost', label: 'lost broadcast messages', unit: 'count', better: 'lower', format: int, noRatio: true },
  { scenario: 'targeted', key: 'targetedP50Us', short: 'p50', label: 'targeted send p50', unit: 'us', better: 'lower', format: int },
  { scenario: 'targeted', key: 'targetedP99Us', short: 'p99', label: 'targeted send p99', unit: 'us', better: 'lower', format: int },
  { scenario: 'targeted', key: 'targetedMaxUs', short: 'max', label: 'targeted send max', unit: 'us', better: 'lower', format: int },
  { scenario: 'targeted', key: 'serverCpuPerSendUs', short: 'cpu/send', label: 'server CPU per send (pacing loop included)', unit: 'us', better: 'lower', format: fixed(1) },
  { scenario: 'targeted', key: 'writesPerSend', short: 'writes/send', label: 'socket writes per send', unit: 'count', better: 'lower', format: fixed(2) },
  { scenario: 'targeted', key: 'gcCount', short: 'gc', label: 'garbage collections during the sends', unit: 'count', better: 'lower', format: int, noRatio: true },
  { scenario: 'targeted', key: 'gcMs', short: 'gcMs', label: 'time in garbage collection', unit: 'ms', better: 'lower', format: fixed(1), noRatio: true },
  { scenario: 'targeted', key: 'loopDelayP99Us', short: 'eld99', label: 'event-loop delay p99 (--diagnose)', unit: 'us', better: 'lower', format: int },
  { scenario: 'targeted', key: 'loopDelayMaxUs', short: 'eldmax', label: 'event-loop delay max (--diagnose)', unit: 'us', better: 'lower', format: int },
  { scenario: 'targeted', key: 'deliveredRatio', short: 'delivered', label: 'targeted delivered/expected', unit: 'ratio', better: 'higher', format: fixed(4) },
  { scenario: 'echo', key: 'echoPerSec', short: 'rt/s', label: 'echo round trips/s', unit: '1/s', better: 'higher', format: int },
  { scenario: 'echo', key: 'echoP50Us', short: 'p50', label: 'echo p50', unit: 'us', better: 'lower', format: int },
  { scenario: 'echo', key: 'echoP99Us', short: 'p99', label: 'echo p99', unit: 'us', better: 'lower', format: int }
]

/** The metrics of a scenario: those of its base scenario. */
export function metricsOf (scenario) {
  const base = baseOf(scenario)
  const only = VARIANTS[scenario]?.metrics
  return METRICS.filter((m) => m.scenario === base && (only === undefined || only.includes(m.key)))
}

/** The plugin's goals (issues 7 and 15), as ratios to raw ws. */
export const GOALS = [
  { scenario: 'connect', key: 'heapPerConnBytes', goal: 'heap per idle connection <= 1.2x raw ws', max: 1.2 },
  { scenario: 'connect', key: 'handshakesPerSec', goal: 'handshakes/s >= 0.95x raw ws (cookie signing included), fresh process', min: 0.95 },
  { scenario: 'connect', key: 'serverCpuPerHandshakeUs', goal: 'server CPU per handshake <= 1.2x raw ws, fresh process', max: 1.2 },
  { scenario: 'connect-warm', key: 'handshakesPerSec', goal: 'handshakes/s >= 0.95x raw ws, warm server', min: 0.95 },
  { scenario: 'connect-warm', key: 'serverCpuPerHandshakeUs', goal: 'server CPU per handshake <= 1.2x raw ws, warm server', max: 1.2 },
  { scenario: 'targeted', key: 'targetedP50Us', goal: 'targeted-send p50 <= 1.2x raw ws', max: 1.2 },
  { scenario: 'targeted', key: 'targetedP99Us', goal: 'targeted-send p99 <= 1.2x raw ws', max: 1.2 },
  { scenario: 'broadcast-turn', key: 'serverCpuPerDeliveryUs', goal: 'server CPU per delivery, one broadcast per turn, <= 0.95x raw ws', max: 0.95 },
  { scenario: 'broadcast-delay', key: 'serverCpuPerDeliveryUs', goal: 'the same with writeDelay <= 0.3x raw ws', max: 0.3 },
  { scenario: 'broadcast', key: 'lost', goal: 'no broadcast message lost', zero: true }
]

const spreadText = (sp) => (sp == null ? '' : ` ${sp.min.toFixed(2)}–${sp.max.toFixed(2)}`)

export function renderMarkdown ({ meta, summary, ratios, spreads = {}, opts }) {
  const targets = opts.targets
  const lines = []
  lines.push(`# Benchmark ${meta.started}`)
  lines.push('')
  lines.push(`Node ${meta.node}, ${meta.platform}; ${opts.connections} connections ` +
    `(${Math.round(opts.twoTabRatio * 100)}% of sessions with two tabs), median of ${opts.reps} repetitions, ` +
    `${opts.clients} client process(es). Ratios are to raw \`ws\` from the same run (median, then the min–max of ` +
    'the per-repetition ratios); the last column says which direction is better. ' +
    `Load average (1 min) ${meta.loadAverage1m.before.toFixed(2)} before, ${meta.loadAverage1m.after.toFixed(2)} after.`)
  const plugin = meta.plugin
  if (plugin?.before != null) {
    const changed = plugin.after?.sha256 !== plugin.before.sha256
    lines.push('')
    lines.push(`Plugin build ${plugin.before.sha256} (dist/plugin, built ${plugin.before.built}), ` +
      'copied at the start of the run and used for every glue server' +
      (changed ? `; dist/ has been rebuilt since (now ${plugin.after?.sha256 ?? 'missing'}).` : '.'))
  }
  lines.push('')
  lines.push(`| scenario | metric | unit | ${targets.join(' | ')} | better |`)
  lines.push(`| --- | --- | --- | ${targets.map(() => '---:').join(' | ')} | --- |`)
  for (const scenario of opts.scenarios) {
    const runsHere = targetsOf(scenario, opts)
    for (const m of metricsOf(scenario)) {
      const cells = targets.map((t) => {
        if (!runsHere.includes(t)) return '–'
        const v = summary[scenario]?.[t]?.[m.key]
        const r = ratios[scenario]?.[t]?.[m.key]
        if (typeof v !== 'number') return 'n/a'
        // Counts and near-zero differences make meaningless ratios.
        return t === 'ws' || m.noRatio ? m.format(v) : `${m.format(v)} (${ratio(r)}${spreadText(spreads[scenario]?.[t]?.[m.key])})`
      })
      lines.push(`| ${scenario} | ${m.label.trim()} | ${m.unit} | ${cells.join(' | ')} | ${m.better} |`)
    }
  }
  lines.push('')

  if (targets.includes('glue') && targets.includes('ws')) {
    lines.push('## Goals (glue against raw ws)')
    lines.push('')
    lines.push('| goal | glue | raw ws | ratio (min–max) | met |')
    lines.push('| --- | ---: | ---: | ---: | --- |')
    for (const g of GOALS) {
      if (!opts.scenarios.includes(g.scenario)) continue
      const m = METRICS.find((x) => x.key === g.key)
      const v = summary[g.scenario].glue?.[g.key]
      const w = summary[g.scenario].ws?.[g.key]
      const r = ratios[g.scenario].glue?.[g.key]
      const sp = spreads[g.scenario]?.glue?.[g.key]
      let met = 'n/a'
      if (g.zero) met = typeof summary[g.scenario].glue?.max_lost === 'number' ? (summary[g.scenario].glue.max_lost === 0 ? 'yes' : 'no') : 'n/a'
      else if (typeof r === 'number') met = (g.max !== undefined ? r <= g.max : r >= g.min) ? 'yes' : 'no'
      lines.push(`| ${g.goal} | ${m.format(v)} ${m.unit} | ${m.format(w)} ${m.unit} | ${g.zero ? '' : ratio(r) + spreadText(sp)} | ${met} |`)
    }
    lines.push('')
  }

  const problems = []
  for (const scenario of opts.scenarios) {
    for (const t of targetsOf(scenario, opts)) {
      const s = summary[scenario][t]
      if (s.errors.length > 0) problems.push(`- ${scenario}/${t}: ${s.errors.length} failed run(s): ${[...new Set(s.errors)].join('; ')}`)
      for (const key of ['failed', 'sessionMismatches', 'lost', 'stalled', 'closed']) {
        if (s[`max_${key}`] > 0) problems.push(`- ${scenario}/${t}: ${key} up to ${s[`max_${key}`]} in one repetition`)
      }
      if (s.max_closed > 0 && s.closeReasons.length > 0) problems.push(`- ${scenario}/${t}: close codes seen: ${s.closeReasons.join('; ')}`)
    }
  }
  if (problems.length > 0) {
    lines.push('## Problems')
    lines.push('')
    lines.push(...problems)
    lines.push('')
  }
  lines.push(`Run took ${meta.seconds.toFixed(0)} s. Command flags: \`${JSON.stringify(meta.options)}\``)
  lines.push('')
  return lines.join('\n')
}
