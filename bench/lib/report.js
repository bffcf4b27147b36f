// Metric definitions, issue-7 goals and the markdown rendering of a run.

const int = (v) => (typeof v === 'number' ? Math.round(v).toLocaleString('en-US') : 'n/a')
const fixed = (digits) => (v) => (typeof v === 'number' ? v.toFixed(digits) : 'n/a')
const kib = (v) => (typeof v === 'number' ? (v / 1024).toFixed(2) : 'n/a')
const ratio = (v) => (typeof v === 'number' ? `${v.toFixed(2)}x` : 'n/a')

/** Every figure in the table. `better` says which direction wins. */
export const METRICS = [
  { scenario: 'connect', key: 'handshakesPerSec', short: 'hs/s', label: 'handshakes/s', unit: '1/s', better: 'higher', format: int },
  { scenario: 'connect', key: 'serverCpuPerHandshakeUs', short: 'cpu/hs', label: 'server CPU per handshake', unit: 'us', better: 'lower', format: fixed(1) },
  { scenario: 'connect', key: 'heapPerConnBytes', short: 'heap/conn', label: 'heap per connection', unit: 'KiB', better: 'lower', format: kib },
  { scenario: 'connect', key: 'rssPerConnBytes', short: 'rss/conn', label: 'RSS per connection', unit: 'KiB', better: 'lower', format: kib },
  { scenario: 'connect', key: 'heapPerSessionBytes', short: 'heap/session', label: 'heap per session', unit: 'KiB', better: 'lower', format: kib },
  { scenario: 'broadcast', key: 'deliveriesPerSec', short: 'deliv/s', label: 'broadcast deliveries/s', unit: '1/s', better: 'higher', format: int },
  { scenario: 'broadcast', key: 'serverCpuPerDeliveryUs', short: 'cpu/deliv', label: 'server CPU per delivery', unit: 'us', better: 'lower', format: fixed(2) },
  { scenario: 'broadcast', key: 'serverUserPerDeliveryUs', short: 'user', label: '  of which user', unit: 'us', better: 'lower', format: fixed(2) },
  { scenario: 'broadcast', key: 'serverSystemPerDeliveryUs', short: 'sys', label: '  of which system', unit: 'us', better: 'lower', format: fixed(2) },
  { scenario: 'broadcast', key: 'heapRetainedPerConnBytes', short: 'kept/conn', label: 'heap kept per connection after the broadcasts', unit: 'KiB', better: 'lower', format: kib, noRatio: true },
  { scenario: 'broadcast', key: 'lost', short: 'lost', label: 'lost broadcast messages', unit: 'count', better: 'lower', format: int, noRatio: true },
  { scenario: 'targeted', key: 'targetedP50Us', short: 'p50', label: 'targeted send p50', unit: 'us', better: 'lower', format: int },
  { scenario: 'targeted', key: 'targetedP99Us', short: 'p99', label: 'targeted send p99', unit: 'us', better: 'lower', format: int },
  { scenario: 'targeted', key: 'targetedMaxUs', short: 'max', label: 'targeted send max', unit: 'us', better: 'lower', format: int },
  { scenario: 'targeted', key: 'deliveredRatio', short: 'delivered', label: 'targeted delivered/expected', unit: 'ratio', better: 'higher', format: fixed(4) },
  { scenario: 'echo', key: 'echoPerSec', short: 'rt/s', label: 'echo round trips/s', unit: '1/s', better: 'higher', format: int },
  { scenario: 'echo', key: 'echoP50Us', short: 'p50', label: 'echo p50', unit: 'us', better: 'lower', format: int },
  { scenario: 'echo', key: 'echoP99Us', short: 'p99', label: 'echo p99', unit: 'us', better: 'lower', format: int }
]

/** The issue-7 targets for the plugin, as ratios to raw ws. */
export const GOALS = [
  { scenario: 'connect', key: 'heapPerConnBytes', goal: 'heap per idle connection <= 1.2x raw ws', max: 1.2 },
  { scenario: 'broadcast', key: 'serverCpuPerDeliveryUs', goal: 'server CPU per broadcast delivery <= 0.8x raw ws', max: 0.8 },
  { scenario: 'connect', key: 'handshakesPerSec', goal: 'handshakes/s >= 0.9x raw ws (cookie signing included)', min: 0.9 },
  { scenario: 'targeted', key: 'targetedP99Us', goal: 'targeted-send p99 <= 1.2x raw ws', max: 1.2 },
  { scenario: 'broadcast', key: 'lost', goal: 'no broadcast message lost', zero: true }
]

export function renderMarkdown ({ meta, summary, ratios, opts }) {
  const targets = opts.targets
  const lines = []
  lines.push(`# Benchmark ${meta.started}`)
  lines.push('')
  lines.push(`Node ${meta.node}, ${meta.platform}; ${opts.connections} connections ` +
    `(${Math.round(opts.twoTabRatio * 100)}% of sessions with two tabs), median of ${opts.reps} repetitions, ` +
    `${opts.clients} client process(es). Ratios are to raw \`ws\` from the same run; the last column says ` +
    'which direction is better. ' +
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
  for (const m of METRICS) {
    if (!opts.scenarios.includes(m.scenario)) continue
    const cells = targets.map((t) => {
      const v = summary[m.scenario]?.[t]?.[m.key]
      const r = ratios[m.scenario]?.[t]?.[m.key]
      if (typeof v !== 'number') return 'n/a'
      // Counts and near-zero differences make meaningless ratios.
      return t === 'ws' || m.noRatio ? m.format(v) : `${m.format(v)} (${ratio(r)})`
    })
    lines.push(`| ${m.scenario} | ${m.label.trim()} | ${m.unit} | ${cells.join(' | ')} | ${m.better} |`)
  }
  lines.push('')

  if (targets.includes('glue') && targets.includes('ws')) {
    lines.push('## Issue 7 targets (glue against raw ws)')
    lines.push('')
    lines.push('| goal | glue | raw ws | ratio | met |')
    lines.push('| --- | ---: | ---: | ---: | --- |')
    for (const g of GOALS) {
      if (!opts.scenarios.includes(g.scenario)) continue
      const m = METRICS.find((x) => x.key === g.key)
      const v = summary[g.scenario].glue?.[g.key]
      const w = summary[g.scenario].ws?.[g.key]
      const r = ratios[g.scenario].glue?.[g.key]
      let met = 'n/a'
      if (g.zero) met = typeof summary[g.scenario].glue?.max_lost === 'number' ? (summary[g.scenario].glue.max_lost === 0 ? 'yes' : 'no') : 'n/a'
      else if (typeof r === 'number') met = (g.max !== undefined ? r <= g.max : r >= g.min) ? 'yes' : 'no'
      lines.push(`| ${g.goal} | ${m.format(v)} ${m.unit} | ${m.format(w)} ${m.unit} | ${g.zero ? '' : ratio(r)} | ${met} |`)
    }
    lines.push('')
  }

  const problems = []
  for (const scenario of opts.scenarios) {
    for (const t of targets) {
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
