// Topic subscriptions: the topics the client wants (restored on every open), the ones it leaves,
// and the callers waiting for the server's answer about either.
import { encodeTopicCall } from './envelope.js'
import { DISCONNECTED, GlueClientError, type Failure } from './errors.js'
import type { Replies } from './replies.js'
import type { GlueSocket } from './socket.js'
import type { TopicPositions } from './topic-positions.js'

// Method syntax keeps `resolve` bivariant, so both Promise<void> and Promise<boolean> callers fit.
/** A caller of `subscribe()` or `unsubscribe()` waiting for the server's answer. */
export interface Waiter { resolve (value: unknown): void, reject (error: GlueClientError): void }

/** The client's topics, and the subscribe and unsubscribe calls that restore or leave them. */
export class Subscriptions {
  /** Wanted topics, each with the callers still waiting for the server's confirmation. */
  #topics = new Map<string, Waiter[]>()
  /** Topics to unsubscribe on the next open, each with the callers waiting for the answer. */
  #leaving = new Map<string, Waiter[]>()
  readonly #replies: Replies
  readonly #onRestoreRefused: (error: GlueClientError) => void
  /** Topics subscribed with `history`: what the first subscribe asks of the history ({} all, { last }). */
  readonly #history = new Map<string, object>()
  readonly #positions: TopicPositions

  /** `onRestoreRefused` hears the refusal of a subscription nobody awaits, one restored on a reconnect. */
  constructor (replies: Replies, onRestoreRefused: (error: GlueClientError) => void, positions: TopicPositions) {
    this.#replies = replies
    this.#onRestoreRefused = onRestoreRefused
    this.#positions = positions
  }

  /** Asks for a topic's history with its subscribe calls: `request` the first time, then what came after the position held. */
  wantHistory (topic: string, request: object | undefined): void {
    if (request === undefined) this.#history.delete(topic)
    else this.#history.set(topic, request)
  }

  /** The history element of a subscribe call of `topic`, if it asks for history. */
  #historyOf (topic: string): object | undefined {
    const request = this.#history.get(topic)
    if (request === undefined) return undefined
    const since = this.#positions.get(topic)
    return since === undefined ? request : { since }
  }

  /** The topics the client wants, in the order they were first wanted. */
  get wanted (): string[] {
    return [...this.#topics.keys()]
  }

  /** Wants `topic`, with `waiter` settled by the server's answer; the caller sends it when a socket is open. */
  want (topic: string, waiter: Waiter): void {
    let waiters = this.#topics.get(topic)
    if (waiters === undefined) this.#topics.set(topic, waiters = [])
    waiters.push(waiter)
  }

  /** Stops wanting `topic` and marks it to leave, with `waiter` settled by the server's answer. */
  unwant (topic: string, waiter: Waiter): void {
    for (const pending of this.#topics.get(topic)?.splice(0) ?? []) {
      pending.reject(new GlueClientError('GLUE_UNSUBSCRIBED', 'unsubscribe() came before the server confirmed the subscription', topic))
    }
    this.#topics.delete(topic)
    this.#history.delete(topic)
    this.#positions.forget(topic)
    this.#leave(topic).push(waiter)
  }

  /** On a new socket: leaves what is to be left (in the order it was asked), then subscribes every wanted topic. */
  restore (socket: GlueSocket): void {
    for (const topic of [...this.#leaving.keys()]) this.unsubscribe(socket, topic)
    for (const topic of this.#topics.keys()) this.subscribe(socket, topic)
  }

  /** Sends the subscribe call of a wanted topic. */
  subscribe (socket: GlueSocket, topic: string): void {
    const waiters = this.#topics.get(topic) ?? []
    this.#ask(socket, 's', topic, this.#historyOf(topic), (failure) => {
      // A dropped socket sends every wanted topic again on the next open.
      if (failure === DISCONNECTED) return
      const callers = waiters.splice(0)
      if (failure === null) {
        for (const waiter of callers) waiter.resolve(undefined)
        return
      }
      const wanted = this.#topics.get(topic) === waiters
      if (wanted) this.#topics.delete(topic)
      const error = new GlueClientError(failure.code, `${failure.message} (topic "${topic}")`, topic)
      for (const waiter of callers) waiter.reject(error)
      // Nobody awaits a restored subscription, so its refusal is an error event.
      if (callers.length === 0 && wanted) this.#onRestoreRefused(error)
    })
  }

  /** Sends the unsubscribe call of a topic marked to leave. */
  unsubscribe (socket: GlueSocket, topic: string): void {
    const waiters = this.#leave(topic)
    this.#leaving.delete(topic)
    this.#ask(socket, 'u', topic, undefined, (failure, value) => {
      // Sent again on the next open: a session in its grace period keeps its topics.
      if (failure === DISCONNECTED) this.#leave(topic).push(...waiters)
      else if (failure === null) for (const waiter of waiters) waiter.resolve(value === true)
      else for (const waiter of waiters) waiter.reject(new GlueClientError(failure.code, failure.message, topic))
    })
  }

  /**
   * Rejects the callers waiting for an answer with `failure`. Without `drop`, their topics are
   * unsubscribed on the next open; with `drop` (a server without glue.v1) every topic is forgotten.
   */
  abandon (failure: Failure, drop: boolean): void {
    const reject = (waiters: Waiter[], topic: string): void => {
      for (const waiter of waiters.splice(0)) waiter.reject(new GlueClientError(failure.code, failure.message, topic))
    }
    for (const [topic, waiters] of this.#topics) {
      if (!drop && waiters.length === 0) continue
      this.#topics.delete(topic)
      // The server may have agreed already: undo it on the next open, so a rejected subscribe leaves nothing behind.
      if (!drop) this.#leave(topic)
      reject(waiters, topic)
    }
    for (const [topic, waiters] of this.#leaving) reject(waiters, topic)
    if (drop) this.#leaving.clear()
  }

  /** The waiters of a topic to unsubscribe on the next open, creating the entry. */
  #leave (topic: string): Waiter[] {
    let waiters = this.#leaving.get(topic)
    if (waiters === undefined) this.#leaving.set(topic, waiters = [])
    return waiters
  }

  /** Asks for the members of a topic; `settle` gets the server's answer. */
  members (socket: GlueSocket, topic: string, settle: (failure: Failure | null, value?: unknown) => void): void {
    this.#ask(socket, 'v', topic, undefined, settle)
  }

  #ask (socket: GlueSocket, kind: 's' | 'u' | 'v', topic: string, history: object | undefined, settle: (failure: Failure | null, value?: unknown) => void): void {
    const id = this.#replies.nextId()
    this.#replies.wait(id, settle)
    socket.send(encodeTopicCall(kind, id, topic, history) as never)
  }
}
