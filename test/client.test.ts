import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'tap'
import WebSocket from 'ws'
import { GlueClient, GlueClientError, type GlueClientOptions } from '../plugin/client/glue-client.js'
import type { Session } from '../plugin/index.js'
import { closeClient, cookieWebSocket, freePort, nextEvent, recordEvents, startServer, type GlueServer } from './helpers/index.js'

// Small, jitter-free backoff keeps the timing assertions exact and the tests fast.
const FAST: GlueClientOptions = { reconnectionDelay: 20, reconnectionDelayMax: 160, randomizationFactor: 0, WebSocket }

for (const raw of [false, true]) {
  test(`connects to the given url and receives text, json and binary frames (${raw ? 'raw' : 'glue.v1'})`, async (t) => {
    const server = await startServer({
      onConnect (session) {
        server.app.sessions.send(session.id, 'hello')
        server.app.sessions.send(session.id, { kind: 'json', n: 1 })
        server.app.sessions.send(session.id, Buffer.from('{"kind":"binary"}'))
      }
    })
    t.teardown(() => server.app.close())
    const client = new GlueClient({ ...FAST, url: server.url, raw })
    t.teardown(() => closeClient(client))
    t.equal(client.state, 'connecting')
    t.equal(client.url, server.url)

    const messages = [
      nextEvent(client, 'message'),
      nextEvent(client, 'message', (e) => e.data !== 'hello' && !(e.data instanceof ArrayBuffer)),
      nextEvent(client, 'message', (e) => e.data instanceof ArrayBuffer)
    ] as const
    await nextEvent(client, 'open')
    t.equal(client.state, 'open')
    t.equal(client.protocol, raw ? '' : 'glue.v1')
    const [text, json, binary] = await Promise.all(messages)
    t.equal(text.data, 'hello')
    t.same(json.data, raw ? '{"kind":"json","n":1}' : { kind: 'json', n: 1 }, raw ? 'JSON arrives as text' : 'JSON arrives as the value')
    t.same(json.json(), { kind: 'json', n: 1 }, 'json() gives the value either way')
    t.ok(binary.data instanceof ArrayBuffer, 'binary frames arrive as ArrayBuffer')
    t.same(binary.json(), { kind: 'binary' })
    t.throws(() => text.json(), SyntaxError)
    t.same([text.seq, json.seq, binary.seq], raw ? [undefined, undefined, undefined] : [1, 2, 3])
    t.equal(client.lastSeq, raw ? 0 : 3)
  })
}

for (const raw of [false, true]) {
  test(`sends strings as text, binary as binary and other values as json (${raw ? 'raw' : 'glue.v1'})`, async (t) => {
    const received: Array<string | Buffer> = []
    let done: () => void
    const all = new Promise<void>((resolve) => { done = resolve })
    const server = await startServer({
      onMessage (_session, data) {
        received.push(data)
        if (received.length === 6) done()
      }
    })
    t.teardown(() => server.app.close())
    const client = new GlueClient({ ...FAST, url: server.url, raw })
    t.teardown(() => closeClient(client))
    await nextEvent(client, 'open')
    t.equal(client.send('text'), true)
    t.equal(client.send(new Uint8Array([1, 2, 3])), true)
    t.equal(client.send({ a: [1, 2] }), true)
    t.equal(client.send(new Uint8Array([4]).buffer), true)
    t.equal(client.send(new Uint8Array([7, 8, 9, 10]).subarray(1, 3)), true)
    t.equal(client.send('{"looks":"like json"}'), true)
    await all
    t.same(received, ['text', Buffer.from([1, 2, 3]), '{"a":[1,2]}', Buffer.from([4]), Buffer.from([8, 9]), '{"looks":"like json"}'])
    t.throws(() => client.send(undefined as unknown as string), TypeError, 'data with no JSON form throws')
  })
}

