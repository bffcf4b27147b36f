// Calls that wait for the server's reply envelope, by id: requests, subscribes and unsubscribes.
import { DISCONNECTED, type Failure } from './errors.js'

/** Settles what waits for reply `id`: `failure` null means success with `value`. */
export type Settle = (failure: Failure | null, value?: unknown) => void

/** The ids the client gives its calls, and what settles each call when its reply (or its failure) comes. */
export class Replies {
  #lastId = 0
  #pending = new Map<number, Settle>()

  /** A new call id, unique for the life of the client. */
  nextId (): number {
    return ++this.#lastId
  }

  /** Registers what settles call `id`. */
  wait (id: number, settle: Settle): void {
    this.#pending.set(id, settle)
  }

  /** Registers what settles request `id`, and fails it with `GLUE_TIMEOUT` after `timeout` ms, once `onTimeout` ran. */
  waitAtMost (id: number, timeout: number, onTimeout: () => void, settle: Settle): void {
    const timer = setTimeout(() => {
      onTimeout()
      this.settle(id, { code: 'GLUE_TIMEOUT', message: `No reply within ${timeout} ms` })
    }, timeout)
    this.#pending.set(id, (failure, value) => {
      clearTimeout(timer)
      settle(failure, value)
    })
  }

  /** Settles call `id` once; an unknown id (a late or forged reply) does nothing. */
  settle (id: unknown, failure: Failure | null, value?: unknown): void {
    const settle = this.#pending.get(id as number)
    if (settle === undefined) return
    this.#pending.delete(id as number)
    settle(failure, value)
  }

  /** Fails with `GLUE_DISCONNECTED` every call that went out on the socket that closed. */
  disconnect (stillQueued: (id: number) => boolean): void {
    for (const id of this.#pending.keys()) if (!stillQueued(id)) this.settle(id, DISCONNECTED)
  }
}
