// A client process of the cluster benchmark: opens raw websockets (no subprotocol) to the nodes and
// counts, per socket, what arrives. Forked by bench/cluster.js. Messages (see cluster-node.js):
//   h|<sessionId>   hello, the first frame of every socket
//   t|<ns>|...      targeted send stamped with the sender node's process.hrtime (CLOCK_MONOTONIC)
//   b|<seq>|...     broadcast number <seq>
//   w|...           warm-up traffic, only counted
import WebSocket from 'ws'
import { serve } from './lib/rpc.js'

const now = () => process.hrtime.bigint()

const sockets = [] // { ws, node, sessionId, broadcasts, nextSeq }
let expectedBroadcasts = 0
let complete = 0 // sockets that have all expected broadcasts
let outOfOrder = 0 // broadcasts that arrived with another seq than the next one expected
let lastBroadcastNs = 0n
let targeted = 0
let lastTargetedNs = 0n
let warm = 0
let latencies = {} // node index -> microseconds
let closes = 0
const closeReasons = new Set()

function onText (conn, text) {
  const kind = text.charCodeAt(0)
  if (kind === 98) { // b
    const seq = Number(text.slice(2, text.indexOf('|', 2)))
    if (seq !== conn.nextSeq) outOfOrder++
    conn.nextSeq = seq + 1
    if (++conn.broadcasts === expectedBroadcasts) complete++
    lastBroadcastNs = now()
  } else if (kind === 116) { // t
    const us = Number(now() - BigInt(text.slice(2, text.indexOf('|', 2)))) / 1000
    targeted++
    lastTargetedNs = now()
    ;(latencies[conn.node] ??= []).push(us)
  } else if (kind === 119) { // w
    warm++
  }
}

// Resolves once the hello arrives, so a counted socket is registered on its node.
function open (base, node, timeoutMs) {
  return new Promise((resolve, reject) => {
    const conn = { ws: null, node, sessionId: null, broadcasts: 0, nextSeq: 0 }
    const ws = new WebSocket(`${base}/ws`)
    conn.ws = ws
    let settled = false
    const timer = setTimeout(() => fail(new Error('connect timeout')), timeoutMs)
    function fail (err) {
      if (settled) return
      settled = true
      clearTimeout(timer)
      ws.terminate()
      reject(err)
    }
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? '' : data.toString()
      if (conn.sessionId === null && text.startsWith('h|')) {
        conn.sessionId = text.slice(2)
        settled = true
        clearTimeout(timer)
        resolve(conn)
        return
      }
      onText(conn, text)
    })
    ws.on('error', fail)
    ws.on('unexpected-response', (req, res) => fail(new Error(`unexpected response ${res.statusCode}`)))
    ws.on('close', (code, reason) => {
      if (!settled) return fail(new Error(`closed ${code} before hello`))
      closes++
      if (closeReasons.size < 5) closeReasons.add(`${code} ${reason}`)
    })
  })
}

serve({
  // Opens one socket (and so one session) per entry of `nodes`, to bases[nodes[i]].
  async connect ({ bases, nodes, concurrency, timeoutMs }) {
    const opened = []
    const errors = []
    let failed = 0
    let next = 0
    async function worker () {
      while (next < nodes.length) {
        const node = nodes[next++]
        try {
          opened.push(await open(bases[node], node, timeoutMs))
        } catch (err) {
          failed++
          if (errors.length < 5) errors.push(String(err?.message ?? err))
        }
      }
    }
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker))
    sockets.push(...opened)
    return { sessions: opened.map((c) => ({ sessionId: c.sessionId, node: c.node })), failed, errors }
  },
  // Zeroes the counters before a phase; `broadcasts` is how many each socket should then receive.
  reset ({ broadcasts = 0 }) {
    expectedBroadcasts = broadcasts
    complete = 0
    outOfOrder = 0
    lastBroadcastNs = 0n
    targeted = 0
    lastTargetedNs = 0n
    warm = 0
    latencies = {}
    for (const conn of sockets) { conn.broadcasts = 0; conn.nextSeq = 0 }
    return true
  },
  counts () {
    // Per socket, so a duplicate on one socket cannot hide a loss on another.
    let lost = 0
    let extra = 0
    let received = 0
    for (const conn of sockets) {
      received += conn.broadcasts
      lost += Math.max(0, expectedBroadcasts - conn.broadcasts)
      extra += Math.max(0, conn.broadcasts - expectedBroadcasts)
    }
    return { sockets: sockets.length, complete, received, lost, extra, outOfOrder, lastBroadcastNs: lastBroadcastNs.toString(), targeted, lastTargetedNs: lastTargetedNs.toString(), warm, closes, closeReasons: [...closeReasons] }
  },
  latencies () {
    return latencies
  },
  clock () {
    return now().toString()
  },
  cpu () {
    const c = process.cpuUsage()
    return c.user + c.system
  },
  close () {
    // A reset leaves no TIME_WAIT behind on the client side.
    for (const conn of sockets) {
      try { if (conn.ws._socket?.resetAndDestroy) conn.ws._socket.resetAndDestroy(); else conn.ws.terminate() } catch {}
    }
    sockets.length = 0
    return true
  }
})
