import { test } from 'tap'
import { errors } from '../plugin/index.js'
import { cookiePair, openSocket, startApp, until, type OpenedSocket, type StartOptions } from './helpers/index.js'

function caught (fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  return undefined
}

async function twoSessions (wsUrl: string): Promise<{ a1: OpenedSocket, a2: OpenedSocket, b: OpenedSocket }> {
  const a1 = await openSocket(wsUrl)
  const a2 = await openSocket(wsUrl, { headers: { cookie: cookiePair(a1.setCookie[0]) } })
  const b = await openSocket(wsUrl)
  return { a1, a2, b }
}

async function startWithIds (options: StartOptions = {}) {
  const ids: string[] = []
  const started = await startApp({ ...options, after: (app) => { app.sessions.on('connect', (session) => { if (!ids.includes(session.id)) ids.push(session.id) }) } })
  return { ...started, ids }
}

test('send reaches every socket of the session and no other', async (t) => {
  const { app, wsUrl, ids } = await startWithIds()
  t.teardown(() => app.close())
  const { a1, a2, b } = await twoSessions(wsUrl)
  t.teardown(() => { a1.socket.terminate(); a2.socket.terminate(); b.socket.terminate() })
  const [a, bId] = ids as [string, string]
  t.equal(app.sessions.send(a, 'hello a'), 2, 'returns how many sockets')
  t.equal(app.sessions.send(bId, 'hello b'), 1)
  t.equal(await a1.nextMessage(), 'hello a')
  t.equal(await a2.nextMessage(), 'hello a')
  t.equal(await b.nextMessage(), 'hello b')
  t.same(b.received, ['hello b'])
})

test('send frames strings as text, binary as binary and other values as JSON text', async (t) => {
  const { app, wsUrl, ids } = await startWithIds()
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  const id = ids[0] as string
  app.sessions.send(id, 'plain')
  app.sessions.send(id, Buffer.from([1, 2, 3]))
  app.sessions.send(id, new Uint8Array([4, 5]))
  app.sessions.send(id, new Uint16Array([0x0706]).buffer)
  app.sessions.send(id, { type: 'greeting', n: 1 })
  app.sessions.send(id, null)
  app.sessions.send(id, 42)
  t.equal(await client.nextMessage(), 'plain')
  t.same(await client.nextMessage(), Buffer.from([1, 2, 3]))
  t.same(await client.nextMessage(), Buffer.from([4, 5]))
  t.same(await client.nextMessage(), Buffer.from([6, 7]))
  t.equal(await client.nextMessage(), '{"type":"greeting","n":1}')
  t.equal(await client.nextMessage(), 'null')
  t.equal(await client.nextMessage(), '42')
})

test('send to an unknown session returns 0 and does not throw', async (t) => {
  const { app } = await startApp()
  t.teardown(() => app.close())
  t.equal(app.sessions.send('no-such-session', 'x'), 0)
  t.equal(app.sessions.close('no-such-session'), 0)
  t.equal(app.sessions.has('no-such-session'), false)
  t.equal(app.sessions.get('no-such-session'), undefined)
})

test('unserialisable data throws FST_WSGLUE_INVALID_DATA before any socket is touched', async (t) => {
  const { app, wsUrl, ids } = await startWithIds()
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  const id = ids[0] as string
  const circular: Record<string, unknown> = {}
  circular.self = circular
  for (const data of [circular, 10n, undefined, () => 1, Symbol('s')]) {
    t.throws(() => app.sessions.send(id, data), { code: 'FST_WSGLUE_INVALID_DATA' })
    t.throws(() => app.sessions.broadcast(data), { code: 'FST_WSGLUE_INVALID_DATA' })
  }
  t.throws(() => app.sessions.send('unknown', undefined), errors.FST_WSGLUE_INVALID_DATA, 'also for an unknown session')
  t.ok(caught(() => app.sessions.send(id, 10n)) instanceof TypeError, 'a TypeError')
  app.sessions.send(id, 'after')
  t.equal(await client.nextMessage(), 'after', 'nothing was sent before')
})

test('invalid session ids throw FST_WSGLUE_INVALID_SESSION_ID', async (t) => {
  const { app } = await startApp()
  t.teardown(() => app.close())
  for (const id of ['', 42, null, undefined, {}]) {
    t.throws(() => app.sessions.send(id as string, 'x'), { code: 'FST_WSGLUE_INVALID_SESSION_ID' })
    t.throws(() => app.sessions.close(id as string), { code: 'FST_WSGLUE_INVALID_SESSION_ID' })
  }
  t.throws(() => app.sessions.broadcast('x', { except: 7 as unknown as string }), { code: 'FST_WSGLUE_INVALID_SESSION_ID' })
})

