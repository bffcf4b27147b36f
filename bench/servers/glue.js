// This plugin, through its public API only: signed-cookie sessions and app.sessions.
// The session id is assigned by the plugin; the hello message tells the client which one it got.
import { pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { COOKIE_SECRET } from '../lib/protocol.js'

export async function start ({ host, writeDelay, deflate }) {
  // run.js points BENCH_GLUE_ENTRY at its copy of dist/plugin/index.js (the build the run started with).
  const entry = process.env.BENCH_GLUE_ENTRY
  const { default: glue } = await import(entry ? pathToFileURL(entry).href : '../../dist/plugin/index.js')
  const app = Fastify({ logger: false })
  // The plugin registers @fastify/websocket without compression; an app that wants it registers it first.
  if (deflate !== undefined) {
    await app.register(websocket, {
      options: { perMessageDeflate: deflate, handleProtocols: (protocols) => protocols.has('glue.v1') ? 'glue.v1' : false }
    })
  }
  await app.register(glue, {
    ...(writeDelay === undefined ? {} : { writeDelay }),
    path: '/ws',
    cookie: { secret: COOKIE_SECRET },
    heartbeatInterval: 30000,
    // The default per-socket inbound limit closes the echo loop (hundreds of messages/s per socket)
    // with 1008. The raw targets have no limit, so raise it out of reach; the limiter still runs.
    rateLimit: { messagesPerSecond: 1_000_000, burst: 1_000_000 },
    onConnect (session, socket) {
      socket.send(`h|${session.id}`)
    },
    onMessage (session, data, socket) {
      socket.send(data)
    }
  })

  await app.listen({ port: 0, host })
  return {
    port: app.server.address().port,
    broadcast (data) {
      app.sessions.broadcast(data)
    },
    send (sessionId, data) {
      app.sessions.send(sessionId, data)
    },
    async close () {
      await app.close()
    }
  }
}
