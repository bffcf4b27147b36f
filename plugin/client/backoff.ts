// When to reconnect: exponential backoff with jitter, counted in attempts since the last stable socket.
import type { GlueReconnectingEvent } from './events.js'
import type { ResolvedClientOptions } from './options.js'

/** The backoff settings of the resolved options. */
export type BackoffOptions = Pick<ResolvedClientOptions, 'reconnectionAttempts' | 'reconnectionDelay' | 'reconnectionDelayMax' | 'randomizationFactor' | 'stableAfter'>

/** The reconnection schedule: the attempt count, the timer of the next attempt, and the timer that resets the count. */
export class Backoff {
  readonly #options: BackoffOptions
  #attempt = 0
  #retryTimer: ReturnType<typeof setTimeout> | undefined
  #stableTimer: ReturnType<typeof setTimeout> | undefined

  constructor (options: BackoffOptions) {
    this.#options = options
  }

  /** How many attempts were scheduled since the count last started again. */
  get attempt (): number {
    return this.#attempt
  }

  /** Whether `reconnectionAttempts` allows another attempt. */
  get canRetry (): boolean {
    return this.#attempt < this.#options.reconnectionAttempts
  }

  /** Starts the count again, for a connection the caller asked for. */
  reset (): void {
    this.#attempt = 0
  }

  /** Waits for the next delay, then calls `retry`; returns the attempt and its delay. */
  schedule (retry: () => void): GlueReconnectingEvent {
    const { reconnectionDelay, reconnectionDelayMax, randomizationFactor } = this.#options
    const base = Math.min(reconnectionDelayMax, reconnectionDelay * 2 ** this.#attempt)
    const delay = Math.round(base * (1 - randomizationFactor * Math.random()))
    this.#attempt += 1
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined
      retry()
    }, delay)
    return { attempt: this.#attempt, delay }
  }

  /** A socket opened: once it stays open for `stableAfter`, the count starts again. */
  opened (): void {
    this.#stableTimer = setTimeout(() => { this.#attempt = 0 }, this.#options.stableAfter)
  }

  /** The socket closed before it was stable: the count goes on. */
  dropped (): void {
    clearTimeout(this.#stableTimer)
  }

  /** Cancels the pending attempt and the stable timer. */
  stop (): void {
    clearTimeout(this.#retryTimer)
    clearTimeout(this.#stableTimer)
    this.#retryTimer = undefined
    this.#stableTimer = undefined
  }
}
