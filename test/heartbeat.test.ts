import { once } from 'node:events'
import { test } from 'tap'
import { openSocket, startApp, until } from './helpers/index.js'

test('terminates a peer that does not answer pings and runs its close listeners', async (t) => {
  const closes: number[] = []
  // Wide enough that the live peer's pong always makes it on a loaded machine.
  const { app, wsUrl } = await startApp({ glue: { heartbeatInterval: 250, onClose: (_s, _socket, code) => { closes.push(code) } } })
  t.teardown(() => app.close())
  const dead = await openSocket(wsUrl, { autoPong: false })
  const alive = await openSocket(wsUrl)
  t.teardown(() => alive.socket.terminate())
  await once(dead.socket, 'ping')
  t.equal((await dead.closed).code, 1006, 'terminated without a close frame')
  await until(() => closes.length > 0, 'close listener ran')
  t.same(closes, [1006], 'the server saw an abnormal closure, for the dead peer only')
  t.equal(alive.socket.readyState, alive.socket.OPEN)
  t.equal(app.sessions.size, 1, 'only the live peer is left')
})

test('keeps a peer that answers pings over many intervals', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { heartbeatInterval: 100 } })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  let pings = 0
  client.socket.on('ping', () => { pings++ })
  await until(() => pings >= 5, 'five pings')
  t.equal(client.socket.readyState, client.socket.OPEN)
  t.equal(app.sessions.size, 1)
})

test('heartbeatInterval 0 sends no pings and terminates nobody', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { heartbeatInterval: 0 } })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl, { autoPong: false })
  t.teardown(() => client.socket.terminate())
  let pinged = false
  client.socket.on('ping', () => { pinged = true })
  // A bounded look at a quiet socket: 30 ticks of the smallest interval used above.
  await new Promise((resolve) => setTimeout(resolve, 600))
  t.notOk(pinged)
  t.equal(client.socket.readyState, client.socket.OPEN)
})

test('uses one timer for all sockets, not one per socket', async (t) => {
  const { app, wsUrl } = await startApp({ glue: { heartbeatInterval: 30_000 } })
  t.teardown(() => app.close())
  const timersBefore = process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length
  const clients = await Promise.all(Array.from({ length: 50 }, () => openSocket(wsUrl)))
  t.teardown(() => { for (const client of clients) client.socket.terminate() })
  const timersAfter = process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length
  t.ok(timersAfter - timersBefore <= 1, `timers grew by ${timersAfter - timersBefore} for 50 sockets`)
})
