/**
 * Subscription changes this node sent to the adapter and has not seen applied yet. In cluster mode
 * a change is applied when the node reads it back from Redis, after the client got its reply: until
 * then the membership the node holds is stale, and a change that looks like a no-op against it (an
 * unsubscribe right after a subscribe) must still go to Redis. Each pending change ends in an apply,
 * in the adapter reporting that it changed nothing, or with the session leaving this node.
 */
export class PendingChanges {
  /** Session id → topic → the state asked for last, and how many changes are still on their way. */
  readonly #sessions = new Map<string, Map<string, { subscribed: boolean, count: number }>>()

  /** A change was handed to the adapter. */
  add (sessionId: string, topic: string, subscribed: boolean): void {
    let topics = this.#sessions.get(sessionId)
    if (topics === undefined) this.#sessions.set(sessionId, topics = new Map())
    const pending = topics.get(topic)
    if (pending === undefined) topics.set(topic, { subscribed, count: 1 })
    else {
      pending.subscribed = subscribed
      pending.count++
    }
  }

  /** One change of the session's membership of `topic` was applied, or will never be. */
  settle (sessionId: string, topic: string): void {
    const topics = this.#sessions.get(sessionId)
    const pending = topics?.get(topic)
    if (topics === undefined || pending === undefined) return
    if (--pending.count > 0) return
    topics.delete(topic)
    if (topics.size === 0) this.#sessions.delete(sessionId)
  }

  /** The state last asked for, while a change is on its way; else undefined. */
  intended (sessionId: string, topic: string): boolean | undefined {
    return this.#sessions.get(sessionId)?.get(topic)?.subscribed
  }

  /** Topics the session asked to join, still on their way, that `has` does not list yet. */
  joining (sessionId: string, has: (topic: string) => boolean): number {
    let count = 0
    for (const [topic, pending] of this.#sessions.get(sessionId) ?? []) if (pending.subscribed && !has(topic)) count++
    return count
  }

  /** The session left this node: whatever it still expects is no longer this node's business. */
  forget (sessionId: string): void {
    this.#sessions.delete(sessionId)
  }
}
