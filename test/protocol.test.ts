import { test } from 'tap'
import { cookiePair, openGlueSocket, openSocket, startApp, until } from './helpers/index.js'

test('the server selects glue.v1 when offered and no subprotocol otherwise', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  const glue = await openGlueSocket(wsUrl)
  const raw = await openSocket(wsUrl)
  const other = await openSocket(wsUrl, {}, ['chat', 'glue.v1'])
  t.teardown(() => { glue.socket.terminate(); raw.socket.terminate(); other.socket.terminate() })
  t.equal(glue.socket.protocol, 'glue.v1')
  t.equal(raw.socket.protocol, '')
  t.equal(other.socket.protocol, 'glue.v1', 'picked among several')
})

test('sends are enveloped for glue.v1 clients and raw for plain clients, in one broadcast', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  const glue = await openGlueSocket(wsUrl)
  const raw = await openSocket(wsUrl)
  t.teardown(() => { glue.socket.terminate(); raw.socket.terminate() })
  app.sessions.broadcast('text')
  app.sessions.broadcast({ n: 1 })
  app.sessions.broadcast(Buffer.from([5, 6]))
  t.same(await glue.nextEnvelope(), ['m', 1, 'text'])
  t.same(await glue.nextEnvelope(), ['m', 2, { n: 1 }])
  t.same(await glue.nextMessage(), Buffer.from([0, 0, 0, 0, 0, 0, 3, 5, 6]), 'type byte, 48-bit sequence, payload')
  t.equal(await raw.nextMessage(), 'text')
  t.equal(await raw.nextMessage(), '{"n":1}')
  t.same(await raw.nextMessage(), Buffer.from([5, 6]))
})

test('every message to a session carries the next sequence number, shared by its tabs', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  const first = await openGlueSocket(wsUrl)
  const second = await openGlueSocket(wsUrl, { headers: { cookie: cookiePair(first.setCookie[0]) } })
  const other = await openGlueSocket(wsUrl)
  t.teardown(() => { first.socket.terminate(); second.socket.terminate(); other.socket.terminate() })
  const [session] = [...app.sessions].filter((entry) => entry.sockets.size === 2)
  const id = session?.id as string
  app.sessions.send(id, 'a')
  app.sessions.subscribe(id, 'news')
  app.sessions.publish('news', 'b')
  app.sessions.broadcast('c')
  app.sessions.send(id, 'x'.repeat(70_000))
  for (const tab of [first, second]) {
    t.same(await tab.nextEnvelope(), ['m', 1, 'a'])
    t.same(await tab.nextEnvelope(), ['t', 2, 'news', 'b'])
    t.same(await tab.nextEnvelope(), ['m', 3, 'c'])
    t.same(await tab.nextEnvelope(), ['m', 4, 'x'.repeat(70_000)], 'large frames too')
  }
  t.same(await other.nextEnvelope(), ['m', 1, 'c'], 'each session counts on its own')
})

test('client message envelopes reach onMessage as strings, JSON text or Buffers', async (t) => {
  const got: Array<string | Buffer> = []
  const { app, wsUrl } = await startApp({ glue: { onMessage: (_s, data) => { got.push(data) } } })
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  client.sendEnvelope(['m', 'ping'])
  client.sendEnvelope(['m', { a: [1, 2] }])
  client.socket.send(Buffer.from([0, 7, 8]))
  await until(() => got.length === 3, 'three messages')
  t.same(got, ['ping', '{"a":[1,2]}', Buffer.from([7, 8])])
})

test('requests are answered by answerRequest, sync or async, with replies matched by id', async (t) => {
  const { app, wsUrl } = await startApp({
    glue: {
      answerRequest (session, data) {
        const op = (data as { op: string }).op
        if (op === 'echo') return data
        if (op === 'slow') return new Promise((resolve) => setTimeout(() => resolve('slow done'), 30))
        if (op === 'whoami') return session.id.length
        return undefined
      }
    }
  })
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  client.sendEnvelope(['q', 1, { op: 'slow' }])
  client.sendEnvelope(['q', 2, { op: 'echo', x: 1 }])
  client.sendEnvelope(['q', 3, { op: 'whoami' }])
  client.sendEnvelope(['q', 4, { op: 'nothing' }])
  t.same(await client.nextEnvelope(), ['r', 2, 1, { op: 'echo', x: 1 }], 'sync replies go first')
  t.same(await client.nextEnvelope(), ['r', 3, 1, 24])
  t.same(await client.nextEnvelope(), ['r', 4, 1, null])
  t.same(await client.nextEnvelope(), ['r', 1, 1, 'slow done'])
})

