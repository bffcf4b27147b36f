import type { StoredMessage } from './outbound.js'

const INITIAL_CAPACITY = 4

/**
 * The last messages of one session, kept so a reconnecting client can resume. Sequence numbers are
 * consecutive, so a ring of messages and their times is enough: message `seq` sits at
 * `(seq - firstSeq + head) % capacity`. Bounded by count and by age.
 */
export class Outbox {
  #limit: number
  // Starts small and doubles up to the limit: most sessions never hold many messages.
  #messages: Array<StoredMessage | undefined> = new Array<StoredMessage | undefined>(INITIAL_CAPACITY)
  #times: Float64Array = new Float64Array(INITIAL_CAPACITY)
  #head = 0
  #length = 0
  /** Sequence number of the oldest message kept; meaningful when the outbox is not empty. */
  #firstSeq = 1

  constructor (limit: number) {
    this.#limit = limit
  }

  /** How many messages it keeps. */
  get size (): number {
    return this.#length
  }

  /** The kept messages, oldest first. */
  * messages (): IterableIterator<StoredMessage> {
    for (let i = 0; i < this.#length; i++) yield this.#messages[(this.#head + i) % this.#messages.length] as StoredMessage
  }

  /** Forgets every message; the next push starts a new run of sequence numbers. */
  clear (): void {
    while (this.#length > 0) this.#dropOldest()
  }

  /** Sequence number of the oldest message still kept, or `nextSeq` when empty. */
  oldestSeq (nextSeq: number): number {
    return this.#length === 0 ? nextSeq : this.#firstSeq
  }

  /** Keeps message `seq` (always the previous one plus one), dropping the oldest when full. */
  push (seq: number, message: StoredMessage, now: number): void {
    if (this.#length === 0) this.#firstSeq = seq
    if (this.#length === this.#limit) this.#dropOldest()
    else if (this.#length === this.#messages.length) this.#grow()
    const index = (this.#head + this.#length) % this.#messages.length
    this.#messages[index] = message
    this.#times[index] = now
    this.#length++
  }

  /** Drops messages older than `cutoff` (a time from the same clock as push). */
  trimBefore (cutoff: number): void {
    while (this.#length > 0 && (this.#times[this.#head] as number) < cutoff) this.#dropOldest()
  }

  /** Message `seq`, or undefined when it is not kept (trimmed, or not sent yet). */
  get (seq: number): StoredMessage | undefined {
    const offset = seq - this.#firstSeq
    if (offset < 0 || offset >= this.#length) return undefined
    return this.#messages[(this.#head + offset) % this.#messages.length]
  }

  #grow (): void {
    const capacity = Math.min(this.#limit, this.#messages.length * 2)
    const messages = new Array<StoredMessage | undefined>(capacity)
    const times = new Float64Array(capacity)
    for (let i = 0; i < this.#length; i++) {
      const from = (this.#head + i) % this.#messages.length
      messages[i] = this.#messages[from]
      times[i] = this.#times[from] as number
    }
    this.#messages = messages
    this.#times = times
    this.#head = 0
  }

  #dropOldest (): void {
    this.#messages[this.#head] = undefined
    this.#head = (this.#head + 1) % this.#messages.length
    this.#length--
    this.#firstSeq++
  }
}
