import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import { test } from 'tap'
import WebSocket from 'ws'
import glue, { defineGlueOptions } from '../plugin/index.js'
import { GlueClient } from '../plugin/client/glue-client.js'
import { closeClient, openGlueSocket, openSocket, SECRET, startApp, until } from './helpers/index.js'

const Chat = Type.Object({
  text: Type.String({ maxLength: 20 }),
  room: Type.String({ default: 'lobby' })
}, { additionalProperties: false })

const Ask = Type.Object({ op: Type.Union([Type.Literal('time'), Type.Literal('echo')]), value: Type.Optional(Type.Unknown()) })

test('requestSchema: valid data reaches answerRequest, invalid data is answered GLUE_INVALID_DATA with the validator\'s message', async (t) => {
  const seen: unknown[] = []
  const { app, wsUrl, logs } = await startApp({
    glue: defineGlueOptions({
      requestSchema: Ask,
      answerRequest (_session, data) {
        seen.push(data)
        return data.op === 'time' ? 'now' : data.value ?? null
      }
    })
  })
  t.teardown(() => app.close())
  const client = new GlueClient({ url: wsUrl, WebSocket, reconnection: false })
  t.teardown(() => closeClient(client))
  t.equal(await client.request({ op: 'time' }), 'now')
  t.same(await client.request({ op: 'echo', value: [1] }), [1])
  await t.rejects(client.request({ op: 'launch' }), {
    code: 'GLUE_INVALID_DATA',
    message: 'data/op must be equal to constant'
  }, 'the message names the path and the rule, as Fastify does for a body')
  await t.rejects(client.request('time'), { code: 'GLUE_INVALID_DATA', message: 'data must be object' })
  t.same(seen, [{ op: 'time' }, { op: 'echo', value: [1] }], 'answerRequest never saw the invalid data')
  t.equal(app.sessions.stats().invalidMessages, 2)
  const line = await logs.waitFor('invalid request data refused')
  t.match(line, { level: 30, reason: 'data/op must be equal to constant' })
  t.notOk('stack' in line, 'no stack in the log line')
})

test('messageSchema: listeners get the validated value; invalid messages are dropped, logged and counted, and the socket stays open', async (t) => {
  const received: unknown[] = []
  const { app, wsUrl, logs } = await startApp({
    glue: defineGlueOptions({
      messageSchema: Chat,
      onMessage (_session, data) { received.push(data) }
    })
  })
  t.teardown(() => app.close())
  const listened: unknown[] = []
  app.sessions.on('message', (_session, data) => { listened.push(data) })

  const glued = await openGlueSocket(wsUrl)
  const plain = await openSocket(wsUrl)
  t.teardown(() => { glued.socket.terminate(); plain.socket.terminate() })
  glued.sendEnvelope(['m', { text: 'hello' }])
  glued.sendEnvelope(['m', { text: ['not', 'one'] }])
  glued.sendEnvelope(['m', { text: 5, extra: true }])
  glued.sendEnvelope(['m', 'just a string'])
  glued.socket.send(Buffer.from([0, 1, 2]))
  glued.sendEnvelope(['m', { text: 'again', room: 'kitchen' }])
  await until(() => received.length === 3, 'three valid glue.v1 messages')
  plain.socket.send('{"text":"plain"}')
  plain.socket.send('not json')
  plain.socket.send('{"text":"far too long for the schema"}')
  plain.socket.send(Buffer.from('{"text":"binary"}'))
  plain.socket.send('{"text":"last"}')
  await until(() => received.length === 5, 'two valid plain messages')

  t.same(received, [
    { text: 'hello', room: 'lobby' },
    { text: '5', room: 'lobby' },
    { text: 'again', room: 'kitchen' },
    { text: 'plain', room: 'lobby' },
    { text: 'last', room: 'lobby' }
  ], 'parsed values, with Fastify\'s Ajv defaults: defaults filled in, types coerced, extra properties removed')
  t.same(listened, received, 'sessions.on(\'message\') listeners get the same values')
  t.equal(app.sessions.stats().invalidMessages, 6)
  t.equal(app.sessions.stats().messagesIn, 11, 'every message still counts as received')
  t.equal(glued.socket.readyState, WebSocket.OPEN)
  t.equal(plain.socket.readyState, WebSocket.OPEN)
  const reasons = logs.lines.filter((line) => line.msg === 'invalid client message dropped').map((line) => line.reason)
  t.same(reasons, [
    'data/text must be string',
    'data must be object',
    'a binary message cannot match messageSchema',
    'the message is not JSON',
    'data/text must NOT have more than 20 characters',
    'a binary message cannot match messageSchema'
  ])
})

