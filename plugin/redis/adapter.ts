import { randomBytes } from 'node:crypto'
import { Redis, type RedisOptions } from 'ioredis'
import { FST_WSGLUE_CLUSTER_UNAVAILABLE, FST_WSGLUE_REDIS_UNAVAILABLE } from '../errors.js'
import { receives } from '../messages/recipients.js'
import type { AdapterHost, AdapterLimits, ClusterCounts, ClusterMessage, ReplayResult, SequencedAdapter, StreamPosition } from '../adapters/adapter.js'
import { decodeClusterMessage, encodeClusterMessage } from './codec.js'
import {
  REDIS_READ_BATCH,
  REDIS_READ_BLOCK,
  REDIS_STOP_GRACE,
  resolveRedisOptions,
  type RedisAdapterOptions,
  type RedisClientLike,
  type ResolvedRedisAdapterOptions
} from './options.js'
import { EMIT, EPOCH, JOIN, LEAVE, REAP, SNAPSHOT, SYNC_NODE } from './scripts.js'

type Arg = string | number | Buffer
interface ScriptCommands {
  glueEmit (...args: Arg[]): Promise<number>
  glueSnapshot (...args: Arg[]): Promise<[string, string, string[]]>
  glueEpoch (...args: Arg[]): Promise<string>
  glueJoin (...args: Arg[]): Promise<null>
  glueLeave (...args: Arg[]): Promise<null>
  glueSyncNode (...args: Arg[]): Promise<null>
  glueReap (...args: Arg[]): Promise<number>
}
type Connection = Redis & ScriptCommands
type StreamEntry = [id: Buffer, fields: Buffer[]]

/** A message waiting to be numbered by Redis. */
interface PendingEmit {
  readonly message: ClusterMessage
  readonly payload: Buffer
  readonly done: () => void
}

function pendingEmit (message: ClusterMessage, done: () => void): PendingEmit {
  return { message, payload: encodeClusterMessage(message, Date.now()), done }
}

const SCRIPTS: ReadonlyArray<[name: keyof ScriptCommands, keys: number, lua: string]> = [
  ['glueEmit', 6, EMIT],
  ['glueSnapshot', 3, SNAPSHOT],
  ['glueEpoch', 1, EPOCH],
  ['glueJoin', 4, JOIN],
  ['glueLeave', 4, LEAVE],
  ['glueSyncNode', 5, SYNC_NODE],
  ['glueReap', 8, REAP]
]

/** Whether a stored message is one this session receives again on resume (volatile ones are never replayed). */
function replayable (message: ClusterMessage, sessionId: string, topics: ReadonlySet<string>): boolean {
  return !('volatile' in message && message.volatile) && receives(message, sessionId, (topic) => topics.has(topic))
}

