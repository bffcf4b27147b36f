import { describe, FST_WSGLUE_INVALID_PIPE } from '../errors.js'

/** What a source factory receives each time the pipe starts (or restarts) it. */
export interface PipeContext {
  /** Aborted when the pipe stops (`stop()`, `app.close()`): end a blocking read promptly on it. */
  readonly signal: AbortSignal
  /**
   * Resolves once every item this run has yielded so far is accepted by the plugin: handed to the
   * sockets (memory adapter) or numbered by Redis (Redis adapter). Commit or acknowledge after it.
   */
  accepted (): Promise<void>
}

/** What a pipe reads: any async or sync iterable (a Node stream, an async generator, an array). */
export type PipeIterable<T> = AsyncIterable<T> | Iterable<T>

/**
 * A pipe's source: an iterable, read once, or a factory the pipe calls on every start and restart,
 * so a source that failed can be opened again.
 */
export type PipeSource<T> = PipeIterable<T> | ((context: PipeContext) => PipeIterable<T>)

/** Where one item goes: a topic, a session or a user (every session bound to it). */
export type PipeDestination =
  | { readonly topic: string }
  | { readonly sessionId: string }
  | { readonly userId: string }

/** Where a pipe's items go: one destination for all, or `to(item)` choosing per item (undefined skips it). */
export type PipeTarget<T> = PipeDestination | { readonly to: (item: T) => PipeDestination | undefined }

/** When and how often a pipe opens its source again after an error. */
export interface PipeRestartOptions {
  /**
   * Restarts in a row before the pipe gives up (`state` becomes `'failed'`); a run that delivered an
   * item resets the count. `Infinity` retries for as long as the app runs.
   * @default Infinity
   */
  retries?: number
  /**
   * Delay before the first restart, in ms (at least 1); each restart in a row doubles it.
   * @default 100
   */
  minDelay?: number
  /**
   * The longest delay between restarts, in ms.
   * @default 30000
   */
  maxDelay?: number
}

/** Options of `sessions.pipe()`. `Outbound` is the data type of the `Sessions` it runs on. */
export interface PipeOptions<T, Outbound = unknown> {
  /**
   * Names the pipe in logs and `stats()`: at most 100 characters.
   * @default 'pipe-<n>'
   */
  name?: string
  /**
   * Turns an item into the data to send (a string, binary, or a JSON-serialisable value). Returning
   * undefined skips the item. A map that throws restarts the pipe, like an error of the source.
   * @default the item itself
   */
  map?: (item: T) => Outbound | undefined
  /**
   * Sends every item as volatile: not kept for resume, dropped rather than closing a slow consumer.
   * @default false
   */
  volatile?: boolean
  /**
   * Restart policy after an error of the source or `map`; `false` ends the pipe at the first error.
   * Only a factory source can restart: an iterable given as it is ends the pipe at its first error.
   * @default { retries: Infinity, minDelay: 100, maxDelay: 30000 }
   */
  restart?: false | PipeRestartOptions
  /**
   * Items handed to the plugin before the pipe waits for them to be accepted (the Redis adapter
   * numbers them asynchronously) or, with the memory adapter, yields to the event loop. 1 to 10000.
   * @default 64
   */
  maxInFlight?: number
  /**
   * How long `stop()` waits for the source's `return()` to finish, in ms; the pipe is reported
   * stopped after it either way. 0 to 60000.
   * @default 5000
   */
  stopTimeout?: number
}

/** Pipe options after validation. */
export interface ResolvedPipeOptions {
  readonly name: string
  readonly map: ((item: unknown) => unknown) | undefined
  readonly volatile: boolean
  readonly retries: number
  readonly minDelay: number
  readonly maxDelay: number
  readonly maxInFlight: number
  readonly stopTimeout: number
}

export const DEFAULT_PIPE_RETRIES = Infinity
export const DEFAULT_PIPE_MIN_DELAY = 100
export const DEFAULT_PIPE_MAX_DELAY = 30_000
export const DEFAULT_PIPE_MAX_IN_FLIGHT = 64
export const MAX_PIPE_IN_FLIGHT = 10_000
export const DEFAULT_PIPE_STOP_TIMEOUT = 5000
export const MAX_PIPE_STOP_TIMEOUT = 60_000
export const MAX_PIPE_NAME_LENGTH = 100
/** The longest delay between restarts, so a timer never overflows. */
const MAX_RESTART_DELAY = 3_600_000

