import { test } from 'tap'
import { cookiePair, openGlueSocket, openSocket, startApp, until, type GlueSocket, type StartOptions } from './helpers/index.js'

async function startTracked (options: StartOptions = {}) {
  const ids: string[] = []
  const started = await startApp({
    ...options,
    after: async (app) => {
      app.sessions.on('connect', (session) => { if (!ids.includes(session.id)) ids.push(session.id) })
      await options.after?.(app)
    }
  })
  return { ...started, ids }
}

test('publish fans out to every tab of every subscribed session, once, and not to others', async (t) => {
  const { app, wsUrl, ids } = await startTracked()
  t.teardown(() => app.close())
  const sessions = 20
  const clients: GlueSocket[][] = []
  for (let i = 0; i < sessions; i++) {
    const first = await openGlueSocket(wsUrl)
    const second = await openGlueSocket(wsUrl, { headers: { cookie: cookiePair(first.setCookie[0]) } })
    clients.push([first, second])
  }
  t.teardown(() => { for (const pair of clients) for (const client of pair) client.socket.terminate() })
  const subscribed = ids.filter((_, i) => i % 2 === 0)
  for (const id of subscribed) t.ok(app.sessions.subscribe(id, 'news'))
  t.equal(app.sessions.subscriberCount('news'), sessions / 2)
  t.equal(app.sessions.publish('news', { headline: 'one' }), sessions, 'two tabs per subscribed session')
  app.sessions.broadcast('marker')
  for (const [i, pair] of clients.entries()) {
    for (const client of pair) {
      if (i % 2 === 0) t.same(await client.nextEnvelope(), ['t', 1, 'news', { headline: 'one' }])
      t.same(await client.nextEnvelope(), ['m', i % 2 === 0 ? 2 : 1, 'marker'], 'nothing else before the marker; both tabs share the sequence')
    }
  }
})

test('publish skips the session named in except and a raw socket gets raw data', async (t) => {
  const { app, wsUrl, ids } = await startTracked()
  t.teardown(() => app.close())
  const glue = await openGlueSocket(wsUrl)
  const raw = await openSocket(wsUrl)
  const sender = await openGlueSocket(wsUrl)
  t.teardown(() => { glue.socket.terminate(); raw.socket.terminate(); sender.socket.terminate() })
  for (const id of ids) app.sessions.subscribe(id, 'room')
  t.equal(app.sessions.publish('room', 'hello', { except: ids[2] }), 2)
  app.sessions.publish('room', Buffer.from([1, 2]), { except: ids[2] })
  t.same(await glue.nextEnvelope(), ['t', 1, 'room', 'hello'])
  t.same(await glue.nextMessage(), Buffer.from([0x01, 0, 0, 0, 0, 0, 2, 4, ...Buffer.from('room'), 1, 2]), 'binary topic envelope')
  t.equal(await raw.nextMessage(), 'hello', 'raw clients get the data as is')
  t.same(await raw.nextMessage(), Buffer.from([1, 2]))
  app.sessions.send(ids[2] as string, 'marker')
  t.same(await sender.nextEnvelope(), ['m', 1, 'marker'], 'the excepted session got nothing before')
})

test('unsubscribe, topicsOf and membership ending with the session', async (t) => {
  // No grace period: the session ends with its last socket (delivery.test.ts covers the grace).
  const { app, wsUrl, ids } = await startTracked({ glue: { sessionGrace: 0 } })
  t.teardown(() => app.close())
  const a = await openGlueSocket(wsUrl)
  const b = await openGlueSocket(wsUrl)
  t.teardown(() => b.socket.terminate())
  const [idA, idB] = ids as [string, string]
  app.sessions.subscribe(idA, 'x')
  app.sessions.subscribe(idA, 'y')
  app.sessions.subscribe(idB, 'x')
  t.same(app.sessions.topicsOf(idA).sort(), ['x', 'y'])
  t.ok(app.sessions.unsubscribe(idA, 'y'))
  t.notOk(app.sessions.unsubscribe(idA, 'y'), 'not subscribed any more')
  t.same(app.sessions.topicsOf(idA), ['x'])
  a.socket.close()
  await until(() => !app.sessions.has(idA), 'session A ended')
  t.equal(app.sessions.subscriberCount('x'), 1, 'A left the topic with its session')
  t.equal(app.sessions.subscriberCount('y'), 0)
  t.same(app.sessions.topicsOf(idA), [])
  t.notOk(app.sessions.subscribe(idA, 'x'), 'an ended session cannot be subscribed')
  b.socket.close()
  await until(() => app.sessions.size === 0, 'all ended')
  t.equal(app.sessions.subscriberCount('x'), 0)
  t.equal(app.sessions.publish('x', 'nobody'), 0)
})