function seqOf (id: Buffer): number {
  const text = id.toString('latin1')
  return Number(text.slice(0, text.indexOf('-')))
}

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
  readonly #keys: Record<'seq' | 'epoch' | 'stream' | 'emitted' | 'subs' | 'presence' | 'detached' | 'sockets' | 'nodes' | 'node', string>
  #host: AdapterHost | undefined
  #limits: AdapterLimits = { outboxLimit: 0, outboxMaxAge: 0, sessionGrace: 0 }
  #commands: Connection | undefined
  #reader: Connection | undefined
  /** The epoch and the last sequence number this node has applied. */
  #epoch = ''
  #cursor = 0
  /** The epoch the command connection last saw, to notice that Redis lost its data. */
  #writerEpoch = ''
  /** False while the command connection is down: messages wait in #buffer, in order. */
  #ready = false
  #buffer: PendingEmit[] = []
  #counter = 0
  #last: Promise<void> | undefined
  #stopped = false
  #timer: NodeJS.Timeout | undefined
  #outage = false
  #recovering = false

  constructor (options: ResolvedRedisAdapterOptions) {
    this.#options = options
    const tag = `{${options.prefix}}`
    this.#keys = {
      seq: `${tag}:seq`,
      epoch: `${tag}:epoch`,
      stream: `${tag}:stream`,
      emitted: `${tag}:emitted`,
      subs: `${tag}:subs`,
      presence: `${tag}:presence`,
      detached: `${tag}:detached`,
      sockets: `${tag}:sockets`,
      nodes: `${tag}:nodes`,
      node: `${tag}:node:${this.#uid}`
    }
  }

  get #log (): AdapterHost['log'] {
    return (this.#host as AdapterHost).log
  }

  async start (host: AdapterHost, limits: AdapterLimits): Promise<void> {
    this.#host = host
    this.#limits = limits
    const commands = this.#connect(true)
    // A blocked XREAD must fail when its connection drops, so the reader checks the epoch before reading on.
    const reader = this.#connect(false)
    this.#commands = commands
    this.#reader = reader
    try {
      await Promise.all([commands.connect(), reader.connect()])
      const snapshot = await this.#snapshot(reader)
      this.#epoch = snapshot.epoch
      this.#writerEpoch = snapshot.epoch
      this.#cursor = snapshot.seq
      host.resetSubscriptions(snapshot.subscriptions)
      await this.#syncNode()
    } catch (err) {
      commands.disconnect()
      reader.disconnect()
      throw new FST_WSGLUE_REDIS_UNAVAILABLE((err as Error).message)
    }
    this.#ready = true
    commands.on('ready', () => { this.#recover() })
    commands.on('close', () => this.#lost())
    this.#timer = setInterval(() => { this.#upkeep() }, Math.max(100, Math.floor(this.#options.nodeTimeout / 3)))
    this.#timer.unref()
    this.#readLoop().catch((err: unknown) => this.#log.error({ err }, 'redis adapter: reader stopped'))
  }

  async stop (): Promise<void> {
    this.#stopped = true
    clearInterval(this.#timer)
    const commands = this.#commands as Connection
    if (this.#buffer.length > 0) {
      this.#log.error({ messages: this.#buffer.length }, 'redis adapter: stopped while Redis was unreachable; buffered messages were not delivered')
    }
    if (this.#ready) {
      // Let messages in flight land, but never hold app.close() on a Redis that stopped answering.
      let timer: NodeJS.Timeout | undefined
      await Promise.race([this.#last, new Promise((resolve) => { timer = setTimeout(resolve, REDIS_STOP_GRACE) })])
      clearTimeout(timer)
      // Leave politely: others need not wait for the node timeout to see these sockets gone.
      await this.#syncNode([]).then(() => commands.zrem(this.#keys.nodes, this.#uid)).catch(() => {})
      await commands.quit().catch(() => {})
    }
    commands.disconnect()
    this.#reader?.disconnect()
  }

  emit (message: ClusterMessage): number {
    const host = this.#host as AdapterHost
    if (!this.#ready) {
      // Best effort by definition: delivered on this node, nowhere else, while Redis is away.
      if ('volatile' in message && message.volatile) return host.apply(message)
      if (this.#buffer.length >= this.#options.bufferLimit) {
        throw new FST_WSGLUE_CLUSTER_UNAVAILABLE(`Redis is unreachable and ${this.#options.bufferLimit} messages are already waiting for it`)
      }
    }
    let done!: () => void
    this.#last = new Promise((resolve) => { done = resolve })
    const pending = pendingEmit(message, done)
    if (this.#ready) this.#write(pending)
    else this.#buffer.push(pending)
    if (message.kind === 'subscribe') return 1
    if (message.kind === 'unsubscribe') return host.topicsOf(message.sessionId).includes(message.topic) ? 1 : 0
    return 0
  }

  settled (): Promise<void> | undefined {
    return this.#last
  }

  socketOpened (sessionId: string): void {
    // While Redis is away presence is rebuilt in full on reconnect (#syncNode), not replayed.
    if (!this.#ready) return
    const k = this.#keys
    this.#commands?.glueJoin(k.presence, k.node, k.detached, k.sockets, sessionId)
      .catch((err: unknown) => this.#log.debug({ err }, 'redis adapter: presence update failed'))
  }

  socketClosed (sessionId: string): void {
    if (!this.#ready) return
    const k = this.#keys
    this.#commands?.glueLeave(k.presence, k.node, k.detached, k.sockets, sessionId, Date.now() + this.#limits.sessionGrace)
      .catch((err: unknown) => this.#log.debug({ err }, 'redis adapter: presence update failed'))
  }

  async presence (sessionId: string): Promise<number> {
    const value = await this.#query(() => (this.#commands as Connection).hget(this.#keys.presence, sessionId))
    return Number(value ?? 0)
  }

  async clusterCounts (): Promise<ClusterCounts> {
    const k = this.#keys
    const [nodes, sessions, sockets] = await this.#query(() => Promise.all([
      (this.#commands as Connection).zcount(k.nodes, Date.now(), '+inf'),
      (this.#commands as Connection).hlen(k.presence),
      (this.#commands as Connection).get(k.sockets)
    ]))
    return { nodes, sessions, sockets: Math.max(0, Number(sockets ?? 0)) }
  }

  position (): StreamPosition {
    return { epoch: this.#epoch, seq: this.#cursor }
  }

  /**
   * Walks the stream back from `untilSeq`, keeping the session's newest `outboxLimit` messages
   * younger than `outboxMaxAge`, and counts the rest as missed (unknown when the stream itself
   * was trimmed past the resume point).
   */
  async replay (sessionId: string, afterSeq: number, untilSeq: number): Promise<ReplayResult> {
    const commands = this.#commands as Connection
    const topics = new Set((this.#host as AdapterHost).topicsOf(sessionId))
    const cutoff = Date.now() - this.#limits.outboxMaxAge
    const kept: Array<{ seq: number, message: ClusterMessage }> = []
    let missed = 0
    let end = String(untilSeq)
    let oldestSeen = untilSeq + 1
    for (;;) {
      const batch = await commands.xrevrangeBuffer(this.#keys.stream, end, String(afterSeq + 1), 'COUNT', REDIS_READ_BATCH) as StreamEntry[]
      for (const [id, fields] of batch) {
        const seq = seqOf(id)
        oldestSeen = seq
        const decoded = fields[1] === undefined ? undefined : decodeClusterMessage(fields[1])
        if (decoded === undefined || !replayable(decoded.message, sessionId, topics)) continue
        if (decoded.time < cutoff || kept.length >= this.#limits.outboxLimit) missed++
        else kept.push({ seq, message: decoded.message })
      }
      if (batch.length < REDIS_READ_BATCH) break
      end = `(${oldestSeen}`
    }
    // Stream ids are consecutive: a hole before the oldest entry read means trimmed entries.
    const trimmed = oldestSeen > afterSeq + 1 && untilSeq > afterSeq
    return { messages: kept.reverse(), missed: trimmed ? null : missed }
  }

  #connect (resend: boolean): Connection {
    const settings: RedisOptions = {
      lazyConnect: true,
      // Our own bounded buffer holds messages while Redis is away; commands fail fast instead of queueing.
      enableOfflineQueue: false,
      // Messages in flight are re-sent after a reconnect (EMIT ignores repeats); the reader's XREAD fails instead.
      autoResendUnfulfilledCommands: resend,
      maxRetriesPerRequest: resend ? null : 0,
      connectionName: `glue:${this.#uid}`
    }
    const { url, client } = this.#options
    const connection = (client !== undefined
      ? (client as RedisClientLike).duplicate(settings)
      : new Redis(url as string, settings)) as Connection
    for (const [name, numberOfKeys, lua] of SCRIPTS) connection.defineCommand(name, { numberOfKeys, lua })
    // ioredis emits 'error' on every failed reconnect attempt; #lost logs the outage once.
    connection.on('error', (err: Error) => this.#log.debug({ err }, 'redis adapter: connection error'))
    return connection
  }

  async #snapshot (connection: Connection): Promise<{ epoch: string, seq: number, subscriptions: Array<[string, string[]]> }> {
    const k = this.#keys
    const [epoch, seq, flat] = await connection.glueSnapshot(k.epoch, k.seq, k.subs, randomBytes(6).toString('base64url'))
    const subscriptions: Array<[string, string[]]> = []
    for (let i = 0; i + 1 < flat.length; i += 2) {
      try {
        subscriptions.push([flat[i] as string, JSON.parse(flat[i + 1] as string) as string[]])
      } catch {}
    }
    return { epoch, seq: Number(seq), subscriptions }
  }

  async #syncNode (sessions?: Array<[string, number]>): Promise<void> {
    const k = this.#keys
    const args: Arg[] = [k.presence, k.node, k.detached, k.sockets, k.nodes,
      this.#uid, Date.now() + this.#options.nodeTimeout, Date.now() + this.#limits.sessionGrace]
    for (const [sessionId, count] of sessions ?? (this.#host as AdapterHost).localSessions()) args.push(sessionId, count)
    await (this.#commands as Connection).glueSyncNode(...args)
  }

  #write (pending: PendingEmit): void {
    const k = this.#keys
    const { message } = pending
    const op = message.kind === 'subscribe' ? 's' : message.kind === 'unsubscribe' ? 'u' : ''
    const sessionId = op === '' ? '' : (message as { sessionId: string }).sessionId
    const topic = op === '' ? '' : (message as { topic: string }).topic
    ;(this.#commands as Connection).glueEmit(k.seq, k.stream, k.emitted, k.subs, k.presence, k.detached,
      this.#options.streamLimit, this.#uid, ++this.#counter, pending.payload, op, sessionId, topic,
      Date.now() + this.#limits.sessionGrace)
      .then(pending.done, (err: unknown) => {
        this.#log.error({ err, kind: message.kind }, 'redis adapter: message not delivered')
        pending.done()
      })
  }

  #lost (): void {
    if (this.#stopped || !this.#ready) return
    this.#ready = false
    this.#outage = true
    this.#log.error({ bufferLimit: this.#options.bufferLimit }, 'redis adapter: connection to Redis lost; buffering messages until it returns')
  }

  /** Runs #reconnected once at a time, and again until it succeeds while the connection stays up. */
  #recover (): void {
    if (this.#recovering || this.#stopped || this.#ready) return
    this.#recovering = true
    this.#reconnected().catch((err: unknown) => {
      this.#log.error({ err }, 'redis adapter: recovery failed; trying again')
      const retry = setTimeout(() => { if (this.#commands?.status === 'ready') this.#recover() }, 200)
      retry.unref()
    }).finally(() => { this.#recovering = false })
  }

  /** The command connection is back: re-announce this node, restore lost state, then flush the buffer in order. */
  async #reconnected (): Promise<void> {
    if (this.#stopped || this.#ready) return
    const commands = this.#commands as Connection
    const k = this.#keys
    const epoch = await commands.glueEpoch(k.epoch, randomBytes(6).toString('base64url'))
    if (epoch !== this.#writerEpoch) {
      this.#writerEpoch = epoch
      // Redis lost its data: subscriptions of this node's sessions are written again from local knowledge.
      // They go before the buffered messages, which were sent after them.
      const restored: PendingEmit[] = []
      for (const [sessionId] of (this.#host as AdapterHost).localSessions()) {
        for (const topic of (this.#host as AdapterHost).topicsOf(sessionId)) {
          restored.push(pendingEmit({ kind: 'subscribe', sessionId, topic }, () => {}))
        }
      }
      this.#buffer = [...restored, ...this.#buffer]
    }
    await this.#syncNode()
    const buffered = this.#buffer
    this.#buffer = []
    for (const pending of buffered) this.#write(pending)
    this.#ready = true
    if (this.#outage) this.#log.info({ flushed: buffered.length }, 'redis adapter: connection to Redis restored')
    this.#outage = false
  }

  async #readLoop (): Promise<void> {
    const reader = this.#reader as Connection
    while (!this.#stopped) {
      let reply: Array<[Buffer, StreamEntry[]]> | null
      try {
        reply = await reader.xreadBuffer('COUNT', REDIS_READ_BATCH, 'BLOCK', REDIS_READ_BLOCK, 'STREAMS', this.#keys.stream, `${this.#cursor}-0`) as Array<[Buffer, StreamEntry[]]> | null
      } catch {
        if (this.#stopped) return
        await this.#readerBack(reader)
        continue
      }
      for (const [, entries] of reply ?? []) {
        for (const [id, fields] of entries) this.#apply(seqOf(id), fields[1])
      }
    }
  }

  /** Waits for the reader to reconnect; a new epoch means Redis lost its data, and clients are told. */
  async #readerBack (reader: Connection): Promise<void> {
    if (reader.status !== 'ready') {
      // Not events.once: it rejects on the 'error' every failed reconnect attempt emits.
      await new Promise<void>((resolve) => {
        const done = (): void => {
          reader.off('ready', done)
          reader.off('end', done)
          resolve()
        }
        reader.on('ready', done)
        reader.on('end', done)
      })
    } else {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    if (this.#stopped || reader.status !== 'ready') return
    try {
      const snapshot = await this.#snapshot(reader)
      if (snapshot.epoch === this.#epoch) return
      this.#log.warn({ epoch: snapshot.epoch }, 'redis adapter: Redis lost its data; clients are told messages may be missing')
      this.#epoch = snapshot.epoch
      this.#cursor = 0
      ;(this.#host as AdapterHost).resetSubscriptions(snapshot.subscriptions)
      ;(this.#host as AdapterHost).resync(this.position())
    } catch (err) {
      this.#log.debug({ err }, 'redis adapter: snapshot after reconnect failed')
    }
  }

  #apply (seq: number, payload: Buffer | undefined): void {
    const host = this.#host as AdapterHost
    if (seq <= this.#cursor) return
    if (seq !== this.#cursor + 1) {
      // The stream was trimmed past this node's position while it could not read.
      this.#log.warn({ from: this.#cursor + 1, to: seq - 1 }, 'redis adapter: cluster messages were trimmed before this node read them')
      this.#cursor = seq - 1
      host.resync(this.position())
    }
    this.#cursor = seq
    const decoded = payload === undefined ? undefined : decodeClusterMessage(payload)
    if (decoded === undefined) {
      this.#log.warn({ seq }, 'redis adapter: dropped a malformed cluster message')
      return
    }
    const { message } = decoded
    try {
      host.apply(message, seq)
    } catch (err) {
      this.#log.error({ err, kind: message.kind }, 'redis adapter: delivery failed')
    }
  }

  /** Heartbeat and cleanup, on every node: whichever runs first does the work. */
  #upkeep (): void {
    if (!this.#ready) return
    const commands = this.#commands as Connection
    const k = this.#keys
    const now = Date.now()
    commands.zadd(k.nodes, now + this.#options.nodeTimeout, this.#uid)
      .then(async (added) => {
        // Others presumed this node dead and withdrew its presence: announce it again.
        if (added === 1) {
          this.#log.warn('redis adapter: this node was presumed dead; announcing its sessions again')
          await this.#syncNode()
        }
        await commands.glueReap(k.presence, k.detached, k.sockets, k.nodes, k.emitted, k.subs, k.seq, k.stream,
          now, now + this.#limits.sessionGrace, this.#options.streamLimit, `{${this.#options.prefix}}`)
      })
      .catch((err: unknown) => this.#log.debug({ err }, 'redis adapter: upkeep failed'))
  }

  /** Runs a cluster-wide query, or says clearly that Redis is away. */
  async #query<T> (run: () => Promise<T>): Promise<T> {
    if (!this.#ready) throw new FST_WSGLUE_CLUSTER_UNAVAILABLE('Redis is unreachable')
    try {
      return await run()
    } catch (err) {
      throw new FST_WSGLUE_CLUSTER_UNAVAILABLE((err as Error).message)
    }
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
