import type { WebSocket } from 'ws'
import { kAlive } from './constants.js'

type Beating = WebSocket & { [kAlive]?: boolean }

/** Tracks liveness of many sockets with a single timer. */
export interface Heartbeat {
  add (socket: WebSocket): void
  delete (socket: WebSocket): void
  stop (): void
}

const OPEN = 1

function markAlive (this: Beating): void {
  this[kAlive] = true
}

/**
 * Pings every socket each `interval` ms and terminates those that did not answer the previous ping.
 * One timer for all sockets: per-socket timers cost memory and wake-ups at scale.
 */
export function createHeartbeat (interval: number): Heartbeat {
  if (interval === 0) return { add () {}, delete () {}, stop () {} }

  const sockets = new Set<Beating>()
  const timer = setInterval(() => {
    for (const socket of sockets) {
      if (socket[kAlive] === false) {
        // terminate() emits 'close' (1006), which runs the close listeners and deletes the socket.
        socket.terminate()
      } else if (socket.readyState === OPEN) {
        socket[kAlive] = false
        socket.ping()
      }
    }
  }, interval)
  timer.unref()

  return {
    add (socket: Beating) {
      socket[kAlive] = true
      socket.on('pong', markAlive)
      sockets.add(socket)
    },
    delete (socket: Beating) {
      sockets.delete(socket)
    },
    stop () {
      clearInterval(timer)
      sockets.clear()
    }
  }
}
