// The floor: a raw ws WebSocketServer and a hand-written Map<sessionId, Set<socket>>.
// The session id comes from the `session` query parameter the client generates.
import { createServer } from 'node:http'
import { WebSocketServer } from 'ws'

export async function start ({ host, deflate }) {
  const server = createServer()
  const wss = new WebSocketServer({ server, perMessageDeflate: deflate ?? false })
  const sessions = new Map()

  wss.on('connection', (socket, request) => {
    const sessionId = new URL(request.url, 'http://x').searchParams.get('session')
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

  await new Promise((resolve) => server.listen(0, host, resolve))
  return {
    port: server.address().port,
    broadcast (data) {
      for (const sockets of sessions.values()) for (const socket of sockets) socket.send(data)
    },
    send (sessionId, data) {
      const sockets = sessions.get(sessionId)
      if (sockets !== undefined) for (const socket of sockets) socket.send(data)
    },
    async close () {
      for (const socket of wss.clients) socket.terminate()
      await new Promise((resolve) => wss.close(resolve))
      await new Promise((resolve) => server.close(resolve))
    }
  }
}