function invalidPipe (option: string, rule: string, value: unknown): Error {
  return new FST_WSGLUE_INVALID_PIPE(`expected \`${option}\` to be ${rule}, got ${describe(value)}`)
}

function readCount (option: string, value: unknown, fallback: number, min: number, max: number): number {
  const result = value ?? fallback
  if (typeof result !== 'number' || !Number.isSafeInteger(result) || result < min || result > max) {
    throw invalidPipe(option, `an integer from ${min} to ${max}`, value)
  }
  return result
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Whether a value can be read by a pipe: an iterable or a factory. */
export function isPipeSource (value: unknown): value is PipeSource<unknown> {
  if (typeof value === 'function') return true
  // A string is iterable too, but piping its characters one by one is never what was meant.
  if (typeof value !== 'object' || value === null) return false
  return typeof (value as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] === 'function' ||
    typeof (value as Partial<Iterable<unknown>>)[Symbol.iterator] === 'function'
}

/**
 * Checks a pipe's target and returns it unchanged.
 * @throws FST_WSGLUE_INVALID_PIPE
 */
export function readPipeTarget (target: unknown): PipeTarget<unknown> {
  if (isObject(target)) {
    const keys = ['topic', 'sessionId', 'userId', 'to'].filter((key) => target[key] !== undefined)
    if (keys.length === 1) {
      if (keys[0] !== 'to' || typeof target.to === 'function') return target as PipeTarget<unknown>
    }
  }
  throw invalidPipe('target', 'one of { topic }, { sessionId }, { userId } or { to: (item) => destination }', target)
}

/**
 * Validates the options of `sessions.pipe()` and fills in the defaults.
 * @throws FST_WSGLUE_INVALID_PIPE
 */
export function resolvePipeOptions (raw: unknown, defaultName: string): ResolvedPipeOptions {
  if (raw !== undefined && !isObject(raw)) throw invalidPipe('options', 'an object', raw)
  const options = raw ?? {}
  const name = options.name ?? defaultName
  if (typeof name !== 'string' || name === '' || name.length > MAX_PIPE_NAME_LENGTH) {
    throw invalidPipe('name', `a non-empty string of at most ${MAX_PIPE_NAME_LENGTH} characters`, options.name)
  }
  if (options.map !== undefined && typeof options.map !== 'function') throw invalidPipe('map', 'a function', options.map)
  if (options.volatile !== undefined && typeof options.volatile !== 'boolean') throw invalidPipe('volatile', 'a boolean', options.volatile)
  const restart = options.restart ?? {}
  if (restart !== false && !isObject(restart)) throw invalidPipe('restart', 'false or { retries, minDelay, maxDelay }', options.restart)
  const policy = restart === false ? { retries: 0 } : restart
  const retries = policy.retries ?? DEFAULT_PIPE_RETRIES
  if (typeof retries !== 'number' || !(retries === Infinity || (Number.isSafeInteger(retries) && retries >= 0))) {
    throw invalidPipe('restart.retries', 'an integer >= 0 or Infinity', policy.retries)
  }
  const minDelay = readCount('restart.minDelay', policy.minDelay, DEFAULT_PIPE_MIN_DELAY, 1, MAX_RESTART_DELAY)
  const maxDelay = readCount('restart.maxDelay', policy.maxDelay, Math.max(minDelay, DEFAULT_PIPE_MAX_DELAY), minDelay, MAX_RESTART_DELAY)
  return Object.freeze({
    name,
    map: options.map as ((item: unknown) => unknown) | undefined,
    volatile: options.volatile === true,
    retries,
    minDelay,
    maxDelay,
    maxInFlight: readCount('maxInFlight', options.maxInFlight, DEFAULT_PIPE_MAX_IN_FLIGHT, 1, MAX_PIPE_IN_FLIGHT),
    stopTimeout: readCount('stopTimeout', options.stopTimeout, DEFAULT_PIPE_STOP_TIMEOUT, 0, MAX_PIPE_STOP_TIMEOUT)
  })
}
