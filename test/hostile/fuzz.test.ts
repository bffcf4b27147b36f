// Property-based fuzzing of the inbound path against a live server in a child process.
// FUZZ_RUNS sets the number of runs (default 300, split over the properties), FUZZ_SEED the seed
// (default fixed; `random` for a new one). FUZZ_PATH=<property>:<path>, printed on failure, replays
// one counterexample of that property with its seed.
import { setImmediate as tick } from 'node:timers/promises'
import fc from 'fast-check'
import { test, type Test } from 'tap'
import { frames, handshakes, rawBytes, rawHeads, type Frame, type RawHead } from './fuzz-arbitraries.js'
import { FuzzServer, handshake, RawConnection, type FuzzClient, type HandshakeToSend } from './fuzz-harness.js'
import {
  allowedRawCloses,
  describeOutcomes,
  gapAfterWelcome,
  glueOutcomes,
  isDocumentedReply,
  matchOutcome,
  rateLimited,
  rawOutcomes,
  serverFrames,
  type Expected,
  type ModelState,
  type Observation
} from './fuzz-model.js'

const BOUNDED = process.env.FUZZ_RUNS === undefined
const RUNS = BOUNDED ? 300 : Number(process.env.FUZZ_RUNS)
const SEED = process.env.FUZZ_SEED === undefined
  ? 20251111
  : process.env.FUZZ_SEED === 'random' ? Date.now() % 0x7fffffff : Number(process.env.FUZZ_SEED)
const [REPLAY, PATH] = process.env.FUZZ_PATH === undefined ? [] : process.env.FUZZ_PATH.split(/:(.*)/s)
if (!Number.isSafeInteger(SEED) || !Number.isSafeInteger(RUNS) || RUNS < 1) {
  throw new Error(`FUZZ_SEED must be an integer or "random" and FUZZ_RUNS a positive integer, got ${process.env.FUZZ_SEED} and ${process.env.FUZZ_RUNS}`)
}

/** Whether a property is skipped because FUZZ_PATH replays another one. */
const skipped = (name: string): string | false => REPLAY !== undefined && REPLAY !== name ? `FUZZ_PATH replays ${REPLAY}` : false

/** fast-check settings for one property; its share of FUZZ_RUNS. */
function settings (share: number): fc.Parameters<unknown> {
  const params: fc.Parameters<unknown> = { seed: SEED, numRuns: Math.max(1, Math.round(RUNS * share)) }
  if (PATH !== undefined) params.path = PATH
  // Within npm test, a slow machine or a long shrink must not reach tap's timeout: stop at 40 s.
  if (BOUNDED) params.plugins = [fc.interruptAfterTimeLimit(40_000)]
  return params
}

/** The server process; a crash fails the run that caused it, and the next run gets a new server. */
const target = { server: undefined as FuzzServer | undefined, crashes: [] as string[] }

async function liveServer (): Promise<FuzzServer> {
  if (target.server !== undefined && target.server.alive) return target.server
  if (target.server !== undefined) target.crashes.push(target.server.death.slice(0, 800))
  target.server = await FuzzServer.start()
  return target.server
}

/** Runs one scenario; any failure while the server dies becomes the crash, with its stack trace. */
async function guarded (run: (server: FuzzServer) => Promise<void>): Promise<void> {
  const server = await liveServer()
  try {
    await run(server)
    await server.drained()
  } catch (err) {
    if (await server.diesWithin(500)) throw new Error(server.death)
    throw err
  }
}

/** How often each outcome was seen, printed after each property to show what the generators reach. */
const tally = new Map<string, number>()
function count (what: string): void {
  tally.set(what, (tally.get(what) ?? 0) + 1)
}
function printTally (t: Test): void {
  t.comment([...tally].sort(([a], [b]) => a.localeCompare(b)).map(([what, n]) => `${what}: ${n}`).join(', '))
  tally.clear()
}

function outcomeLabel (match: Expected, seen: Observation): string {
  if (match.kind === 'close') return `close ${seen.close?.code ?? ''}${seen.close?.reason === 'rate limit exceeded' ? ' (rate limit)' : ''}`
  if (match.kind === 'error') return `error ${String((seen.replies[0]?.[3] as { code?: unknown } | undefined)?.code)}`
  return match.kind
}

/** One assertion per property, with fast-check's report (counterexample, seed, path) on failure. */
function verdict (t: Test, name: string, details: fc.RunDetails<unknown>): void {
  const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)
  const replay = `FUZZ_SEED=${details.seed} FUZZ_PATH='${name}:${details.counterexamplePath ?? ''}' npm run fuzz`
  t.notOk(details.failed, `finds no counterexample in ${details.numRuns} runs`, details.failed ? { replay, report: fc.defaultReportMessage(details), error } : {})
}

