import type { AdapterHost, ClusterMessage, TopicHistoryResult } from '../adapters/adapter.js'
import type { HistoryRequest } from '../topics/position.js'
import type { TopicHistoryLimits } from '../topics/rules.js'
import { memberOf } from '../topics/members.js'
import { jsonOf } from '../wire/encode.js'
import type { TopicMember } from '../wire/protocol.js'
import { decodeClusterMessage } from './codec.js'
import { seqOf, type StreamEntry } from './keys.js'
import { streamInfo, trimmedAfter } from './reader.js'
import type { RedisShard } from './shard.js'

/**
 * Reads a topic's history back from the stream every publish is kept in (`th:<topic>`, also what
 * resume reads): the newest `last` within the topic's limit and age, or what came after a position
 * of this shard's dataset. A position from another dataset, or a stream trimmed or expired past it,
 * is a gap of unknown size.
 */
export async function readTopicHistory (shard: RedisShard, topic: string, request: HistoryRequest, limits: TopicHistoryLimits): Promise<TopicHistoryResult> {
  const epoch = shard.epoch
  const stream = shard.keys.topicHistory(topic)
  const want = Math.min(request.last ?? limits.limit, limits.limit)
  const since = request.since !== undefined && request.since.epoch === epoch ? request.since.n : undefined
  const unknown = request.since !== undefined && since === undefined
  // The stream keeps at most about max(limit, 2 × outboxLimit) entries: reading all after a position is bounded.
  const [entries, info] = await shard.query(async (commands) => await Promise.all([
    since === undefined
      ? commands.xrevrangeBuffer(stream, '+', '-', 'COUNT', limits.limit).then((newestFirst) => (newestFirst as StreamEntry[]).reverse())
      : commands.xrangeBuffer(stream, `(${since}-0`, '+') as Promise<StreamEntry[]>,
    streamInfo(commands, stream)
  ]))
  const cutoff = Date.now() - limits.maxAge
  const kept: Array<{ n: number, json: string }> = []
  // Messages after the position that a client cannot get: aged out, or binary (kept for resume only).
  let gone = 0
  for (const [id, fields] of entries) {
    const decoded = fields[1] === undefined ? undefined : decodeClusterMessage(fields[1])
    const message: ClusterMessage | undefined = decoded?.message
    if (decoded === undefined || message?.kind !== 'publish') continue
    if (message.data.binary || decoded.time < cutoff) {
      gone++
      continue
    }
    kept.push({ n: seqOf(id), json: jsonOf(message.data) })
  }
  const extra = Math.max(0, kept.length - want)
  const result = kept.slice(extra)
  if (since === undefined) return { epoch, entries: result, missed: unknown ? null : 0 }
  // Without the stream (expired whole), whatever came after the position is unknown.
  const lost = info === undefined || trimmedAfter(info, since)
  return { epoch, entries: result, missed: lost ? null : gone + extra }
}

/**
 * Cluster-wide presence of a topic, kept on the shard its name maps to: this node's counts of each
 * member (absolute) and the members of every node, with the joins and leaves they make.
 */
export async function announceMembers (shard: RedisShard, uid: string, topic: string, counts: ReadonlyArray<[string, number]>, full: boolean): Promise<{ joined: string[], left: string[] }> {
  const k = shard.keys
  const flat: Array<string | number> = []
  for (const [key, count] of counts) flat.push(key, count)
  const [joined, left] = await shard.query((commands) => commands.gluePresenceSet(k.members(topic), k.nodeMembers(topic), k.nodeTopics, k.presenceNodes, topic, full ? '1' : '0', uid, ...flat))
  return { joined, left }
}

/** The members of a topic, at most `cap` of them, and how many there are. */
export async function clusterMembers (shard: RedisShard, topic: string, cap: number): Promise<{ keys: string[], count: number }> {
  const key = shard.keys.members(topic)
  return await shard.query(async (commands) => {
    const count = await commands.hlen(key)
    if (count <= cap) return { keys: await commands.hkeys(key), count }
    const keys: string[] = []
    let cursor = '0'
    do {
      const [next, flat] = await commands.hscan(key, cursor, 'COUNT', 256)
      for (let i = 0; i < flat.length && keys.length < cap; i += 2) keys.push(flat[i] as string)
      cursor = next
    } while (cursor !== '0' && keys.length < cap)
    return { keys, count }
  })
}

/** Withdraws the members of dead nodes on one shard; returns the topics with the members who left. */
export async function reapMembers (shard: RedisShard, now: number): Promise<Map<string, TopicMember[]>> {
  const k = shard.keys
  const flat = await shard.commands.gluePresenceReap(k.nodes, k.presenceNodes, now, k.tag)
  const left = new Map<string, TopicMember[]>()
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const topic = flat[i] as string
    let members = left.get(topic)
    if (members === undefined) left.set(topic, members = [])
    members.push(memberOf(flat[i + 1] as string))
  }
  return left
}

/** Tells every node who left with dead nodes. */
export function emitReaped (host: AdapterHost, emit: (message: ClusterMessage) => void, left: Map<string, TopicMember[]>): void {
  for (const [topic, members] of left) {
    try {
      emit({ kind: 'presence', topic, joined: [], left: members })
    } catch (err) {
      host.log.warn({ err, topic }, 'redis adapter: presence event not sent')
    }
  }
}