test('reconnects with exponential backoff after the server restarts on the same port, in the same session', async (t) => {
  const sessions: string[] = []
  const options = { onConnect (session: Session) { sessions.push(session.id) } }
  let server: GlueServer = await startServer(options, await freePort())
  t.teardown(() => server.app.close())
  const { WebSocket: JarWebSocket } = cookieWebSocket()
  const client = new GlueClient({ ...FAST, WebSocket: JarWebSocket, url: server.url })
  t.teardown(() => closeClient(client))
  const events = recordEvents(client)
  await nextEvent(client, 'open')

  const closed = nextEvent(client, 'close')
  const fourthAttempt = nextEvent(client, 'reconnecting', (e) => e.attempt === 4)
  await server.app.close()
  const close = await closed
  t.equal(close.code, 1001, 'the server shutdown arrives as 1001')
  t.equal(close.willReconnect, true)
  await fourthAttempt
  t.equal(client.state, 'reconnecting')

  const reopened = nextEvent(client, 'open')
  server = await startServer(options, server.port)
  await reopened
  t.equal(client.state, 'open')

  const delays = events.filter(([type]) => type === 'reconnecting').map(([, e]) => e)
  t.same(delays, delays.map((_, i) => ({ attempt: i + 1, delay: Math.min(160, 20 * 2 ** i) })),
    'delays double from reconnectionDelay up to reconnectionDelayMax')
  t.ok(delays.length >= 4)
  t.equal(sessions.length, 2)
  t.equal(sessions[1], sessions[0], 'the cookie brings the same session back')
  const states = events.filter(([type]) => type === 'statechange').map(([, e]) => (e as { state: string }).state)
  t.same(states, ['open', 'reconnecting', 'open'], 'stays reconnecting between attempts, never closed')
})

test('applies full jitter within the backoff bound', async (t) => {
  const port = await freePort()
  const client = new GlueClient({ WebSocket, url: `ws://127.0.0.1:${port}/ws`, reconnectionDelay: 40, reconnectionDelayMax: 80, randomizationFactor: 1 })
  t.teardown(() => closeClient(client))
  const attempts = []
  for (let attempt = 1; attempt <= 3; attempt++) attempts.push(await nextEvent(client, 'reconnecting'))
  const bounds = [40, 80, 80]
  attempts.forEach((event, index) => {
    t.equal(event.attempt, index + 1)
    t.ok(event.delay >= 0 && event.delay <= (bounds[index] ?? 0), `delay ${event.delay} is within [0, ${bounds[index]}]`)
  })
})

test('flushes queued messages in order after reconnecting', async (t) => {
  const received: string[] = []
  let flushed: () => void
  const allReceived = new Promise<void>((resolve) => { flushed = resolve })
  const options = {
    onMessage (_session: Session, data: string | Buffer) {
      received.push(String(data))
      if (received.length === 4) flushed()
    }
  }
  let server = await startServer(options, await freePort())
  t.teardown(() => server.app.close())
  const client = new GlueClient({ ...FAST, url: server.url })
  t.teardown(() => closeClient(client))
  await nextEvent(client, 'open')

  const dropped = nextEvent(client, 'reconnecting')
  await server.app.close()
  await dropped
  for (const text of ['one', 'two', 'three']) t.equal(client.send(text), true, `"${text}" is queued`)
  t.equal(client.queued, 3)

  const reopened = nextEvent(client, 'open')
  // A listener that sends on open runs after the queue went out.
  client.on('open', () => { client.send('after open') })
  server = await startServer(options, server.port)
  await reopened
  t.equal(client.queued, 0)
  await allReceived
  t.same(received, ['one', 'two', 'three', 'after open'])
})

test('reports a full queue as an error event and does not queue the message', async (t) => {
  const port = await freePort()
  const client = new GlueClient({ ...FAST, url: `ws://127.0.0.1:${port}/ws`, maxQueue: 2 })
  t.teardown(() => closeClient(client))
  t.equal(client.send('a'), true)
  t.equal(client.send('b'), true)
  const error = nextEvent(client, 'error', (e) => e.code === 'GLUE_QUEUE_FULL')
  t.equal(client.send('c'), false)
  const err = await error
  t.ok(err instanceof GlueClientError)
  t.equal(err.data, 'c', 'the error carries the message that was not queued')
  t.match(err.message, /maxQueue/)
  t.equal(client.queued, 2)
})

