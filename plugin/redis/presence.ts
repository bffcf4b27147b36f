import type { AdapterHost, AdapterLimits, ClusterCounts } from '../adapters/adapter.js'
import { shardOf } from './keys.js'
import { REDIS_REAP_LIMIT, REDIS_REAP_ROUNDS, REDIS_SYNC_BATCH, type ResolvedRedisAdapterOptions } from './options.js'
import type { InboxReader } from './reader.js'
import type { ScriptArg } from './scripts.js'
import type { RedisShard } from './shard.js'

/**
 * Presence across nodes, on every shard: which node holds which session with how many sockets
 * (which is also how messages are routed), and a heartbeat. Whichever node runs its upkeep first
 * withdraws nodes whose heartbeat stopped (REAP) and ends sessions that had no socket anywhere
 * for the grace period.
 */
export class Presence {
  readonly #shards: readonly RedisShard[]
  readonly #readers: readonly InboxReader[]
  readonly #options: ResolvedRedisAdapterOptions
  readonly #uid: string
  readonly #host: AdapterHost
  readonly #limits: AdapterLimits
  #timer: NodeJS.Timeout | undefined
  /** Runs before each reap with what the dead nodes' topic members left (topic presence). */
  reapMembers: (shard: RedisShard, now: number) => Promise<void> = async () => {}

  constructor (shards: readonly RedisShard[], readers: readonly InboxReader[], options: ResolvedRedisAdapterOptions, uid: string, host: AdapterHost, limits: AdapterLimits) {
    this.#shards = shards
    this.#readers = readers
    this.#options = options
    this.#uid = uid
    this.#host = host
    this.#limits = limits
  }

  /** Starts the heartbeat, three times per `nodeTimeout`. */
  start (): void {
    this.#timer = setInterval(() => { for (const shard of this.#shards) this.#upkeep(shard) }, Math.max(100, Math.floor(this.#options.nodeTimeout / 3)))
    this.#timer.unref()
  }

  stop (): void {
    clearInterval(this.#timer)
  }

  /**
   * Replaces this node's state on a shard with what it holds now (at start, after an outage, after
   * being presumed dead), in batches so a large node never blocks Redis for long.
   */
  async sync (shard: RedisShard, sessions?: Array<[string, number]>): Promise<void> {
    const k = shard.keys
    await shard.commands.glueSyncBegin(k.nodes, k.announced, this.#uid, Date.now() + this.#options.nodeTimeout)
    let batch: ScriptArg[] = []
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return
      await shard.commands.glueSyncAdd(k.node, k.presence, k.sockets, k.detached, k.announced, k.tag, this.#uid, this.#options.streamLimit, ...batch)
      batch = []
    }
    for (const [sessionId, count] of sessions ?? this.#host.localSessions()) {
      if (shardOf(sessionId, this.#shards.length) !== shard.index) continue
      batch.push(sessionId, count)
      if (batch.length >= 2 * REDIS_SYNC_BATCH) await flush()
    }
    await flush()
    await shard.commands.glueSyncEnd(k.node, k.presence, k.sockets, k.detached, k.announced, k.tag, this.#uid, Date.now() + this.#limits.sessionGrace)
  }

  /** Leaves politely on stop: others need not wait for the node timeout to see these sockets gone. */
  async leave (shard: RedisShard): Promise<void> {
    await this.sync(shard, [])
    await shard.commands.zrem(shard.keys.nodes, this.#uid)
  }

  async count (sessionId: string): Promise<number> {
    const shard = this.#shardOf(sessionId)
    const value = await shard.query((commands) => commands.hget(shard.keys.presence, sessionId))
    return Number(value ?? 0)
  }

  async clusterCounts (): Promise<ClusterCounts> {
    const now = Date.now()
    const perShard = await Promise.all(this.#shards.map(async (shard) => await shard.query(async (commands) => {
      const k = shard.keys
      return await Promise.all([commands.zcount(k.nodes, now, '+inf'), commands.hlen(k.presence), commands.get(k.sockets)])
    })))
    let nodes = 0
    let sessions = 0
    let sockets = 0
    for (const [shardNodes, shardSessions, shardSockets] of perShard) {
      // Every node beats on every shard; counting the most any shard saw survives a shard that lags.
      nodes = Math.max(nodes, shardNodes)
      sessions += shardSessions
      sockets += Math.max(0, Number(shardSockets ?? 0))
    }
    return { nodes, sessions, sockets }
  }

  async topicsOf (sessionId: string): Promise<string[]> {
    const shard = this.#shardOf(sessionId)
    return await shard.query((commands) => commands.smembers(shard.keys.topicsOf(sessionId)))
  }

  /** The sessions subscribed to a topic (a user's channel), on every shard. */
  async sessionsOf (topic: string): Promise<string[]> {
    const perShard = await Promise.all(this.#shards.map(async (shard) => await shard.query((commands) => commands.smembers(shard.keys.subscribers(topic)))))
    return perShard.flat()
  }

  async subscriberCount (topic: string): Promise<number> {
    const counts = await Promise.all(this.#shards.map(async (shard) => await shard.query((commands) => commands.scard(shard.keys.subscribers(topic)))))
    return counts.reduce((sum, count) => sum + count, 0)
  }

  #shardOf (sessionId: string): RedisShard {
    return this.#shards[shardOf(sessionId, this.#shards.length)] as RedisShard
  }

  /** Heartbeat and cleanup, on every node: whichever runs first does the work. */
  #upkeep (shard: RedisShard): void {
    if (!shard.ready) return
    const k = shard.keys
    const commands = shard.commands
    const now = Date.now()
    const reader = this.#readers[shard.index] as InboxReader
    commands.zadd(k.nodes, now + this.#options.nodeTimeout, this.#uid)
      .then(async (added) => {
        // Others presumed this node dead: they withdrew its routes and its inbox, so its clients missed messages.
        if (added === 1) {
          this.#host.log.warn({ shard: shard.index }, 'redis adapter: this node was presumed dead; announcing its sessions again')
          await this.sync(shard)
          reader.restart()
        }
        await reader.checkTrimmed()
        // Before REAP forgets the dead nodes: the members they counted leave their topics.
        await this.reapMembers(shard, now)
        // Ends sessions in batches until none is due: a flood of expired sessions drains within one upkeep.
        for (let round = 0; round < REDIS_REAP_ROUNDS; round++) {
          const ended = await commands.glueReap(k.nodes, k.emitted, k.presence, k.detached,
            now, now + this.#limits.sessionGrace, k.tag, REDIS_REAP_LIMIT)
          if (ended < REDIS_REAP_LIMIT) break
        }
      })
      .catch((err: unknown) => this.#host.log.debug({ err }, 'redis adapter: upkeep failed'))
  }
}
