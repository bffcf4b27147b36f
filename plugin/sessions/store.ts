import type { WebSocket } from 'ws'
import type { SessionStats } from '../stats.js'
import type { StoredMessage } from '../messages/outbound.js'
import { isPlain, sharedDeflateOf } from '../wire/ws-fast-path.js'
import { DetachedSessions, type DetachedLimits } from './detached.js'
import { LiveSession, type Session } from './live-session.js'
import { PendingChanges } from './pending-changes.js'
import { attachState, SocketState, stateOf } from './socket-state.js'
import { TopicIndex } from './topics.js'
import { isUserChannel, userChannel, userOfChannel } from '../users/channel.js'

/** Store limits, from the resolved options. */
export interface StoreOptions extends DetachedLimits {
  readonly outboxMaxAge: number
}

/** Where the store reports sockets opening and closing (the adapter's presence). */
export interface PresenceListener {
  /** `userId` is the user the session is bound to: a shared store binds it there too. */
  socketOpened (sessionId: string, userId: string | null): void
  socketClosed (sessionId: string): void
}

/**
 * The sessions of this node: the connected ones with their sockets, the detached ones kept for
 * their grace period, their topic membership, and open sockets per address. It stores; it never
 * writes to a socket. In cluster mode it holds only the sessions with a socket here.
 */
export class SessionStore {
  /** Sessions with at least one socket on this node. */
  readonly #attached = new Map<string, LiveSession>()
  readonly #detached: DetachedSessions
  readonly #topics = new TopicIndex()
  readonly #pending = new PendingChanges()
  readonly #addresses = new Map<string, number>()
  readonly #options: StoreOptions
  readonly #stats: SessionStats
  readonly #presence: PresenceListener
  /** Cluster mode: sessions are not kept after their last socket here, and membership is cluster-wide. */
  readonly #clustered: boolean

  constructor (options: StoreOptions, stats: SessionStats, presence: PresenceListener, clustered: boolean) {
    this.#options = options
    this.#stats = stats
    this.#presence = presence
    this.#clustered = clustered
    this.#detached = new DetachedSessions(options, stats, (session) => { this.#release(session) })
  }

  /**
   * Adds a socket to its session (`address` '' when sockets are not counted per address), creating
   * the session, bound to the cookie's `userId`, or bringing a detached one back (what it missed
   * meanwhile is then numbered into its outbox). The socket gets its state here.
   */
  join (sessionId: string, socket: WebSocket, address: string, enveloped: boolean, userId: string | null): LiveSession {
    let session = this.#attached.get(sessionId)
    if (session === undefined) {
      session = this.#detached.get(sessionId)
      if (session !== undefined) this.#detached.reattach(session)
      else {
        session = new LiveSession(sessionId, userId)
        // The binding is a topic of its own: a push to the user reaches the session like a publish.
        if (userId !== null) this.#topics.add(sessionId, userChannel(userId))
      }
      this.#attached.set(sessionId, session)
      this.#stats.sessions++
    }
    this.#stats.sockets++
    if (address !== '') this.#addresses.set(address, (this.#addresses.get(address) ?? 0) + 1)
    attachState(socket, new SocketState(session, address, enveloped, isPlain(socket), sharedDeflateOf(socket)))
    session.sockets.add(socket)
    this.#presence.socketOpened(sessionId, session.userId)
    return session
  }

