import { hostname } from 'node:os'
import { Redis, type RedisOptions } from 'ioredis'
import { invalid, isPlainObject, readInteger } from '../config/validate.js'
import type { PipeContext } from '../streams/pipe-options.js'
import type { RedisClientLike } from './options.js'

/** Defaults of `RedisStreamSourceOptions`. */
export const DEFAULT_STREAM_COUNT = 100
export const MAX_STREAM_COUNT = 10_000
export const DEFAULT_STREAM_BLOCK = 5000
export const MAX_STREAM_BLOCK = 60_000
export const DEFAULT_STREAM_CLAIM_IDLE = 30_000
/** How long a run that ends waits for its last acknowledgement before it closes the connection. */
const STREAM_CLOSE_GRACE = 1000

/** Options of `createRedisStreamSource()`. */
export interface RedisStreamSourceOptions {
  /** A `redis://` URL, or an ioredis client to take settings from (`duplicate()`; it is not used itself). */
  redis: string | RedisClientLike
  /** The stream's key. */
  key: string
  /** The consumer group: the nodes reading one group share its entries, each entry goes to one of them. */
  group: string
  /**
   * This node's name in the group: keep it across restarts, so a restarted node finds the entries it
   * had read but not acknowledged. Two nodes on one host need different names.
   * @default os.hostname()
   */
  consumer?: string
  /**
   * Where a group this source creates starts: `'$'` (entries added from now on) or `'0'` (every
   * entry in the stream). An existing group keeps its position.
   * @default '$'
   */
  groupStart?: '$' | '0'
  /**
   * Entries read per XREADGROUP (COUNT), and so at most in flight before they are acknowledged. 1 to 10000.
   * @default 100
   */
  count?: number
  /**
   * Milliseconds an XREADGROUP blocks waiting for entries before it asks again. A stop ends it at once. 1 to 60000.
   * @default 5000
   */
  block?: number
  /**
   * Milliseconds after which an entry another consumer read but never acknowledged (that node died)
   * is claimed by this one (XAUTOCLAIM, checked every `claimIdle / 2`). 0 never claims.
   * @default 30000
   */
  claimIdle?: number
}

/** One entry of a Redis Stream, as the source yields it. */
export interface RedisStreamEntry {
  /** The entry id, `<ms>-<seq>`. */
  readonly id: string
  /** The entry's field-value pairs (a repeated field keeps its last value). */
  readonly fields: Readonly<Record<string, string>>
}

interface ResolvedStreamOptions {
  readonly redis: string | RedisClientLike
  readonly key: string
  readonly group: string
  readonly consumer: string
  readonly groupStart: '$' | '0'
  readonly count: number
  readonly block: number
  readonly claimIdle: number
}

type RawEntry = [id: string, fields: string[] | null]

function readName (option: string, value: unknown, fallback?: string): string {
  const result = value ?? fallback
  if (typeof result !== 'string' || result === '' || Buffer.byteLength(result) > 512) throw invalid(option, 'a non-empty string of at most 512 bytes', value)
  return result
}

