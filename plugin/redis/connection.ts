import { randomBytes } from 'node:crypto'
import { Redis, type RedisOptions } from 'ioredis'
import type { AdapterHost, AdapterLimits, ClusterMessage } from '../adapters/adapter.js'
import { FST_WSGLUE_CLUSTER_UNAVAILABLE } from '../errors.js'
import { encodeClusterMessage } from './codec.js'
import type { RedisKeys } from './keys.js'
import { REDIS_STOP_GRACE, type RedisClientLike, type ResolvedRedisAdapterOptions } from './options.js'
import { SCRIPTS, type ScriptCommands } from './scripts.js'

/** An ioredis connection with the adapter's scripts defined on it. */
export type Connection = Redis & ScriptCommands

/** A message waiting to be numbered by Redis. */
interface PendingEmit {
  readonly message: ClusterMessage
  readonly payload: Buffer
  readonly done: () => void
}

function pendingEmit (message: ClusterMessage, done: () => void): PendingEmit {
  return { message, payload: encodeClusterMessage(message, Date.now()), done }
}

/**
 * The adapter's two connections to Redis: `commands` numbers messages (EMIT) and carries every
 * other command; `reader` only reads the stream. While the command connection is down, messages
 * wait in a bounded buffer, in order, and are written once it is back and the node is recovered.
 */
export class RedisConnection {
  readonly commands: Connection
  readonly reader: Connection
  readonly #options: ResolvedRedisAdapterOptions
  readonly #uid: string
  readonly #keys: RedisKeys
  readonly #host: AdapterHost
  readonly #limits: AdapterLimits
  /** Announces this node's sessions again (presence) when the command connection is back. */
  readonly #announce: () => Promise<void>
  /** The epoch the command connection last saw, to notice that Redis lost its data. */
  #writerEpoch = ''
  /** False while the command connection is down: messages wait in #buffer, in order. */
  #ready = false
  #buffer: PendingEmit[] = []
  #counter = 0
  #last: Promise<void> | undefined
  #stopped = false
  #outage = false
  #recovering = false

  constructor (options: ResolvedRedisAdapterOptions, uid: string, keys: RedisKeys, host: AdapterHost, limits: AdapterLimits, announce: () => Promise<void>) {
    this.#options = options
    this.#uid = uid
    this.#keys = keys
    this.#host = host
    this.#limits = limits
    this.#announce = announce
    this.commands = this.#connect(true)
    // A blocked XREAD must fail when its connection drops, so the reader checks the epoch before reading on.
    this.reader = this.#connect(false)
  }

  /** Whether messages go to Redis now (false while the command connection is down, and before start). */
  get ready (): boolean {
    return this.#ready
  }

  get stopped (): boolean {
    return this.#stopped
  }

  /** Resolves once every message sent so far is numbered (or failed); undefined before the first. */
  get settled (): Promise<void> | undefined {
    return this.#last
  }

  async open (): Promise<void> {
    await Promise.all([this.commands.connect(), this.reader.connect()])
  }

  disconnect (): void {
    this.commands.disconnect()
    this.reader.disconnect()
  }

  /** Starts sending, from the `epoch` the adapter's start read; from now on an outage is buffered over. */
  start (epoch: string): void {
    this.#writerEpoch = epoch
    this.#ready = true
    this.commands.on('ready', () => { this.#recover() })
    this.commands.on('close', () => this.#lost())
  }

  /** Lets messages in flight land, runs `leave` while Redis is reachable, then disconnects. */
  async stop (leave: () => Promise<void>): Promise<void> {
    this.#stopped = true
    if (this.#buffer.length > 0) {
      this.#host.log.error({ messages: this.#buffer.length }, 'redis adapter: stopped while Redis was unreachable; buffered messages were not delivered')
    }
    if (this.#ready) {
      // Let messages in flight land, but never hold app.close() on a Redis that stopped answering.
      let timer: NodeJS.Timeout | undefined
      await Promise.race([this.#last, new Promise((resolve) => { timer = setTimeout(resolve, REDIS_STOP_GRACE) })])
      clearTimeout(timer)
      await leave()
      await this.commands.quit().catch(() => {})
    }
    this.disconnect()
  }

  /**
   * Has Redis number the message and append it to the stream, or buffers it while Redis is away.
   * @throws FST_WSGLUE_CLUSTER_UNAVAILABLE when Redis is away and the buffer is full.
   */
  send (message: ClusterMessage): void {
    if (!this.#ready && this.#buffer.length >= this.#options.bufferLimit) {
      throw new FST_WSGLUE_CLUSTER_UNAVAILABLE(`Redis is unreachable and ${this.#options.bufferLimit} messages are already waiting for it`)
    }
    let done!: () => void
    this.#last = new Promise((resolve) => { done = resolve })
    const pending = pendingEmit(message, done)
    if (this.#ready) this.#write(pending)
    else this.#buffer.push(pending)
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
    connection.on('error', (err: Error) => this.#host.log.debug({ err }, 'redis adapter: connection error'))
    return connection
  }

  #write (pending: PendingEmit): void {
    const k = this.#keys
    const { message } = pending
    const op = message.kind === 'subscribe' ? 's' : message.kind === 'unsubscribe' ? 'u' : ''
    const sessionId = op === '' ? '' : (message as { sessionId: string }).sessionId
    const topic = op === '' ? '' : (message as { topic: string }).topic
    // The node's counter makes a command ioredis re-sends after a reconnect a no-op in EMIT.
    this.commands.glueEmit(k.seq, k.stream, k.emitted, k.subs, k.presence, k.detached,
      this.#options.streamLimit, this.#uid, ++this.#counter, pending.payload, op, sessionId, topic,
      Date.now() + this.#limits.sessionGrace)
      .then(pending.done, (err: unknown) => {
        this.#host.log.error({ err, kind: message.kind }, 'redis adapter: message not delivered')
        pending.done()
      })
  }

  #lost (): void {
    if (this.#stopped || !this.#ready) return
    this.#ready = false
    this.#outage = true
    this.#host.log.error({ bufferLimit: this.#options.bufferLimit }, 'redis adapter: connection to Redis lost; buffering messages until it returns')
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

  /** The command connection is back: re-announce this node, restore lost state, then flush the buffer in order. */
  async #reconnected (): Promise<void> {
    if (this.#stopped || this.#ready) return
    const epoch = await this.commands.glueEpoch(this.#keys.epoch, randomBytes(6).toString('base64url'))
    if (epoch !== this.#writerEpoch) {
      this.#writerEpoch = epoch
      // Redis lost its data: subscriptions of this node's sessions are written again from local knowledge.
      // They go before the buffered messages, which were sent after them.
      const restored: PendingEmit[] = []
      for (const [sessionId] of this.#host.localSessions()) {
        for (const topic of this.#host.topicsOf(sessionId)) {
          restored.push(pendingEmit({ kind: 'subscribe', sessionId, topic }, () => {}))
        }
      }
      this.#buffer = [...restored, ...this.#buffer]
    }
    await this.#announce()
    const buffered = this.#buffer
    this.#buffer = []
    for (const pending of buffered) this.#write(pending)
    this.#ready = true
    if (this.#outage) this.#host.log.info({ flushed: buffered.length }, 'redis adapter: connection to Redis restored')
    this.#outage = false
  }
}
