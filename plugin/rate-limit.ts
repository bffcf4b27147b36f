import type { WebSocket } from 'ws'

const kTokens = Symbol('fastify-websocket-glue.tokens')
const kRefilledAt = Symbol('fastify-websocket-glue.refilledAt')

type Limited = WebSocket & { [kTokens]?: number, [kRefilledAt]?: number }

/** Decides whether a socket may send one more message now. */
export type RateLimiter = (socket: WebSocket, now: number) => boolean

/**
 * A token bucket per socket, kept as two numbers on the socket itself: no timers, no maps.
 * The bucket starts full, refills at `messagesPerSecond` and holds at most `burst` tokens.
 */
export function createRateLimiter (limit: { readonly messagesPerSecond: number, readonly burst: number } | false): RateLimiter {
  if (limit === false) return () => true
  const perMs = limit.messagesPerSecond / 1000
  return (socket: Limited, now: number): boolean => {
    const last = socket[kRefilledAt]
    let tokens = last === undefined ? limit.burst : Math.min(limit.burst, (socket[kTokens] as number) + (now - last) * perMs)
    socket[kRefilledAt] = now
    if (tokens < 1) {
      socket[kTokens] = tokens
      return false
    }
    tokens -= 1
    socket[kTokens] = tokens
    return true
  }
}
