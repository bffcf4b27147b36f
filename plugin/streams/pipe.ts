import { setImmediate as nextTurn } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import { describe, FST_WSGLUE_INVALID_PIPE } from '../errors.js'
import { isPipeSource, type PipeContext, type PipeDestination, type PipeSource, type PipeTarget, type ResolvedPipeOptions } from './pipe-options.js'

/** Where a pipe stands: reading, waiting to restart after an error, or finished for one of three reasons. */
export type PipeState = 'running' | 'restarting' | 'ended' | 'stopped' | 'failed'

/** A pipe's counters, from `pipe.stats()` and `sessions.pipes()`. */
export interface PipeStats {
  readonly name: string
  readonly state: PipeState
  /** Items handed to the plugin. */
  readonly delivered: number
  /** Items `map` or `to` skipped by returning undefined. */
  readonly skipped: number
  /** Items the plugin refused (unserialisable data, an invalid topic, session id, user id or destination): logged and dropped. */
  readonly invalid: number
  /** Errors of the source or `map`; each one ended a run of the source. */
  readonly errors: number
  /** Times the source was opened again after an error. */
  readonly restarts: number
}

/** How a pipe finished, from `pipe.done` and `pipe.stop()`. */
export interface PipeOutcome {
  /** `ended`: the source had no more items; `stopped`: `stop()` or `app.close()`; `failed`: an error with no restart left. */
  readonly state: 'ended' | 'stopped' | 'failed'
  /** The error that made the pipe fail. */
  readonly error: Error | undefined
  readonly stats: PipeStats
}

/** A running pipe, from `sessions.pipe()`. */
export interface Pipe {
  readonly name: string
  readonly state: PipeState
  /** A snapshot of its counters. */
  stats (): PipeStats
  /** Stops reading (the source's signal aborts, its iterator's `return()` runs) and resolves once it has. Never rejects. */
  stop (): Promise<PipeOutcome>
  /** Resolves once the pipe has finished, for whatever reason. Never rejects. */
  readonly done: Promise<PipeOutcome>
}

/** What a pipe needs from the plugin. */
export interface PipeHost {
  /**
   * Hands one item's data to `app.sessions`.
   * @throws what `publish`/`send`/`sendToUser` throw, FST_WSGLUE_INVALID_PIPE for a bad destination
   */
  deliver (destination: PipeDestination, data: unknown, volatile: boolean): void
  /** Resolves once every message handed over so far is accepted; undefined when nothing is pending. */
  settled (): Promise<void> | undefined
  /** Messages the adapter failed to deliver outright so far (never decreases). */
  undelivered (): number
  /** Hears each count a pipe makes, for the node's totals (`stats()`): pipes come and go, totals stay. */
  counted (count: PipeCount): void
  readonly log: FastifyBaseLogger
}

/** The counts of `PipeStats`. */
export type PipeCount = 'delivered' | 'skipped' | 'invalid' | 'errors' | 'restarts'

const STOPPED = Symbol('stopped')
/** Errors that say one item cannot be sent: the item is dropped and the pipe goes on. */
const INVALID_ITEM_CODES = new Set([
  'FST_WSGLUE_INVALID_DATA',
  'FST_WSGLUE_INVALID_TOPIC',
  'FST_WSGLUE_INVALID_SESSION_ID',
  'FST_WSGLUE_INVALID_USER_ID',
  'FST_WSGLUE_INVALID_PIPE'
])
/** At most one log line per this many ms about invalid items, so a stream of bad entries cannot flood the log. */
const INVALID_LOG_INTERVAL = 1000

function isInvalidItem (err: unknown): boolean {
  return INVALID_ITEM_CODES.has((err as { code?: unknown } | null)?.code as string)
}

function asError (err: unknown): Error {
  return err instanceof Error ? err : new Error(`non-error thrown: ${describe(err)}`)
}

