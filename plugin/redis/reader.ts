import { randomBytes } from 'node:crypto'
import type { AdapterHost, StreamPosition } from '../adapters/adapter.js'
import { decodeClusterMessage } from './codec.js'
import { seqOf, shardOf, type StreamEntry } from './keys.js'
import { REDIS_READ_BATCH, REDIS_READ_BLOCK } from './options.js'
import type { Connection, RedisShard } from './shard.js'

// Field names of inbox entries: a message ('m', payload) or the topics of a session the node now holds ('j', session, 't', topic, …).
const MESSAGE = 0x6d
const JOINED = 0x6a

/**
 * Reads this node's inbox on one shard, in order, and applies every entry: the inbox holds only
 * what concerns sessions this node holds (their sends and closes, publishes to their topics,
 * broadcasts). A node that loses Redis for a moment reads on from where it stopped; when entries
 * it never read were trimmed, or it was presumed dead, its clients read back what they missed (resync).
 */
export class InboxReader {
  readonly #shard: RedisShard
  readonly #shards: number
  readonly #host: AdapterHost
  /** With several shards, this shard's copy of a broadcast or publish is for its own sessions only. */
  readonly #mine: ((sessionId: string) => boolean) | undefined
  #epoch = ''
  /** The id of the last entry read, how many entries were read, and the sequence number of the last one. */
  #cursor = '0-0'
  #read = 0
  #seq = 0
  /** Welcomes waiting for an entry this node must read first (the topics of a session it just took on). */
  #waiting: Array<{ seq: number, resolve: () => void }> = []

  constructor (shard: RedisShard, shards: number, host: AdapterHost) {
    this.#shard = shard
    this.#shards = shards
    this.#host = host
    this.#mine = shards === 1 ? undefined : (sessionId) => shardOf(sessionId, shards) === shard.index
  }

  /** Reads on from `seq`, the shard's number when the node started: its inbox holds nothing older. */
  begin (epoch: string, seq: number): void {
    this.#epoch = epoch
    this.#seq = seq
  }

