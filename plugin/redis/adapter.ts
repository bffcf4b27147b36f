import { randomBytes } from 'node:crypto'
import type { AdapterHealth, AdapterHost, AdapterLimits, ClusterCounts, ClusterMessage, ReplayResult, SequencedAdapter, WelcomePosition } from '../adapters/adapter.js'
import { FST_WSGLUE_REDIS_UNAVAILABLE } from '../errors.js'
import { shardOf } from './keys.js'
import { resolveRedisOptions, type RedisAdapterOptions, type RedisClientLike, type ResolvedRedisAdapterOptions } from './options.js'
import { Presence } from './presence.js'
import { InboxReader } from './reader.js'
import { replay } from './replay.js'
import { RedisShard } from './shard.js'
import { userChannel } from '../users/channel.js'
import type { TopicHistoryResult } from '../adapters/adapter.js'
import type { HistoryRequest } from '../topics/position.js'
import type { TopicHistoryLimits } from '../topics/rules.js'
import { announceMembers, clusterMembers, emitReaped, readTopicHistory, reapMembers } from './topics.js'

/**
 * Joins nodes through Redis, one server or several shards. Each shard numbers the messages of its
 * sessions in one order (a Lua script) and routes each only to the nodes holding its recipients:
 * a node reads nothing but its own inbox, so a targeted send costs the nodes that do not hold the
 * session nothing, and every node adds capacity. All tabs of a session see the same sequence
 * numbers on any node; resume reads back what the session missed from its own histories.
 */
class RedisAdapter implements SequencedAdapter {
  readonly name = 'redis'
  readonly sequenced = true
  readonly #options: ResolvedRedisAdapterOptions
  readonly #uid = randomBytes(9).toString('base64url')
  #host: AdapterHost | undefined
  #limits: AdapterLimits | undefined
  #shards: RedisShard[] = []
  #readers: InboxReader[] = []
  #presence: Presence | undefined
  /** The latest join of each session with a socket opening here, for its welcome. */
  readonly #joins = new Map<string, Promise<WelcomePosition>>()

  constructor (options: ResolvedRedisAdapterOptions) {
    this.#options = options
  }

