// Messages and requests that wait for the next open socket, in the order they were made.
import type { Outgoing } from './envelope.js'

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

  /** Appends an item; returns false, leaving the queue as it is, when it holds `limit` already. */
  add (item: Outgoing): boolean {
    if (this.#items.length >= this.limit) return false
    this.#items.push(item)
    return true
  }

  /** Removes and returns the oldest item. */
  shift (): Outgoing | undefined {
    return this.#items.shift()
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
