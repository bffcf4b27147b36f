import { test } from 'tap'
import type { WebSocket } from 'ws'
import type { Session } from '../plugin/index.js'
import { cookiePair, openSocket, startApp, until } from './helpers/index.js'

test('option hooks see the session, the socket, the request, the data and the close code', async (t) => {
  const calls: string[] = []
  let connectArgs: { session: Session, socket: WebSocket, url: string } | undefined
  const messages: Array<string | Buffer> = []
  let closeArgs: { id: string, code: number, reason: string, same: boolean } | undefined
  const { app, wsUrl } = await startApp({
    glue: {
      onConnect (session, socket, request) {
        calls.push('connect')
        connectArgs = { session, socket, url: request.url }
      },
      onMessage (session, data, socket) {
        calls.push('message')
        t.equal(session, connectArgs?.session)
        t.equal(socket, connectArgs?.socket)
        messages.push(data)
      },
      onClose (session, socket, code, reason) {
        calls.push('close')
        closeArgs = { id: session.id, code, reason, same: socket === connectArgs?.socket }
      }
    }
  })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  client.socket.send('text frame')
  client.socket.send(Buffer.from([0xff, 0x00]))
  await until(() => messages.length === 2, 'two messages')
  t.equal(messages[0], 'text frame', 'text frames arrive as strings')
  t.ok(Buffer.isBuffer(messages[1]), 'binary frames arrive as Buffers')
  t.same(messages[1], Buffer.from([0xff, 0x00]))
  t.equal(connectArgs?.url, '/ws')
  t.ok(app.sessions.has(connectArgs?.session.id as string))
  client.socket.close(4321, 'tab closed')
  await until(() => closeArgs !== undefined, 'close hook')
  t.same(closeArgs, { id: connectArgs?.session.id, code: 4321, reason: 'tab closed', same: true })
  t.same(calls, ['connect', 'message', 'message', 'close'])
})

test('several plugins listen through app.sessions.on, in order, and off removes one', async (t) => {
  const order: string[] = []
  const second = (): void => { order.push('second') }
  const { app, wsUrl } = await startApp({
    glue: { onMessage: () => { order.push('option') } },
    after: async (app) => {
      await app.register(async function pluginA (child) { child.sessions.on('message', () => { order.push('first') }) })
      app.sessions.on('message', second)
    }
  })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  client.socket.send('one')
  await until(() => order.length === 3, 'three listeners')
  t.same(order, ['option', 'first', 'second'])
  app.sessions.off('message', second)
  client.socket.send('two')
  await until(() => order.length === 5, 'two listeners')
  t.same(order.slice(3), ['option', 'first'])
})

test('a throwing or rejecting message listener is logged and affects neither the socket nor other listeners', async (t) => {
  const got: string[] = []
  const { app, wsUrl, logs } = await startApp({
    glue: { onMessage: () => { throw new Error('sync boom') } },
    after: (app) => {
      app.sessions.on('message', async () => { throw new Error('async boom') })
      app.sessions.on('message', (_session, data) => { got.push(data as string) })
    }
  })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  client.socket.send('first')
  client.socket.send('second')
  await until(() => got.length === 2, 'later listener still runs')
  t.match(await logs.waitFor('session listener failed'), { level: 50, event: 'message', err: { message: 'sync boom' } })
  await until(() => logs.lines.some((line) => (line.err as { message?: string } | undefined)?.message === 'async boom'), 'async error logged')
  t.equal(client.socket.readyState, client.socket.OPEN, 'socket still open')
  const [id] = [...app.sessions].map((session) => session.id)
  app.sessions.send(id as string, 'still delivering')
  t.equal(await client.nextMessage(), 'still delivering')
})

test('a throwing close listener is logged', async (t) => {
  const { app, wsUrl, logs } = await startApp({ glue: { onClose: () => { throw new Error('close boom') } } })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  client.socket.close()
  t.match(await logs.waitFor('session listener failed'), { event: 'close', err: { message: 'close boom' } })
  t.equal(app.sessions.size, 0)
})

test('a throwing or rejecting connect listener closes that socket with 1011 and is logged', async (t) => {
  let mode: 'throw' | 'reject' = 'throw'
  const { app, wsUrl, logs } = await startApp({
    glue: {
      onConnect () {
        if (mode === 'throw') throw new Error('connect boom')
        return Promise.reject(new Error('connect rejected'))
      }
    }
  })
  t.teardown(() => app.close())
  const thrown = await openSocket(wsUrl)
  t.same(await thrown.closed, { code: 1011, reason: 'connect listener failed' })
  t.match(await logs.waitFor('session listener failed'), { event: 'connect', err: { message: 'connect boom' } })
  mode = 'reject'
  const rejected = await openSocket(wsUrl)
  t.same(await rejected.closed, { code: 1011, reason: 'connect listener failed' })
  await until(() => app.sessions.size === 0, 'sessions released')
})

test('messages that arrive while an async connect listener runs are delivered after it, in order', async (t) => {
  const events: string[] = []
  let release: () => void = () => {}
  const { app, wsUrl } = await startApp({
    glue: {
      async onConnect () {
        events.push('connect start')
        await new Promise<void>((resolve) => { release = resolve })
        events.push('connect end')
      },
      onMessage: (_session, data) => { events.push(`message ${String(data)}`) },
      onClose: () => { events.push('close') }
    }
  })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  client.socket.send('1')
  client.socket.send('2')
  client.socket.close()
  await client.closed
  await until(() => events.length === 1, 'connect started')
  release()
  await until(() => events.length === 5, 'all events')
  t.same(events, ['connect start', 'connect end', 'message 1', 'message 2', 'close'])
})

test('drops messages that were waiting on a connect listener that failed', async (t) => {
  const messages: unknown[] = []
  const { app, wsUrl } = await startApp({
    glue: {
      async onConnect () { await new Promise((resolve) => setTimeout(resolve, 20)); throw new Error('no user') },
      onMessage: (_session, data) => { messages.push(data) }
    }
  })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  client.socket.send('early')
  t.equal((await client.closed).code, 1011)
  t.same(messages, [], 'the app never sees messages of a socket it failed to set up')
})

test('two tabs of one session each get their own connect and close', async (t) => {
  const connects: string[] = []
  const closes: string[] = []
  const { app, wsUrl } = await startApp({
    glue: { onConnect: (session) => { connects.push(session.id) }, onClose: (session) => { closes.push(session.id) } }
  })
  t.teardown(() => app.close())
  const a = await openSocket(wsUrl)
  const b = await openSocket(wsUrl, { headers: { cookie: cookiePair(a.setCookie[0]) } })
  t.equal(connects.length, 2)
  t.equal(connects[0], connects[1])
  a.socket.close()
  b.socket.close()
  await until(() => closes.length === 2, 'two closes')
  t.same(closes, connects)
})
