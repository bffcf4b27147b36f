import { randomBytes } from 'node:crypto'
import { Redis, type RedisOptions } from 'ioredis'
import type { AdapterHost, AdapterLimits, ClusterMessage, WelcomePosition } from '../adapters/adapter.js'
import { FST_WSGLUE_CLUSTER_UNAVAILABLE } from '../errors.js'
import { encodeClusterMessage } from './codec.js'
import { shardKeys, type ShardKeys } from './keys.js'
import { REDIS_STOP_GRACE, type RedisTarget, type ResolvedRedisAdapterOptions } from './options.js'
import { SCRIPTS, type ScriptCommands } from './scripts.js'
import { userChannel } from '../users/channel.js'

/** An ioredis connection with the adapter's scripts defined on it. */
export type Connection = Redis & ScriptCommands

/** A message waiting for Redis to number and route it. */
interface PendingEmit {
  /** Its place among this node's emits to the shard, to keep the order when it must be written again. */
  readonly order: number
  readonly message: ClusterMessage
  readonly payload: Buffer
  readonly done: () => void
}

// ioredis rejects a command it could not even send (the socket is gone and its offline queue is
// off): such a command never reached Redis, so it is safe to write it again.
function neverSent (err: unknown): boolean {
  return /isn't writeable|Connection is closed/.test((err as Error | undefined)?.message ?? '')
}

/**
 * One Redis server of the cluster, as this node uses it: a `commands` connection that writes (the
 * scripts) and asks, and a `reader` connection that only reads this node's inbox. While the command
 * connection is down, messages wait in a bounded buffer, in order, and are written once it is back
 * and the node is announced again; a message that could not be sent when Redis went away goes back
 * into that buffer instead of being lost.
 */
export class RedisShard {
  readonly index: number
  readonly keys: ShardKeys
  readonly commands: Connection
  readonly reader: Connection
  readonly #options: ResolvedRedisAdapterOptions
  readonly #uid: string
  readonly #host: AdapterHost
  readonly #limits: AdapterLimits
  /** The dataset the command connection last saw, to notice that Redis lost its data. */
  #epoch = ''
  /** False while the command connection is down: messages wait in #buffer, in order. */
  #ready = false
  #buffer: PendingEmit[] = []
  /** The counter EMIT scripts check: a command ioredis re-sends after a reconnect is a no-op. */
  #counter = 0
  #order = 0
  #last: Promise<void> | undefined
  #undelivered = 0
  #stopped = false
  #outage = false
  #recovering = false
  /** Announces this node again after an outage, before the buffer is flushed; the adapter sets it. */
  onReconnected: (epochChanged: boolean) => Promise<void> = async () => {}
  /** Runs once the shard is usable again after an outage. */
  onRestored: (epochChanged: boolean) => void = () => {}

  constructor (index: number, target: RedisTarget, options: ResolvedRedisAdapterOptions, uid: string, host: AdapterHost, limits: AdapterLimits) {
    this.index = index
    this.keys = shardKeys(options.prefix, uid)
    this.#options = options
    this.#uid = uid
    this.#host = host
    this.#limits = limits
    this.commands = this.#connect(target, true)
    // A blocked XREAD must fail when its connection drops, so the reader checks where it stands before reading on.
    this.reader = this.#connect(target, false)
  }

  /** The name of the shard's dataset, as the command connection last saw it. */
  get epoch (): string {
    return this.#epoch
  }

  /** Whether messages go to Redis now (false while the command connection is down, and before start). */
  get ready (): boolean {
    return this.#ready
  }

  get stopped (): boolean {
    return this.#stopped
  }

  /** Messages Redis refused outright (logged as not delivered). */
  get undelivered (): number {
    return this.#undelivered
  }

  /** Resolves once every message sent so far is numbered (or failed); undefined before the first. */
  get settled (): Promise<void> | undefined {
    return this.#last
  }

  /** Connects both connections and returns the shard's dataset name and current sequence number. */
  async open (): Promise<{ epoch: string, seq: number }> {
    await Promise.all([this.commands.connect(), this.reader.connect()])
    const [epoch, seq] = await this.#readEpoch()
    this.#epoch = epoch
    return { epoch, seq }
  }

  disconnect (): void {
    this.commands.disconnect()
    this.reader.disconnect()
  }