test('schemas may $ref the app\'s shared schemas; a schema the compiler refuses fails the register', async (t) => {
  const seen: unknown[] = []
  const { app, wsUrl } = await startApp({
    before: (app) => { app.addSchema({ $id: 'point', type: 'object', properties: { x: { type: 'number' }, y: { type: 'number' } }, required: ['x', 'y'] }) },
    glue: { requestSchema: { $ref: 'point#' }, answerRequest: (_session, data) => { seen.push(data); return 'ok' } }
  })
  t.teardown(() => app.close())
  const client = new GlueClient({ url: wsUrl, WebSocket, reconnection: false })
  t.teardown(() => closeClient(client))
  t.equal(await client.request({ x: 1, y: 2 }), 'ok')
  await t.rejects(client.request({ x: 1 }), { code: 'GLUE_INVALID_DATA', message: 'data must have required property \'y\'' })
  t.same(seen, [{ x: 1, y: 2 }])

  const broken = Fastify()
  t.teardown(() => broken.close())
  await t.rejects(async () => { await broken.register(glue, { cookie: { secret: SECRET }, messageSchema: { $ref: 'nowhere#' } }) }, {
    code: 'FST_WSGLUE_INVALID_OPTION',
    message: /expected `messageSchema` to be a JSON Schema the app's validator compiler accepts \(can't resolve reference nowhere#/
  })
  const wrong = Fastify()
  t.teardown(() => wrong.close())
  await t.rejects(async () => { await wrong.register(glue, { cookie: { secret: SECRET }, requestSchema: 'point' as never }) }, {
    code: 'FST_WSGLUE_INVALID_OPTION',
    message: 'Invalid option: expected `requestSchema` to be a JSON Schema (an object or a boolean), got `"point"` (string)'
  })
})

test('compiles with the app\'s own validator compiler, once', async (t) => {
  const compiled: Array<{ httpPart?: string, url?: string }> = []
  const { app, wsUrl } = await startApp({
    before: (app) => {
      // A compiler in Fastify's contract that answers { value } or { error }, as type-provider compilers do.
      app.setValidatorCompiler(({ schema, httpPart, url }) => {
        compiled.push({ httpPart, url })
        const max = (schema as { maximum: number }).maximum
        return (data: unknown) => typeof data === 'number' && data <= max
          ? { value: data * 10 }
          : { error: new Error(`expected a number up to ${max}`) }
      })
    },
    glue: { requestSchema: { maximum: 5 }, answerRequest: (_session, data) => data }
  })
  t.teardown(() => app.close())
  const client = new GlueClient({ url: wsUrl, WebSocket, reconnection: false })
  t.teardown(() => closeClient(client))
  t.equal(await client.request(4), 40, 'the handler gets the value the compiler returned')
  await t.rejects(client.request(6), { code: 'GLUE_INVALID_DATA', message: 'expected a number up to 5' })
  t.equal(await client.request(1), 10)
  t.same(compiled, [{ httpPart: 'body', url: '/ws' }], 'compiled once, at register')
})

test('without schemas, messages arrive as text and requests as they came', async (t) => {
  const received: unknown[] = []
  const { app, wsUrl } = await startApp({ glue: { onMessage: (_session, data) => { received.push(data) }, answerRequest: (_session, data) => data } })
  t.teardown(() => app.close())
  const glued = await openGlueSocket(wsUrl)
  t.teardown(() => glued.socket.terminate())
  glued.sendEnvelope(['m', { text: 5 }])
  glued.sendEnvelope(['q', 1, { anything: true }])
  await until(() => received.length === 1 && glued.received.length === 2, 'the message and the reply')
  t.same(received, ['{"text":5}'])
  t.same(JSON.parse(String(glued.received[1])), ['r', 1, 1, { anything: true }])
  t.equal(app.sessions.stats().invalidMessages, 0)
})

test('a validator that answers asynchronously, or false without errors, still refuses the data', async (t) => {
  const received: unknown[] = []
  const { app, wsUrl, logs } = await startApp({
    before: (app) => {
      app.setValidatorCompiler(({ schema }) => {
        const { answer } = schema as { answer: string }
        return () => answer === 'promise' ? Promise.resolve(true) : answer === 'nothing' ? {} : false
      })
    },
    glue: { messageSchema: { answer: 'promise' }, requestSchema: { answer: 'false' }, onMessage: (_session, data) => { received.push(data) }, answerRequest: () => 'never' }
  })
  t.teardown(() => app.close())
  const client = new GlueClient({ url: wsUrl, WebSocket, reconnection: false })
  t.teardown(() => closeClient(client))
  await t.rejects(client.request({}), { code: 'GLUE_INVALID_DATA', message: 'data is invalid' })
  client.send({ any: 'thing' })
  await logs.waitFor('invalid client message dropped')
  t.match(logs.lines.find((line) => line.msg === 'invalid client message dropped'), { reason: 'asynchronous validation is not supported' })
  t.same(received, [])

  const { app: other, wsUrl: otherUrl } = await startApp({
    before: (app) => { app.setValidatorCompiler(() => () => ({})) },
    glue: { messageSchema: {}, onMessage: (_session, data) => { received.push(data) } }
  })
  t.teardown(() => other.close())
  const socket = await openSocket(otherUrl)
  t.teardown(() => socket.socket.terminate())
  socket.socket.send('{"kept":true}')
  await until(() => received.length === 1, 'the message')
  t.same(received, [{ kept: true }], 'a result without error or value passes the data on as it came')
})
