// Summarises a V8 .cpuprofile (from `--cpu-prof <target>`): self time by function and by package.
// Usage: node bench/prof-summary.js <file.cpuprofile> [top=25] [function name whose callers to show]
import { readFileSync } from 'node:fs'

const [file, topArg, callersOf] = process.argv.slice(2)
if (file === undefined) {
  console.error('usage: node bench/prof-summary.js <file.cpuprofile> [top]')
  process.exit(1)
}
const top = Number(topArg ?? 25)
const profile = JSON.parse(readFileSync(file, 'utf8'))
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const selfUs = new Map()
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]
  selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
}

function where (url) {
  if (url === '') return '(native/V8)'
  if (url.startsWith('node:')) return 'node core'
  const m = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/)
  if (m) return m[1]
  if (url.includes('/dist/plugin/')) return 'fastify-websocket-glue'
  if (url.includes('/bench/')) return 'bench harness'
  return url
}

const fnTotals = new Map()
const pkgTotals = new Map()
let total = 0
for (const [id, us] of selfUs) {
  const node = byId.get(id)
  const cf = node.callFrame
  const short = cf.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/(dist|bench)\//, '$1/')
  const key = `${cf.functionName || '(anonymous)'}  ${short}${cf.url ? `:${cf.lineNumber + 1}` : ''}`
  fnTotals.set(key, (fnTotals.get(key) ?? 0) + us)
  const pkg = ['(idle)', '(program)', '(garbage collector)'].includes(cf.functionName) ? cf.functionName : where(cf.url)
  pkgTotals.set(pkg, (pkgTotals.get(pkg) ?? 0) + us)
  total += us
}
const busy = total - (pkgTotals.get('(idle)') ?? 0)
const pct = (us) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`
console.log(`profile ${file}: ${(total / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s not idle (percentages of that)`)
console.log('\nself time by package')
for (const [k, us] of [...pkgTotals].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, 12)) {
  console.log(`${pct(us)}  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`)
}
console.log(`\ntop ${top} functions by self time`)
for (const [k, us] of [...fnTotals].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${pct(us)}  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`)
}

// Inclusive time: each sample counts once for every distinct function on its stack.
{
  const parentOf = new Map()
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id)
  const incl = new Map()
  for (const [id, us] of selfUs) {
    const seen = new Set()
    for (let p = id; p !== undefined; p = parentOf.get(p)) {
      const cf = byId.get(p).callFrame
      if (cf.url === '' && cf.functionName !== '(garbage collector)') continue
      const short = cf.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/(dist|bench)\//, '$1/')
      const key = `${cf.functionName || '(anonymous)'}  ${short}:${cf.lineNumber + 1}`
      if (seen.has(key)) continue
      seen.add(key)
      incl.set(key, (incl.get(key) ?? 0) + us)
    }
  }
  const skip = /^\((root|program|idle)\)|processTicksAndRejections|^emit |^(anonymous) {2}node:|listOnTimeout|processImmediate/
  console.log(`\ntop ${top} functions by inclusive time (what runs under them)`)
  for (const [k, us] of [...incl].filter(([k]) => !skip.test(k)).sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${pct(us)}  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`)
  }
}

// The call stacks that lead to a function, weighted by its self time, to find who creates, say, errors.
if (callersOf !== undefined) {
  const parentOf = new Map()
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id)
  const stacks = new Map()
  for (const [id, us] of selfUs) {
    if (byId.get(id).callFrame.functionName !== callersOf) continue
    const frames = []
    for (let p = parentOf.get(id); p !== undefined && frames.length < 8; p = parentOf.get(p)) {
      const cf = byId.get(p).callFrame
      frames.push(`${cf.functionName || '(anonymous)'} ${cf.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/(dist|bench)\//, '$1/')}:${cf.lineNumber + 1}`)
    }
    const key = frames.join('\n      <- ')
    stacks.set(key, (stacks.get(key) ?? 0) + us)
  }
  console.log(`\ncallers of ${callersOf}`)
  for (const [k, us] of [...stacks].sort((a, b) => b[1] - a[1]).slice(0, 5)) {
    console.log(`${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`)
  }
}