function describeObservation (seen: Observation): string {
  const parts: string[] = []
  if (seen.close !== undefined) parts.push(`close ${seen.close.code} ${JSON.stringify(seen.close.reason)}`)
  if (seen.delivered !== undefined) parts.push(`${seen.delivered} message(s) delivered to onMessage`)
  for (const reply of seen.replies) parts.push(`reply ${JSON.stringify(reply)}`)
  for (const message of seen.other) parts.push(`unexpected ${typeof message === 'string' ? JSON.stringify(message).slice(0, 200) : `<${message.toString('hex').slice(0, 64)}>`}`)
  return parts.join(', ') || 'nothing'
}

/** The statuses a handshake may get: the origin rule of the README, and 431 for oversized headers. */
function handshakeStatuses (spec: HandshakeToSend, origin: string | undefined, port: number): Set<number> | 'not 5xx' {
  if (spec.path !== '/ws') return 'not 5xx'
  const statuses = new Set<number>()
  const self = [`http://127.0.0.1:${port}`, `HTTP://127.0.0.1:${port}`, `https://127.0.0.1:${port}`]
  const others = ['null', 'http://evil.example', `http://localhost:${port}`, 'http://127.0.0.1:1', 'file://']
  if (origin === undefined || origin === '' || self.includes(origin)) statuses.add(101)
  else if (others.includes(origin)) statuses.add(403)
  else statuses.add(101).add(403)
  if ((spec.cookie?.length ?? 0) > 15_000) statuses.add(431)
  return statuses
}

async function checkWelcome (client: FuzzClient, query: string): Promise<void> {
  const first = await client.next()
  const welcome = typeof first === 'string' ? JSON.parse(first) as unknown[] : []
  if (welcome.length !== 3 || welcome[0] !== 'w' || typeof welcome[1] !== 'string' || !Number.isSafeInteger(welcome[2]) || (welcome[2] as number) < 0) {
    throw new Error(`the first envelope is not a welcome: ${String(first)}`)
  }
  // The probe's answer marks the end of what the server sent on its own.
  const seen = await client.exchange(undefined, false)
  const gap = gapAfterWelcome(query)
  const gaps = seen.other.filter((message) => message === '["g",null]').length
  if (seen.close !== undefined || seen.replies.length > 0 || seen.other.length !== gaps || gaps > 1 ||
    (gap === 'must' && gaps === 0) || (gap === 'never' && gaps === 1)) {
    throw new Error(`after the welcome (query ${JSON.stringify(query)}, gap ${gap}): ${describeObservation(seen)}`)
  }
}

async function runSocket (server: FuzzServer, spec: HandshakeToSend, list: readonly Frame[]): Promise<void> {
  const origin = spec.origin?.replaceAll('{port}', String(server.port))
  const outcome = await handshake(server.port, { ...spec, origin })
  const statuses = handshakeStatuses(spec, origin, server.port)
  if (outcome.status >= 500 || (statuses !== 'not 5xx' && !statuses.has(outcome.status))) {
    const body = 'body' in outcome ? ` ${outcome.body.slice(0, 200)}` : ''
    throw new Error(`handshake answered ${outcome.status}${body}; expected ${statuses === 'not 5xx' ? 'no 5xx' : [...statuses].join(' or ')}`)
  }
  count(`handshake ${outcome.status}`)
  if (!('client' in outcome)) {
    // RFC 6455 §4.2.2: a server may select none of the offered subprotocols; ws (like browsers) then gives up.
    const noneSelected = outcome.status === 101 && spec.protocols?.includes('glue.v1') === false && /no subprotocol/.test(outcome.body)
    if (outcome.status === 101 && !noneSelected) throw new Error(`the 101 was refused by the client: ${outcome.body}`)
    return
  }
  const client = outcome.client
  try {
    const offered = spec.protocols?.includes('glue.v1') === true
    if (client.glue !== offered) throw new Error(`subprotocol ${JSON.stringify(client.socket.protocol)} selected for an offer of ${JSON.stringify(spec.protocols)}`)
    if (client.glue) await checkWelcome(client, spec.query)
    else if ((await client.exchange(undefined, false)).other.length > 0) throw new Error('a raw socket received data it did not ask for')
    const state: ModelState = { subscribed: new Set() }
    for (const [index, frame] of list.entries()) {
      const single = client.glue ? glueOutcomes(frame.bytes, frame.binary, state) : rawOutcomes(frame.bytes, frame.binary)
      const expected = rateLimited(single, frame.repeat, client.sent)
      const seen = await client.exchange(frame, expected.some((outcome) => outcome.kind === 'reply' || outcome.kind === 'error'))
      const undocumented = seen.replies.find((reply) => !isDocumentedReply(reply))
      const match = matchOutcome(expected, seen)
      if (undocumented !== undefined || match === undefined) {
        throw new Error(`frame ${index + 1} on a ${client.glue ? 'glue.v1' : 'raw'} socket, ${String(frame)}\n` +
          `  expected: ${describeOutcomes(expected)}\n  got: ${describeObservation(seen)}`)
      }
      if (match.kind === 'reply') match.effect?.()
      count(`${client.glue ? 'glue' : 'raw'} ${outcomeLabel(match, seen)}`)
      if (seen.close !== undefined) break
    }
  } finally {
    await client.close()
  }
}

