/** Options of {@link createPostLimit}. */
export interface PostLimitOptions {
  /**
   * Posts a session may make per second, on average.
   * @default 1
   */
  postsPerSecond?: number
  /**
   * Posts a session may make at once, after a pause.
   * @default 5
   */
  burst?: number
  /**
   * Sessions tracked at most; beyond it the one that posted least recently is forgotten (its next
   * post starts with a full burst). Bounds memory whatever the number of sessions.
   * @default 10000
   */
  maxTracked?: number
}

/** A per-session budget of chat posts. */
export interface PostLimit {
  /** Takes one post from the session's budget: `false` when it is spent (refuse the post). */
  take (sessionId: string, now?: number): boolean
  /** Sessions tracked now (at most `maxTracked`). */
  readonly size: number
}

interface Bucket {
  tokens: number
  at: number
}

/**
 * A token bucket per session for chat posts. The plugin's own `rateLimit` closes a socket that
 * floods frames; this one refuses a post and keeps the socket, so a chatty user sees why.
 */
export function createPostLimit (options: PostLimitOptions = {}): PostLimit {
  const perSecond = options.postsPerSecond ?? 1
  const burst = options.burst ?? 5
  const maxTracked = options.maxTracked ?? 10_000
  if (!(perSecond > 0) || !Number.isFinite(perSecond)) throw new RangeError(`Expected postsPerSecond to be a positive number, got ${perSecond}`)
  if (!Number.isInteger(burst) || burst < 1) throw new RangeError(`Expected burst to be an integer >= 1, got ${burst}`)
  if (!Number.isInteger(maxTracked) || maxTracked < 1) throw new RangeError(`Expected maxTracked to be an integer >= 1, got ${maxTracked}`)
  const buckets = new Map<string, Bucket>()
  return {
    take (sessionId, now = performance.now()) {
      const bucket = buckets.get(sessionId) ?? { tokens: burst, at: now }
      // Delete and set again so the Map's order is least recently used first.
      buckets.delete(sessionId)
      bucket.tokens = Math.min(burst, bucket.tokens + (now - bucket.at) / 1000 * perSecond)
      bucket.at = now
      const allowed = bucket.tokens >= 1
      if (allowed) bucket.tokens -= 1
      buckets.set(sessionId, bucket)
      if (buckets.size > maxTracked) buckets.delete(buckets.keys().next().value as string)
      return allowed
    },
    get size () { return buckets.size }
  }
}
