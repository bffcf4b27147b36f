import { once } from 'node:events'
import { test, type Test } from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { GlueClient, type GlueClientOptions, type GlueTopicEvent } from '../plugin/client/glue-client.js'
import { closeClient, cookieWebSocket, freePort, nextEvent, onlySession, startServer, until, type GlueServer } from './helpers/index.js'

// Small, jitter-free backoff keeps restarts fast.
const FAST: GlueClientOptions = { reconnectionDelay: 20, reconnectionDelayMax: 160, randomizationFactor: 0, WebSocket }

/** A client of `server` that is open, closed again in teardown. */
async function connect (t: Test, server: GlueServer, options: GlueClientOptions = {}): Promise<GlueClient> {
  const client = new GlueClient({ ...FAST, url: server.url, ...options })
  t.teardown(() => closeClient(client))
  await nextEvent(client, 'open')
  return client
}

/** Resolves with the next message of `topic`. */
function nextTopic (client: GlueClient, topic: string): Promise<GlueTopicEvent> {
  return new Promise((resolve) => {
    const listener = (event: GlueTopicEvent): void => {
      client.offTopic(topic, listener)
      resolve(event)
    }
    client.onTopic(topic, listener)
  })
}

test('subscribes through authorizeSubscribe and gets topic messages on that topic\'s listeners only', async (t) => {
  const asked: string[] = []
  const server = await startServer({
    authorizeSubscribe (_session, topic) {
      asked.push(topic)
      return topic !== 'secret'
    }
  })
  t.teardown(() => server.app.close())
  const client = await connect(t, server)
  const messages: unknown[] = []
  const sport: unknown[] = []
  const removed: unknown[] = []
  client.on('message', (event) => { messages.push(event.data) })
  client.onTopic('sport', (event) => { sport.push(event.data) })
  const removedListener = (event: GlueTopicEvent): void => { removed.push(event.data) }
  client.onTopic('news', removedListener).offTopic('news', removedListener)
  const news = nextTopic(client, 'news')

  t.equal(await client.subscribe('news'), undefined, 'resolves once the server agreed')
  t.same(client.topics, ['news'])
  const sessionId = onlySession(server)
  t.same(server.app.sessions.topicsOf(sessionId), ['news'])
  t.equal(server.app.sessions.publish('sport', 'not subscribed'), 0)
  t.equal(server.app.sessions.publish('news', { headline: 'glue ships' }), 1)
  const event = await news
  t.same(event.data, { headline: 'glue ships' })
  t.same(event.json(), { headline: 'glue ships' })
  t.equal(event.topic, 'news')
  t.equal(event.seq, 1)

  const marker = nextEvent(client, 'message')
  server.app.sessions.send(sessionId, 'marker')
  t.equal((await marker).seq, 2, 'topic messages and messages share the sequence')
  t.same(messages, ['marker'], 'the topic message did not reach the message event')
  t.same(sport, [], 'nor another topic\'s listener')
  t.same(removed, [], 'nor a removed listener')
  t.equal(client.lastSeq, 2)

  await t.rejects(client.subscribe('secret'), { name: 'GlueClientError', code: 'GLUE_SUBSCRIBE_REFUSED', data: 'secret', message: /"secret"/ })
  t.same(client.topics, ['news'], 'a refused topic is not wanted')
  t.same(asked, ['news', 'secret'])
})

test('refuses without an authoriser and reports a throwing or rejecting one', async (t) => {
  const strict = await startServer()
  t.teardown(() => strict.app.close())
  const refused = await connect(t, strict)
  await t.rejects(refused.subscribe('news'), { code: 'GLUE_SUBSCRIBE_REFUSED' }, 'refused by default')
  t.same(strict.app.sessions.topicsOf(onlySession(strict)), [])

  const server = await startServer({
    async authorizeSubscribe (_session, topic) {
      if (topic === 'throws') throw new Error('authoriser bug')
      if (topic === 'rejects') return Promise.reject(new Error('lookup failed'))
      return true
    }
  })
  t.teardown(() => server.app.close())
  const client = await connect(t, server)
  await t.rejects(client.subscribe('throws'), { code: 'GLUE_SUBSCRIBE_FAILED', data: 'throws' })
  await t.rejects(client.subscribe('rejects'), { code: 'GLUE_SUBSCRIBE_FAILED' })
  await t.rejects(client.subscribe(''), { code: 'GLUE_BAD_ENVELOPE' }, 'an invalid topic gets the server\'s error')
  await client.subscribe('async ok')
  t.same(client.topics, ['async ok'])
})