/** Reads a source item by item into `app.sessions`, restarting it after errors per its policy. */
export class RunningPipe implements Pipe {
  readonly name: string
  readonly done: Promise<PipeOutcome>
  readonly #source: PipeSource<unknown>
  readonly #target: PipeTarget<unknown>
  readonly #options: ResolvedPipeOptions
  readonly #host: PipeHost
  readonly #abort = new AbortController()
  readonly #stopped: Promise<typeof STOPPED>
  readonly #context: PipeContext
  #state: PipeState = 'running'
  readonly #counts = { delivered: 0, skipped: 0, invalid: 0, errors: 0, restarts: 0 }
  /** The adapter's undelivered count when this pipe last confirmed acceptance. */
  #undeliveredSeen: number
  #invalidLoggedAt = -Infinity
  #invalidUnlogged = 0

  constructor (source: PipeSource<unknown>, target: PipeTarget<unknown>, options: ResolvedPipeOptions, host: PipeHost) {
    this.name = options.name
    this.#source = source
    this.#target = target
    this.#options = options
    this.#host = host
    this.#undeliveredSeen = host.undelivered()
    const signal = this.#abort.signal
    this.#stopped = new Promise((resolve) => { signal.addEventListener('abort', () => { resolve(STOPPED) }, { once: true }) })
    this.#context = {
      signal,
      accepted: async () => {
        await host.settled()
        // A message the adapter could not deliver may be one of ours: the source must not acknowledge.
        const undelivered = host.undelivered()
        const failed = undelivered - this.#undeliveredSeen
        if (failed === 0) return
        this.#undeliveredSeen = undelivered
        throw new Error(`the adapter failed to deliver ${failed} message(s) since the last acknowledgement; not acknowledging`)
      }
    }
    this.done = this.#run()
  }

  get state (): PipeState {
    return this.#state
  }

  stats (): PipeStats {
    return { name: this.name, state: this.#state, ...this.#counts }
  }

  async stop (): Promise<PipeOutcome> {
    this.#abort.abort()
    return await this.done
  }

  async #run (): Promise<PipeOutcome> {
    // Restarts in a row: a run that delivered something resets it.
    let failures = 0
    for (;;) {
      const deliveredBefore = this.#counts.delivered
      const error = await this.#runOnce()
      if (this.#abort.signal.aborted) return this.#finish('stopped', undefined)
      if (error === undefined) return this.#finish('ended', undefined)
      if (this.#counts.delivered > deliveredBefore) failures = 0
      // An iterable given as it is cannot be read again from the start.
      if (typeof this.#source !== 'function' || failures >= this.#options.retries) return this.#finish('failed', error)
      const delay = Math.min(this.#options.maxDelay, this.#options.minDelay * 2 ** failures)
      failures++
      this.#state = 'restarting'
      this.#host.log.info({ pipe: this.name, delay, attempt: failures }, 'pipe: restarting the source')
      if (await this.#wait(delay) === STOPPED) return this.#finish('stopped', undefined)
      this.#count('restarts')
      this.#state = 'running'
    }
  }

  /** One run of the source, until it ends, fails or the pipe stops; returns the error that ended it. */
  async #runOnce (): Promise<Error | undefined> {
    let iterator: AsyncIterator<unknown> | Iterator<unknown> | undefined
    // Whether the iterator still needs its return(): not after it finished or threw by itself.
    let open = false
    let stage: 'source' | 'item' = 'source'
    try {
      const iterable = typeof this.#source === 'function' ? this.#source(this.#context) : this.#source
      if (!isPipeSource(iterable) || typeof iterable === 'function') {
        throw new FST_WSGLUE_INVALID_PIPE(`expected the source factory to return an iterable, got ${describe(iterable)}`)
      }
      iterator = Symbol.asyncIterator in iterable ? iterable[Symbol.asyncIterator]() : iterable[Symbol.iterator]()
      open = true
      let unsettled = 0
      for (;;) {
        stage = 'source'
        open = false
        const next = await this.#untilStopped(iterator.next())
        if (next === STOPPED) {
          // A Node stream's iterator is a generator: its return() waits for the read in progress, destroy() ends that read.
          const stream = iterable as { destroy?: unknown }
          if (typeof stream.destroy === 'function') stream.destroy()
          open = true
          return undefined
        }
        if (next.done === true) return undefined
        open = true
        stage = 'item'
        this.#handle(next.value)
        if (++unsettled >= this.#options.maxInFlight) {
          unsettled = 0
          // Redis numbers messages asynchronously: wait for it. In memory they are written already:
          // let the event loop run (socket I/O, timers) before reading on.
          if (await this.#untilStopped(this.#host.settled() ?? nextTurn()) === STOPPED) return undefined
        }
      }
    } catch (err) {
      const error = asError(err)
      this.#count('errors')
      this.#host.log.error({ err: error, pipe: this.name, stage }, stage === 'source' ? 'pipe: source failed' : 'pipe: map, to or delivery failed')
      return error
    } finally {
      if (iterator !== undefined && open) await this.#close(iterator)
    }
  }

  #handle (item: unknown): void {
    const map = this.#options.map
    const data = map === undefined ? item : map(item)
    const target = this.#target
    const destination = 'to' in target ? target.to(item) : target
    if (data === undefined || destination === undefined) {
      this.#count('skipped')
      return
    }
    try {
      this.#host.deliver(destination, data, this.#options.volatile)
    } catch (err) {
      if (!isInvalidItem(err)) throw err
      this.#count('invalid')
      this.#logInvalid(err as Error)
      return
    }
    this.#count('delivered')
  }

  #count (count: PipeCount): void {
    this.#counts[count]++
    this.#host.counted(count)
  }

  #logInvalid (err: Error): void {
    const now = Date.now()
    if (now - this.#invalidLoggedAt < INVALID_LOG_INTERVAL) {
      this.#invalidUnlogged++
      return
    }
    this.#host.log.warn({ err, pipe: this.name, alsoDropped: this.#invalidUnlogged }, 'pipe: item dropped: the plugin refused it')
    this.#invalidLoggedAt = now
    this.#invalidUnlogged = 0
  }

  /** Runs the iterator's return() (a Node stream is destroyed, a generator's finally runs), within stopTimeout. */
  async #close (iterator: AsyncIterator<unknown> | Iterator<unknown>): Promise<void> {
    if (typeof iterator.return !== 'function') return
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<'timeout'>((resolve) => { timer = setTimeout(resolve, this.#options.stopTimeout, 'timeout') })
    try {
      const closing = Promise.resolve(iterator.return())
      closing.catch(() => {})
      if (await Promise.race([closing, timedOut]) === 'timeout') {
        this.#host.log.warn({ pipe: this.name, stopTimeout: this.#options.stopTimeout }, 'pipe: the source did not finish return() within stopTimeout')
      }
    } catch (err) {
      this.#host.log.error({ err, pipe: this.name }, 'pipe: closing the source failed')
    } finally {
      clearTimeout(timer)
    }
  }

  /** The value of `promise`, or STOPPED as soon as the pipe is asked to stop. */
  async #untilStopped<T> (promise: T | Promise<T>): Promise<T | typeof STOPPED> {
    const pending = Promise.resolve(promise)
    // If stop wins the race, a later rejection of the read must not be unhandled.
    pending.catch(() => {})
    return await Promise.race([pending, this.#stopped])
  }

  async #wait (ms: number): Promise<void | typeof STOPPED> {
    let timer: NodeJS.Timeout | undefined
    const elapsed = new Promise<void>((resolve) => { timer = setTimeout(resolve, ms) })
    try {
      return await Promise.race([elapsed, this.#stopped])
    } finally {
      clearTimeout(timer)
    }
  }

  #finish (state: PipeOutcome['state'], error: Error | undefined): PipeOutcome {
    this.#state = state
    this.#abort.abort()
    const stats = this.stats()
    const log = state === 'failed' ? this.#host.log.error.bind(this.#host.log) : this.#host.log.info.bind(this.#host.log)
    log({ pipe: this.name, ...stats, err: error }, `pipe: ${state}`)
    return { state, error, stats }
  }
}
