// The client's events: their payloads, and the emitter that calls the listeners.
import type { GlueData, GlueMember } from './envelope.js'
import type { GlueClientError } from './errors.js'

/** Where the client is in its life cycle. */
export type GlueState = 'connecting' | 'open' | 'reconnecting' | 'closed'

/** Payload of the `message` event. */
export interface GlueMessageEvent {
  /** A string for text, an ArrayBuffer for binary; on glue.v1 also the JSON value the server sent. */
  readonly data: GlueData
  /** The session's sequence number of the message on glue.v1 (0 for a volatile message); undefined for plain frames. */
  readonly seq: number | undefined
  /**
   * Parses `data` as JSON when it is a string or binary; returns it as it is when it is already a JSON value.
   * @throws SyntaxError when a string or binary `data` is not valid JSON
   */
  json<T = unknown> (): T
}

/** Payload of a topic listener added with {@link GlueClient.onTopic}. */
export interface GlueTopicEvent extends GlueMessageEvent {
  readonly topic: string
  /** The session's sequence number; 0 for a message from the topic's history (and a volatile one). */
  readonly seq: number
  /** The message's place in the topic's history (`<epoch>.<n>`), for a topic that keeps history; else undefined. */
  readonly position: string | undefined
  /** True for a message from the topic's history, delivered after subscribing and before live ones. */
  readonly history: boolean
}

/** A listener of one topic's messages. */
export type GlueTopicListener = (event: GlueTopicEvent) => void

/** Payload of the `close` event. */
export interface GlueCloseEvent {
  readonly code: number
  readonly reason: string
  readonly wasClean: boolean
  /** True when the client is about to reconnect. */
  readonly willReconnect: boolean
}

/** Payload of the `reconnecting` event. */
export interface GlueReconnectingEvent {
  /** 1 for the first attempt after a drop; back to 1 once a socket stayed open for `stableAfter`. */
  readonly attempt: number
  /** Milliseconds until the attempt: 0 when a wait ends early (`online`, the page visible again, `connect()`), for the same attempt. */
  readonly delay: number
}

/** Payload of the `statechange` event. */
export interface GlueStateChangeEvent {
  readonly state: GlueState
  readonly previous: GlueState
}

/** Payload of the `gap` event. */
export interface GlueGapEvent {
  /** How many messages can no longer be delivered, or null when unknown (the server lost the session's state). */
  readonly missed: number | null
  /** For a gap in a topic's history (what a `history` subscribe asked for is gone): the topic. */
  readonly topic?: string
}

/** Payload of the `join` and `leave` events: a member came to or left a topic that shows presence. */
export interface GluePresenceEvent {
  readonly topic: string
  readonly member: GlueMember
}

/** Payload of the `membersstale` event: more changed in a topic than one batch lists; call `members()` again. */
export interface GlueMembersStaleEvent {
  readonly topic: string
}

/** What `members()` resolves with: at most the server's `maxMembers` members, and how many there are. */
export interface GlueMemberList {
  readonly members: GlueMember[]
  readonly count: number
}

/**
 * Payload of the `revoked` event: the server closed with 3000, because the session was revoked
 * (logout, `sessions.revoke()`) or the app closed it as unauthorized. The client stays closed.
 */
export interface GlueRevokedEvent {
  readonly code: number
  readonly reason: string
}

/** Events of {@link GlueClient} and their payloads. */
export interface GlueClientEventMap {
  open: undefined
  message: GlueMessageEvent
  gap: GlueGapEvent
  close: GlueCloseEvent
  revoked: GlueRevokedEvent
  join: GluePresenceEvent
  leave: GluePresenceEvent
  membersstale: GlueMembersStaleEvent
  reconnecting: GlueReconnectingEvent
  statechange: GlueStateChangeEvent
  error: GlueClientError
}

/** A listener of event `K`. */
export type GlueListener<K extends keyof GlueClientEventMap> = (event: GlueClientEventMap[K]) => void

/** The payload of a `message` event, or of a topic's listeners when `topic` is given. */
export function messageEvent (data: GlueData, seq: number | undefined, topic: string | undefined, position?: string, history = false): GlueMessageEvent {
  return {
    data,
    seq,
    topic,
    position,
    history,
    json: () => typeof data === 'string'
      ? JSON.parse(data)
      : data instanceof ArrayBuffer ? JSON.parse(new TextDecoder().decode(data)) : data
  } as GlueMessageEvent
}

function reportListenerError (err: unknown): void {
  // A throwing listener must not break the client's state machine; report it like EventTarget does.
  const report = (globalThis as { reportError?: (err: unknown) => void }).reportError
  if (report !== undefined) report(err)
  else setTimeout(() => { throw err }, 0)
}

/** Calls the listeners of the client's events and of each topic, in the order they were added. */
export class GlueEmitter {
  // A topic's listeners are kept under `topic:<name>`, beside the event names.
  #listeners = new Map<string, Set<(event: never) => void>>()

  /** Adds (`add` true) or removes a listener of an event. */
  listen<K extends keyof GlueClientEventMap> (type: K, listener: GlueListener<K>, add: boolean): void {
    this.#listen(type, listener, add)
  }

  /** Adds (`add` true) or removes a listener of a topic's messages. */
  listenTopic (topic: string, listener: GlueTopicListener, add: boolean): void {
    this.#listen(`topic:${topic}`, listener, add)
  }

  /** Calls the listeners of an event; a throwing listener is reported and does not stop the others. */
  emit<K extends keyof GlueClientEventMap> (type: K, event: GlueClientEventMap[K]): void {
    this.#emit(type, event)
  }

  /** Calls the listeners of a topic's messages. */
  emitTopic (topic: string, event: GlueMessageEvent): void {
    this.#emit(`topic:${topic}`, event)
  }

  #listen (type: string, listener: (event: never) => void, add: boolean): void {
    let set = this.#listeners.get(type)
    if (!add) set?.delete(listener)
    else {
      if (set === undefined) this.#listeners.set(type, set = new Set())
      set.add(listener)
    }
  }

  #emit (type: string, event: unknown): void {
    const set = this.#listeners.get(type)
    if (set === undefined) return
    for (const listener of [...set]) {
      try {
        (listener as (event: unknown) => void)(event)
      } catch (err) {
        reportListenerError(err)
      }
    }
  }
}
