// What users hand-roll: bare Fastify + @fastify/websocket and a Map<sessionId, Set<socket>>.
// The session id comes from the `session` query parameter the client generates.
import Fastify from 'fastify'
import websocket from '@fastify/websocket'

export async function start ({ host, deflate }) {
  const app = Fastify({ logger: false })
  const sessions = new Map()
  await app.register(websocket, { options: { perMessageDeflate: deflate ?? false } })

  app.get('/ws', { websocket: true }, (socket, request) => {
    const sessionId = request.query.session
    let sockets = sessions.get(sessionId)
    if (sockets === undefined) sessions.set(sessionId, (sockets = new Set()))
    sockets.add(socket)
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }))
    socket.on('close', () => {
      sockets.delete(socket)
      if (sockets.size === 0) sessions.delete(sessionId)
    })
    socket.send(`h|${sessionId}`)
  })

  await app.listen({ port: 0, host })
  return {
    port: app.server.address().port,
    broadcast (data) {
      for (const sockets of sessions.values()) for (const socket of sockets) socket.send(data)
    },
    send (sessionId, data) {
      const sockets = sessions.get(sessionId)
      if (sockets !== undefined) for (const socket of sockets) socket.send(data)
    },
    async close () {
      for (const socket of app.websocketServer.clients) socket.terminate()
      await app.close()
    }
  }
}
