import { once } from 'node:events'
import { Readable } from 'node:stream'
import { test } from 'tap'
import { errors } from '../plugin/index.js'
import type { PipeContext } from '../plugin/index.js'
import { MAX_PIPES } from '../plugin/streams/pipes.js'
import { firstSessionId, forgeCookie, openGlueSocket, openSocket, startApp, until, type GlueSocket } from './helpers/index.js'

/** An app with one glue.v1 socket subscribed to `topic`. */
async function startSubscribed (topic = 'feed') {
  const started = await startApp()
  const client = await openGlueSocket(started.wsUrl)
  const sessionId = firstSessionId(started.app)
  started.app.sessions.subscribe(sessionId, topic)
  return { ...started, client, sessionId }
}

async function envelopes (client: GlueSocket, count: number): Promise<unknown[][]> {
  const got: unknown[][] = []
  for (let i = 0; i < count; i++) got.push(await client.nextEnvelope())
  return got
}

test('pipes an async generator into a topic, in order, and ends when the source does', async (t) => {
  const { app, client } = await startSubscribed()
  t.teardown(async () => { client.socket.terminate(); await app.close() })
  async function * source () {
    for (let i = 1; i <= 5; i++) yield { n: i }
  }
  const pipe = app.sessions.pipe(source(), { topic: 'feed' }, { name: 'numbers' })
  t.equal(pipe.name, 'numbers')
  const outcome = await pipe.done
  t.equal(outcome.state, 'ended')
  t.equal(outcome.error, undefined)
  t.match(outcome.stats, { name: 'numbers', state: 'ended', delivered: 5, skipped: 0, invalid: 0, errors: 0, restarts: 0 })
  t.same(await envelopes(client, 5), [1, 2, 3, 4, 5].map((n, i) => ['t', i + 1, 'feed', { n }]))
  t.equal(pipe.state, 'ended')
  t.same(app.sessions.pipes(), [], 'a finished pipe is no longer listed')
})

test('pulls the next item only once the plugin has accepted the previous one', async (t) => {
  const { app, client } = await startSubscribed()
  t.teardown(async () => { client.socket.terminate(); await app.close() })
  const seen: number[] = []
  const pipe = app.sessions.pipe(async function * () {
    for (let i = 0; i < 200; i++) {
      // Before item i is read, items 0..i-1 are handed over: nothing piles up between source and plugin.
      seen.push(pipe.stats().delivered)
      yield i
    }
  }, { topic: 'feed' }, { maxInFlight: 16 })
  await pipe.done
  t.same(seen, Array.from({ length: 200 }, (_, i) => i))
  const got = await envelopes(client, 200)
  t.same(got.map((envelope) => envelope[3]), Array.from({ length: 200 }, (_, i) => i))
})

test('an endless synchronous source leaves the event loop running and stops with its finally', async (t) => {
  const { app, client } = await startSubscribed()
  t.teardown(async () => { client.socket.terminate(); await app.close() })
  let closed = false
  function * endless () {
    try {
      for (let i = 0; ; i++) yield i
    } finally {
      closed = true
    }
  }
  const pipe = app.sessions.pipe(endless(), { topic: 'feed' }, { volatile: true, maxInFlight: 8 })
  // Timers fire while it runs: the pipe yields to the event loop every maxInFlight items.
  await new Promise((resolve) => setTimeout(resolve, 1))
  t.ok(pipe.stats().delivered > 0)
  t.same(app.sessions.pipes().map((stats) => stats.state), ['running'])
  const outcome = await pipe.stop()
  t.equal(outcome.state, 'stopped')
  t.ok(closed, 'the iterator was returned')
  t.same(await client.nextEnvelope(), ['t', 0, 'feed', 0], 'volatile messages carry no sequence number')
})

test('sends to a session, and per item with to(); map and to returning undefined skip the item', async (t) => {
  const { app, client, sessionId } = await startSubscribed('a')
  t.teardown(async () => { client.socket.terminate(); await app.close() })
  const direct = app.sessions.pipe([1, 2], { sessionId }, { map: (n) => n === 1 ? undefined : `direct ${n}` })
  t.match((await direct.done).stats, { delivered: 1, skipped: 1 })
  t.same(await client.nextEnvelope(), ['m', 1, 'direct 2'])
  const routed = app.sessions.pipe([{ room: 'a', text: 'x' }, { room: 'b', text: 'y' }, { room: '', text: 'skip' }],
    { to: (item) => item.room === '' ? undefined : { topic: item.room } }, { map: (item) => item.text })
  t.match((await routed.done).stats, { delivered: 2, skipped: 1 })
  t.same(await client.nextEnvelope(), ['t', 2, 'a', 'x'], 'b has no subscriber here')
})