function requestHead (port: number, head: RawHead): string {
  const lines = [
    'GET /ws HTTP/1.1',
    `Host: 127.0.0.1:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${head.key}`,
    `Sec-WebSocket-Version: ${head.version}`,
    ...head.glue ? ['Sec-WebSocket-Protocol: glue.v1'] : [],
    ...head.extraLines
  ]
  return lines.join('\r\n') + '\r\n\r\n'
}

async function runRaw (server: FuzzServer, head: RawHead, chunks: readonly Buffer[]): Promise<void> {
  const plain = head.extraLines.length === 0 && head.version === '13' && head.key === 'dGhlIHNhbXBsZSBub25jZQ=='
  const connection = await RawConnection.open(server.port, requestHead(server.port, head))
  try {
    const status = connection.status
    if (status === 0 || status >= 500 || (plain && status !== 101)) {
      throw new Error(`upgrade answered ${status === 0 ? 'no HTTP response' : JSON.stringify(connection.head.slice(0, 300))}`)
    }
    count(`upgrade ${status}`)
    if (status !== 101) return
    for (const chunk of chunks) {
      connection.socket.write(chunk)
      await tick()
    }
    const closeSeen = (): boolean => serverFrames(connection.received).some((frame) => frame.opcode === 0x8)
    await connection.until(() => closeSeen() || connection.ended, 30)
    const allowed = allowedRawCloses(Buffer.concat(chunks))
    const glue = /\r\nsec-websocket-protocol: glue\.v1\r\n/i.test(connection.head + '\r\n')
    for (const frame of serverFrames(connection.received)) {
      const code = frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005
      const fine = frame.opcode === 0xa || frame.opcode === 0x9 || (frame.opcode === 0x1 && glue) || (frame.opcode === 0x8 && allowed.has(code))
      count(frame.opcode === 0x8 ? `close ${code}` : `opcode ${frame.opcode}`)
      if (!fine) {
        throw new Error(`the server answered a frame with opcode ${frame.opcode}${frame.opcode === 0x8 ? ` and code ${code}` : ''}: ` +
          `<${frame.payload.toString('hex').slice(0, 80)}>; allowed closes ${[...allowed].join(',')}`)
      }
    }
  } finally {
    await connection.destroy()
  }
}

test('hostile clients cannot crash the server or get an undocumented answer', async (t) => {
  t.comment(`fuzz seed ${SEED}, ${RUNS} runs (FUZZ_SEED=${SEED} repeats them; FUZZ_RUNS or npm run fuzz runs more)`)
  t.teardown(async () => { await target.server?.stop() })
  await liveServer()

  await t.test('answers every frame of a ws client with a documented outcome', { skip: skipped('frames') }, async (t) => {
    const property = fc.asyncProperty(handshakes, frames, async (spec, list) => {
      await guarded((server) => runSocket(server, spec, list))
    })
    verdict(t, 'frames', await fc.check(property, settings(0.75)))
    printTally(t)
  })

  await t.test('ends raw tcp garbage after the upgrade with a protocol close at worst', { skip: skipped('tcp') }, async (t) => {
    const property = fc.asyncProperty(rawHeads, rawBytes, async (head, chunks) => {
      await guarded((server) => runRaw(server, head, chunks))
    })
    verdict(t, 'tcp', await fc.check(property, settings(0.25)))
    printTally(t)
  })

  await t.test('still serves a fresh client afterwards and holds no socket', async (t) => {
    t.same(target.crashes, [], 'the server process never died')
    const server = await liveServer()
    t.same(await server.call({ cmd: 'warnings' }), [], 'and emitted no process warning (listener leaks, deprecations)')
    const health = await fetch(`http://127.0.0.1:${server.port}/health`)
    t.equal(health.status, 200, 'answers a health request')
    t.same(await health.json(), { ok: true }, 'with its body')

    const fresh = await handshake(server.port, { path: '/ws', query: '', protocols: ['glue.v1'], cookie: undefined, origin: undefined })
    if (!('client' in fresh)) throw new Error(`fresh client refused with ${fresh.status}`)
    const client = fresh.client
    await checkWelcome(client, '')
    const bytes = Buffer.from(JSON.stringify(['m', { hello: 'after fuzzing' }]))
    const state: ModelState = { subscribed: new Set() }
    const seen = await client.exchange({ bytes, binary: false, cuts: [] }, false)
    t.ok(matchOutcome(glueOutcomes(bytes, false, state), seen), 'its message reaches onMessage')
    const sessionId = await client.sessionId()
    t.equal(await server.call({ cmd: 'send', sessionId, data: 'still here' }), 1, 'sessions.send reaches its socket')
    t.same(JSON.parse(String(await client.next())), ['m', 1, 'still here'], 'and the client receives it')
    await client.close()
    await server.drained()
    t.equal((await server.stats()).sockets, 0, 'no socket is left once every client closed')
    t.equal(await server.stop(), 0, 'app.close() ends the process cleanly')
  })
})
