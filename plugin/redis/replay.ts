import type { AdapterLimits, ClusterMessage, ReplayResult } from '../adapters/adapter.js'
import { receives } from '../messages/recipients.js'
import { decodeClusterMessage } from './codec.js'
import type { Connection } from './connection.js'
import { seqOf, type StreamEntry } from './keys.js'
import { REDIS_READ_BATCH } from './options.js'

/** Which session resumes, with its topics now, and the part of the stream it missed. */
export interface ReplayQuery {
  readonly sessionId: string
  readonly topics: ReadonlySet<string>
  readonly afterSeq: number
  readonly untilSeq: number
}

/** Whether a stored message is one this session receives again on resume (volatile ones are never replayed). */
function replayable (message: ClusterMessage, sessionId: string, topics: ReadonlySet<string>): boolean {
  return !('volatile' in message && message.volatile) && receives(message, sessionId, (topic) => topics.has(topic))
}

/**
 * Walks the stream back from `untilSeq`, keeping the session's newest `outboxLimit` messages
 * younger than `outboxMaxAge`, and counts the rest as missed (unknown when the stream itself
 * was trimmed past the resume point).
 */
export async function replay (commands: Connection, stream: string, query: ReplayQuery, limits: AdapterLimits): Promise<ReplayResult> {
  const { sessionId, topics, afterSeq, untilSeq } = query
  const cutoff = Date.now() - limits.outboxMaxAge
  const kept: Array<{ seq: number, message: ClusterMessage }> = []
  let missed = 0
  let end = String(untilSeq)
  let oldestSeen = untilSeq + 1
  for (;;) {
    const batch = await commands.xrevrangeBuffer(stream, end, String(afterSeq + 1), 'COUNT', REDIS_READ_BATCH) as StreamEntry[]
    for (const [id, fields] of batch) {
      const seq = seqOf(id)
      oldestSeen = seq
      const decoded = fields[1] === undefined ? undefined : decodeClusterMessage(fields[1])
      if (decoded === undefined || !replayable(decoded.message, sessionId, topics)) continue
      if (decoded.time < cutoff || kept.length >= limits.outboxLimit) missed++
      else kept.push({ seq, message: decoded.message })
    }
    if (batch.length < REDIS_READ_BATCH) break
    end = `(${oldestSeen}`
  }
  // Stream ids are consecutive: a hole before the oldest entry read means trimmed entries.
  const trimmed = oldestSeen > afterSeq + 1 && untilSeq > afterSeq
  return { messages: kept.reverse(), missed: trimmed ? null : missed }
}
