/**
 * Topic membership: which topics a session has, and which sessions a topic has, both O(1). The
 * one place membership lives: on one node it holds the node's sessions; in cluster mode the adapter
 * keeps it for every session of the cluster through the messages it applies.
 */
export class TopicIndex {
  #bySession = new Map<string, Set<string>>()
  #byTopic = new Map<string, Set<string>>()

  /** @returns whether the session was not subscribed before. */
  add (sessionId: string, topic: string): boolean {
    let topics = this.#bySession.get(sessionId)
    if (topics === undefined) {
      topics = new Set()
      this.#bySession.set(sessionId, topics)
    }
    if (topics.has(topic)) return false
    topics.add(topic)
    let sessions = this.#byTopic.get(topic)
    if (sessions === undefined) {
      sessions = new Set()
      this.#byTopic.set(topic, sessions)
    }
    sessions.add(sessionId)
    return true
  }

  /** @returns whether the session was subscribed. */
  remove (sessionId: string, topic: string): boolean {
    const topics = this.#bySession.get(sessionId)
    if (topics?.delete(topic) !== true) return false
    if (topics.size === 0) this.#bySession.delete(sessionId)
    const sessions = this.#byTopic.get(topic)
    sessions?.delete(sessionId)
    if (sessions?.size === 0) this.#byTopic.delete(topic)
    return true
  }

  /** Drops every subscription of a session. */
  removeSession (sessionId: string): void {
    for (const topic of this.topicsOf(sessionId)) this.remove(sessionId, topic)
  }

  has (sessionId: string, topic: string): boolean {
    return this.#bySession.get(sessionId)?.has(topic) === true
  }

  topicsOf (sessionId: string): string[] {
    return [...(this.#bySession.get(sessionId) ?? [])]
  }

  topicCount (sessionId: string): number {
    return this.#bySession.get(sessionId)?.size ?? 0
  }

  /** The ids of the sessions subscribed to a topic. */
  sessionsOf (topic: string): ReadonlySet<string> {
    return this.#byTopic.get(topic) ?? EMPTY
  }

  subscriberCount (topic: string): number {
    return this.#byTopic.get(topic)?.size ?? 0
  }
}

const EMPTY: ReadonlySet<string> = new Set()
