import { randomBytes } from 'node:crypto'
import type { AdapterHealth, AdapterHost, AdapterLimits, ClusterCounts, ClusterMessage, ReplayResult, SequencedAdapter, StreamPosition } from '../adapters/adapter.js'
import { FST_WSGLUE_REDIS_UNAVAILABLE } from '../errors.js'
import { RedisConnection } from './connection.js'
import { redisKeys, type RedisKeys } from './keys.js'
import { resolveRedisOptions, type RedisAdapterOptions, type RedisClientLike, type ResolvedRedisAdapterOptions } from './options.js'
import { Presence } from './presence.js'
import { readSnapshot, StreamReader } from './reader.js'
import { replay } from './replay.js'

/**
 * Joins nodes through Redis. Every message is numbered by one Lua script and appended to a single
 * stream that every node reads in order (XREAD), so all tabs of a session see the same sequence
 * numbers on any node, and a node that loses Redis for a moment reads on from where it stopped.
 * Resume reads the session's messages back from the same stream.
 */
class RedisAdapter implements SequencedAdapter {
  readonly name = 'redis'
  readonly sequenced = true
  readonly #options: ResolvedRedisAdapterOptions
  readonly #uid = randomBytes(9).toString('base64url')
  readonly #keys: RedisKeys
  #host: AdapterHost | undefined
  #limits: AdapterLimits = { outboxLimit: 0, outboxMaxAge: 0, sessionGrace: 0 }
  #link: RedisConnection | undefined
  #reader: StreamReader | undefined
  #presence: Presence | undefined

  constructor (options: ResolvedRedisAdapterOptions) {
    this.#options = options
    this.#keys = redisKeys(options.prefix, this.#uid)
  }

  async start (host: AdapterHost, limits: AdapterLimits): Promise<void> {
    this.#host = host
    this.#limits = limits
    const link = new RedisConnection(this.#options, this.#uid, this.#keys, host, limits, async () => { await presence.sync() })
    const presence = new Presence(link, this.#options, this.#uid, this.#keys, host, limits)
    const reader = new StreamReader(link, this.#keys, host)
    this.#link = link
    this.#presence = presence
    this.#reader = reader
    let epoch: string
    try {
      await link.open()
      const snapshot = await readSnapshot(link.reader, this.#keys)
      epoch = snapshot.epoch
      reader.begin(snapshot)
      host.resetSubscriptions(snapshot.subscriptions)
      await presence.sync()
    } catch (err) {
      link.disconnect()
      throw new FST_WSGLUE_REDIS_UNAVAILABLE((err as Error).message)
    }
    link.start(epoch)
    presence.start()
    reader.run().catch((err: unknown) => host.log.error({ err }, 'redis adapter: reader stopped'))
  }

  async stop (): Promise<void> {
    const presence = this.#presence as Presence
    presence.stop()
    await (this.#link as RedisConnection).stop(() => presence.leave())
  }

  emit (message: ClusterMessage): number {
    const host = this.#host as AdapterHost
    const link = this.#link as RedisConnection
    // Best effort by definition: delivered on this node, nowhere else, while Redis is away.
    if (!link.ready && 'volatile' in message && message.volatile) return host.apply(message)
    link.send(message)
    if (message.kind === 'subscribe') return 1
    if (message.kind === 'unsubscribe') return host.topicsOf(message.sessionId).includes(message.topic) ? 1 : 0
    return 0
  }

  settled (): Promise<void> | undefined {
    return this.#link?.settled
  }

  socketOpened (sessionId: string): void {
    this.#presence?.socketOpened(sessionId)
  }

  socketClosed (sessionId: string): void {
    this.#presence?.socketClosed(sessionId)
  }

  async presence (sessionId: string): Promise<number> {
    return await (this.#presence as Presence).count(sessionId)
  }

  async clusterCounts (): Promise<ClusterCounts> {
    return await (this.#presence as Presence).clusterCounts()
  }

  async health (): Promise<AdapterHealth> {
    const link = this.#link
    if (link?.ready !== true) return { connected: false }
    // The cluster's last number against the last one this node applied: how far its reader trails.
    const head = Number(await link.commands.get(this.#keys.seq))
    return { connected: true, lag: Math.max(0, head - this.position().seq) }
  }

  position (): StreamPosition {
    return this.#reader?.position() ?? { epoch: '', seq: 0 }
  }

  async replay (sessionId: string, afterSeq: number, untilSeq: number): Promise<ReplayResult> {
    const topics = new Set((this.#host as AdapterHost).topicsOf(sessionId))
    return await replay((this.#link as RedisConnection).commands, this.#keys.stream, { sessionId, topics, afterSeq, untilSeq }, this.#limits)
  }
}

/**
 * Creates the Redis adapter: every node of a cluster registers the plugin with one pointing at the
 * same Redis and prefix.
 * @throws FST_WSGLUE_INVALID_OPTION for invalid options.
 */
export function createRedisAdapter (options: string | RedisClientLike | RedisAdapterOptions): SequencedAdapter {
  return new RedisAdapter(resolveRedisOptions(options, 'createRedisAdapter'))
}

/**
 * For the plugin's `redis` option: validated under that name, so an error names `redis.url` and so on.
 * @throws FST_WSGLUE_INVALID_OPTION for invalid options.
 */
export function createRedisAdapterFromOption (value: unknown): SequencedAdapter {
  return new RedisAdapter(resolveRedisOptions(value, 'redis'))
}