test('unsubscribe stops the topic\'s messages and its restoring', async (t) => {
  const server = await startServer({ authorizeSubscribe: () => true, answerRequest: (_session, data) => data })
  t.teardown(() => server.app.close())
  // The cookie jar brings the same session back after a reconnect, as in a browser.
  const client = await connect(t, server, { WebSocket: cookieWebSocket().WebSocket })
  const news: unknown[] = []
  client.onTopic('news', (event) => { news.push(event.data) })
  await client.subscribe('news')
  t.equal(await client.unsubscribe('news'), true, 'the session was subscribed')
  t.equal(await client.unsubscribe('news'), false, 'and now is not')
  t.same(client.topics, [])
  await t.rejects(client.unsubscribe(''), { code: 'GLUE_BAD_ENVELOPE', data: '' })
  t.equal(server.app.sessions.publish('news', 'gone'), 0)
  t.same(news, [])

  const early = client.subscribe('sport')
  const undo = client.unsubscribe('sport')
  await t.rejects(early, { code: 'GLUE_UNSUBSCRIBED', data: 'sport' }, 'unsubscribe() wins over an unconfirmed subscribe()')
  t.equal(await undo, true, 'the server saw both, in order')
  t.same(server.app.sessions.topicsOf(onlySession(server)), [])

  await client.subscribe('news')
  const sessionId = onlySession(server)
  const dropped = nextEvent(client, 'reconnecting')
  const reopened = nextEvent(client, 'open')
  server.app.sessions.close(sessionId, 4100)
  await dropped
  const offline = client.unsubscribe('news')
  t.same(client.topics, [], 'no longer wanted, at once')
  await reopened
  t.equal(await offline, true, 'sent on the next open: the session kept the topic through its grace period')
  t.same(server.app.sessions.topicsOf(sessionId), [])
  t.equal(server.app.sessions.publish('news', 'gone'), 0)

  await client.subscribe('news')
  const again = nextEvent(client, 'open')
  const inFlight = client.unsubscribe('news')
  // The "u" is written but the server never reads it: the connection dies in this same tick.
  for (const socket of server.app.sessions.get(sessionId)?.sockets ?? []) socket.terminate()
  t.equal(await inFlight, true, 'an unanswered unsubscribe is sent again on the next connection')
  await again
  t.same(server.app.sessions.topicsOf(sessionId), [])

  await closeClient(client)
  await t.rejects(client.unsubscribe('news'), { code: 'GLUE_CLOSED' }, 'a closed client changes nothing')
  await t.rejects(client.subscribe('news'), { code: 'GLUE_CLOSED' })
  t.same(news, [])
})

test('close() rejects an unsubscribe waiting for the connection and still tells the server on connect()', async (t) => {
  const server = await startServer({ authorizeSubscribe: () => true, answerRequest: (_session, data) => data })
  t.teardown(() => server.app.close())
  const client = await connect(t, server, { WebSocket: cookieWebSocket().WebSocket })
  await client.subscribe('news')
  const sessionId = onlySession(server)
  const dropped = nextEvent(client, 'reconnecting')
  server.app.sessions.close(sessionId, 4100)
  await dropped
  const leaving = client.unsubscribe('news')
  client.close()
  await t.rejects(leaving, { code: 'GLUE_CLOSED', data: 'news' })
  t.same(server.app.sessions.topicsOf(sessionId), ['news'], 'the session kept the topic through its grace period')
  const reopened = nextEvent(client, 'open')
  client.connect()
  await reopened
  t.equal(await client.request('sync'), 'sync')
  t.same(server.app.sessions.topicsOf(sessionId), [], 'the unsubscription went out on connect()')
  t.same(client.topics, [])
})

