// A bench client process: opens many sockets to one target and reports what it received.
// Forked by run.js; all sockets of a session live in the same process, so a second tab can reuse the
// first tab's cookie (glue) or session id (the other targets).
import { randomBytes } from 'node:crypto'
import WebSocket from 'ws'
import { io } from 'socket.io-client'
import { serve } from './lib/rpc.js'
import { padding } from './lib/protocol.js'

const B = 98 // 'b'
const T = 116 // 't'
const E = 101 // 'e'
const H = 104 // 'h'
const SAMPLE_CAP = 250_000

const sockets = [] // every open connection of this process
const sessionsOut = [] // { sessionId, tabs }
let broadcastReceived = 0
let targetedReceived = 0
// Latency samples (µs) per message kind: targeted sends and broadcasts.
let samples = { t: [], b: [] }
let seen = { t: 0, b: 0 }
let bytesReadMark = 0
let lastReceiveNs = 0n
let unexpectedCloses = 0
const closeReasons = new Set()

function record (kind, us) {
  const n = ++seen[kind]
  const list = samples[kind]
  if (list.length < SAMPLE_CAP) list.push(us)
  else {
    // Reservoir sampling keeps the sample unbiased when a run produces more than the cap.
    const j = Math.floor(Math.random() * n)
    if (j < SAMPLE_CAP) list[j] = us
  }
}

// Bytes the sockets of this process have read from TCP: what the server put on the wire, frame
// headers and compression included (socket.io sockets are not counted).
function bytesRead () {
  let total = 0
  for (const conn of sockets) total += conn.bytesRead()
  return total
}

function stampOf (text) {
  const end = text.indexOf('|', 2)
  return BigInt(text.slice(2, end))
}

// One connection, whatever the target. `onText` receives every server message as a string.
function open ({ target, base, sessionId, cookie, localAddress, timeoutMs }) {
  return new Promise((resolve, reject) => {
    const conn = { sessionId: null, cookie: null, send: null, close: null, echo: null, onClose: null, bytesRead: () => 0 }
    let settled = false
    const timer = setTimeout(() => fail(new Error('connect timeout')), timeoutMs)
    function fail (err) {
      if (settled) return
      settled = true
      clearTimeout(timer)
      try { conn.close?.() } catch {}
      reject(err)
    }
    function onText (text) {
      const kind = text.charCodeAt(0)
      if (kind === B) {
        const now = process.hrtime.bigint()
        broadcastReceived++
        lastReceiveNs = now
        record('b', Number(now - stampOf(text)) / 1000)
      } else if (kind === T) {
        const now = process.hrtime.bigint()
        targetedReceived++
        lastReceiveNs = now
        record('t', Number(now - stampOf(text)) / 1000)
      } else if (kind === E) {
        conn.echo?.(text)
      } else if (kind === H) {
        if (settled) return
        settled = true
        clearTimeout(timer)
        conn.sessionId = text.slice(2)
        resolve(conn)
      }
    }

    if (target === 'socketio') {
      const socket = io(base, {
        transports: ['websocket'],
        query: { session: sessionId },
        forceNew: true,
        reconnection: false,
        timeout: timeoutMs,
        localAddress
      })
      conn.send = (text) => socket.emit('e', text)
      conn.close = () => socket.disconnect()
      socket.on('m', onText)
      socket.on('connect_error', (err) => fail(err))
      socket.on('disconnect', () => {
        if (settled) unexpectedCloses++
        conn.onClose?.()
      })
      return
    }

    const path = target === 'ws' ? '/' : '/ws'
    const url = target === 'glue' ? `${base}${path}` : `${base}${path}?session=${sessionId}`
    const headers = cookie ? { Cookie: cookie } : {}
    const socket = new WebSocket(url, { localAddress, headers })
    conn.send = (text) => socket.send(text)
    conn.bytesRead = () => socket._socket?.bytesRead ?? 0
    // A reset leaves no TIME_WAIT behind on the client's source port.
    conn.close = () => { if (socket._socket?.resetAndDestroy) socket._socket.resetAndDestroy(); else socket.terminate() }
    socket.on('upgrade', (res) => {
      const setCookie = res.headers['set-cookie']
      if (Array.isArray(setCookie)) {
        const sid = setCookie.find((c) => c.startsWith('sid='))
        if (sid !== undefined) conn.cookie = sid.slice(0, sid.indexOf(';') === -1 ? sid.length : sid.indexOf(';'))
      }
    })
    socket.on('message', (data, isBinary) => onText(isBinary ? '' : data.toString()))
    socket.on('error', (err) => fail(err))
    socket.on('unexpected-response', (req, res) => fail(new Error(`unexpected response ${res.statusCode}`)))
    socket.on('close', (code, reason) => {
      if (settled) unexpectedCloses++
      if (closeReasons.size < 5) closeReasons.add(`${code} ${reason}`)
      conn.onClose?.()
    })
  })
}

