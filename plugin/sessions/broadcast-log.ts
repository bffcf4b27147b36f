import type { StoredMessage } from '../messages/outbound.js'

/** A broadcast as detached sessions see it when they come back. */
export interface LoggedBroadcast {
  /** Its place in the node's order of messages to detached sessions. */
  readonly order: number
  readonly message: StoredMessage
  readonly time: number
  readonly except: string | undefined
}

/**
 * The recent broadcasts, kept once for all detached sessions instead of once per session: a
 * broadcast then costs the same however many sessions are away, and each is numbered for a
 * session only when it comes back. Bounded by count (no outbox keeps more) and by age.
 */
export class BroadcastLog {
  readonly #limit: number
  #entries: LoggedBroadcast[] = []
  /** Index in #entries of the oldest entry kept; the array is compacted once half of it is dropped. */
  #head = 0
  /** Broadcasts logged since the start, kept or not. */
  #total = 0

  constructor (limit: number) {
    this.#limit = limit
  }

  /** How many broadcasts were ever logged: a detached session remembers it to find what came after. */
  get total (): number {
    return this.#total
  }

  push (entry: LoggedBroadcast): void {
    this.#total++
    if (this.#limit === 0) return
    this.#entries.push(entry)
    if (this.#entries.length - this.#head > this.#limit) this.#drop(1)
  }

  /** Broadcasts logged after `total` was `since`, oldest first, and how many of those are gone. */
  since (since: number): { readonly kept: readonly LoggedBroadcast[], readonly dropped: number } {
    const count = this.#total - since
    const available = this.#entries.length - this.#head
    const kept = this.#entries.slice(this.#entries.length - Math.min(count, available))
    return { kept, dropped: count - kept.length }
  }

  /** Drops broadcasts older than `cutoff`. */
  trimBefore (cutoff: number): void {
    let count = 0
    while (this.#head + count < this.#entries.length && (this.#entries[this.#head + count] as LoggedBroadcast).time < cutoff) count++
    if (count > 0) this.#drop(count)
  }

  /** Forgets every entry (nobody is detached); the count goes on. */
  clear (): void {
    this.#entries = []
    this.#head = 0
  }

  #drop (count: number): void {
    this.#head += count
    if (this.#head * 2 >= this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head)
      this.#head = 0
    }
  }
}