test('does not reconnect after close()', async (t) => {
  let connects = 0
  const server = await startServer({ onConnect () { connects++ } })
  t.teardown(() => server.app.close())
  const client = new GlueClient({ ...FAST, url: server.url, reconnectionDelayMax: 20 })
  const events = recordEvents(client)
  await nextEvent(client, 'open')
  const closed = nextEvent(client, 'close')
  client.close(4321, 'bye')
  t.equal(client.state, 'closed', 'closed at once')
  const close = await closed
  t.equal(close.code, 4321)
  t.equal(close.reason, 'bye')
  t.equal(close.willReconnect, false)
  // Proving an absence needs a window: several times the largest backoff delay.
  await sleep(200)
  t.equal(connects, 1)
  t.equal(events.some(([type]) => type === 'reconnecting'), false)

  const error = nextEvent(client, 'error')
  t.equal(client.send('late'), false)
  t.equal((await error).code, 'GLUE_CLOSED', 'send after close() is an error event, not a silent drop')

  const reopened = nextEvent(client, 'open')
  client.connect()
  await reopened
  t.equal(connects, 2, 'connect() opens it again')
  await closeClient(client)
})

test('close() during the backoff cancels the pending attempt', async (t) => {
  const port = await freePort()
  const client = new GlueClient({ ...FAST, url: `ws://127.0.0.1:${port}/ws` })
  const events = recordEvents(client)
  await nextEvent(client, 'reconnecting')
  client.close()
  t.equal(client.state, 'closed')
  await sleep(200)
  t.equal(events.filter(([type]) => type === 'reconnecting').length, 1)
  t.equal(events.filter(([type]) => type === 'close').length, 1)
})

test('does not come back after close code 1008, 3000 or 4000-4099 and reconnects after 4100', async (t) => {
  let sessionId = ''
  const server = await startServer({ onConnect (session) { sessionId = session.id } })
  t.teardown(() => server.app.close())

  for (const code of [3000, 4001, 4099]) {
    const client = new GlueClient({ ...FAST, url: server.url })
    const events = recordEvents(client)
    await nextEvent(client, 'open')
    const closed = nextEvent(client, 'close')
    server.app.sessions.close(sessionId, code, 'go away')
    const close = await closed
    t.equal(close.code, code)
    t.equal(close.reason, 'go away')
    t.equal(close.willReconnect, false, `${code} means do not come back`)
    t.equal(client.state, 'closed')
    await sleep(100)
    t.equal(events.some(([type]) => type === 'reconnecting' || type === 'error'), false)
  }

  const client = new GlueClient({ ...FAST, url: server.url })
  t.teardown(() => closeClient(client))
  await nextEvent(client, 'open')
  const reconnecting = nextEvent(client, 'reconnecting')
  const reopened = nextEvent(client, 'open')
  server.app.sessions.close(sessionId, 4100)
  t.equal((await reconnecting).attempt, 1, '4100 is outside the default range')
  await reopened

  t.equal(GlueClient.isDoNotComeBack(1008), true)
  t.equal(GlueClient.isDoNotComeBack(3000), true)
  t.equal(GlueClient.isDoNotComeBack(1001), false)
})

test('follows a custom doNotComeBack rule', async (t) => {
  let sessionId = ''
  const server = await startServer({ onConnect (session) { sessionId = session.id } })
  t.teardown(() => server.app.close())
  const client = new GlueClient({ ...FAST, url: server.url, doNotComeBack: (code) => code === 4500 })
  t.teardown(() => closeClient(client))
  await nextEvent(client, 'open')

  const reconnecting = nextEvent(client, 'reconnecting')
  const reopened = nextEvent(client, 'open')
  server.app.sessions.close(sessionId, 4001)
  await reconnecting
  await reopened
  t.pass('4001 comes back under the custom rule')

  const closed = nextEvent(client, 'close')
  server.app.sessions.close(sessionId, 4500)
  t.equal((await closed).willReconnect, false)
  t.equal(client.state, 'closed')
})

