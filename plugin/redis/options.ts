import { invalid, isPlainObject, readInteger } from '../config/validate.js'

/** Defaults of `RedisAdapterOptions`. */
export const DEFAULT_REDIS_PREFIX = 'glue'
export const DEFAULT_REDIS_STREAM_LIMIT = 100_000
export const DEFAULT_REDIS_BUFFER_LIMIT = 10_000
export const DEFAULT_REDIS_NODE_TIMEOUT = 10_000
export const DEFAULT_REDIS_QUERY_TIMEOUT = 1000
/** Sessions a node announces per script call when it re-announces what it holds. */
export const REDIS_SYNC_BATCH = 500
/** Sessions one REAP call ends at most; upkeep calls it again, up to REDIS_REAP_ROUNDS times. */
export const REDIS_REAP_LIMIT = 1000
export const REDIS_REAP_ROUNDS = 20
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
  /** A `redis://` or `rediss://` URL; required unless `client` or `shards` is given. */
  url?: string
  /** An ioredis client to take connection settings from (`duplicate()`); it is not used itself. */
  client?: RedisClientLike
  /**
   * Several Redis servers sharing the load: each session lives on one of them (by a hash of its
   * id), broadcasts and publishes go to all. Every node must list the same servers in the same order.
   * @default one server: `url` or `client`
   */
  shards?: ReadonlyArray<string | RedisClientLike>
  /**
   * Prefix of every key; nodes with the same prefix form one cluster. It becomes a `{prefix}` hash tag.
   * @default 'glue'
   */
  prefix?: string
  /**
   * Entries a node's inbox keeps while the node does not read it (it is away, or lags): beyond it
   * the oldest are dropped and its clients are told of a gap.
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
  /**
   * Milliseconds a cluster-wide query (`presence`, `clusterCounts`, …) or a socket's welcome waits
   * for Redis before it gives up: queries reject with FST_WSGLUE_CLUSTER_UNAVAILABLE.
   * @default 1000
   */
  queryTimeout?: number
}

/** One Redis server of the cluster. */
export interface RedisTarget {
  readonly url: string | undefined
  readonly client: RedisClientLike | undefined
}

/** Validated Redis adapter options. */
export interface ResolvedRedisAdapterOptions {
  /** One per shard; a single server is one shard. */
  readonly shards: readonly RedisTarget[]
  readonly prefix: string
  readonly streamLimit: number
  readonly bufferLimit: number
  readonly nodeTimeout: number
  readonly queryTimeout: number
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
  const shards = resolveShards(option, raw, value)
  const prefix = raw.prefix ?? DEFAULT_REDIS_PREFIX
  if (typeof prefix !== 'string' || !/^[\w.:-]{1,64}$/.test(prefix)) {
    throw invalid(`${option}.prefix`, '1 to 64 letters, digits, or . : _ -', prefix)
  }
  return Object.freeze({
    shards,
    prefix,
    streamLimit: readInteger(`${option}.streamLimit`, raw.streamLimit, DEFAULT_REDIS_STREAM_LIMIT, 100),
    bufferLimit: readInteger(`${option}.bufferLimit`, raw.bufferLimit, DEFAULT_REDIS_BUFFER_LIMIT, 0),
    nodeTimeout: readInteger(`${option}.nodeTimeout`, raw.nodeTimeout, DEFAULT_REDIS_NODE_TIMEOUT, 300),
    queryTimeout: readInteger(`${option}.queryTimeout`, raw.queryTimeout, DEFAULT_REDIS_QUERY_TIMEOUT, 10)
  })
}

function readUrl (option: string, url: unknown): string {
  if (typeof url !== 'string' || !/^rediss?:\/\//.test(url)) throw invalid(option, 'a URL starting with redis:// or rediss://', url)
  return url
}

function resolveShards (option: string, raw: Record<string, unknown>, value: unknown): readonly RedisTarget[] {
  if (raw.shards !== undefined) {
    if (!Array.isArray(raw.shards) || raw.shards.length === 0) throw invalid(`${option}.shards`, 'a non-empty array of redis:// URLs or ioredis clients', raw.shards)
    return Object.freeze(raw.shards.map((shard: unknown, i: number) => isRedisClient(shard)
      ? { url: undefined, client: shard }
      : { url: readUrl(`${option}.shards[${i}]`, shard), client: undefined }))
  }
  const url = raw.url === undefined ? undefined : readUrl(`${option}.url`, raw.url)
  if (raw.client !== undefined && !isRedisClient(raw.client)) throw invalid(`${option}.client`, 'an ioredis client', raw.client)
  if (url === undefined && raw.client === undefined) throw invalid(option, 'a `url`, a `client` or `shards`', value)
  return Object.freeze([{ url, client: raw.client as RedisClientLike | undefined }])
}