  async start (host: AdapterHost, limits: AdapterLimits): Promise<void> {
    this.#host = host
    this.#limits = limits
    const count = this.#options.shards.length
    this.#shards = this.#options.shards.map((target, index) => new RedisShard(index, target, this.#options, this.#uid, host, limits))
    this.#readers = this.#shards.map((shard) => new InboxReader(shard, count, host))
    const presence = new Presence(this.#shards, this.#readers, this.#options, this.#uid, host, limits)
    this.#presence = presence
    presence.reapMembers = async (shard, now) => {
      emitReaped(host, (message) => { this.emit(message) }, await reapMembers(shard, now))
    }
    try {
      await Promise.all(this.#shards.map(async (shard) => {
        const { epoch, seq } = await shard.open()
        ;(this.#readers[shard.index] as InboxReader).begin(epoch, seq)
        await presence.sync(shard)
        await this.#restoreRevocations(shard)
      }))
    } catch (err) {
      for (const shard of this.#shards) shard.disconnect()
      throw new FST_WSGLUE_REDIS_UNAVAILABLE((err as Error).message)
    }
    for (const shard of this.#shards) {
      const ofShard = (sessionId: string): boolean => shardOf(sessionId, count) === shard.index
      let announced: (() => void) | undefined
      shard.onReconnected = async (epochChanged) => {
        if (epochChanged) {
          // Redis lost its data: the subscriptions of this node's sessions are written again from what it knows.
          shard.prepend(this.#restoredSubscriptions(shard.index))
          // Its sockets hold what the new dataset routes here from the moment the node is announced,
          // and read back everything of the new dataset once it is: nothing overtakes the read-back.
          const whenAnnounced = new Promise<void>((resolve) => { announced = resolve })
          host.resync(shard.epoch, ofShard, whenAnnounced)
        }
        await presence.sync(shard)
        // Revocations made while this node could not read its inbox.
        await this.#restoreRevocations(shard)
      }
      // Announced again (and this node's buffer written): what is sent from now on comes here.
      shard.onRestored = () => {
        announced?.()
        announced = undefined
      }
      shard.start()
    }
    presence.start()
    for (const reader of this.#readers) reader.run().catch((err: unknown) => host.log.error({ err }, 'redis adapter: reader stopped'))
  }

  async stop (): Promise<void> {
    const presence = this.#presence as Presence
    presence.stop()
    await Promise.all(this.#shards.map(async (shard) => { await shard.stop(async () => { await presence.leave(shard) }) }))
  }

  emit (message: ClusterMessage): number {
    const host = this.#host as AdapterHost
    switch (message.kind) {
      case 'broadcast':
      case 'publish':
        // Each shard numbers it for its own sessions; while a shard is away, volatile ones reach this node only.
        if (message.volatile && this.#shards.some((shard) => !shard.ready)) return host.apply(message)
        for (const shard of this.#shards) shard.emit(message)
        return 0
      case 'send': {
        const shard = this.#shardOf(message.sessionId)
        if (message.volatile && !shard.ready) return host.apply(message)
        shard.emit(message)
        return 0
      }
      case 'subscribe':
      case 'unsubscribe': {
        const subscribed = host.topicsOf(message.sessionId).includes(message.topic)
        this.#shardOf(message.sessionId).emit(message)
        return message.kind === 'subscribe' ? 1 : subscribed ? 1 : 0
      }
      case 'close':
      case 'rotate':
      case 'revoke':
        this.#shardOf(message.sessionId).emit(message)
        return 0
      case 'revokeUser':
      case 'closeUser':
        // A user's sessions are spread over the shards: each one handles its own.
        for (const shard of this.#shards) shard.emit(message)
        return 0
      case 'presence':
        // Best effort, like a volatile publish: a shard that is away misses it (its clients ask for the list again on reconnect).
        for (const shard of this.#shards) if (shard.ready) shard.emit(message)
        return 0
      case 'expire':
        return 0
    }
  }

  colocate (sessionId: string, mint: () => string): string {
    const shards = this.#shards.length
    const target = shardOf(sessionId, shards)
    // Ids are random: on average `shards` tries; the bound only guards against a broken mint.
    for (let tries = 0; tries < 1000 * shards; tries++) {
      const id = mint()
      if (shardOf(id, shards) === target) return id
    }
    throw new Error('could not mint a session id on the same shard')
  }

  async clusterSessionsOf (userId: string): Promise<string[]> {
    return await (this.#presence as Presence).sessionsOf(userChannel(userId))
  }

  async #restoreRevocations (shard: RedisShard): Promise<void> {
    const { sessions, users } = await shard.revocations(Date.now())
    ;(this.#host as AdapterHost).restoreRevocations(sessions, users)
  }

  get undelivered (): number {
    let count = 0
    for (const shard of this.#shards) count += shard.undelivered
    return count
  }

  settled (): Promise<void> | undefined {
    const pending = this.#shards.map((shard) => shard.settled).filter((settled) => settled !== undefined)
    if (pending.length === 0) return undefined
    return Promise.all(pending).then(() => {})
  }

  socketOpened (sessionId: string, userId: string | null): void {
    const index = shardOf(sessionId, this.#shards.length)
    const reader = this.#readers[index] as InboxReader
    const join = (this.#shards[index] as RedisShard).join(sessionId, userId === null ? '' : userChannel(userId), () => ({ ...reader.position(), known: true }), async (seq) => { await reader.until(seq) })
    this.#joins.set(sessionId, join)
    join.then(() => { if (this.#joins.get(sessionId) === join) this.#joins.delete(sessionId) }, () => {})
  }

  socketClosed (sessionId: string): void {
    this.#shardOf(sessionId).leave(sessionId)
  }

  async welcomePosition (sessionId: string): Promise<WelcomePosition> {
    const join = this.#joins.get(sessionId)
    if (join !== undefined) return await join
    return { ...(this.#readers[shardOf(sessionId, this.#shards.length)] as InboxReader).position(), known: true }
  }

  async presence (sessionId: string): Promise<number> {
    return await (this.#presence as Presence).count(sessionId)
  }

  async clusterCounts (): Promise<ClusterCounts> {
    return await (this.#presence as Presence).clusterCounts()
  }

  async clusterTopicsOf (sessionId: string): Promise<string[]> {
    return await (this.#presence as Presence).topicsOf(sessionId)
  }

  async clusterSubscriberCount (topic: string): Promise<number> {
    return await (this.#presence as Presence).subscriberCount(topic)
  }

  async health (): Promise<AdapterHealth> {
    if (this.#shards.some((shard) => !shard.ready)) return { connected: false }
    // Entries routed to this node that its readers have not applied yet, over every shard.
    const unread = await Promise.all(this.#readers.map(async (reader) => await reader.unread()))
    return { connected: true, lag: unread.reduce((total, count) => total + count, 0) }
  }

  async replay (sessionId: string, afterSeq: number, untilSeq: number): Promise<ReplayResult> {
    return await replay(this.#shardOf(sessionId), { sessionId, afterSeq, untilSeq }, this.#limits as AdapterLimits)
  }

  async topicHistory (topic: string, request: HistoryRequest, limits: TopicHistoryLimits, sessionId?: string): Promise<TopicHistoryResult> {
    // Each shard numbers a topic's messages for its own sessions: a client reads its session's shard.
    const shard = sessionId === undefined ? this.#shards[0] as RedisShard : this.#shardOf(sessionId)
    return await readTopicHistory(shard, topic, request, limits)
  }

  async announceMembers (topic: string, counts: ReadonlyArray<[string, number]>, full: boolean): Promise<{ joined: string[], left: string[] }> {
    return await announceMembers(this.#shardOf(topic), this.#uid, topic, counts, full)
  }

  async clusterMembers (topic: string, cap: number): Promise<{ keys: string[], count: number }> {
    return await clusterMembers(this.#shardOf(topic), topic, cap)
  }

  #shardOf (sessionId: string): RedisShard {
    return this.#shards[shardOf(sessionId, this.#shards.length)] as RedisShard
  }

  #restoredSubscriptions (index: number): ClusterMessage[] {
    const host = this.#host as AdapterHost
    const restored: ClusterMessage[] = []
    for (const [sessionId] of host.localSessions()) {
      if (shardOf(sessionId, this.#shards.length) !== index) continue
      for (const topic of host.topicsOf(sessionId)) restored.push({ kind: 'subscribe', sessionId, topic })
    }
    return restored
  }
}

/**
 * Creates the Redis adapter: every node of a cluster registers the plugin with one pointing at the
 * same Redis servers and prefix.
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