  /** From now on an outage is buffered over. */
  start (): void {
    this.#ready = true
    this.commands.on('ready', () => { this.#recover() })
    this.commands.on('close', () => this.#lost())
  }

  /** Lets messages in flight land, runs `leave` while Redis is reachable, then disconnects. */
  async stop (leave: () => Promise<void>): Promise<void> {
    this.#stopped = true
    if (this.#buffer.length > 0) {
      this.#host.log.error({ shard: this.index, messages: this.#buffer.length }, 'redis adapter: stopped while Redis was unreachable; buffered messages were not delivered')
    }
    if (this.#ready) {
      // Let messages in flight land, but never hold app.close() on a Redis that stopped answering.
      let timer: NodeJS.Timeout | undefined
      await Promise.race([this.#last, new Promise((resolve) => { timer = setTimeout(resolve, REDIS_STOP_GRACE) })])
      clearTimeout(timer)
      await leave().catch(() => {})
      await this.commands.quit().catch(() => {})
    }
    this.disconnect()
  }

  /**
   * Has Redis number and route a message, or buffers it while Redis is away.
   * @throws FST_WSGLUE_CLUSTER_UNAVAILABLE when Redis is away and the buffer is full.
   */
  emit (message: ClusterMessage): void {
    if (!this.#ready && this.#buffer.length >= this.#options.bufferLimit) {
      throw new FST_WSGLUE_CLUSTER_UNAVAILABLE(`Redis is unreachable and ${this.#options.bufferLimit} messages are already waiting for it`)
    }
    let done!: () => void
    this.#last = new Promise((resolve) => { done = resolve })
    const pending: PendingEmit = { order: ++this.#order, message, payload: encodeClusterMessage(message, Date.now()), done }
    if (this.#ready) this.#write(pending)
    else this.#buffer.push(pending)
  }

  /**
   * Tells Redis a socket of the session opened here, and learns where the session stands for its
   * welcome. Without Redis, answers from what this node has read.
   */
  async join (sessionId: string, channel: string, fallback: () => WelcomePosition, topicsRead: (seq: number) => Promise<void>): Promise<WelcomePosition> {
    if (!this.#ready) return fallback()
    const k = this.keys
    try {
      const [seq, epoch, known, topicsAt] = await this.#withTimeout(this.commands.glueJoin(k.at(sessionId), k.node, k.presence, k.sockets, k.detached, k.seq, k.epoch,
        this.#uid, sessionId, k.tag, this.#options.streamLimit, channel))
      // The welcome waits until the node knows the session's topics: from then on its answers are complete.
      if (topicsAt > 0) await this.#withTimeout(topicsRead(topicsAt))
      return { epoch, seq: Number(seq), known: known === 1 }
    } catch (err) {
      this.#host.log.debug({ err }, 'redis adapter: join failed')
      return fallback()
    }
  }

  leave (sessionId: string): void {
    if (!this.#ready) return
    const k = this.keys
    this.commands.glueLeave(k.at(sessionId), k.node, k.presence, k.sockets, k.detached,
      this.#uid, sessionId, Date.now() + this.#limits.sessionGrace, k.tag)
      .catch((err: unknown) => this.#host.log.debug({ err }, 'redis adapter: presence update failed'))
  }

  /**
   * Runs a query, or says clearly that Redis is away: it rejects within `queryTimeout` whatever
   * Redis does, never staying pending through an outage.
   * @throws FST_WSGLUE_CLUSTER_UNAVAILABLE
   */
  async query<T> (run: (commands: Connection) => Promise<T>): Promise<T> {
    if (!this.#ready) throw new FST_WSGLUE_CLUSTER_UNAVAILABLE('Redis is unreachable')
    try {
      return await this.#withTimeout(run(this.commands))
    } catch (err) {
      throw new FST_WSGLUE_CLUSTER_UNAVAILABLE((err as Error).message)
    }
  }

  async #withTimeout<T> (promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new Error(`no answer from Redis within ${this.#options.queryTimeout} ms`)) }, this.#options.queryTimeout)
    })
    try {
      return await Promise.race([promise, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  #connect (target: RedisTarget, resend: boolean): Connection {
    const settings: RedisOptions = {
      lazyConnect: true,
      // Our own bounded buffer holds messages while Redis is away; commands fail fast instead of queueing.
      enableOfflineQueue: false,
      // Messages in flight are re-sent after a reconnect (the scripts ignore repeats); the reader's XREAD fails instead.
      autoResendUnfulfilledCommands: resend,
      maxRetriesPerRequest: resend ? null : 0,
      connectionName: `glue:${this.#uid}`
    }
    const connection = (target.client !== undefined
      ? target.client.duplicate(settings)
      : new Redis(target.url as string, settings)) as Connection
    for (const [name, numberOfKeys, lua] of SCRIPTS) connection.defineCommand(name, { numberOfKeys, lua })
    // ioredis emits 'error' on every failed reconnect attempt; #lost logs the outage once.
    connection.on('error', (err: Error) => this.#host.log.debug({ err }, 'redis adapter: connection error'))
    return connection
  }

  async #readEpoch (): Promise<[string, number]> {
    return await this.commands.glueEpoch(this.keys.epoch, this.keys.seq, randomBytes(6).toString('base64url'))
  }

  #write (pending: PendingEmit): void {
    const k = this.keys
    const { message, payload } = pending
    const limits = this.#limits
    const keep = 'volatile' in message && message.volatile ? '0' : '1'
    // Resume can only ever use a session's newest outboxLimit messages; twice that leaves room to count what was lost.
    const historyLimit = Math.max(1, 2 * limits.outboxLimit)
    const historyTtl = limits.outboxMaxAge + limits.sessionGrace
    const inbox = this.#options.streamLimit
    const counter = ++this.#counter
    let command: Promise<number>
    switch (message.kind) {
      case 'send':
      case 'close':
        command = this.commands.glueSend(k.emitted, k.seq, k.at(message.sessionId), k.history(message.sessionId),
          this.#uid, counter, payload, message.kind === 'close' ? '0' : keep, historyLimit, historyTtl, k.tag, inbox)
        break
      case 'broadcast':
        command = this.commands.glueBroadcast(k.emitted, k.seq, k.broadcasts, k.nodes,
          this.#uid, counter, payload, keep, historyLimit, k.tag, inbox, Date.now())
        break
      case 'publish': {
        // A topic that keeps history (topicHistory) keeps at least its limit, for at least its age.
        const history = keep === '1' ? limits.historyOf?.(message.topic) : undefined
        command = this.commands.gluePublish(k.emitted, k.seq, k.topicHistory(message.topic), k.interest(message.topic),
          this.#uid, counter, payload, keep, Math.max(historyLimit, history?.limit ?? 0), Math.max(historyTtl, history?.maxAge ?? 0), k.tag, inbox)
        break
      }
      case 'subscribe':
        command = this.commands.glueSubscribe(k.emitted, k.seq, k.topicsOf(message.sessionId), k.subscribers(message.topic),
          k.at(message.sessionId), k.interest(message.topic), k.presence, k.detached,
          this.#uid, counter, payload, message.sessionId, message.topic, limits.maxTopicsPerSession,
          Date.now() + limits.sessionGrace, k.tag, inbox)
        break
      case 'unsubscribe':
        command = this.commands.glueUnsubscribe(k.emitted, k.seq, k.topicsOf(message.sessionId), k.subscribers(message.topic),
          k.at(message.sessionId), k.interest(message.topic),
          this.#uid, counter, payload, message.sessionId, message.topic, k.tag, inbox)
        break
      case 'presence':
        // Routed like a publish to the topic, to the nodes holding a subscriber; never kept.
        command = this.commands.gluePublish(k.emitted, k.seq, k.topicHistory(message.topic), k.interest(message.topic),
          this.#uid, counter, payload, '0', historyLimit, historyTtl, k.tag, inbox)
        break
      case 'closeUser':
        // Routed like a publish to the user's channel, to the nodes holding a session of the user; never kept.
        command = this.commands.gluePublish(k.emitted, k.seq, k.topicHistory(userChannel(message.userId)), k.interest(userChannel(message.userId)),
          this.#uid, counter, payload, '0', historyLimit, historyTtl, k.tag, inbox)
        break
      case 'rotate':
        command = this.commands.glueRotate(k.emitted, k.nodes, k.revoked, k.presence, k.detached,
          this.#uid, counter, payload, message.sessionId, message.to, message.userId === null ? '' : userChannel(message.userId),
          k.tag, inbox, Date.now(), limits.maxRevocations, limits.revocationLifetime, Date.now() + limits.sessionGrace)
        break
      case 'revoke':
        command = this.commands.glueRevoke(k.emitted, k.nodes, k.revoked,
          this.#uid, counter, payload, message.sessionId, k.tag, inbox, Date.now(), limits.maxRevocations, limits.revocationLifetime)
        break
      case 'revokeUser':
        command = this.commands.glueRevokeUser(k.emitted, k.nodes, k.revokedUsers, k.subscribers(userChannel(message.userId)), k.topicHistory(userChannel(message.userId)),
          this.#uid, counter, payload, message.userId, message.before, k.tag, inbox, Date.now(), limits.maxRevocations, limits.revocationLifetime)
        break
      default:
        // Expiry is Redis's own business (REAP): nodes never emit it.
        pending.done()
        return
    }
    command.then((result) => {
      if (result === -2) this.#host.log.warn({ kind: message.kind }, 'redis adapter: subscription refused: the session has maxTopicsPerSession topics')
      // -1 and -2: the script wrote nothing, so no change comes back through the inbox.
      if (result < 0) this.#unchanged(message)
      pending.done()
    }, (err: unknown) => {
      if (neverSent(err) && !this.#stopped) {
        // Redis went away before the command left: it waits, in its place, for the connection to come back.
        this.#requeue(pending)
        this.#lost()
        return
      }
      this.#host.log.error({ err, kind: message.kind }, 'redis adapter: message not delivered')
      this.#undelivered++
      this.#unchanged(message)
      pending.done()
    })
  }

  #unchanged (message: ClusterMessage): void {
    if (message.kind === 'subscribe' || message.kind === 'unsubscribe') this.#host.unchanged(message.sessionId, message.topic)
  }

  #requeue (pending: PendingEmit): void {
    let at = this.#buffer.length
    while (at > 0 && (this.#buffer[at - 1] as PendingEmit).order > pending.order) at--
    this.#buffer.splice(at, 0, pending)
  }

  #lost (): void {
    if (this.#stopped || !this.#ready) return
    this.#ready = false
    this.#outage = true
    this.#host.log.error({ shard: this.index, bufferLimit: this.#options.bufferLimit }, 'redis adapter: connection to Redis lost; buffering messages until it returns')
  }

  /** Runs #reconnected once at a time, and again until it succeeds while the connection stays up. */
  #recover (): void {
    if (this.#recovering || this.#stopped || this.#ready) return
    this.#recovering = true
    this.#reconnected().catch((err: unknown) => {
      this.#host.log.error({ err }, 'redis adapter: recovery failed; trying again')
      const retry = setTimeout(() => { if (this.commands.status === 'ready') this.#recover() }, 200)
      retry.unref()
    }).finally(() => { this.#recovering = false })
  }

  /** The command connection is back: announce this node again, restore lost state, then flush the buffer in order. */
  async #reconnected (): Promise<void> {
    if (this.#stopped || this.#ready) return
    const [epoch] = await this.#readEpoch()
    const epochChanged = epoch !== this.#epoch
    this.#epoch = epoch
    await this.onReconnected(epochChanged)
    const buffered = this.#buffer
    this.#buffer = []
    for (const pending of buffered) this.#write(pending)
    this.#ready = true
    if (this.#outage) this.#host.log.info({ shard: this.index, flushed: buffered.length }, 'redis adapter: connection to Redis restored')
    this.#outage = false
    this.onRestored(epochChanged)
  }

  /** The revocations this shard remembers: session ids with their time, users with theirs. */
  async revocations (now: number): Promise<{ sessions: Array<[string, number]>, users: Array<[string, number]> }> {
    const since = `(${now - this.#limits.revocationLifetime}`
    const [sessions, users] = await Promise.all([
      this.commands.zrangebyscore(this.keys.revoked, since, '+inf', 'WITHSCORES'),
      this.commands.zrangebyscore(this.keys.revokedUsers, since, '+inf', 'WITHSCORES')
    ])
    return { sessions: pairs(sessions), users: pairs(users) }
  }

  /** Puts messages ahead of the buffer (subscriptions written again after Redis lost its data). */
  prepend (messages: readonly ClusterMessage[]): void {
    const restored = messages.map((message) => ({ order: 0, message, payload: encodeClusterMessage(message, Date.now()), done: () => {} }))
    this.#buffer = [...restored, ...this.#buffer]
  }
}

/** [member, score, member, score, …] as pairs. */
function pairs (flat: string[]): Array<[string, number]> {
  const result: Array<[string, number]> = []
  for (let i = 0; i + 1 < flat.length; i += 2) result.push([flat[i] as string, Number(flat[i + 1])])
  return result
}