test('sends to every session of a user', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  const laptop = await openGlueSocket(wsUrl, { headers: { cookie: forgeCookie('A'.repeat(24), { userId: 'ada' }) } })
  const phone = await openGlueSocket(wsUrl, { headers: { cookie: forgeCookie('B'.repeat(24), { userId: 'ada' }) } })
  t.teardown(() => { laptop.socket.terminate(); phone.socket.terminate() })
  const pipe = app.sessions.pipe(['hello ada'], { userId: 'ada' })
  t.match((await pipe.done).stats, { delivered: 1 })
  t.same(await laptop.nextEnvelope(), ['m', 1, 'hello ada'])
  t.same(await phone.nextEnvelope(), ['m', 1, 'hello ada'])
})

test('an item the plugin refuses is dropped, counted and logged, and the pipe goes on', async (t) => {
  const { app, client, logs } = await startSubscribed()
  t.teardown(async () => { client.socket.terminate(); await app.close() })
  const items: unknown[] = [1n, 'ok 1', Symbol('no'), 'ok 2']
  const pipe = app.sessions.pipe(items, { topic: 'feed' }, { name: 'mixed' })
  const badTopic = app.sessions.pipe(['x'], { to: () => ({ topic: '' }) }, { name: 'bad-topic' })
  const badDestination = app.sessions.pipe(['x'], { to: () => ({ room: 'a' }) as never }, { name: 'bad-destination' })
  t.match((await pipe.done).stats, { state: 'ended', delivered: 2, invalid: 2 })
  t.match((await badTopic.done).stats, { delivered: 0, invalid: 1 })
  t.match((await badDestination.done).stats, { delivered: 0, invalid: 1 })
  t.same(await envelopes(client, 2), [['t', 1, 'feed', 'ok 1'], ['t', 2, 'feed', 'ok 2']])
  const dropped = logs.lines.filter((line) => line.msg === 'pipe: item dropped: the plugin refused it')
  t.same(dropped.filter((line) => line.pipe === 'mixed').length, 1, 'one line per second at most, whatever the count')
  t.match(dropped.find((line) => line.pipe === 'mixed'), { level: 40, err: { code: 'FST_WSGLUE_INVALID_DATA' } })
  t.match(dropped.find((line) => line.pipe === 'bad-topic'), { err: { code: 'FST_WSGLUE_INVALID_TOPIC' } })
  t.match(dropped.find((line) => line.pipe === 'bad-destination'), { err: { code: 'FST_WSGLUE_INVALID_PIPE' } })
})

test('a failing factory source is logged, restarted with backoff, and fails after its retries', async (t) => {
  const { app, client, logs } = await startSubscribed()
  t.teardown(async () => { client.socket.terminate(); await app.close() })
  let runs = 0
  const pipe = app.sessions.pipe(async function * () {
    runs++
    yield `run ${runs}`
    throw new Error(`broken ${runs}`)
  }, { topic: 'feed' }, { name: 'flaky', restart: { retries: 2, minDelay: 1, maxDelay: 4 } })
  // Each run delivers one item, so the count of restarts in a row resets: only a run with nothing fails for good.
  await until(() => runs >= 4, 'four runs')
  await pipe.stop()
  t.ok(pipe.stats().restarts >= 3)
  t.ok(pipe.stats().errors >= 3, 'every run ended with an error')
  t.match(await logs.waitFor('pipe: source failed'), { level: 50, pipe: 'flaky', stage: 'source', err: { message: 'broken 1' } })
  t.match(await logs.waitFor('pipe: restarting the source'), { pipe: 'flaky', delay: 1, attempt: 1 })
  t.same((await envelopes(client, 3)).map((envelope) => envelope[3]), ['run 1', 'run 2', 'run 3'])

  let empty = 0
  const failing = app.sessions.pipe(() => {
    empty++
    return (async function * () { throw new Error('nothing works') })()
  }, { topic: 'feed' }, { name: 'dead', restart: { retries: 2, minDelay: 1 } })
  const outcome = await failing.done
  t.equal(outcome.state, 'failed')
  t.equal(outcome.error?.message, 'nothing works')
  t.match(outcome.stats, { errors: 3, restarts: 2 })
  t.equal(empty, 3, 'the first run and two restarts')
  t.match(await logs.waitFor('pipe: failed'), { level: 50, pipe: 'dead' })
})

