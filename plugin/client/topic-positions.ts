// Where the client stands in each topic that keeps history: the position of the last message it
// delivered, so a resubscribe asks only for what came after, and a message seen twice (history and
// a resumed outbox, or two answers) is delivered once.

const POSITION_RE = /^([A-Za-z0-9_-]{1,32})\.(\d{1,15})$/

/** The last position delivered per topic. */
export class TopicPositions {
  #positions = new Map<string, { epoch: string, n: number, text: string }>()

  /** The position to resume a topic's history from, if the client holds one. */
  get (topic: string): string | undefined {
    return this.#positions.get(topic)?.text
  }

  /**
   * Records that a topic message at `position` is delivered now; false when the client delivered
   * it (or a later one of the same epoch) already, so the message is dropped.
   */
  accept (topic: string, position: string | undefined): boolean {
    const match = position === undefined ? null : POSITION_RE.exec(position)
    if (match === null) return true
    const epoch = match[1] as string
    const n = Number(match[2])
    const held = this.#positions.get(topic)
    if (held !== undefined && held.epoch === epoch && n <= held.n) return false
    this.#positions.set(topic, { epoch, n, text: position as string })
    return true
  }

  /** Forgets a topic the client left. */
  forget (topic: string): void {
    this.#positions.delete(topic)
  }
}