  /** Removes a socket; a session left without sockets is detached for its grace period or forgotten. */
  leave (socket: WebSocket): void {
    const { session, address } = stateOf(socket)
    if (this.#attached.get(session.id) !== session || !session.sockets.delete(socket)) return
    this.#stats.sockets--
    this.#presence.socketClosed(session.id)
    if (address !== '') {
      const count = (this.#addresses.get(address) ?? 1) - 1
      if (count === 0) this.#addresses.delete(address)
      else this.#addresses.set(address, count)
    }
    if (session.sockets.size > 0) return
    this.#stats.sessions--
    this.#attached.delete(session.id)
    // Only a glue.v1 session can resume. In cluster mode its messages wait in Redis; nothing needs to stay here.
    if (session.epoch !== undefined && this.#options.sessionGrace > 0 && !this.#clustered && !session.revoked) {
      const idle = session.seq === 0 && !session.heardFrom && this.#topics.topicCount(session.id) === 0
      this.#detached.detach(session, Date.now(), idle)
    } else {
      this.#release(session)
    }
  }

  /** A session connected or detached on this node. */
  find (sessionId: string): LiveSession | undefined {
    return this.#attached.get(sessionId) ?? this.#detached.get(sessionId)
  }

  /** A session with at least one open socket on this node. */
  get (sessionId: string): LiveSession | undefined {
    return this.#attached.get(sessionId)
  }

  /** Sessions with at least one open socket on this node. */
  attached (): IterableIterator<LiveSession> {
    return this.#attached.values()
  }

  /** Every open socket on this node, for shutdown. */
  * sockets (): IterableIterator<WebSocket> {
    for (const session of this.#attached.values()) yield * session.sockets
  }

  /** Open sockets per session on this node. */
  * socketCounts (): IterableIterator<[string, number]> {
    for (const session of this.#attached.values()) yield [session.id, session.sockets.size]
  }

  socketCount (sessionId: string): number {
    return this.#attached.get(sessionId)?.sockets.size ?? 0
  }

  /** Open sockets from one remote address. */
  addressCount (address: string): number {
    return this.#addresses.get(address) ?? 0
  }

  /** Subscribes a session to a topic; false when the session is not on this node (connected or detached). */
  subscribe (sessionId: string, topic: string): boolean {
    this.#pending.settle(sessionId, topic)
    if (this.find(sessionId) === undefined) return false
    this.#topics.add(sessionId, topic)
    return true
  }

  /** Replaces a session's topics (cluster mode: the adapter read them as the session came to this node). */
  setTopics (sessionId: string, topics: readonly string[]): void {
    const session = this.find(sessionId)
    if (session === undefined) return
    this.#topics.removeSession(sessionId)
    for (const topic of topics) {
      this.#topics.add(sessionId, topic)
      session.userId = userOfChannel(topic) ?? session.userId
    }
  }

  /**
   * Moves a session to a new id (login): its sockets, outbox, detached state and topics follow, and
   * it is bound to `userId` from now on. Does nothing for a session this node does not hold.
   */
  rotate (oldId: string, newId: string, userId: string | null): void {
    const session = this.find(oldId)
    if (session === undefined) return
    const topics = this.#topics.topicsOf(oldId).filter((topic) => !isUserChannel(topic))
    this.#topics.removeSession(oldId)
    this.#pending.forget(oldId)
    for (const topic of topics) this.#topics.add(newId, topic)
    if (userId !== null) this.#topics.add(newId, userChannel(userId))
    const target = this.find(newId)
    if (target !== undefined) {
      this.#merge(session, target)
      return
    }
    session.id = newId
    session.userId = userId
    if (this.#attached.delete(oldId)) this.#attached.set(newId, session)
    else this.#detached.rekey(session, oldId)
  }

  /**
   * Cluster mode: a socket of the new id joined here before this node read the rotation (a
   * handshake that `identify` rotated). The old session's sockets join it; the shared store has
   * merged their counts already.
   */
  #merge (from: LiveSession, into: LiveSession): void {
    for (const socket of from.sockets) {
      into.sockets.add(socket)
      stateOf(socket).session = into
    }
    if (from.seq > into.seq) into.seq = from.seq
    from.sockets.clear()
    if (this.#attached.delete(from.id)) this.#stats.sessions--
    else this.#detached.release(from)
  }

  /**
   * Revokes a session: it leaves its topics and its user at once, and is released as soon as its
   * sockets (which the caller closes) are gone. Returns it, if this node holds it.
   */
  revoke (sessionId: string): LiveSession | undefined {
    this.#topics.removeSession(sessionId)
    this.#pending.forget(sessionId)
    const session = this.find(sessionId)
    if (session === undefined) return undefined
    session.revoked = true
    if (session.away !== undefined) this.#detached.release(session)
    return session
  }

  /** The ids of the sessions bound to a user: on one node all of them, in cluster mode the ones this node holds. */
  sessionsOfUser (userId: string): string[] {
    return [...this.#topics.sessionsOf(userChannel(userId))]
  }

  /** @returns whether the session was subscribed. */
  unsubscribe (sessionId: string, topic: string): boolean {
    this.#pending.settle(sessionId, topic)
    return this.#topics.remove(sessionId, topic)
  }

  /** A session outlived its grace period everywhere: its subscriptions end. */
  expire (sessionId: string): void {
    this.#topics.removeSession(sessionId)
    this.#pending.forget(sessionId)
  }

  /** A session's topics, its user's channel included (what the adapter restores after Redis lost its data). */
  topicsOf (sessionId: string): string[] {
    return this.#topics.topicsOf(sessionId)
  }

  /** A session's application topics: its user's channel is not one of them. */
  appTopicsOf (sessionId: string): string[] {
    return this.#topics.topicsOf(sessionId).filter((topic) => !isUserChannel(topic))
  }

  /** How many application topics a session has (what `maxTopicsPerSession` bounds). */
  topicCount (sessionId: string): number {
    const userId = this.find(sessionId)?.userId
    const channel = userId === null || userId === undefined ? 0 : Number(this.#topics.has(sessionId, userChannel(userId)))
    return this.#topics.topicCount(sessionId) - channel
  }

  /** Application topics plus those asked for and still on their way: what a client's new subscribe is checked against. */
  topicCountAsked (sessionId: string): number {
    return this.topicCount(sessionId) + this.#pending.joining(sessionId, (topic) => this.#topics.has(sessionId, topic))
  }

  isSubscribed (sessionId: string, topic: string): boolean {
    return this.#topics.has(sessionId, topic)
  }

  /**
   * Whether the session will be subscribed once the changes this node sent are applied: what a
   * client's change is compared with to tell a no-op (which never reaches the adapter).
   */
  willBeSubscribed (sessionId: string, topic: string): boolean {
    return this.#pending.intended(sessionId, topic) ?? this.#topics.has(sessionId, topic)
  }

  /** A client's subscription change is on its way to the adapter. */
  changing (sessionId: string, topic: string, subscribed: boolean): void {
    this.#pending.add(sessionId, topic, subscribed)
  }

  /** The adapter will not apply a change (it changed nothing, or it failed). */
  unchanged (sessionId: string, topic: string): void {
    this.#pending.settle(sessionId, topic)
  }

  subscriberCount (topic: string): number {
    return this.#topics.subscriberCount(topic)
  }

  /** The sessions on this node, connected or detached, subscribed to a topic. */
  * subscribers (topic: string): IterableIterator<LiveSession> {
    for (const sessionId of this.#topics.sessionsOf(topic)) {
      const session = this.find(sessionId)
      if (session !== undefined) yield session
    }
  }

  /** Keeps a message for a detached session until it comes back. */
  hold (session: LiveSession, message: StoredMessage, now: number): void {
    this.#detached.hold(session, message, now)
  }

  /** Logs a broadcast once for every detached session. */
  logBroadcast (message: StoredMessage, except: string | undefined, now: number): void {
    this.#detached.broadcast(message, except, now)
  }

  /** Bytes charged to the detached-session budget (`maxDetachedBytes`). */
  get detachedBytes (): number {
    return this.#detached.bytes
  }

  /** Releases detached sessions past their grace and drops outbox messages past their age. */
  sweep (now: number): void {
    const cutoff = now - this.#options.outboxMaxAge
    this.#detached.sweep(now, cutoff)
    for (const session of this.#attached.values()) session.outbox?.trimBefore(cutoff)
  }

  #release (session: LiveSession): void {
    // In cluster mode the shared store keeps the session's topics; this node learns them again if it comes back.
    this.#topics.removeSession(session.id)
    this.#pending.forget(session.id)
  }
}

export type { Session }