  /** What this node has read of the shard: a welcome's answer while Redis cannot be asked. */
  position (): StreamPosition {
    return { epoch: this.#epoch, seq: this.#seq }
  }

  /** Reads until the shard stops. */
  async run (): Promise<void> {
    const reader = this.#shard.reader
    const inbox = this.#shard.keys.inbox
    while (!this.#shard.stopped) {
      let reply: Array<[Buffer, StreamEntry[]]> | null
      try {
        reply = await reader.xreadBuffer('COUNT', REDIS_READ_BATCH, 'BLOCK', REDIS_READ_BLOCK, 'STREAMS', inbox, this.#cursor) as Array<[Buffer, StreamEntry[]]> | null
      } catch {
        if (this.#shard.stopped) return
        await this.#readerBack(reader)
        continue
      }
      for (const [, entries] of reply ?? []) {
        for (const [id, fields] of entries) this.#apply(id, fields)
      }
    }
  }

  /** Waits for the reader to reconnect, then checks what happened meanwhile. */
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
    if (this.#shard.stopped || reader.status !== 'ready') return
    try {
      await this.#checkEpoch(reader)
      await this.checkTrimmed(reader)
    } catch (err) {
      this.#host.log.debug({ err }, 'redis adapter: checking the inbox after a reconnect failed')
    }
  }

  /** A new epoch means Redis lost its data: the inbox starts over, and clients are told. */
  async #checkEpoch (connection: Connection): Promise<void> {
    // Names the dataset when this is the first connection back to an emptied Redis, as the writer would.
    const [epoch] = await connection.glueEpoch(this.#shard.keys.epoch, this.#shard.keys.seq, randomBytes(6).toString('base64url'))
    if (epoch === this.#epoch) return
    this.#host.log.warn({ shard: this.#shard.index, epoch }, 'redis adapter: Redis lost its data; clients are told messages may be missing')
    this.#epoch = epoch
    this.#cursor = '0-0'
    this.#read = 0
    this.#seq = 0
    this.#release()
    // The command connection, announcing this node again in the new dataset, then catches its clients up.
  }

  /**
   * Entries added to the inbox that this node neither read nor finds there any more were trimmed
   * before it got to them (it lagged by more than `streamLimit`): its clients are told. Runs after
   * reconnects and with the heartbeat.
   */
  async checkTrimmed (connection: Connection = this.#shard.commands): Promise<void> {
    const info = await streamInfo(connection, this.#shard.keys.inbox)
    if (info === undefined || compareIds(info.firstId, this.#cursor) <= 0) return
    const lost = info.added - this.#read - info.length
    if (lost <= 0) return
    this.#host.log.warn({ shard: this.#shard.index, lost }, 'redis adapter: messages were trimmed before this node read them')
    this.#read += lost
    this.#resync()
  }

  /** Entries in this node's inbox that it has not applied yet (0 when Redis cannot say). */
  async unread (): Promise<number> {
    const info = await streamInfo(this.#shard.commands, this.#shard.keys.inbox)
    return info === undefined ? 0 : Math.max(0, info.added - this.#read)
  }

  /** Others presumed this node dead: they withdrew its routes and its inbox; what was sent meanwhile never came. */
  restart (): void {
    this.#read = 0
    this.#resync()
  }

  /** Resolves once the entry numbered `seq` has been read (at once when it has, or when the shard stops). */
  async until (seq: number): Promise<void> {
    if (seq <= this.#seq || this.#shard.stopped) return
    await new Promise<void>((resolve) => { this.#waiting.push({ seq, resolve }) })
  }

  #release (all = true): void {
    const due = all ? this.#waiting : this.#waiting.filter((waiter) => waiter.seq <= this.#seq)
    this.#waiting = all ? [] : this.#waiting.filter((waiter) => waiter.seq > this.#seq)
    for (const waiter of due) waiter.resolve()
  }

  #resync (): void {
    const index = this.#shard.index
    this.#host.resync(this.#epoch, (sessionId) => shardOf(sessionId, this.#shards) === index)
  }

  #apply (id: Buffer, fields: Buffer[]): void {
    const host = this.#host
    this.#cursor = id.toString('latin1')
    this.#read++
    const seq = seqOf(this.#cursor)
    if (seq > this.#seq) this.#seq = seq
    if (this.#waiting.length > 0) queueMicrotask(() => { this.#release(false) })
    const kind = fields[0]?.[0]
    if (kind === JOINED && fields.length >= 2) {
      const topics: string[] = []
      for (let i = 3; i < fields.length; i += 2) topics.push((fields[i] as Buffer).toString('utf8'))
      host.setTopics((fields[1] as Buffer).toString('utf8'), topics)
      return
    }
    const decoded = kind === MESSAGE && fields[1] !== undefined ? decodeClusterMessage(fields[1]) : undefined
    if (decoded === undefined) {
      host.log.warn({ seq }, 'redis adapter: dropped a malformed cluster message')
      return
    }
    try {
      host.apply(decoded.message, seq, this.#mine, this.#epoch)
    } catch (err) {
      host.log.error({ err, kind: decoded.message.kind }, 'redis adapter: delivery failed')
    }
  }
}

/** What XINFO STREAM says of a stream: entries now, entries ever added, and the first one kept. */
export interface StreamInfo {
  readonly length: number
  readonly added: number
  readonly firstId: string
}

/** XINFO STREAM of a key, or undefined when there is no such stream (nothing added, or it expired whole). */
export async function streamInfo (connection: Connection, key: string): Promise<StreamInfo | undefined> {
  let info: unknown[]
  try {
    info = await connection.xinfo('STREAM', key) as unknown[]
  } catch {
    return undefined
  }
  const field = (name: string): unknown => info[info.indexOf(name) + 1]
  const first = field('first-entry') as [string, unknown] | null
  return { length: Number(field('length')), added: Number(field('entries-added')), firstId: first === null ? String(field('last-generated-id')) : first[0] }
}

/** Whether a stream dropped entries numbered above `afterSeq` (trimmed by its length limit). */
export function trimmedAfter (info: StreamInfo | undefined, afterSeq: number): boolean {
  return info !== undefined && info.added > info.length && seqOf(info.firstId) > afterSeq + 1
}

/** Compares two stream ids `ms-seq` numerically. */
export function compareIds (a: string, b: string): number {
  const [aMs = 0, aSeq = 0] = a.split('-').map(Number)
  const [bMs = 0, bSeq = 0] = b.split('-').map(Number)
  return aMs !== bMs ? aMs - bMs : aSeq - bSeq
}