test('topic arguments are validated with FST_WSGLUE_INVALID_TOPIC', async (t) => {
  const { app } = await startApp()
  t.teardown(() => app.close())
  for (const topic of ['', 42, null, 'x'.repeat(256), 'é'.repeat(128)]) {
    t.throws(() => app.sessions.subscribe('some-id', topic as string), { code: 'FST_WSGLUE_INVALID_TOPIC' })
    t.throws(() => app.sessions.publish(topic as string, 'x'), { code: 'FST_WSGLUE_INVALID_TOPIC' })
    t.throws(() => app.sessions.unsubscribe('some-id', topic as string), { code: 'FST_WSGLUE_INVALID_TOPIC' })
  }
  t.throws(() => app.sessions.publish('ok', 'x', { except: '' }), { code: 'FST_WSGLUE_INVALID_SESSION_ID' })
  t.throws(() => app.sessions.subscribe('', 'ok'), { code: 'FST_WSGLUE_INVALID_SESSION_ID' })
  t.throws(() => app.sessions.publish('ok', undefined), { code: 'FST_WSGLUE_INVALID_DATA' })
  t.equal(app.sessions.publish('x'.repeat(255), 'fine'), 0, '255 bytes is allowed')
})

test('client subscriptions are refused without an authorizer', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  client.sendEnvelope(['s', 1, 'news'])
  t.same(await client.nextEnvelope(), ['r', 1, 0, { code: 'GLUE_SUBSCRIBE_REFUSED', message: 'subscription refused' }])
  t.equal(app.sessions.subscriberCount('news'), 0)
})

test('an async authorizer sees the session and topic and decides', async (t) => {
  const seen: string[] = []
  const { app, wsUrl, ids } = await startTracked({
    glue: {
      async authorizeSubscribe (session, topic) {
        seen.push(`${session.id}:${topic}`)
        await new Promise((resolve) => setImmediate(resolve))
        return topic.startsWith('public:')
      }
    }
  })
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  client.sendEnvelope(['s', 1, 'public:news'])
  client.sendEnvelope(['s', 2, 'private:admin'])
  const replies = [await client.nextEnvelope(), await client.nextEnvelope()].sort((x, y) => (x[1] as number) - (y[1] as number))
  t.same(replies, [['r', 1, 1, 'public:news'], ['r', 2, 0, { code: 'GLUE_SUBSCRIBE_REFUSED', message: 'subscription refused' }]])
  t.same(seen, [`${ids[0]}:public:news`, `${ids[0]}:private:admin`])
  t.same(app.sessions.topicsOf(ids[0] as string), ['public:news'])
  app.sessions.publish('public:news', 'hi')
  t.same(await client.nextEnvelope(), ['t', 1, 'public:news', 'hi'])
  client.sendEnvelope(['u', 3, 'public:news'])
  t.same(await client.nextEnvelope(), ['r', 3, 1, true])
  client.sendEnvelope(['u', 4, 'public:news'])
  t.same(await client.nextEnvelope(), ['r', 4, 1, false])
  t.equal(app.sessions.subscriberCount('public:news'), 0)
})

test('a throwing or rejecting authorizer refuses with GLUE_SUBSCRIBE_FAILED and is logged', async (t) => {
  const { app, wsUrl, logs } = await startApp({
    glue: {
      authorizeSubscribe (_session, topic) {
        if (topic === 'sync') throw new Error('acl down')
        return Promise.reject(new Error('acl timeout'))
      }
    }
  })
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  client.sendEnvelope(['s', 1, 'sync'])
  t.same(await client.nextEnvelope(), ['r', 1, 0, { code: 'GLUE_SUBSCRIBE_FAILED', message: 'subscription check failed' }])
  client.sendEnvelope(['s', 2, 'async'])
  t.same(await client.nextEnvelope(), ['r', 2, 0, { code: 'GLUE_SUBSCRIBE_FAILED', message: 'subscription check failed' }])
  t.match(await logs.waitFor('subscription check failed'), { level: 50, topic: 'sync', err: { message: 'acl down' } })
  t.equal(client.socket.readyState, client.socket.OPEN)
})
