import { randomBytes } from 'node:crypto'
import type { AdapterHost, StreamPosition } from '../adapters/adapter.js'
import { decodeClusterMessage } from './codec.js'
import type { Connection, RedisConnection } from './connection.js'
import { seqOf, type RedisKeys, type StreamEntry } from './keys.js'
import { REDIS_READ_BATCH, REDIS_READ_BLOCK } from './options.js'

/** The cluster's shared state at one moment: its epoch, its last sequence number and every session's topics. */
export interface Snapshot {
  readonly epoch: string
  readonly seq: number
  readonly subscriptions: Array<[sessionId: string, topics: string[]]>
}

/** Reads the snapshot in one step (SNAPSHOT), naming a new epoch when Redis has none. */
export async function readSnapshot (connection: Connection, keys: RedisKeys): Promise<Snapshot> {
  const [epoch, seq, flat] = await connection.glueSnapshot(keys.epoch, keys.seq, keys.subs, randomBytes(6).toString('base64url'))
  const subscriptions: Array<[string, string[]]> = []
  for (let i = 0; i + 1 < flat.length; i += 2) {
    try {
      subscriptions.push([flat[i] as string, JSON.parse(flat[i + 1] as string) as string[]])
    } catch {}
  }
  return { epoch, seq: Number(seq), subscriptions }
}

/**
 * Reads the cluster's one stream in order (XREAD) and applies every message to this node's sockets.
 * A node that loses Redis for a moment reads on from where it stopped; when entries it never read
 * were trimmed, or Redis lost its data (a new epoch), its clients are told (resync).
 */
export class StreamReader {
  readonly #link: RedisConnection
  readonly #keys: RedisKeys
  readonly #host: AdapterHost
  /** The epoch and the last sequence number this node has applied. */
  #epoch = ''
  #cursor = 0

  constructor (link: RedisConnection, keys: RedisKeys, host: AdapterHost) {
    this.#link = link
    this.#keys = keys
    this.#host = host
  }

  /** Reads on from the snapshot the adapter's start took. */
  begin (snapshot: Snapshot): void {
    this.#epoch = snapshot.epoch
    this.#cursor = snapshot.seq
  }

  position (): StreamPosition {
    return { epoch: this.#epoch, seq: this.#cursor }
  }

  /** Reads until the connection stops. */
  async run (): Promise<void> {
    const reader = this.#link.reader
    while (!this.#link.stopped) {
      let reply: Array<[Buffer, StreamEntry[]]> | null
      try {
        reply = await reader.xreadBuffer('COUNT', REDIS_READ_BATCH, 'BLOCK', REDIS_READ_BLOCK, 'STREAMS', this.#keys.stream, `${this.#cursor}-0`) as Array<[Buffer, StreamEntry[]]> | null
      } catch {
        if (this.#link.stopped) return
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
    if (this.#link.stopped || reader.status !== 'ready') return
    try {
      const snapshot = await readSnapshot(reader, this.#keys)
      if (snapshot.epoch === this.#epoch) return
      this.#host.log.warn({ epoch: snapshot.epoch }, 'redis adapter: Redis lost its data; clients are told messages may be missing')
      this.#epoch = snapshot.epoch
      this.#cursor = 0
      this.#host.resetSubscriptions(snapshot.subscriptions)
      this.#host.resync(this.position())
    } catch (err) {
      this.#host.log.debug({ err }, 'redis adapter: snapshot after reconnect failed')
    }
  }

  #apply (seq: number, payload: Buffer | undefined): void {
    const host = this.#host
    if (seq <= this.#cursor) return
    if (seq !== this.#cursor + 1) {
      // The stream was trimmed past this node's position while it could not read.
      host.log.warn({ from: this.#cursor + 1, to: seq - 1 }, 'redis adapter: cluster messages were trimmed before this node read them')
      this.#cursor = seq - 1
      host.resync(this.position())
    }
    this.#cursor = seq
    const decoded = payload === undefined ? undefined : decodeClusterMessage(payload)
    if (decoded === undefined) {
      host.log.warn({ seq }, 'redis adapter: dropped a malformed cluster message')
      return
    }
    const { message } = decoded
    try {
      host.apply(message, seq)
    } catch (err) {
      host.log.error({ err, kind: message.kind }, 'redis adapter: delivery failed')
    }
  }
}