serve({
  // Opens `plan` (an array of tab counts, one per session) with at most `concurrency` sessions in flight.
  async connect ({ target, base, plan, concurrency, localAddress, timeoutMs }) {
    const startNs = process.hrtime.bigint()
    const before = sockets.length
    const errors = []
    let failed = 0
    let mismatched = 0
    let next = 0
    async function worker () {
      while (next < plan.length) {
        const tabs = plan[next++]
        const generated = randomBytes(16).toString('hex')
        try {
          const first = await open({ target, base, sessionId: generated, localAddress, timeoutMs })
          sockets.push(first)
          for (let t = 1; t < tabs; t++) {
            try {
              const more = await open({ target, base, sessionId: generated, cookie: first.cookie, localAddress, timeoutMs })
              sockets.push(more)
              if (more.sessionId !== first.sessionId) mismatched++
            } catch (err) {
              failed++
              if (errors.length < 5) errors.push(String(err?.message ?? err))
            }
          }
          sessionsOut.push({ sessionId: first.sessionId, tabs })
        } catch (err) {
          failed += tabs
          if (errors.length < 5) errors.push(String(err?.message ?? err))
        }
      }
    }
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker))
    const endNs = process.hrtime.bigint()
    return { startNs: startNs.toString(), endNs: endNs.toString(), open: sockets.length - before, failed, mismatched, errors }
  },
  sessions () {
    return sessionsOut
  },
  reset () {
    broadcastReceived = 0
    targetedReceived = 0
    samples = { t: [], b: [] }
    seen = { t: 0, b: 0 }
    lastReceiveNs = 0n
    bytesReadMark = bytesRead()
    return true
  },
  counts () {
    return {
      sockets: sockets.length,
      broadcastReceived,
      targetedReceived,
      lastReceiveNs: lastReceiveNs.toString(),
      bytesRead: bytesRead() - bytesReadMark,
      unexpectedCloses
    }
  },
  // Latency samples of one kind: 't' (targeted sends, the default) or 'b' (broadcasts).
  latencies ({ kind = 't' } = {}) {
    return { seen: seen[kind], samples: samples[kind] }
  },
  // Closed-loop echo on the first `count` sockets: one message in flight per socket.
  async echo ({ count, durationMs, maxPerSocket, size }) {
    const pad = padding(size)
    const used = sockets.slice(0, count)
    const deadline = performance.now() + durationMs
    let roundTrips = 0
    const samples = []
    const t0 = process.hrtime.bigint()
    let stalled = 0
    let closed = 0
    const all = Promise.all(used.map((conn) => new Promise((resolve) => {
      let n = 0
      // A socket the server closes mid-loop is counted, not waited for.
      conn.onClose = () => {
        if (conn.echo === null) return
        closed++
        conn.echo = null
        resolve()
      }
      conn.echo = (text) => {
        const now = process.hrtime.bigint()
        roundTrips++
        n++
        if (samples.length < SAMPLE_CAP) samples.push(Number(now - stampOf(text)) / 1000)
        if (n >= maxPerSocket || performance.now() >= deadline) {
          conn.echo = null
          resolve()
          return
        }
        conn.send(`e|${process.hrtime.bigint()}|${pad}`)
      }
      conn.send(`e|${process.hrtime.bigint()}|${pad}`)
    })))
    // A lost echo must not hang the loop: give up on the stragglers shortly after the deadline.
    let timer
    const grace = new Promise((resolve) => { timer = setTimeout(resolve, durationMs + 5000, 'timeout') })
    if (await Promise.race([all, grace]) === 'timeout') {
      stalled = used.filter((conn) => conn.echo !== null).length
      for (const conn of used) conn.echo = null
    }
    clearTimeout(timer)
    const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6
    for (const conn of used) conn.onClose = null
    return { roundTrips, elapsedMs, samples, stalled, closed, closeReasons: [...closeReasons] }
  },
  close () {
    for (const conn of sockets) {
      try { conn.close() } catch {}
    }
    sockets.length = 0
    return true
  }
})
