import { invalid, isPlainObject, readInteger } from '../config/validate.js'

/** Defaults of `RedisAdapterOptions`. */
export const DEFAULT_REDIS_PREFIX = 'glue'
export const DEFAULT_REDIS_STREAM_LIMIT = 100_000
export const DEFAULT_REDIS_BUFFER_LIMIT = 10_000
export const DEFAULT_REDIS_NODE_TIMEOUT = 10_000
/** Stream entries read per XREAD/XREVRANGE round trip. */
export const REDIS_READ_BATCH = 1000
/** Milliseconds an XREAD waits for new entries before asking again (also how soon a stop is noticed). */
export const REDIS_READ_BLOCK = 5000
/** How long the Redis adapter's stop waits for messages in flight before disconnecting. */
export const REDIS_STOP_GRACE = 2000

/** The part of an ioredis client the Redis adapter uses: `duplicate()`, to open its own connections. */
export interface RedisClientLike {
  duplicate (options?: object): unknown
}

/** Options of the Redis adapter. */
export interface RedisAdapterOptions {
  /** A `redis://` or `rediss://` URL; required unless `client` is given. */
  url?: string
  /** An ioredis client to take connection settings from (`duplicate()`); it is not used itself. */
  client?: RedisClientLike
  /**
   * Prefix of every key; nodes with the same prefix form one cluster. It becomes a `{prefix}` hash tag.
   * @default 'glue'
   */
  prefix?: string
  /**
   * Messages the shared stream keeps (all sessions together): how far back any resume can reach.
   * @default 100000
   */
  streamLimit?: number
  /**
   * Messages a node buffers while Redis is unreachable; beyond that, sends throw
   * FST_WSGLUE_CLUSTER_UNAVAILABLE.
   * @default 10000
   */
  bufferLimit?: number
  /**
   * Milliseconds without a heartbeat after which a node counts as dead and its presence is removed.
   * @default 10000
   */
  nodeTimeout?: number
}

/** Validated Redis adapter options. */
export interface ResolvedRedisAdapterOptions {
  readonly url: string | undefined
  readonly client: RedisClientLike | undefined
  readonly prefix: string
  readonly streamLimit: number
  readonly bufferLimit: number
  readonly nodeTimeout: number
}

function isRedisClient (value: unknown): value is RedisClientLike {
  return typeof value === 'object' && value !== null && typeof (value as RedisClientLike).duplicate === 'function'
}

/**
 * Validates the Redis adapter's options (a URL, a client, or an options object).
 * @throws FST_WSGLUE_INVALID_OPTION
 */
export function resolveRedisOptions (value: unknown, option = 'redis'): ResolvedRedisAdapterOptions {
  const raw: Record<string, unknown> = typeof value === 'string'
    ? { url: value }
    : isRedisClient(value) ? { client: value } : isPlainObject(value) ? value : {}
  if (typeof value !== 'string' && !isRedisClient(value) && !isPlainObject(value)) {
    throw invalid(option, 'a redis:// URL, an ioredis client or an options object', value)
  }
  const url = raw.url
  if (url !== undefined && (typeof url !== 'string' || !/^rediss?:\/\//.test(url))) {
    throw invalid(`${option}.url`, 'a URL starting with redis:// or rediss://', url)
  }
  if (raw.client !== undefined && !isRedisClient(raw.client)) throw invalid(`${option}.client`, 'an ioredis client', raw.client)
  if (url === undefined && raw.client === undefined) throw invalid(option, 'a `url` or a `client`', value)
  const prefix = raw.prefix ?? DEFAULT_REDIS_PREFIX
  if (typeof prefix !== 'string' || !/^[\w.:-]{1,64}$/.test(prefix)) {
    throw invalid(`${option}.prefix`, '1 to 64 letters, digits, or . : _ -', prefix)
  }
  return Object.freeze({
    url,
    client: raw.client as RedisClientLike | undefined,
    prefix,
    streamLimit: readInteger(`${option}.streamLimit`, raw.streamLimit, DEFAULT_REDIS_STREAM_LIMIT, 100),
    bufferLimit: readInteger(`${option}.bufferLimit`, raw.bufferLimit, DEFAULT_REDIS_BUFFER_LIMIT, 0),
    nodeTimeout: readInteger(`${option}.nodeTimeout`, raw.nodeTimeout, DEFAULT_REDIS_NODE_TIMEOUT, 300)
  })
}
