/** The keys of one cluster; each carries the `{prefix}` hash tag, and `node` is this node's own. */
export interface RedisKeys {
  /** The `{prefix}` hash tag itself, from which REAP names the keys of dead nodes. */
  readonly tag: string
  readonly seq: string
  readonly epoch: string
  readonly stream: string
  readonly emitted: string
  readonly subs: string
  readonly presence: string
  readonly detached: string
  readonly sockets: string
  readonly nodes: string
  readonly node: string
}

export function redisKeys (prefix: string, uid: string): RedisKeys {
  const tag = `{${prefix}}`
  return {
    tag,
    seq: `${tag}:seq`,
    epoch: `${tag}:epoch`,
    stream: `${tag}:stream`,
    emitted: `${tag}:emitted`,
    subs: `${tag}:subs`,
    presence: `${tag}:presence`,
    detached: `${tag}:detached`,
    sockets: `${tag}:sockets`,
    nodes: `${tag}:nodes`,
    node: `${tag}:node:${uid}`
  }
}

/** A stream entry as XREAD/XREVRANGE return it: the id `seq-0` and the fields (`m`, payload). */
export type StreamEntry = [id: Buffer, fields: Buffer[]]

/** The sequence number of a stream entry: EMIT and REAP add each at the id `seq-0`. */
export function seqOf (id: Buffer): number {
  const text = id.toString('latin1')
  return Number(text.slice(0, text.indexOf('-')))
}