test('restores subscriptions after the server restarts on the same port, and reports a refused restore', async (t) => {
  let allow = true
  const options = { authorizeSubscribe: () => allow, answerRequest: (_session: unknown, data: unknown) => data }
  let server = await startServer(options, await freePort())
  t.teardown(() => server.app.close())
  const client = new GlueClient({ ...FAST, url: server.url })
  t.teardown(() => closeClient(client))
  t.equal(client.state, 'connecting')
  const subscribed = client.subscribe('news')
  await nextEvent(client, 'open')
  await subscribed
  t.pass('a subscribe() before the connection opened is sent on open')

  const restart = async (): Promise<void> => {
    const reopened = nextEvent(client, 'open')
    await server.app.close()
    server = await startServer(options, server.port)
    await reopened
  }
  await restart()
  // The restoring "s" goes out before anything else on the new socket, so a request's reply comes after it.
  t.equal(await client.request('sync'), 'sync')
  t.same(server.app.sessions.topicsOf(onlySession(server)), ['news'], 'the new server session is subscribed again')
  const next = nextTopic(client, 'news')
  server.app.sessions.publish('news', 'after the restart')
  t.equal((await next).data, 'after the restart')

  allow = false
  const refused = nextEvent(client, 'error', (error) => error.code === 'GLUE_SUBSCRIBE_REFUSED')
  await restart()
  const error = await refused
  t.equal(error.data, 'news', 'the error event names the topic')
  t.same(client.topics, [], 'a refused topic is no longer restored')
})

test('close() rejects unconfirmed subscriptions, keeps confirmed ones for connect(), and refuses while closed', async (t) => {
  let release = (_allowed: boolean): void => {}
  const server = await startServer({
    authorizeSubscribe: (_session, topic) => topic !== 'slow' || new Promise<boolean>((resolve) => { release = resolve }),
    answerRequest: (_session, data) => data
  })
  t.teardown(() => { release(true); return server.app.close() })
  const client = await connect(t, server, { WebSocket: cookieWebSocket().WebSocket })
  await client.subscribe('news')
  const sessionId = onlySession(server)
  const slow = client.subscribe('slow')
  const closed = nextEvent(client, 'close')
  client.close()
  await t.rejects(slow, { code: 'GLUE_CLOSED', data: 'slow' })
  t.same(client.topics, ['news'])
  await t.rejects(client.subscribe('later'), { code: 'GLUE_CLOSED' })
  await closed
  release(true)
  await until(() => server.app.sessions.topicsOf(sessionId).includes('slow'), 'the late grant')

  const reopened = nextEvent(client, 'open')
  client.connect()
  await reopened
  t.equal(await client.request('sync'), 'sync')
  t.same(server.app.sessions.topicsOf(sessionId), ['news'], 'the rejected "slow", which the server granted late, is undone')
})

test('requests are answered by answerRequest, sync or async, in any order', async (t) => {
  const server = await startServer({
    answerRequest (_session, data) {
      const { op, value } = (data ?? {}) as { op?: string, value?: unknown }
      if (op === 'time') return 1763787000000
      if (op === 'later') return new Promise((resolve) => setTimeout(() => resolve(value), 30))
      if (op === 'nothing') return undefined
      return data
    }
  })
  t.teardown(() => server.app.close())
  const client = new GlueClient({ ...FAST, url: server.url })
  t.teardown(() => closeClient(client))
  const early = client.request({ op: 'time' })
  t.equal(client.queued, 1, 'a request before the connection opened waits in the queue')
  t.equal(await early, 1763787000000)
  t.same(await client.request({ op: 'echo', list: [1, 'a', null] }), { op: 'echo', list: [1, 'a', null] })
  t.equal(await client.request({ op: 'nothing' }), null, 'no return value replies null')
  t.equal(await client.request('plain'), 'plain')
  const order: string[] = []
  await Promise.all([
    client.request({ op: 'later', value: 'slow' }).then((value) => { order.push(value as string) }),
    client.request<string>('fast').then((value) => { order.push(value) })
  ])
  t.same(order, ['fast', 'slow'], 'replies settle their own request')
  await t.rejects(client.request(undefined), TypeError, 'data with no JSON form rejects')
  await t.rejects(client.request('x', { timeout: -1 }), { code: 'GLUE_INVALID_OPTION', message: /`timeout`/ })
})

