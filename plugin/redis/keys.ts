/** The keys of one shard; each carries the `{prefix}` hash tag (see scripts.ts for what each holds). */
export interface ShardKeys {
  /** The `{prefix}` hash tag itself, from which the scripts name per-node and per-topic keys. */
  readonly tag: string
  readonly seq: string
  readonly epoch: string
  readonly emitted: string
  readonly nodes: string
  readonly presence: string
  readonly sockets: string
  readonly detached: string
  readonly broadcasts: string
  /** Revoked session ids and users, each scored by the time of the revocation. */
  readonly revoked: string
  readonly revokedUsers: string
  /** This node's inbox and its presence hash. */
  readonly inbox: string
  readonly node: string
  readonly announced: string
  at (sessionId: string): string
  history (sessionId: string): string
  topicsOf (sessionId: string): string
  subscribers (topic: string): string
  interest (topic: string): string
  topicHistory (topic: string): string
  /** Topic presence: every node's members of a topic, this node's share, its topics, the nodes with counts. */
  members (topic: string): string
  nodeMembers (topic: string): string
  readonly nodeTopics: string
  readonly presenceNodes: string
}

export function shardKeys (prefix: string, uid: string): ShardKeys {
  const tag = `{${prefix}}`
  return {
    tag,
    seq: `${tag}:seq`,
    epoch: `${tag}:epoch`,
    emitted: `${tag}:emitted`,
    nodes: `${tag}:nodes`,
    presence: `${tag}:presence`,
    sockets: `${tag}:sockets`,
    detached: `${tag}:detached`,
    broadcasts: `${tag}:bc`,
    revoked: `${tag}:rv`,
    revokedUsers: `${tag}:rvu`,
    inbox: `${tag}:in:${uid}`,
    node: `${tag}:node:${uid}`,
    announced: `${tag}:announced:${uid}`,
    at: (sessionId) => `${tag}:at:${sessionId}`,
    history: (sessionId) => `${tag}:hist:${sessionId}`,
    topicsOf: (sessionId) => `${tag}:ts:${sessionId}`,
    subscribers: (topic) => `${tag}:tm:${topic}`,
    interest: (topic) => `${tag}:int:${topic}`,
    topicHistory: (topic) => `${tag}:th:${topic}`,
    members: (topic) => `${tag}:pm:${topic}`,
    nodeMembers: (topic) => `${tag}:pn:${uid}:${topic}`,
    nodeTopics: `${tag}:pt:${uid}`,
    presenceNodes: `${tag}:pnodes`
  }
}

/** A stream entry as XREAD/XRANGE return it: the id `seq-n` and its fields. */
export type StreamEntry = [id: Buffer, fields: Buffer[]]

/** The sequence number of a stream entry: the scripts add each at the id `seq-0`. */
export function seqOf (id: Buffer | string): number {
  const text = typeof id === 'string' ? id : id.toString('latin1')
  return Number(text.slice(0, text.indexOf('-')))
}

/**
 * Which shard a session lives on: FNV-1a over its id, so every node maps it the same way. Session
 * ids are random, so sessions spread evenly.
 */
export function shardOf (sessionId: string, shards: number): number {
  if (shards === 1) return 0
  let hash = 0x811c9dc5
  for (let i = 0; i < sessionId.length; i++) {
    hash ^= sessionId.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0) % shards
}