test('an iterable or restart: false ends the pipe at the first error; so does a factory returning no iterable', async (t) => {
  const { app, client } = await startSubscribed()
  t.teardown(async () => { client.socket.terminate(); await app.close() })
  async function * broken () {
    yield 1
    throw new Error('once')
  }
  const iterable = await app.sessions.pipe(broken(), { topic: 'feed' }).done
  t.match(iterable, { state: 'failed', error: { message: 'once' }, stats: { delivered: 1, errors: 1, restarts: 0 } })
  let calls = 0
  const noRestart = await app.sessions.pipe(() => { calls++; return broken() }, { topic: 'feed' }, { restart: false }).done
  t.match(noRestart, { state: 'failed', stats: { restarts: 0 } })
  t.equal(calls, 1)
  const notIterable = await app.sessions.pipe(() => 42 as never, { topic: 'feed' }, { restart: false }).done
  t.match(notIterable, { state: 'failed', error: { code: 'FST_WSGLUE_INVALID_PIPE' } })
  const throwingFactory = await app.sessions.pipe(() => { throw new Error('no connection') }, { topic: 'feed' }, { restart: false }).done
  t.match(throwingFactory, { state: 'failed', error: { message: 'no connection' } })
})

test('a map that throws restarts the pipe and returns the iterator', async (t) => {
  const { app, client, logs } = await startSubscribed()
  t.teardown(async () => { client.socket.terminate(); await app.close() })
  const returned: number[] = []
  let run = 0
  const pipe = app.sessions.pipe(() => {
    const mine = ++run
    return (async function * () {
      try {
        // The good item comes once: a run that delivers something resets the count of restarts.
        if (mine === 1) yield 'good'
        yield 'poison'
        yield 'never'
      } finally {
        returned.push(mine)
      }
    })()
  }, { topic: 'feed' }, {
    name: 'mapper',
    restart: { retries: 1, minDelay: 1 },
    map: (item) => {
      if (item === 'poison') throw new Error('cannot map')
      return item
    }
  })
  const outcome = await pipe.done
  t.equal(outcome.state, 'failed')
  t.match(outcome.stats, { delivered: 1, errors: 2, restarts: 1 })
  t.same(returned, [1, 2], 'each run returned its iterator')
  t.match(await logs.waitFor('pipe: map, to or delivery failed'), { pipe: 'mapper', stage: 'item', err: { message: 'cannot map' } })
})

test('app.close() stops a pipe blocked on its source: the signal aborts and return() runs', async (t) => {
  const { app, client } = await startSubscribed()
  let signal: AbortSignal | undefined
  let finished = false
  const pipe = app.sessions.pipe(async function * (context: PipeContext) {
    signal = context.signal
    try {
      yield 'first'
      // Waits for an entry that never comes, until the pipe stops.
      await once(context.signal, 'abort')
    } finally {
      finished = true
    }
  }, { topic: 'feed' })
  t.same(await client.nextEnvelope(), ['t', 1, 'feed', 'first'])
  const closed = once(client.socket, 'close')
  await app.close()
  t.equal(signal?.aborted, true)
  t.ok(finished)
  const outcome = await pipe.done
  t.equal(outcome.state, 'stopped')
  t.equal(pipe.state, 'stopped')
  await closed
  t.throws(() => app.sessions.pipe([1], { topic: 'feed' }), errors.FST_WSGLUE_INVALID_PIPE, 'no pipe starts once the app closes')
})

test('stop() does not wait longer than stopTimeout for a source that ignores it', async (t) => {
  const { app, client, logs } = await startSubscribed()
  t.teardown(async () => { client.socket.terminate(); await app.close() })
  const stuck: AsyncIterable<number> = {
    [Symbol.asyncIterator]: () => ({
      next: async () => await new Promise<IteratorResult<number>>(() => {}),
      return: async () => await new Promise<IteratorResult<number>>(() => {})
    })
  }
  const pipe = app.sessions.pipe(stuck, { topic: 'feed' }, { name: 'stuck', stopTimeout: 10 })
  await until(() => pipe.state === 'running', 'running')
  const outcome = await pipe.stop()
  t.equal(outcome.state, 'stopped')
  t.match(await logs.waitFor('pipe: the source did not finish return() within stopTimeout'), { level: 40, pipe: 'stuck', stopTimeout: 10 })
})

