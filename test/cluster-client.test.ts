import { createServer, connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { test } from 'tap'
import { GlueClient, type GlueClientOptions } from '../plugin/client/glue-client.js'
import { closeClient, cookieWebSocket, nextEvent, redisSkip, startRedis, startServer, uniquePrefix, until, type GlueServer } from './helpers/index.js'

const FAST: GlueClientOptions = { reconnectionDelay: 20, reconnectionDelayMax: 100, randomizationFactor: 0 }

/** A TCP load balancer in miniature: new connections go to `target`; `cut()` drops every open one. */
async function startBalancer (target: { port: number }): Promise<{ port: number, cut: () => void, close: () => Promise<void> }> {
  const open = new Set<Socket>()
  const server = createServer((downstream) => {
    const upstream = connect(target.port, '127.0.0.1')
    for (const socket of [downstream, upstream]) {
      open.add(socket)
      socket.on('close', () => open.delete(socket))
      socket.on('error', () => { downstream.destroy(); upstream.destroy() })
    }
    downstream.pipe(upstream).pipe(downstream)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: (server.address() as { port: number }).port,
    cut () { for (const socket of open) socket.destroy() },
    async close () {
      for (const socket of open) socket.destroy()
      server.close()
      await once(server, 'close')
    }
  }
}

test('the shipped client follows its session across nodes behind a balancer: every message once, in order', { skip: redisSkip }, async (t) => {
  const redis = await startRedis(t)
  const prefix = uniquePrefix()
  const nodes: GlueServer[] = []
  for (let i = 0; i < 2; i++) nodes.push(await startServer({ redis: { url: redis.url, prefix }, heartbeatInterval: 0 }))
  t.teardown(async () => { await Promise.all(nodes.map(async (node) => await node.app.close())) })
  const [a, b] = nodes as [GlueServer, GlueServer]
  const target = { port: a.port }
  const balancer = await startBalancer(target)
  t.teardown(() => balancer.close())

  const client = new GlueClient({ ...FAST, url: `ws://127.0.0.1:${balancer.port}/ws`, WebSocket: cookieWebSocket().WebSocket })
  t.teardown(() => closeClient(client))
  const numbers: number[] = []
  const gaps: unknown[] = []
  client.on('message', (event) => { numbers.push(event.json() as number) })
  client.on('gap', (event) => { gaps.push(event.missed) })
  await nextEvent(client, 'open')
  const [session] = [...a.app.sessions]
  const sessionId = (session as { id: string }).id

  // Node b sends 1…300, five every 2 ms, while the balancer moves the client a → b → a.
  let next = 1
  const pump = setInterval(() => {
    for (let i = 0; i < 5 && next <= 300; i++) b.app.sessions.send(sessionId, next++)
    if (next > 300) clearInterval(pump)
  }, 2)
  t.teardown(() => clearInterval(pump))
  for (const [after, node] of [[80, b], [180, a]] as const) {
    await until(() => numbers.length >= after, `${after} numbers`, 10000)
    target.port = node.port
    balancer.cut()
    await nextEvent(client, 'open')
    t.ok(node.app.sessions.has(sessionId), `the client came back on node ${node === a ? 'a' : 'b'}`)
  }
  await until(() => numbers.length >= 300, 'all 300 numbers', 10000)
  t.same(numbers, Array.from({ length: 300 }, (_, i) => i + 1), 'each number once, in order, across two moves')
  t.same(gaps, [], 'nothing was reported lost')
})