function resolveStreamOptions (raw: unknown): ResolvedStreamOptions {
  const name = 'createRedisStreamSource'
  if (!isPlainObject(raw)) throw invalid(name, 'an options object', raw)
  const redis = raw.redis
  const isClient = typeof redis === 'object' && redis !== null && typeof (redis as RedisClientLike).duplicate === 'function'
  if (!isClient && (typeof redis !== 'string' || !/^rediss?:\/\//.test(redis))) {
    throw invalid(`${name}.redis`, 'a URL starting with redis:// or rediss://, or an ioredis client', redis)
  }
  const groupStart = raw.groupStart ?? '$'
  if (groupStart !== '$' && groupStart !== '0') throw invalid(`${name}.groupStart`, "'$' or '0'", raw.groupStart)
  return Object.freeze({
    redis: redis as string | RedisClientLike,
    key: readName(`${name}.key`, raw.key),
    group: readName(`${name}.group`, raw.group),
    consumer: readName(`${name}.consumer`, raw.consumer, hostname()),
    groupStart,
    count: readInteger(`${name}.count`, raw.count, DEFAULT_STREAM_COUNT, 1, MAX_STREAM_COUNT),
    block: readInteger(`${name}.block`, raw.block, DEFAULT_STREAM_BLOCK, 1, MAX_STREAM_BLOCK),
    claimIdle: readInteger(`${name}.claimIdle`, raw.claimIdle, DEFAULT_STREAM_CLAIM_IDLE, 0)
  })
}

function connect (options: ResolvedStreamOptions): Redis {
  const settings: RedisOptions = {
    lazyConnect: true,
    // A lost connection fails the read, and the pipe's restart policy opens a new one: one place decides.
    retryStrategy: () => null,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    enableAutoPipelining: true,
    connectionName: `glue-stream:${options.consumer}`
  }
  const client = typeof options.redis === 'string'
    ? new Redis(options.redis, settings)
    : options.redis.duplicate(settings) as Redis
  // Failures surface as rejected commands, which end the run with the error.
  client.on('error', () => {})
  return client
}

function toEntry ([id, flat]: RawEntry): RedisStreamEntry {
  const fields: Record<string, string> = Object.create(null)
  for (let i = 0; i + 1 < (flat as string[]).length; i += 2) fields[(flat as string[])[i] as string] = (flat as string[])[i + 1] as string
  return { id, fields }
}

async function createGroup (client: Redis, options: ResolvedStreamOptions): Promise<void> {
  try {
    await client.xgroup('CREATE', options.key, options.group, options.groupStart, 'MKSTREAM')
  } catch (err) {
    if (!/BUSYGROUP/.test((err as Error).message)) throw err
  }
}

/**
 * One run of the source: its own connection, its pending entries first, then entries claimed from
 * dead consumers and new ones. Each batch is acknowledged once the plugin accepted it.
 */
async function * readStream (options: ResolvedStreamOptions, context: PipeContext): AsyncGenerator<RedisStreamEntry> {
  const { key, group, consumer, count } = options
  const client = connect(options)
  const { signal } = context
  let blocked = false
  // A blocking read would hold a stop for up to `block` ms: dropping the connection ends it now.
  const onAbort = (): void => { if (blocked) client.disconnect() }
  signal.addEventListener('abort', onAbort)

  // The acknowledgement of the last batch leaves in the same write as the next read (auto-pipelining):
  // one round trip per batch, as a plain XREAD loop has. Its failure ends the run before that read.
  let lastAck: Promise<unknown> | undefined
  let ackFailure: unknown
  const checkAck = (): void => { if (ackFailure !== undefined) throw ackFailure }

  /** Yields a batch, then acknowledges what the plugin accepted, also when the pipe stops midway. */
  async function * deliver (entries: RawEntry[]): AsyncGenerator<RedisStreamEntry> {
    const accepted: string[] = []
    let complete = false
    try {
      for (const entry of entries) {
        // An entry deleted (XDEL, trimming) while pending has no fields: nothing to deliver, only to acknowledge.
        if (entry[1] === null) {
          accepted.push(entry[0])
          continue
        }
        yield toEntry(entry)
        // The pipe asks for the next item only after handing this one over.
        accepted.push(entry[0])
      }
      complete = true
    } finally {
      if (accepted.length > 0) {
        await context.accepted()
        const ack = client.xack(key, group, ...accepted)
        lastAck = ack
        ack.catch((err: unknown) => { ackFailure ??= err })
        // Stopping midway: acknowledge now, before the connection closes.
        if (!complete) await ack
      }
    }
  }

  try {
    await client.connect()
    await createGroup(client, options)
    // Entries this consumer read before a restart and never acknowledged come first, in order.
    let cursor = '0'
    while (!signal.aborted) {
      checkAck()
      const pending = await client.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'STREAMS', key, cursor) as Array<[string, RawEntry[]]> | null
      const entries = pending?.[0]?.[1] ?? []
      if (entries.length === 0) break
      yield * deliver(entries)
      cursor = (entries[entries.length - 1] as RawEntry)[0]
    }
    const claimEvery = Math.max(1, Math.floor(options.claimIdle / 2))
    // A read returns at least as often as claims are due.
    const blockFor = options.claimIdle > 0 ? Math.min(options.block, claimEvery) : options.block
    let claimedAt = -Infinity
    while (!signal.aborted) {
      if (options.claimIdle > 0 && Date.now() - claimedAt >= claimEvery) {
        claimedAt = Date.now()
        yield * claim(client, options, deliver, signal)
        continue
      }
      checkAck()
      let read: Array<[string, RawEntry[]]> | null
      blocked = true
      try {
        read = await client.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'BLOCK', blockFor, 'STREAMS', key, '>') as Array<[string, RawEntry[]]> | null
      } catch (err) {
        if (signal.aborted) return
        throw err
      } finally {
        blocked = false
      }
      const entries = read?.[0]?.[1] ?? []
      // Read but stopped before delivery: they stay pending for this consumer's next start.
      if (signal.aborted) return
      if (entries.length > 0) yield * deliver(entries)
    }
  } finally {
    signal.removeEventListener('abort', onAbort)
    // The last acknowledgement may still be on its way: let it land (or fail) before the connection closes.
    let timer: NodeJS.Timeout | undefined
    await Promise.race([lastAck?.catch(() => {}), new Promise((resolve) => { timer = setTimeout(resolve, STREAM_CLOSE_GRACE) })])
    clearTimeout(timer)
    client.disconnect()
  }
}

/** Takes over the entries other consumers left unacknowledged for `claimIdle` ms (XAUTOCLAIM, Redis >= 6.2). */
async function * claim (
  client: Redis,
  options: ResolvedStreamOptions,
  deliver: (entries: RawEntry[]) => AsyncGenerator<RedisStreamEntry>,
  signal: AbortSignal
): AsyncGenerator<RedisStreamEntry> {
  let cursor = '0-0'
  do {
    const [next, entries] = await client.xautoclaim(options.key, options.group, options.consumer, options.claimIdle, cursor, 'COUNT', options.count) as [string, RawEntry[]]
    if (entries.length > 0) yield * deliver(entries)
    cursor = next
  } while (cursor !== '0-0' && !signal.aborted)
}

/**
 * A pipe source reading a Redis Stream through a consumer group: `app.sessions.pipe(createRedisStreamSource({ redis, key, group }), { topic })`.
 * Each node reads its own entries left pending first (a restart resumes where it stopped), then new
 * ones; the nodes of a group never read the same entry, and an entry is acknowledged (XACK) only
 * once the plugin accepted it. It yields `{ id, fields }`: use the pipe's `map` to turn it into data.
 * @throws FST_WSGLUE_INVALID_OPTION for invalid options.
 */
export function createRedisStreamSource (options: RedisStreamSourceOptions): (context: PipeContext) => AsyncIterable<RedisStreamEntry> {
  const resolved = resolveStreamOptions(options)
  return (context) => readStream(resolved, context)
}