test('a Node stream is read as it comes and destroyed when the pipe stops', async (t) => {
  const { app, wsUrl, client, logs } = await startSubscribed()
  t.teardown(async () => { client.socket.terminate(); await app.close() })
  const raw = await openSocket(wsUrl)
  t.teardown(() => raw.socket.terminate())
  const stream = new Readable({ objectMode: true, read () {} })
  const rawSession = [...app.sessions].map((session) => session.id).find((id) => id !== firstSessionId(app)) as string
  const pipe = app.sessions.pipe(stream, { sessionId: rawSession }, { map: (chunk: { text: string }) => chunk.text })
  stream.push({ text: 'one' })
  t.equal(await raw.nextMessage(), 'one')
  stream.push({ text: 'two' })
  t.equal(await raw.nextMessage(), 'two')
  t.equal((await pipe.stop()).state, 'stopped')
  t.ok(stream.destroyed)
  t.notOk(logs.lines.some((line) => /stopTimeout/.test(String(line.msg))), 'the read in progress ended at once')
})

test('rejects a bad source, target or option before starting anything', async (t) => {
  const { app } = await startApp()
  t.teardown(() => app.close())
  const bad: Array<[string, () => unknown, RegExp]> = [
    ['source', () => app.sessions.pipe(42 as never, { topic: 'x' }), /`source`.*got `42` \(number\)/],
    ['a string source', () => app.sessions.pipe('abc' as never, { topic: 'x' }), /`source`/],
    ['target', () => app.sessions.pipe([1], {} as never), /`target`/],
    ['two targets', () => app.sessions.pipe([1], { topic: 'x', sessionId: 'y' } as never), /`target`/],
    ['to', () => app.sessions.pipe([1], { to: 'x' } as never), /`target`/],
    ['options', () => app.sessions.pipe([1], { topic: 'x' }, 'fast' as never), /`options`/],
    ['name', () => app.sessions.pipe([1], { topic: 'x' }, { name: 'n'.repeat(101) }), /`name`/],
    ['map', () => app.sessions.pipe([1], { topic: 'x' }, { map: 1 as never }), /`map`/],
    ['volatile', () => app.sessions.pipe([1], { topic: 'x' }, { volatile: 'yes' as never }), /`volatile`/],
    ['restart', () => app.sessions.pipe([1], { topic: 'x' }, { restart: true as never }), /`restart`/],
    ['retries', () => app.sessions.pipe([1], { topic: 'x' }, { restart: { retries: -1 } }), /`restart.retries`/],
    ['minDelay', () => app.sessions.pipe([1], { topic: 'x' }, { restart: { minDelay: 0 } }), /`restart.minDelay`/],
    ['maxDelay', () => app.sessions.pipe([1], { topic: 'x' }, { restart: { minDelay: 50, maxDelay: 10 } }), /`restart.maxDelay`/],
    ['maxInFlight', () => app.sessions.pipe([1], { topic: 'x' }, { maxInFlight: 10_001 }), /`maxInFlight` to be an integer from 1 to 10000/],
    ['stopTimeout', () => app.sessions.pipe([1], { topic: 'x' }, { stopTimeout: 60_001 }), /`stopTimeout`/]
  ]
  for (const [what, call, message] of bad) t.throws(call, { code: 'FST_WSGLUE_INVALID_PIPE', message }, what)
  t.same(app.sessions.pipes(), [], 'nothing started')
})

test(`at most ${MAX_PIPES} pipes run at once`, async (t) => {
  const { app } = await startApp()
  t.teardown(() => app.close())
  const waiting = async function * (context: PipeContext) { await once(context.signal, 'abort') }
  for (let i = 0; i < MAX_PIPES; i++) app.sessions.pipe(waiting, { topic: 'x' })
  t.throws(() => app.sessions.pipe(waiting, { topic: 'x' }), { code: 'FST_WSGLUE_INVALID_PIPE', message: /1000 pipes are running/ })
  t.equal(app.sessions.pipes().length, MAX_PIPES)
  const [first] = app.sessions.pipes()
  t.equal(first?.name, 'pipe-1', 'default names count up')
})