test('request errors come back with a safe message; only exposed errors keep theirs', async (t) => {
  const { app, wsUrl, logs } = await startApp({
    glue: {
      async answerRequest (_session, data) {
        if (data === 'exposed') throw Object.assign(new Error('quota exceeded'), { expose: true, code: 'QUOTA' })
        if (data === 'exposed-no-code') throw Object.assign(new Error('try later'), { expose: true })
        if (data === 'circular') { const value: Record<string, unknown> = {}; value.self = value; return value }
        throw new Error('database password is hunter2')
      }
    }
  })
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  client.sendEnvelope(['q', 1, 'secret'])
  t.same(await client.nextEnvelope(), ['r', 1, 0, { code: 'GLUE_REQUEST_FAILED', message: 'request failed' }])
  t.notOk(client.received.join('').includes('hunter2'), 'no message or stack leaks')
  t.match(await logs.waitFor('request handler failed'), { level: 50, err: { message: 'database password is hunter2' } })
  client.sendEnvelope(['q', 2, 'exposed'])
  t.same(await client.nextEnvelope(), ['r', 2, 0, { code: 'QUOTA', message: 'quota exceeded' }])
  client.sendEnvelope(['q', 3, 'exposed-no-code'])
  t.same(await client.nextEnvelope(), ['r', 3, 0, { code: 'GLUE_REQUEST_FAILED', message: 'try later' }])
  client.sendEnvelope(['q', 4, 'circular'])
  t.same(await client.nextEnvelope(), ['r', 4, 0, { code: 'GLUE_REQUEST_FAILED', message: 'request failed' }])
  await logs.waitFor('request reply is not serialisable')
})

test('a synchronous throw in answerRequest is answered too', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { answerRequest () { throw new Error('sync') } } })
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  client.sendEnvelope(['q', 9, null])
  t.same(await client.nextEnvelope(), ['r', 9, 0, { code: 'GLUE_REQUEST_FAILED', message: 'request failed' }])
})

test('requests without an answerRequest handler get GLUE_NO_HANDLER', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  client.sendEnvelope(['q', 1, 'anything'])
  t.same(await client.nextEnvelope(), ['r', 1, 0, { code: 'GLUE_NO_HANDLER', message: 'this server answers no requests' }])
})

test('an unknown kind with an id gets GLUE_UNKNOWN_KIND and the socket stays open', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  client.sendEnvelope(['x', 5, 'future'])
  t.same(await client.nextEnvelope(), ['r', 5, 0, { code: 'GLUE_UNKNOWN_KIND', message: 'unknown envelope kind' }])
  client.sendEnvelope(['s', 6, ''])
  t.same(await client.nextEnvelope(), ['r', 6, 0, { code: 'GLUE_BAD_ENVELOPE', message: 'invalid topic' }])
  client.sendEnvelope(['q', 7])
  t.same(await client.nextEnvelope(), ['r', 7, 0, { code: 'GLUE_BAD_ENVELOPE', message: 'request envelope needs an id and data' }])
  t.equal(client.socket.readyState, client.socket.OPEN)
})

test('malformed envelopes close the socket with 1007 or 1008 and a reason', async (t) => {
  const messages: unknown[] = []
  const { app, wsUrl } = await startApp({ glue: { onMessage: (_s, data) => { messages.push(data) } } })
  t.teardown(() => app.close())
  const cases: Array<[string | Buffer, number, string]> = [
    ['not json', 1007, 'envelope is not JSON'],
    ['{"m":1}', 1007, 'envelope is not an array'],
    ['["x"]', 1008, 'unknown envelope kind'],
    ['[]', 1008, 'unknown envelope kind'],
    ['["m"]', 1008, 'message envelope takes 1 field'],
    ['["m", 1, 2]', 1008, 'message envelope takes 1 field'],
    ['["q", "one", {}]', 1008, 'request envelope needs an id and data'],
    ['["q", -1, {}]', 1008, 'request envelope needs an id and data'],
    ['["s", 1.5, "news"]', 1008, 'subscription envelope needs an id and a topic'],
    [Buffer.from([9, 1, 2]), 1008, 'unknown binary envelope'],
    [Buffer.alloc(0), 1008, 'unknown binary envelope']
  ]
  for (const [frame, code, reason] of cases) {
    const client = await openGlueSocket(wsUrl)
    client.socket.send(frame)
    t.same(await client.closed, { code, reason }, String(frame))
  }
  t.same(messages, [], 'nothing reached the app')
  await until(() => app.sessions.size === 0, 'all sockets gone')
})

test('plain clients are unaffected: their text is never parsed as an envelope', async (t) => {
  const got: unknown[] = []
  const { app, wsUrl } = await startApp({ glue: { onMessage: (_s, data) => { got.push(data) } } })
  t.teardown(() => app.close())
  const raw = await openSocket(wsUrl)
  t.teardown(() => raw.socket.terminate())
  raw.socket.send('["q", 1, "looks like an envelope"]')
  raw.socket.send('not json')
  await until(() => got.length === 2, 'both delivered as is')
  t.same(got, ['["q", 1, "looks like an envelope"]', 'not json'])
  t.equal(raw.socket.readyState, raw.socket.OPEN)
})
