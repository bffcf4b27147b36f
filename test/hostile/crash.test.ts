import { test } from 'tap'
import { createMemoryAdapter, type GlueAdapter } from '../../plugin/index.js'
import { openGlueSocket, openSocket, startApp, startTarget } from '../helpers/index.js'

function nestedArray (depth: number): string {
  return '['.repeat(depth) + ']'.repeat(depth)
}

function nestedObject (depth: number): string {
  return '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)
}

test('deeply nested envelopes close that socket with 1008 and the process keeps serving', async (t) => {
  const target = await startTarget(t)
  // About 10 KB each, far below maxPayload; before the depth bound each one killed the process.
  const frames = [
    `["m",${nestedArray(5000)}]`,
    `["m",${nestedObject(5000)}]`,
    `["q",1,${nestedArray(5000)}]`,
    `["s",1,${nestedArray(5000)}]`,
    nestedArray(5000)
  ]
  for (const frame of frames) {
    const attacker = await openGlueSocket(target.wsUrl)
    attacker.socket.send(frame)
    t.same(await attacker.closed, { code: 1008, reason: 'envelope nested too deeply' }, frame.slice(0, 12))
  }
  t.ok(target.alive(), 'the server process is still running')
  const bystander = await openGlueSocket(target.wsUrl)
  bystander.sendEnvelope(['q', 7, { size: 3 }])
  t.same(await bystander.nextEnvelope(), ['r', 7, 1, 'xxx'], 'and answers others')
  bystander.socket.close()
})

test('nesting up to the documented depth is delivered as usual', async (t) => {
  const got: string[] = []
  const { app, wsUrl } = await startApp({ glue: { onMessage: (_s, data) => { got.push(data as string) } } })
  t.teardown(() => app.close())
  const client = await openGlueSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  // The envelope's own array is one level: 63 more fit.
  client.sendEnvelope(['m', JSON.parse(nestedArray(63))])
  client.sendEnvelope(['m', 'after'])
  while (got.length < 2) await new Promise((resolve) => setTimeout(resolve, 5))
  t.equal(got[0], nestedArray(63))
  client.socket.send(`["m",${nestedArray(64)}]`)
  t.same(await client.closed, { code: 1008, reason: 'envelope nested too deeply' })
})

test('a deeply nested frame from a raw client is handed to onMessage as text, untouched', async (t) => {
  const got: string[] = []
  const { app, wsUrl } = await startApp({ glue: { onMessage: (_s, data) => { got.push(data as string) } } })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  client.socket.send(nestedArray(5000))
  while (got.length < 1) await new Promise((resolve) => setTimeout(resolve, 5))
  t.equal(got[0], nestedArray(5000))
})

/** A memory adapter whose `settled` or `socketOpened` throws: code the plugin calls but does not own. */
function brokenAdapter (broken: 'settled' | 'socketOpened'): GlueAdapter {
  const adapter = createMemoryAdapter()
  return { ...adapter, [broken]: () => { throw new Error(`${broken} is broken`) } }
}

test('an unexpected error while handling a message closes that socket with 1011, logged, and nothing else', async (t) => {
  const { app, wsUrl, logs } = await startApp({ glue: { adapter: brokenAdapter('settled'), authorizeSubscribe: () => true } })
  t.teardown(() => app.close())
  const bystander = await openGlueSocket(wsUrl)
  t.teardown(() => bystander.socket.terminate())
  const client = await openGlueSocket(wsUrl)
  const [, session] = [...app.sessions]
  app.sessions.subscribe(session?.id as string, 'news')
  // A real change reaches the adapter, whose broken settle() throws inside the message listener.
  client.sendEnvelope(['u', 1, 'news'])
  t.same(await client.closed, { code: 1011, reason: 'internal error' })
  const line = await logs.waitFor('websocket handling failed')
  t.equal(line.level, 50, 'logged at error level')
  t.match(line.err, { message: 'settled is broken' })
  t.equal(app.sessions.stats().internalErrors, 1)
  bystander.sendEnvelope(['q', 1, null])
  t.same((await bystander.nextEnvelope()).slice(0, 3), ['r', 1, 0], 'the other socket still works')
})

test('an unexpected error while opening a socket closes it with 1011 instead of leaving it half open', async (t) => {
  const { app, wsUrl, logs } = await startApp({ glue: { adapter: brokenAdapter('socketOpened') } })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.same(await client.closed, { code: 1011, reason: 'internal error' })
  await logs.waitFor('websocket handling failed')
})
