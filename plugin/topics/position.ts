/**
 * A place in a topic's order that a client can hold: `<epoch>.<n>` on the wire. On one node the
 * epoch names the topic's history (a new one once it was dropped) and n counts its messages; with
 * Redis the epoch names the shard's dataset and n is the message's number in the shard's order.
 * Either way a client compares positions of one epoch by n, and treats another epoch as unknown.
 */
export interface TopicPosition {
  readonly epoch: string
  readonly n: number
}

const POSITION_RE = /^([A-Za-z0-9_-]{1,32})\.(\d{1,15})$/

export function formatPosition (epoch: string, n: number): string {
  return `${epoch}.${n}`
}

/** Reads a position a client sent; undefined when malformed. */
export function parsePosition (value: unknown): TopicPosition | undefined {
  if (typeof value !== 'string') return undefined
  const match = POSITION_RE.exec(value)
  if (match === null) return undefined
  return { epoch: match[1] as string, n: Number(match[2]) }
}

/** What a client asks of a topic's history as it subscribes: everything kept, the last k, what came after `since`. */
export interface HistoryRequest {
  /** At most this many (the newest); clamped to the topic's limit. */
  readonly last: number | undefined
  /** Only what came after this position. */
  readonly since: TopicPosition | undefined
}

/** Reads the history element of a subscribe envelope: `{}`, `{"last": k}`, `{"since": "E.N"}` or both; undefined when malformed. */
export function parseHistoryRequest (value: unknown): HistoryRequest | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const request = value as Record<string, unknown>
  let last: number | undefined
  let since: TopicPosition | undefined
  for (const key of Object.keys(request)) {
    if (key === 'last') {
      if (!Number.isSafeInteger(request.last) || (request.last as number) < 0) return undefined
      last = request.last as number
    } else if (key === 'since') {
      since = parsePosition(request.since)
      if (since === undefined) return undefined
    } else {
      return undefined
    }
  }
  return { last, since }
}
