import type { WebSocket } from 'ws'
import { stateOf } from '../sessions/socket-state.js'

/** Decides whether a socket may send one more message now. */
export type RateLimiter = (socket: WebSocket, now: number) => boolean

/**
 * A token bucket per socket, kept as two numbers in its state: no timers, no maps. The bucket
 * starts full, refills at `messagesPerSecond` and holds at most `burst` tokens.
 */
export function createRateLimiter (limit: { readonly messagesPerSecond: number, readonly burst: number } | false): RateLimiter {
  if (limit === false) return () => true
  const perMs = limit.messagesPerSecond / 1000
  return (socket, now) => {
    const state = stateOf(socket)
    // A negative count marks a bucket that was never used: it starts full.
    let tokens = state.tokens < 0 ? limit.burst : Math.min(limit.burst, state.tokens + (now - state.refilledAt) * perMs)
    state.refilledAt = now
    if (tokens < 1) {
      state.tokens = tokens
      return false
    }
    tokens -= 1
    state.tokens = tokens
    return true
  }
}

/**
 * Charges a socket's bucket for work beyond one message (a history request): it may empty the
 * bucket, never go below empty, so the client's next messages wait for the refill. Does nothing
 * without a rate limit (the bucket was never used).
 */
export function chargeRate (socket: WebSocket, cost: number): void {
  const state = stateOf(socket)
  if (state.tokens >= 0) state.tokens = Math.max(0, state.tokens - cost)
}
