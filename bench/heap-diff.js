// Where a target's per-connection heap goes: heap snapshots of one server before and after N
// connections, diffed by object kind, and the shortest retaining path of one object of a given kind.
// Usage: node bench/heap-diff.js [target=glue] [connections=2000] [top=30] [retained=IncomingMessage]
import { fork } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createCaller } from './lib/rpc.js'

const here = dirname(fileURLToPath(import.meta.url))
const [target = 'glue', connArg = '2000', topArg = '30', retained = 'IncomingMessage'] = process.argv.slice(2)
const connections = Number(connArg)

function spawn (file, args, execArgv = []) {
  const child = fork(join(here, file), args, { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return { child, call: createCaller(child) }
}

// Self size and count per "type:name" (constructor or string/closure kind) in a .heapsnapshot.
function aggregate (file) {
  const snap = JSON.parse(readFileSync(file, 'utf8'))
  const fields = snap.snapshot.meta.node_fields
  const types = snap.snapshot.meta.node_types[0]
  const iType = fields.indexOf('type')
  const iName = fields.indexOf('name')
  const iSize = fields.indexOf('self_size')
  const width = fields.length
  const out = new Map()
  const nodes = snap.nodes
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + iType]]
    let name = type === 'string' || type === 'concatenated string' || type === 'sliced string' ? '(strings)' : snap.strings[nodes[i + iName]]
    if (type === 'code') name = '(code)'
    if (name.length > 60) name = name.slice(0, 57) + '...'
    const key = `${type}:${name}`
    const e = out.get(key) ?? { count: 0, size: 0 }
    e.count++
    e.size += nodes[i + iSize]
    out.set(key, e)
  }
  return out
}

// Shortest path from the GC roots to any object named `wanted` (weak edges ignored).
function retainingPath (file, wanted) {
  const snap = JSON.parse(readFileSync(file, 'utf8'))
  const meta = snap.snapshot.meta
  const nf = meta.node_fields.length
  const ef = meta.edge_fields.length
  const nodeTypes = meta.node_types[0]
  const edgeTypes = meta.edge_types[0]
  const iName = meta.node_fields.indexOf('name')
  const iType = meta.node_fields.indexOf('type')
  const iEdgeCount = meta.node_fields.indexOf('edge_count')
  const { nodes, edges, strings } = snap
  const count = nodes.length / nf
  const firstEdge = new Uint32Array(count + 1)
  for (let n = 0; n < count; n++) firstEdge[n + 1] = firstEdge[n] + nodes[n * nf + iEdgeCount] * ef
  const parent = new Int32Array(count).fill(-1)
  const via = new Int32Array(count).fill(-1)
  parent[0] = 0
  const queue = [0]
  const label = (n) => `${nodeTypes[nodes[n * nf + iType]]}:${strings[nodes[n * nf + iName]].slice(0, 50)}`
  for (let q = 0; q < queue.length; q++) {
    const n = queue[q]
    for (let e = firstEdge[n]; e < firstEdge[n + 1]; e += ef) {
      const type = edgeTypes[edges[e]]
      if (type === 'weak') continue
      const to = edges[e + 2] / nf
      if (parent[to] !== -1) continue
      parent[to] = n
      via[to] = e
      if (strings[nodes[to * nf + iName]] === wanted && nodeTypes[nodes[to * nf + iType]] === 'object') {
        const path = []
        for (let x = to; x !== 0; x = parent[x]) {
          const edge = via[x]
          const et = edgeTypes[edges[edge]]
          const name = et === 'element' || et === 'hidden' ? `[${edges[edge + 1]}]` : strings[edges[edge + 1]]
          path.unshift(`  --${et} ${name}--> ${label(x)}`)
        }
        return path.join('\n')
      }
      queue.push(to)
    }
  }
  return `  no ${wanted} reachable`
}

const server = spawn('servers/host.js', [target], ['--expose-gc'])
const client = spawn('client.js', [])
try {
  const { port } = await server.call('start', { host: '127.0.0.1' })
  const base = target === 'socketio' ? `http://127.0.0.1:${port}` : `ws://127.0.0.1:${port}`
  const plan = (n) => Array.from({ length: Math.round(n / 1.1) }, (_, i) => (i % 10 === 0 ? 2 : 1))
  await client.call('connect', { target, base, plan: plan(200), concurrency: 50, timeoutMs: 15000 })
  const before = await server.call('snapshot')
  const r = await client.call('connect', { target, base, plan: plan(connections), concurrency: 50, timeoutMs: 15000 })
  const after = await server.call('snapshot')
  const a = aggregate(before.file)
  const b = aggregate(after.file)
  const path = retainingPath(after.file, retained)
  rmSync(before.file)
  rmSync(after.file)
  const rows = []
  for (const [key, e] of b) {
    const p = a.get(key) ?? { count: 0, size: 0 }
    rows.push({ key, count: e.count - p.count, size: e.size - p.size })
  }
  const total = rows.reduce((s, x) => s + x.size, 0)
  console.log(`${target}: ${r.open} connections; snapshot self-size delta ${(total / 1024).toFixed(0)} KiB = ${(total / r.open).toFixed(0)} B per connection`)
  console.log('  bytes/conn  objects/conn  kind')
  for (const row of rows.sort((x, y) => y.size - x.size).slice(0, Number(topArg))) {
    console.log(`${(row.size / r.open).toFixed(1).padStart(12)}  ${(row.count / r.open).toFixed(2).padStart(12)}  ${row.key}`)
  }
  console.log(`\nshortest retaining path of one ${retained}:\n${path}`)
} finally {
  client.child.kill('SIGKILL')
  server.child.kill('SIGKILL')
}