test('gives up after reconnectionAttempts with a GLUE_RECONNECT_FAILED error', async (t) => {
  const port = await freePort()
  const client = new GlueClient({ ...FAST, url: `ws://127.0.0.1:${port}/ws`, reconnectionAttempts: 2 })
  t.teardown(() => closeClient(client))
  const events = recordEvents(client)
  const failed = await nextEvent(client, 'error', (e) => e.code === 'GLUE_RECONNECT_FAILED')
  t.match(failed.message, /2 reconnection attempts/)
  t.equal(client.state, 'closed')
  t.same(events.filter(([type]) => type === 'reconnecting').map(([, e]) => (e as { attempt: number }).attempt), [1, 2])
  t.ok(events.some(([type, e]) => type === 'error' && (e as GlueClientError).code === 'GLUE_SOCKET_ERROR'), 'each failed socket is reported')
})

test('does not reconnect with reconnection false', async (t) => {
  let sessionId = ''
  const server = await startServer({ onConnect (session) { sessionId = session.id } })
  t.teardown(() => server.app.close())
  const client = new GlueClient({ ...FAST, url: server.url, reconnection: false })
  const events = recordEvents(client)
  await nextEvent(client, 'open')
  const closed = nextEvent(client, 'close')
  server.app.sessions.close(sessionId, 1000)
  t.equal((await closed).willReconnect, false)
  t.equal(client.state, 'closed')
  t.equal(events.some(([type]) => type === 'error' || type === 'reconnecting'), false)
})

test('starts the backoff again once a socket stayed open for stableAfter', async (t) => {
  let sessionId = ''
  const connected: Array<() => void> = []
  const server = await startServer({
    onConnect (session) {
      sessionId = session.id
      connected.shift()?.()
    }
  })
  t.teardown(() => server.app.close())

  async function secondAttempt (stableAfter: number): Promise<number> {
    const client = new GlueClient({ ...FAST, url: server.url, stableAfter })
    const dropTwice = async (): Promise<number> => {
      const attempts: number[] = []
      for (let i = 0; i < 2; i++) {
        await nextEvent(client, 'open')
        // Let the stable timer (0 ms) fire first, when there is one.
        await sleep(10)
        const reconnecting = nextEvent(client, 'reconnecting')
        server.app.sessions.close(sessionId, 4100)
        attempts.push((await reconnecting).attempt)
      }
      return attempts[1] ?? 0
    }
    const attempt = await dropTwice()
    await closeClient(client)
    return attempt
  }
  t.equal(await secondAttempt(60_000), 2, 'a short-lived socket keeps counting')
  t.equal(await secondAttempt(0), 1, 'a stable socket resets the count')
})

test('keeps working when a listener throws, and reports the error', async (t) => {
  const reported: unknown[] = []
  const original = (globalThis as { reportError?: unknown }).reportError
  ;(globalThis as { reportError?: unknown }).reportError = (err: unknown) => { reported.push(err) }
  t.teardown(() => { (globalThis as { reportError?: unknown }).reportError = original })
  const server = await startServer({ onConnect (session) { server.app.sessions.send(session.id, 'x') } })
  t.teardown(() => server.app.close())
  const client = new GlueClient({ ...FAST, url: server.url })
  t.teardown(() => closeClient(client))
  const boom = new Error('listener bug')
  client.on('open', () => { throw boom })
  const message = await nextEvent(client, 'message')
  t.equal(message.data, 'x', 'later listeners and events still run')
  t.same(reported, [boom])
})

/** Resolves with `promise`, or rejects once `ms` passed, naming what did not happen. */
async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`${what} did not happen within ${ms} ms`)) }, ms)
  })
  try {
    return await Promise.race([promise, deadline])
  } finally {
    clearTimeout(timer)
  }
}