test('request errors come back with the exposed code and message, and nothing else leaks', async (t) => {
  const server = await startServer({
    answerRequest (_session, data) {
      if (data === 'exposed') throw Object.assign(new Error('no such order'), { expose: true, code: 'ORDER_NOT_FOUND' })
      if (data === 'exposed-async') return Promise.reject(Object.assign(new Error('try again later'), { expose: true }))
      throw new Error('database password is hunter2')
    }
  })
  t.teardown(() => server.app.close())
  const client = await connect(t, server)
  await t.rejects(client.request('exposed'), { name: 'GlueClientError', code: 'ORDER_NOT_FOUND', message: 'no such order', data: 'exposed' })
  await t.rejects(client.request('exposed-async'), { code: 'GLUE_REQUEST_FAILED', message: 'try again later' })
  const hidden = await client.request('crash').then(() => new Error('resolved'), (err: unknown) => err as Error)
  t.match(hidden, { code: 'GLUE_REQUEST_FAILED', message: 'request failed' })
  t.notMatch(hidden.message, /hunter2/)

  const bare = await startServer()
  t.teardown(() => bare.app.close())
  const other = await connect(t, bare)
  await t.rejects(other.request('anything'), { code: 'GLUE_NO_HANDLER' })
})

test('a request times out with GLUE_TIMEOUT, and its late reply is ignored', async (t) => {
  const hanging: Array<(value: unknown) => void> = []
  const server = await startServer({
    answerRequest: (_session, data) => data === 'hang' ? new Promise((resolve) => { hanging.push(resolve) }) : data
  })
  t.teardown(() => { for (const resolve of hanging) resolve(null); return server.app.close() })
  const client = await connect(t, server, { requestTimeout: 40 })
  await t.rejects(client.request('hang', { timeout: 60 }), { code: 'GLUE_TIMEOUT', message: /60 ms/, data: 'hang' })
  await t.rejects(client.request('hang'), { code: 'GLUE_TIMEOUT', message: /40 ms/ }, 'requestTimeout is the default')
  for (const resolve of hanging.splice(0)) resolve('too late')
  t.equal(await client.request('next'), 'next', 'the late replies changed nothing')
  t.equal(client.state, 'open')
})

test('a request rejects with GLUE_DISCONNECTED when the socket closes before the reply', async (t) => {
  let started = (): void => {}
  const handled = new Promise<void>((resolve) => { started = resolve })
  const server = await startServer({
    answerRequest: (_session, data) => {
      if (data !== 'hang') return data
      started()
      return new Promise(() => {})
    }
  })
  t.teardown(() => server.app.close())
  const client = await connect(t, server)
  const pending = client.request('hang')
  await handled
  const reopened = nextEvent(client, 'open')
  server.app.sessions.close(onlySession(server), 4100)
  await t.rejects(pending, { code: 'GLUE_DISCONNECTED' })
  await reopened
  t.equal(await client.request('again'), 'again', 'the next connection answers')
})

test('requests made while disconnected wait in the queue, count toward maxQueue, and end on timeout or close()', async (t) => {
  const port = await freePort()
  const client = new GlueClient({ ...FAST, url: `ws://127.0.0.1:${port}/ws`, maxQueue: 2 })
  t.teardown(() => closeClient(client))
  const first = client.request('a', { timeout: 60 })
  t.equal(client.send('message'), true)
  t.equal(client.queued, 2)
  await t.rejects(client.request('b'), { code: 'GLUE_QUEUE_FULL', data: 'b' })
  await t.rejects(first, { code: 'GLUE_TIMEOUT' })
  t.equal(client.queued, 1, 'the timed-out request left the queue')
  const second = client.request('c')
  client.close()
  await t.rejects(second, { code: 'GLUE_CLOSED', data: 'c' })
  t.equal(client.queued, 1, 'messages stay queued for connect()')
  await t.rejects(client.request('d'), { code: 'GLUE_CLOSED' })
})

