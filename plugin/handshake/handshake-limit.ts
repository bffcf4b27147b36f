/** Decides whether one more websocket handshake from an address may proceed now. */
export interface HandshakeLimiter {
  allow (address: string, now: number): boolean
  /** Forgets addresses whose bucket is full again, so the map holds only recent senders. */
  sweep (now: number): void
}

interface Bucket {
  tokens: number
  refilledAt: number
}

/**
 * A token bucket per remote address: it starts full, refills at `handshakesPerSecond` and holds
 * at most `burst` handshakes. Memory is bounded by the addresses seen within one refill period.
 */
export function createHandshakeLimiter (limit: { readonly handshakesPerSecond: number, readonly burst: number } | false): HandshakeLimiter {
  if (limit === false) return { allow: () => true, sweep () {} }
  const perMs = limit.handshakesPerSecond / 1000
  const buckets = new Map<string, Bucket>()
  const level = (bucket: Bucket, now: number): number => Math.min(limit.burst, bucket.tokens + (now - bucket.refilledAt) * perMs)
  return {
    allow (address, now) {
      const bucket = buckets.get(address)
      const tokens = bucket === undefined ? limit.burst : level(bucket, now)
      if (tokens < 1) return false
      if (bucket === undefined) buckets.set(address, { tokens: tokens - 1, refilledAt: now })
      else {
        bucket.tokens = tokens - 1
        bucket.refilledAt = now
      }
      return true
    },
    sweep (now) {
      for (const [address, bucket] of buckets) {
        if (level(bucket, now) >= limit.burst) buckets.delete(address)
      }
    }
  }
}