test('connect() while reconnecting starts the waiting attempt at once', async (t) => {
  let server = await startServer({}, await freePort())
  t.teardown(() => server.app.close())
  // The scheduled attempt waits a minute, so only an attempt started early can open within the test.
  const client = new GlueClient({ WebSocket, url: server.url, reconnectionDelay: 60_000, randomizationFactor: 0 })
  t.teardown(() => closeClient(client))
  await nextEvent(client, 'open')
  const scheduled = nextEvent(client, 'reconnecting')
  await server.app.close()
  t.same(await scheduled, { attempt: 1, delay: 60_000 }, 'a reconnectionDelay above the default cap is the delay')
  server = await startServer({}, server.port)

  const events = recordEvents(client)
  const opened = nextEvent(client, 'open')
  client.connect()
  t.same(events, [['reconnecting', { attempt: 1, delay: 0 }]], 'connect() announces the same attempt, now')
  await within(opened, 10_000, 'open after connect()')
  t.same(events, [
    ['reconnecting', { attempt: 1, delay: 0 }],
    ['statechange', { state: 'open', previous: 'reconnecting' }],
    ['open', undefined]
  ], 'and the attempt opens without waiting for its delay')
  client.connect()
  t.equal(events.length, 3, 'connect() while open does nothing')
})

test('caps the default backoff at 5000 ms over many attempts, with jitter', async (t) => {
  const port = await freePort()
  // Default delays and full jitter; connect() skips each wait, so the attempts come quickly while
  // each delay is still drawn as the backoff draws it.
  const client = new GlueClient({ WebSocket, url: `ws://127.0.0.1:${port}/ws` })
  t.teardown(() => closeClient(client))
  const delays: number[] = []
  for (let attempt = 1; attempt <= 16; attempt++) {
    const event = await nextEvent(client, 'reconnecting')
    t.equal(event.attempt, attempt, 'an attempt started early still counts once')
    delays.push(event.delay)
    client.connect()
  }
  t.ok(delays.every((delay) => delay >= 0 && delay <= 5000), `every delay is within [0, 5000]: ${delays.join(', ')}`)
})

test('off() removes a listener and connect() is a no-op while not closed', async (t) => {
  const server = await startServer()
  t.teardown(() => server.app.close())
  const client = new GlueClient({ ...FAST, url: server.url, autoConnect: false })
  t.teardown(() => closeClient(client))
  t.equal(client.state, 'closed', 'autoConnect false waits for connect()')
  let opens = 0
  const listener = (): void => { opens++ }
  client.on('open', listener).off('open', listener)
  client.off('close', listener)
  client.connect()
  client.connect()
  t.equal(client.state, 'connecting')
  await nextEvent(client, 'open')
  t.equal(opens, 0)
})

test('reports a websocket that cannot be constructed as an error and stays closed', async (t) => {
  class Refusing {
    constructor () { throw new SyntaxError('refused by the runtime') }
  }
  const client = new GlueClient({ url: 'ws://127.0.0.1:1/ws', WebSocket: Refusing as unknown as typeof WebSocket, autoConnect: false })
  const error = nextEvent(client, 'error')
  client.connect()
  const err = await error
  t.equal(err.code, 'GLUE_SOCKET_ERROR')
  t.match(err.message, /refused by the runtime/)
  t.equal(client.state, 'closed')
})