test('raw mode offers no subprotocol: plain frames, and topics and requests reject', async (t) => {
  const protocols: string[] = []
  const server = await startServer({
    authorizeSubscribe: () => true,
    onConnect (session, socket) {
      protocols.push(socket.protocol)
      server.app.sessions.send(session.id, { a: 1 })
    }
  })
  t.teardown(() => server.app.close())
  const client = new GlueClient({ ...FAST, url: server.url, raw: true })
  t.teardown(() => closeClient(client))
  await t.rejects(client.subscribe('news'), { code: 'GLUE_PROTOCOL_UNAVAILABLE', message: /raw option/ })
  const message = nextEvent(client, 'message')
  await nextEvent(client, 'open')
  t.same(protocols, [''])
  t.equal(client.protocol, '')
  const { data, seq } = await message
  t.equal(data, '{"a":1}', 'JSON arrives as text, as for a bare WebSocket')
  t.equal(seq, undefined)
  await t.rejects(client.request('x'), { code: 'GLUE_PROTOCOL_UNAVAILABLE' })
  await t.rejects(client.unsubscribe('news'), { code: 'GLUE_PROTOCOL_UNAVAILABLE' })
  t.equal(client.lastSeq, 0)
})

test('falls back to plain frames when the server selects another subprotocol', async (t) => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (offered) => offered.has('chat') ? 'chat' : false })
  await once(wss, 'listening')
  t.teardown(() => new Promise((resolve) => {
    for (const socket of wss.clients) socket.terminate()
    wss.close(resolve)
  }))
  const offered: string[] = []
  const received: string[] = []
  wss.on('connection', (socket, request) => {
    offered.push(request.headers['sec-websocket-protocol'] ?? '')
    socket.on('message', (data) => { received.push(String(data)) })
    socket.send('hi')
  })
  const { port } = wss.address() as { port: number }
  const client = new GlueClient({ ...FAST, url: `ws://127.0.0.1:${port}/`, protocols: ['chat'] })
  t.teardown(() => closeClient(client))
  const subscribed = client.subscribe('news')
  const asked = client.request('question')
  t.equal(client.send({ a: 1 }), true)
  const message = nextEvent(client, 'message')
  await nextEvent(client, 'open')
  t.same(offered.map((header) => header.replace(/\s/g, '')), ['glue.v1,chat'], 'glue.v1 is offered first')
  t.equal(client.protocol, 'chat')
  await t.rejects(subscribed, { code: 'GLUE_PROTOCOL_UNAVAILABLE', message: /did not select/ })
  await t.rejects(asked, { code: 'GLUE_PROTOCOL_UNAVAILABLE' })
  await t.rejects(client.request('now'), { code: 'GLUE_PROTOCOL_UNAVAILABLE' })
  t.same(client.topics, [])
  t.equal((await message).data, 'hi')
  const echoed = nextEvent(client, 'open')
  client.close()
  client.connect()
  await echoed
  t.same(received, ['{"a":1}'], 'the queued message went out as a plain frame')
})

test('delivers text frames that are not envelopes as plain messages and ignores unknown envelope kinds', async (t) => {
  const server = await startServer({
    onMessage (session, data, socket) {
      if (data === 'ping') socket.send('pong')
      if (data === 'json') socket.send('{"plain":true}')
      if (data === 'array') socket.send('["hello", "world"]')
      if (data === 'controls') {
        socket.send('["z","from a newer server"]')
        socket.send('["y",3]')
        socket.send(Buffer.from([9, 1, 2]))
        socket.send(Buffer.from([0, 1]))
        server.app.sessions.send(session.id, 'after')
      }
    }
  })
  t.teardown(() => server.app.close())
  const client = await connect(t, server)
  const messages: Array<{ data: unknown, seq: number | undefined }> = []
  client.on('message', ({ data, seq }) => { messages.push({ data, seq }) })
  const errors: unknown[] = []
  client.on('error', (error) => { errors.push(error) })

  const pong = nextEvent(client, 'message')
  client.send('ping')
  const { data, seq } = await pong
  t.same({ data, seq }, { data: 'pong', seq: undefined }, 'a plain socket.send() arrives as a message without seq')
  const json = nextEvent(client, 'message')
  client.send('json')
  t.same((await json).json(), { plain: true })
  const array = nextEvent(client, 'message')
  client.send('array')
  t.equal((await array).data, '["hello", "world"]', 'an array without a one-letter kind is no envelope')
  const after = nextEvent(client, 'message')
  client.send('controls')
  t.equal((await after).seq, 1)
  t.same(messages.map((message) => message.data), ['pong', '{"plain":true}', '["hello", "world"]', 'after'],
    'envelopes of unknown kinds and binary frames that are not envelopes were dropped')
  t.same(errors, [])
  t.equal(client.lastSeq, 1)
  t.equal(client.state, 'open')
})

