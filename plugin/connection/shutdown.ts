import type { WebSocket } from 'ws'
import { CLOSE_GOING_AWAY, SHUTDOWN_GRACE } from '../constants.js'

/**
 * Closes every socket with 1001 on `app.close()`, waits at most SHUTDOWN_GRACE for the peers to
 * answer, then terminates the rest: a peer that never answers must not hold the shutdown for ws's
 * 30 s close timeout.
 */
export async function closeSockets (sockets: () => Iterable<WebSocket>): Promise<void> {
  const closing: Array<Promise<void>> = []
  for (const socket of sockets()) {
    closing.push(new Promise((resolve) => { socket.once('close', () => resolve()) }))
    socket.close(CLOSE_GOING_AWAY, 'server shutting down')
  }
  if (closing.length === 0) return
  let timer: NodeJS.Timeout | undefined
  const grace = new Promise<void>((resolve) => { timer = setTimeout(resolve, SHUTDOWN_GRACE) })
  await Promise.race([Promise.all(closing), grace])
  clearTimeout(timer)
  for (const socket of sockets()) socket.terminate()
}
