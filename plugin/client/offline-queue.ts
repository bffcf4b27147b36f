// Messages and requests on their way out: written to the open socket, or queued in order while
// there is none, then written on the next open before anything newer.
import { encodeOutgoing, type Outgoing } from './envelope.js'
import { OPEN, type GlueSocket } from './socket.js'

/** The bounded queue of what was sent while no socket was open: messages (id 0) and requests. */
export class OfflineQueue {
  /** How many items the queue holds at most (the `maxQueue` option). */
  readonly limit: number
  #items: Outgoing[] = []

  constructor (limit: number) {
    this.limit = limit
  }

  /** How many items wait. */
  get length (): number {
    return this.#items.length
  }

  /**
   * Writes an item to `socket` (enveloped when `glue`), or queues it when there is no open socket;
   * returns false, leaving the queue as it is, when it holds `limit` already.
   */
  send (socket: GlueSocket | null, item: Outgoing, glue: boolean): boolean {
    if (socket !== null) socket.send(encodeOutgoing(item, glue) as never)
    else if (this.#items.length >= this.limit) return false
    else this.#items.push(item)
    return true
  }

  /** Writes the queued items to a socket that just opened, oldest first, while it stays open. */
  flush (socket: GlueSocket, glue: boolean): void {
    while (this.#items.length > 0 && socket.readyState === OPEN) {
      socket.send(encodeOutgoing(this.#items.shift() as Outgoing, glue) as never)
    }
  }

  /** Whether request `id` still waits here, so it has not been sent. */
  has (id: number): boolean {
    return this.#items.some(([queued]) => queued === id)
  }

  /** Removes request `id`, for example when it timed out before it was sent. */
  remove (id: number): void {
    this.#items = this.#items.filter(([queued]) => queued !== id)
  }

  /** Removes every request and returns their ids; messages stay queued. */
  takeRequests (): number[] {
    const ids = this.#items.filter(([id]) => id !== 0).map(([id]) => id)
    this.#items = this.#items.filter(([id]) => id === 0)
    return ids
  }
}
