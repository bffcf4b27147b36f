import type { AdapterLimits, ClusterMessage, ReplayResult } from '../adapters/adapter.js'
import { receives } from '../messages/recipients.js'
import { decodeClusterMessage } from './codec.js'
import { seqOf, type StreamEntry } from './keys.js'
import { streamInfo, trimmedAfter } from './reader.js'
import type { RedisShard } from './shard.js'

/** Which session resumes, and the part of its shard's order it missed. */
export interface ReplayQuery {
  readonly sessionId: string
  readonly afterSeq: number
  readonly untilSeq: number
}

/**
 * Reads back what one session missed, and only that: its own sends, the shard's broadcasts and the
 * messages of its topics after `afterSeq` up to `untilSeq`, merged in order. Keeps the newest
 * `outboxLimit` younger than `outboxMaxAge` and counts the rest as missed, or reports the count as
 * unknown when one of those histories was trimmed past the resume point.
 */
export async function replay (shard: RedisShard, query: ReplayQuery, limits: AdapterLimits): Promise<ReplayResult> {
  const { sessionId, afterSeq, untilSeq } = query
  if (untilSeq <= afterSeq) return { messages: [], missed: 0 }
  const k = shard.keys
  const topics = await shard.query((commands) => commands.smembers(k.topicsOf(sessionId)))
  const streams = [k.history(sessionId), k.broadcasts, ...topics.map((topic) => k.topicHistory(topic))]
  const [entries, trimmed] = await shard.query(async (commands) => await Promise.all([
    Promise.all(streams.map(async (stream) => await commands.xrangeBuffer(stream, `${afterSeq + 1}-0`, `${untilSeq}-0`) as StreamEntry[])),
    Promise.all(streams.map(async (stream) => trimmedAfter(await streamInfo(commands, stream), afterSeq)))
  ]))
  const subscribed = new Set(topics)
  const found: Array<{ seq: number, time: number, message: ClusterMessage }> = []
  for (const [id, fields] of entries.flat()) {
    const decoded = fields[1] === undefined ? undefined : decodeClusterMessage(fields[1])
    if (decoded === undefined || decoded.message.kind === 'presence' || !receives(decoded.message, sessionId, (topic) => subscribed.has(topic))) continue
    found.push({ seq: seqOf(id), time: decoded.time, message: decoded.message })
  }
  found.sort((a, b) => a.seq - b.seq)
  const cutoff = Date.now() - limits.outboxMaxAge
  const fresh = found.filter((entry) => entry.time >= cutoff)
  const kept = fresh.slice(Math.max(0, fresh.length - limits.outboxLimit))
  const missed = trimmed.includes(true) ? null : found.length - kept.length
  return { messages: kept.map(({ seq, message }) => ({ seq, message })), missed }
}
