import { randomBytes } from 'node:crypto'
import { HISTORY_ENTRY_OVERHEAD, HISTORY_TOPIC_OVERHEAD } from '../constants.js'
import { jsonOf, type EncodedData } from '../wire/encode.js'
import { formatPosition, type HistoryRequest } from './position.js'
import type { TopicHistoryLimits } from './rules.js'

/** A kept message: its number in the topic, when it was published, and its data as JSON text. */
interface Kept {
  readonly n: number
  readonly time: number
  readonly json: string
  readonly bytes: number
}

/** One topic's history on this node. */
class History {
  readonly topic: string
  readonly epoch = randomBytes(6).toString('base64url')
  /** The number of the last message published to the topic (kept or not). */
  last = 0
  entries: Kept[] = []
  head = 0
  constructor (topic: string) {
    this.topic = topic
  }

  get size (): number {
    return this.entries.length - this.head
  }

  oldest (): Kept | undefined {
    return this.entries[this.head]
  }

  dropOldest (): Kept {
    const entry = this.entries[this.head] as Kept
    this.head++
    if (this.head * 2 >= this.entries.length) {
      this.entries = this.entries.slice(this.head)
      this.head = 0
    }
    return entry
  }
}

/** What a history request returns: messages in order, and how many asked for are gone (null: unknown). */
export interface HistoryAnswer {
  readonly entries: ReadonlyArray<{ readonly position: string, readonly json: string }>
  readonly missed: number | null
}

/**
 * The histories of the topics of one node (memory adapter): each keeps its last messages by count
 * and age, and all of them together stay within a byte budget: beyond it the oldest message of the
 * node goes first, whatever its topic. Numbers are consecutive per topic, so a gap is counted exactly.
 */
export class TopicHistories {
  readonly #maxBytes: number
  readonly #topics = new Map<string, History>()
  /** Every kept message in publish order across topics, to drop the oldest first; may hold some already dropped. */
  #order: Array<[History, number]> = []
  #orderHead = 0
  #kept = 0
  #bytes = 0

  constructor (maxBytes: number) {
    this.#maxBytes = maxBytes
  }

  /** Bytes held now, for gauges. */
  get bytes (): number {
    return this.#bytes
  }

  /**
   * Numbers a message published to a topic that keeps history and keeps it (text and JSON only; a
   * binary message is numbered but not kept, so a client asking after it sees the gap).
   * @returns its position.
   */
  record (topic: string, limits: TopicHistoryLimits, data: EncodedData, now: number): string {
    let history = this.#topics.get(topic)
    if (history === undefined) {
      history = new History(topic)
      this.#topics.set(topic, history)
      this.#bytes += HISTORY_TOPIC_OVERHEAD + topic.length
    }
    const n = ++history.last
    if (!data.binary) {
      const json = jsonOf(data)
      const entry: Kept = { n, time: now, json, bytes: HISTORY_ENTRY_OVERHEAD + json.length }
      history.entries.push(entry)
      this.#bytes += entry.bytes
      this.#kept++
      this.#order.push([history, n])
      while (history.size > limits.limit) this.#drop(history)
      this.#trimAge(history, now - limits.maxAge)
      this.#enforceBudget()
    }
    return formatPosition(history.epoch, n)
  }

  /** What a subscribing client asked for: kept messages in order, clamped to the topic's limit, and what is gone. */
  read (topic: string, limits: TopicHistoryLimits, request: HistoryRequest, now: number): HistoryAnswer {
    const history = this.#topics.get(topic)
    if (history !== undefined) this.#trimAge(history, now - limits.maxAge)
    const { since } = request
    const want = Math.min(request.last ?? limits.limit, limits.limit)
    if (history === undefined) {
      // Nothing kept: a position from before the node restarted, or from a dropped history, cannot be filled.
      return { entries: [], missed: since === undefined || since.n === 0 ? 0 : null }
    }
    let from = history.head
    let missed = 0
    if (since !== undefined) {
      if (since.epoch !== history.epoch || since.n > history.last) return { entries: this.#slice(history, history.entries.length - Math.min(want, history.size)), missed: null }
      while (from < history.entries.length && (history.entries[from] as Kept).n <= since.n) from++
      // Numbers are consecutive: whatever was numbered after `since` and is not kept (trimmed, binary) is gone.
      missed = history.last - since.n - (history.entries.length - from)
    }
    const available = history.entries.length - from
    if (available > want) {
      // Asked for fewer than kept: only a `since` request counts the older ones as missed.
      if (since !== undefined) missed += available - want
      from = history.entries.length - want
    }
    return { entries: this.#slice(history, from), missed }
  }

  /** Drops messages past their topic's age, and histories left empty. */
  sweep (now: number, limitsOf: (topic: string) => TopicHistoryLimits | undefined): void {
    for (const history of [...this.#topics.values()]) {
      const limits = limitsOf(history.topic)
      if (limits === undefined) {
        while (history.size > 0) this.#drop(history)
      } else {
        this.#trimAge(history, now - limits.maxAge)
      }
      this.#forgetIfEmpty(history)
    }
    this.#compactOrder()
  }

  #slice (history: History, from: number): HistoryAnswer['entries'] {
    const result: Array<{ position: string, json: string }> = []
    for (let i = Math.max(from, history.head); i < history.entries.length; i++) {
      const entry = history.entries[i] as Kept
      result.push({ position: formatPosition(history.epoch, entry.n), json: entry.json })
    }
    return result
  }

  #trimAge (history: History, cutoff: number): void {
    while (history.size > 0 && (history.oldest() as Kept).time < cutoff) this.#drop(history)
  }

  #drop (history: History): void {
    const entry = history.dropOldest()
    this.#bytes -= entry.bytes
    this.#kept--
  }

  /** Beyond the byte budget, the oldest kept message of the node goes, whatever its topic. */
  #enforceBudget (): void {
    while (this.#bytes > this.#maxBytes && this.#orderHead < this.#order.length) {
      const [history, n] = this.#order[this.#orderHead++] as [History, number]
      const oldest = history.oldest()
      if (oldest !== undefined && oldest.n === n) this.#drop(history)
    }
    this.#compactOrder()
  }

  /** Keeps the order list within twice the messages kept: references to dropped ones go. */
  #compactOrder (): void {
    const length = this.#order.length - this.#orderHead
    if (length <= 2 * this.#kept + 64) return
    this.#order = this.#order.slice(this.#orderHead).filter(([history, n]) => (history.oldest()?.n ?? Infinity) <= n && this.#topics.get(history.topic) === history)
    this.#orderHead = 0
  }

  /** A history with nothing kept is forgotten: a position from it then reads as unknown (a gap of null). */
  #forgetIfEmpty (history: History): void {
    if (history.size > 0) return
    this.#topics.delete(history.topic)
    this.#bytes -= HISTORY_TOPIC_OVERHEAD + history.topic.length
  }
}
