import type { AdapterHost, AdapterLimits, ClusterCounts } from '../adapters/adapter.js'
import { FST_WSGLUE_CLUSTER_UNAVAILABLE } from '../errors.js'
import type { RedisConnection } from './connection.js'
import type { RedisKeys } from './keys.js'
import type { ResolvedRedisAdapterOptions } from './options.js'
import type { ScriptArg } from './scripts.js'

/**
 * Presence across nodes: each node counts its sockets per session in Redis and keeps a heartbeat.
 * Whichever node runs its upkeep first removes the counts of nodes whose heartbeat stopped (REAP) and
 * ends the subscriptions of sessions that had no socket anywhere for the grace period.
 */
export class Presence {
  readonly #link: RedisConnection
  readonly #options: ResolvedRedisAdapterOptions
  readonly #uid: string
  readonly #keys: RedisKeys
  readonly #host: AdapterHost
  readonly #limits: AdapterLimits
  #timer: NodeJS.Timeout | undefined

  constructor (link: RedisConnection, options: ResolvedRedisAdapterOptions, uid: string, keys: RedisKeys, host: AdapterHost, limits: AdapterLimits) {
    this.#link = link
    this.#options = options
    this.#uid = uid
    this.#keys = keys
    this.#host = host
    this.#limits = limits
  }

  /** Starts the heartbeat, three times per `nodeTimeout`. */
  start (): void {
    this.#timer = setInterval(() => { this.#upkeep() }, Math.max(100, Math.floor(this.#options.nodeTimeout / 3)))
    this.#timer.unref()
  }

  stop (): void {
    clearInterval(this.#timer)
  }

  socketOpened (sessionId: string): void {
    // While Redis is away presence is rebuilt in full on reconnect (sync), not replayed.
    if (!this.#link.ready) return
    const k = this.#keys
    this.#link.commands.glueJoin(k.presence, k.node, k.detached, k.sockets, sessionId)
      .catch((err: unknown) => this.#host.log.debug({ err }, 'redis adapter: presence update failed'))
  }

  socketClosed (sessionId: string): void {
    if (!this.#link.ready) return
    const k = this.#keys
    this.#link.commands.glueLeave(k.presence, k.node, k.detached, k.sockets, sessionId, Date.now() + this.#limits.sessionGrace)
      .catch((err: unknown) => this.#host.log.debug({ err }, 'redis adapter: presence update failed'))
  }

  /** Replaces this node's presence with `sessions` (by default what the node holds) and renews its heartbeat. */
  async sync (sessions?: Array<[string, number]>): Promise<void> {
    const k = this.#keys
    const args: ScriptArg[] = [k.presence, k.node, k.detached, k.sockets, k.nodes,
      this.#uid, Date.now() + this.#options.nodeTimeout, Date.now() + this.#limits.sessionGrace]
    for (const [sessionId, count] of sessions ?? this.#host.localSessions()) args.push(sessionId, count)
    await this.#link.commands.glueSyncNode(...args)
  }

  /** Leaves politely on stop: others need not wait for the node timeout to see these sockets gone. */
  async leave (): Promise<void> {
    await this.sync([]).then(() => this.#link.commands.zrem(this.#keys.nodes, this.#uid)).catch(() => {})
  }

  async count (sessionId: string): Promise<number> {
    const value = await this.#query(() => this.#link.commands.hget(this.#keys.presence, sessionId))
    return Number(value ?? 0)
  }

  async clusterCounts (): Promise<ClusterCounts> {
    const k = this.#keys
    const commands = this.#link.commands
    const [nodes, sessions, sockets] = await this.#query(() => Promise.all([
      commands.zcount(k.nodes, Date.now(), '+inf'),
      commands.hlen(k.presence),
      commands.get(k.sockets)
    ]))
    return { nodes, sessions, sockets: Math.max(0, Number(sockets ?? 0)) }
  }

  /** Heartbeat and cleanup, on every node: whichever runs first does the work. */
  #upkeep (): void {
    if (!this.#link.ready) return
    const commands = this.#link.commands
    const k = this.#keys
    const now = Date.now()
    commands.zadd(k.nodes, now + this.#options.nodeTimeout, this.#uid)
      .then(async (added) => {
        // Others presumed this node dead and withdrew its presence: announce it again.
        if (added === 1) {
          this.#host.log.warn('redis adapter: this node was presumed dead; announcing its sessions again')
          await this.sync()
        }
        await commands.glueReap(k.presence, k.detached, k.sockets, k.nodes, k.emitted, k.subs, k.seq, k.stream,
          now, now + this.#limits.sessionGrace, this.#options.streamLimit, k.tag)
      })
      .catch((err: unknown) => this.#host.log.debug({ err }, 'redis adapter: upkeep failed'))
  }

  /** Runs a cluster-wide query, or says clearly that Redis is away. */
  async #query<T> (run: () => Promise<T>): Promise<T> {
    if (!this.#link.ready) throw new FST_WSGLUE_CLUSTER_UNAVAILABLE('Redis is unreachable')
    try {
      return await run()
    } catch (err) {
      throw new FST_WSGLUE_CLUSTER_UNAVAILABLE((err as Error).message)
    }
  }
}