test('broadcast reaches every socket of every session, except the one named', async (t) => {
  const { app, wsUrl, ids } = await startWithIds()
  t.teardown(() => app.close())
  const { a1, a2, b } = await twoSessions(wsUrl)
  t.teardown(() => { a1.socket.terminate(); a2.socket.terminate(); b.socket.terminate() })
  t.equal(app.sessions.broadcast({ all: true }), 3)
  t.equal(app.sessions.broadcast('not a', { except: ids[0] }), 1)
  t.equal(await a1.nextMessage(), '{"all":true}')
  t.equal(await a2.nextMessage(), '{"all":true}')
  t.equal(await b.nextMessage(), '{"all":true}')
  t.equal(await b.nextMessage(), 'not a')
  app.sessions.send(ids[0] as string, 'marker')
  t.equal(await a1.nextMessage(), 'marker', 'a1 never got the excluded broadcast')
  t.equal(await a2.nextMessage(), 'marker')
})

test('close closes every socket of the session with a close frame', async (t) => {
  const { app, wsUrl, ids } = await startWithIds()
  t.teardown(() => app.close())
  const { a1, a2, b } = await twoSessions(wsUrl)
  t.teardown(() => b.socket.terminate())
  t.equal(app.sessions.close(ids[0] as string, 4001, 'logged out'), 2)
  t.same(await a1.closed, { code: 4001, reason: 'logged out' })
  t.same(await a2.closed, { code: 4001, reason: 'logged out' })
  await until(() => !app.sessions.has(ids[0] as string), 'session gone')
  t.ok(app.sessions.has(ids[1] as string), 'other session untouched')
  t.equal(app.sessions.close(ids[1] as string), 1)
  t.same(await b.closed, { code: 1000, reason: '' }, 'defaults to 1000')
})

test('close rejects codes and reasons a server may not send, before touching sockets', async (t) => {
  const { app, wsUrl, ids } = await startWithIds()
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  const id = ids[0] as string
  for (const code of [999, 1001, 1005, 1006, 1009, 1011, 2999, 5000, 3000.5, Number.NaN, '4000']) {
    t.throws(() => app.sessions.close(id, code as number), { code: 'FST_WSGLUE_INVALID_CLOSE_CODE' }, `code ${String(code)}`)
  }
  t.ok(caught(() => app.sessions.close(id, 1)) instanceof RangeError, 'a RangeError')
  t.throws(() => app.sessions.close(id, 4000, 'x'.repeat(124)), { code: 'FST_WSGLUE_INVALID_CLOSE_REASON' })
  t.throws(() => app.sessions.close(id, 4000, 'é'.repeat(62)), { code: 'FST_WSGLUE_INVALID_CLOSE_REASON' }, 'counts UTF-8 bytes')
  t.throws(() => app.sessions.close(id, 4000, 42 as unknown as string), { code: 'FST_WSGLUE_INVALID_CLOSE_REASON' })
  t.equal(app.sessions.send(id, 'still open'), 1)
  t.equal(await client.nextMessage(), 'still open')
  t.equal(app.sessions.close(id, 3000, 'x'.repeat(123)), 1, '123 bytes and 3000 are fine')
  t.equal((await client.closed).code, 3000)
})

test('has, size, get and iteration describe sessions with their socket counts', async (t) => {
  const { app, wsUrl, ids } = await startWithIds()
  t.teardown(() => app.close())
  t.equal(app.sessions.size, 0)
  const { a1, a2, b } = await twoSessions(wsUrl)
  t.equal(app.sessions.size, 2)
  const counts = Object.fromEntries([...app.sessions].map((session) => [session.id, session.sockets.size]))
  t.same(counts, { [ids[0] as string]: 2, [ids[1] as string]: 1 })
  a1.socket.close()
  await until(() => app.sessions.get(ids[0] as string)?.sockets.size === 1, 'one tab left')
  t.ok(app.sessions.has(ids[0] as string), 'a session with one open tab stays')
  a2.socket.close()
  b.socket.close()
  await until(() => app.sessions.size === 0, 'all sessions gone')
  t.notOk(app.sessions.has(ids[0] as string))
})

test('on and off validate their arguments', async (t) => {
  const { app } = await startApp()
  t.teardown(() => app.close())
  t.throws(() => app.sessions.on('open' as 'connect', () => {}), { code: 'FST_WSGLUE_INVALID_LISTENER' })
  t.throws(() => app.sessions.on('message', 'nope' as unknown as () => void), { code: 'FST_WSGLUE_INVALID_LISTENER' })
  t.throws(() => app.sessions.off('close', null as unknown as () => void), { code: 'FST_WSGLUE_INVALID_LISTENER' })
  const listener = (): void => {}
  t.equal(app.sessions.on('close', listener).off('close', listener).off('close', listener), app.sessions, 'chainable; removing twice is harmless')
})
