// When to reconnect: exponential backoff with jitter, counted in attempts since the last stable
// socket, and an early end to the wait when the browser signals that an attempt may succeed now.
import { watchConnectivity } from './connectivity.js'
import type { GlueReconnectingEvent } from './events.js'
import type { ResolvedClientOptions } from './options.js'

/** The reconnection settings of the resolved options. */
export type ReconnectionOptions = Pick<ResolvedClientOptions, 'reconnectionAttempts' | 'reconnectionDelay' | 'reconnectionDelayMax' | 'randomizationFactor' | 'stableAfter'>

/** The reconnection schedule: the attempt count, the timer of the next attempt, and the timer that resets the count. */
export class Reconnection {
  readonly #options: ReconnectionOptions
  readonly #retry: () => void
  readonly #announce: (event: GlueReconnectingEvent) => void
  #attempt = 0
  #retryTimer: ReturnType<typeof setTimeout> | undefined
  #stableTimer: ReturnType<typeof setTimeout> | undefined
  #unwatch: (() => void) | undefined

  /** `announce` hears of each attempt before it starts; `retry` starts it. */
  constructor (options: ReconnectionOptions, announce: (event: GlueReconnectingEvent) => void, retry: () => void) {
    this.#options = options
    this.#announce = announce
    this.#retry = retry
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

  /** Schedules the next attempt after its delay, and announces it. */
  schedule (): void {
    const { reconnectionDelay, reconnectionDelayMax, randomizationFactor } = this.#options
    const base = Math.min(reconnectionDelayMax, reconnectionDelay * 2 ** this.#attempt)
    const delay = Math.round(base * (1 - randomizationFactor * Math.random()))
    this.#attempt += 1
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined
      this.#retry()
    }, delay)
    this.#announce({ attempt: this.#attempt, delay })
  }

  /**
   * Ends the wait of the scheduled attempt, if one waits: announces it again with delay 0 and starts
   * it. The count is unchanged: if this attempt fails, the next one waits as it would have.
   */
  retryNow (): void {
    if (this.#retryTimer === undefined) return
    clearTimeout(this.#retryTimer)
    this.#retryTimer = undefined
    this.#announce({ attempt: this.#attempt, delay: 0 })
    this.#retry()
  }

  /** Retries at once when the browser comes online or the page becomes visible, until `unwatch()`. */
  watch (): void {
    this.#unwatch ??= watchConnectivity(() => { this.retryNow() })
  }

  /** Removes the browser listeners of `watch()`. */
  unwatch (): void {
    this.#unwatch?.()
    this.#unwatch = undefined
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