test('binary goes both ways in envelopes, including topic messages', async (t) => {
  const received: Buffer[] = []
  let got = (): void => {}
  const server = await startServer({
    authorizeSubscribe: () => true,
    onMessage (_session, data) {
      received.push(data as Buffer)
      if (received.length === 2) got()
    }
  })
  t.teardown(() => server.app.close())
  const client = await connect(t, server)
  const both = new Promise<void>((resolve) => { got = resolve })
  client.send(new Uint8Array([0, 1, 2]))
  client.send(new Blob([new Uint8Array([3, 4])]))
  await both
  t.same(received, [Buffer.from([0, 1, 2]), Buffer.from([3, 4])], 'the envelope byte is stripped exactly once')

  const sessionId = onlySession(server)
  const message = nextEvent(client, 'message')
  server.app.sessions.send(sessionId, Buffer.from('{"n":5}'))
  const event = await message
  t.ok(event.data instanceof ArrayBuffer)
  t.same(new Uint8Array(event.data as ArrayBuffer), new Uint8Array(Buffer.from('{"n":5}')))
  t.same(event.json(), { n: 5 })
  t.equal(event.seq, 1)

  await client.subscribe('grüße')
  const topic = nextTopic(client, 'grüße')
  server.app.sessions.publish('grüße', new Uint8Array([7, 8, 9]))
  const published = await topic
  t.equal(published.topic, 'grüße', 'a UTF-8 topic name is read by its byte length')
  t.same(new Uint8Array(published.data as ArrayBuffer), new Uint8Array([7, 8, 9]))
  t.equal(published.seq, 2)
  t.equal(client.lastSeq, 2)
})

test('volatile messages are delivered with seq 0 and do not move lastSeq', async (t) => {
  const server = await startServer({ authorizeSubscribe: () => true })
  t.teardown(() => server.app.close())
  const client = await connect(t, server)
  await client.subscribe('cursor')
  const sessionId = onlySession(server)
  const numbered = nextEvent(client, 'message')
  server.app.sessions.send(sessionId, 'numbered')
  t.equal((await numbered).seq, 1)
  const volatile = nextEvent(client, 'message')
  server.app.sessions.send(sessionId, 'fleeting', { volatile: true })
  t.same([(await volatile).data, (await volatile).seq], ['fleeting', 0])
  const topic = nextTopic(client, 'cursor')
  server.app.sessions.publish('cursor', new Uint8Array([1]), { volatile: true })
  t.equal((await topic).seq, 0, 'binary topic messages too')
  t.equal(client.lastSeq, 1)
})

test('speaks the documented client envelopes, with ids increasing per client', async (t) => {
  const sent: unknown[] = []
  class RecordingWebSocket extends WebSocket {
    override send (data: unknown): void {
      sent.push(typeof data === 'string' ? JSON.parse(data) : [...(data as Uint8Array)])
      super.send(data as Buffer)
    }
  }
  const server = await startServer({ authorizeSubscribe: () => true, answerRequest: () => 'ok' })
  t.teardown(() => server.app.close())
  const client = await connect(t, server, { WebSocket: RecordingWebSocket })
  await client.subscribe('a')
  await client.request({ n: 1 })
  await client.unsubscribe('a')
  client.send('text')
  client.send([1, 'two'])
  client.send(new Uint8Array([5, 6]))
  t.same(sent, [['s', 1, 'a'], ['q', 2, { n: 1 }], ['u', 3, 'a'], ['m', 'text'], ['m', [1, 'two']], [0, 5, 6]])
  t.throws(() => new GlueClient({ ...FAST, url: server.url, requestTimeout: -1 }), { code: 'GLUE_INVALID_OPTION', message: /`requestTimeout`/ })
})
