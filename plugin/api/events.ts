import type { FastifyBaseLogger } from 'fastify'
import { sessionTag } from '../handshake/identity.js'
import type { Session } from '../sessions/live-session.js'
import type { CloseListener, ConnectListener, MessageListener } from './hooks.js'

/** Event names of `app.sessions.on()` and the listener each one takes. */
export interface SessionEventMap {
  connect: ConnectListener
  message: MessageListener
  close: CloseListener
}

/** One of `'connect'`, `'message'` or `'close'`. */
export type SessionEventName = keyof SessionEventMap

export const SESSION_EVENTS: readonly SessionEventName[] = Object.freeze(['connect', 'message', 'close'])

type ListenerArgs<E extends SessionEventName> = Parameters<SessionEventMap[E]>
type ListenerLists = { [E in SessionEventName]: ReadonlyArray<SessionEventMap[E]> }

/**
 * The listeners of every session event. Listeners run in the order they were added; a listener
 * that throws or rejects is logged and does not stop the others.
 */
export class SessionEvents {
  #listeners: ListenerLists = { connect: [], message: [], close: [] }
  #log: FastifyBaseLogger

  constructor (log: FastifyBaseLogger) {
    this.#log = log
  }

  on<E extends SessionEventName> (event: E, listener: SessionEventMap[E]): void {
    // Copy on write, so a listener that adds or removes listeners does not disturb a running emit.
    this.#listeners[event] = [...this.#listeners[event], listener] as ListenerLists[E]
  }

  off<E extends SessionEventName> (event: E, listener: SessionEventMap[E]): void {
    const list = this.#listeners[event]
    const index = list.lastIndexOf(listener)
    if (index !== -1) {
      this.#listeners[event] = list.filter((_, i) => i !== index) as ListenerLists[E]
    }
  }

  has (event: SessionEventName): boolean {
    return this.#listeners[event].length > 0
  }

  /**
   * Calls every listener of `event`. Returns whether all of them succeeded, or a promise of that
   * when a listener returned a promise.
   */
  emit<E extends SessionEventName> (event: E, args: ListenerArgs<E>): boolean | Promise<boolean> {
    let ok = true
    let pending: Array<Promise<boolean>> | undefined
    for (const listener of this.#listeners[event]) {
      try {
        const result = (listener as (...a: ListenerArgs<E>) => unknown)(...args)
        if (isThenable(result)) {
          pending ??= []
          pending.push(Promise.resolve(result).then(() => true, (err: unknown) => this.#fail(event, args[0], err)))
        }
      } catch (err) {
        ok = this.#fail(event, args[0], err)
      }
    }
    if (pending === undefined) return ok
    return Promise.all(pending).then((results) => ok && results.every(Boolean))
  }

  #fail (event: SessionEventName, session: Session, err: unknown): false {
    this.#log.error({ err, event, session: sessionTag(session.id) }, 'session listener failed')
    return false
  }
}

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function'
}
