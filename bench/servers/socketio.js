// What users pick instead: socket.io 4, websocket transport only, one room per session.
// The session id comes from the `session` handshake query parameter (`sid` is engine.io's own) the client generates.
import { createServer } from 'node:http'
import { Server } from 'socket.io'

export async function start ({ host, deflate }) {
  const server = createServer()
  const io = new Server(server, { transports: ['websocket'], serveClient: false, perMessageDeflate: deflate ?? false })

  io.on('connection', (socket) => {
    const sessionId = socket.handshake.query.session
    socket.join(sessionId)
    socket.on('e', (data) => socket.emit('m', data))
    socket.emit('m', `h|${sessionId}`)
  })

  await new Promise((resolve) => server.listen(0, host, resolve))
  return {
    port: server.address().port,
    broadcast (data) {
      io.emit('m', data)
    },
    send (sessionId, data) {
      io.to(sessionId).emit('m', data)
    },
    async close () {
      io.disconnectSockets(true)
      await new Promise((resolve) => io.close(() => resolve()))
    }
  }
}
