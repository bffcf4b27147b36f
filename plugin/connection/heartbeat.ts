import type { WebSocket } from 'ws'
import { stateOf } from '../sessions/socket-state.js'

/** Tracks liveness of many sockets with a single timer. */
export interface Heartbeat {
  add (socket: WebSocket): void
  delete (socket: WebSocket): void
  stop (): void
}

const OPEN = 1

function markAlive (this: WebSocket): void {
  stateOf(this).alive = true
}

/**
 * Pings every socket each `interval` ms and terminates those that did not answer the previous ping.
 * One timer for all sockets: per-socket timers cost memory and wake-ups at scale.
 */
export function createHeartbeat (interval: number, onError: (err: unknown) => void): Heartbeat {
  if (interval === 0) return { add () {}, delete () {}, stop () {} }

  const sockets = new Set<WebSocket>()
  const timer = setInterval(() => {
    for (const socket of sockets) {
      try {
        const state = stateOf(socket)
        if (!state.alive) {
          // terminate() emits 'close' (1006), which runs the close listeners and deletes the socket.
          socket.terminate()
        } else if (socket.readyState === OPEN) {
          state.alive = false
          socket.ping()
        }
      } catch (err) {
        onError(err)
      }
    }
  }, interval)
  timer.unref()

  return {
    add (socket) {
      stateOf(socket).alive = true
      socket.on('pong', markAlive)
      sockets.add(socket)
    },
    delete (socket) {
      sockets.delete(socket)
    },
    stop () {
      clearInterval(timer)
      sockets.clear()
    }
  }
}