test('resolves the url and validates its options', async (t) => {
  const base = { WebSocket, autoConnect: false }
  t.equal(new GlueClient({ ...base, url: 'http://example.test:8080/ws' }).url, 'ws://example.test:8080/ws')
  t.equal(new GlueClient({ ...base, url: 'https://example.test/live' }).url, 'wss://example.test/live')
  t.equal(new GlueClient({ ...base, url: 'wss://example.test/x?y=1' }).url, 'wss://example.test/x?y=1')

  const page = globalThis as { location?: { href: string } }
  page.location = { href: 'https://app.example.test/some/page.html' }
  t.teardown(() => { delete page.location })
  t.equal(new GlueClient(base).url, 'wss://app.example.test/ws', 'defaults to the plugin path on the page origin')
  t.equal(new GlueClient({ ...base, path: '/socket' }).url, 'wss://app.example.test/socket')
  page.location = { href: 'http://localhost:9998/' }
  t.equal(new GlueClient(base).url, 'ws://localhost:9998/ws')
  delete page.location

  const invalid = (options: GlueClientOptions, pattern: RegExp): void => {
    t.throws(() => new GlueClient({ ...base, ...options }), { name: 'GlueClientError', code: 'GLUE_INVALID_OPTION', message: pattern })
  }
  invalid({}, /`url`.*"\/ws"/)
  invalid({ url: 'ftp://example.test/ws' }, /`url` to be a ws:, wss:, http: or https: URL, got "ftp:/)
  invalid({ url: 'ws://127.0.0.1/ws', path: 'ws' }, /`path` to be a string starting with "\/", got "ws"/)
  invalid({ url: 'ws://127.0.0.1/ws', reconnectionDelay: -1 }, /`reconnectionDelay` to be a number from 0 to 2147483647, got -1 \(number\)/)
  invalid({ url: 'ws://127.0.0.1/ws', reconnectionDelay: 100, reconnectionDelayMax: 50 }, /`reconnectionDelayMax` to be a number from 100 to 2147483647, got 50/)
  invalid({ url: 'ws://127.0.0.1/ws', stableAfter: 2 ** 31 }, /`stableAfter` to be a number from 0 to 2147483647, got 2147483648/)
  invalid({ url: 'ws://127.0.0.1/ws', randomizationFactor: 1.5 }, /`randomizationFactor` to be a number from 0 to 1, got 1.5/)
  invalid({ url: 'ws://127.0.0.1/ws', reconnectionAttempts: 1.5 }, /`reconnectionAttempts` to be an integer >= 0 or Infinity, got 1.5/)
  invalid({ url: 'ws://127.0.0.1/ws', maxQueue: Infinity }, /`maxQueue` to be an integer >= 0, got Infinity/)
  invalid({ url: 'ws://127.0.0.1/ws', stableAfter: Number.NaN }, /`stableAfter`/)
  invalid({ url: 'ws://127.0.0.1/ws', reconnectionDelay: '5' as unknown as number }, /got "5" \(string\)/)
  invalid({ url: 'ws://127.0.0.1/ws', doNotComeBack: 4000 as unknown as () => boolean }, /`doNotComeBack` to be a function/)
  // Node 22 and 24 have a global WebSocket; hide it to see the error of a runtime without one.
  const globalWebSocket = Object.getOwnPropertyDescriptor(globalThis, 'WebSocket')
  Reflect.deleteProperty(globalThis, 'WebSocket')
  try {
    t.throws(() => new GlueClient({ url: 'ws://127.0.0.1/ws', autoConnect: false }), { code: 'GLUE_INVALID_OPTION', message: /`WebSocket`/ },
      'without a global WebSocket one must be injected')
  } finally {
    if (globalWebSocket !== undefined) Object.defineProperty(globalThis, 'WebSocket', globalWebSocket)
  }
  if (globalWebSocket !== undefined) {
    t.equal(new GlueClient({ url: 'ws://127.0.0.1/ws', autoConnect: false }).state, 'closed', 'with a global WebSocket none is needed')
  }

  const client = new GlueClient({ ...base, url: 'ws://127.0.0.1/ws', reconnectionAttempts: Infinity })
  t.throws(() => client.close(1001), { code: 'GLUE_INVALID_OPTION', message: /`code` to be 1000 or an integer from 3000 to 4999, got 1001/ })
  t.throws(() => client.close(1000, 'x'.repeat(124)), { code: 'GLUE_INVALID_OPTION', message: /`reason` to be at most 123 bytes/ })
})
