import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { test } from 'tap'
import { openSocket, startApp, until } from './helpers/index.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

test('open sockets do not retain their upgrade request, its Fastify request or its reply', async (t) => {
  const refs: Array<WeakRef<object>> = []
  const { app, wsUrl } = await startApp({
    glue: { onConnect: (_session, _socket, request) => { refs.push(new WeakRef(request), new WeakRef(request.raw)) } }
  })
  t.teardown(() => app.close())
  const clients = await Promise.all(Array.from({ length: 20 }, () => openSocket(wsUrl)))
  t.teardown(() => { for (const client of clients) client.socket.terminate() })
  await until(() => refs.length === 40, 'all connected')
  // Collection of the last references can take a few cycles.
  for (let i = 0; i < 5 && refs.some((ref) => ref.deref() !== undefined); i++) {
    await new Promise((resolve) => setImmediate(resolve))
    gc()
  }
  t.equal(refs.filter((ref) => ref.deref() !== undefined).length, 0, 'every request was collected')
  t.equal(app.sessions.stats().sockets, 20, 'while the sockets stay open')
})
