import type { WebSocket } from 'ws'
import type { ClusterMessage } from '../adapters/adapter.js'
import { Outbound, type EnvelopeFrame } from '../messages/outbound.js'
import { receives } from '../messages/recipients.js'
import type { LiveSession } from '../sessions/live-session.js'
import { stateOf } from '../sessions/socket-state.js'
import type { SessionStore } from '../sessions/store.js'
import { CLOSE_REVOKED } from '../constants.js'
import { shownTopic } from '../users/channel.js'
import type { Revocations } from '../users/revocations.js'
import type { SocketWriter } from './socket-writer.js'
import type { TopicHistories } from '../topics/history.js'
import { formatPosition } from '../topics/position.js'
import type { TopicPresence } from '../topics/presence.js'
import type { TopicRules } from '../topics/rules.js'

/** What delivery needs of topic history and presence. */
export interface DeliveryTopics {
  readonly rules: TopicRules
  readonly histories: TopicHistories
  readonly presence: TopicPresence
}

// ws exposes readyState constants on the class; the numeric value is part of the WebSocket spec.
const OPEN = 1
// Volatile messages carry sequence number 0 on the wire: never stored, never replayed, never a gap.
const VOLATILE_SEQ = 0
/** Cluster mode: live messages held for one socket while its replay is read, before it counts as a slow consumer. */
const HELD_LIMIT = 10_000

/**
 * Applies messages to this node's sockets: the single way in for everything `app.sessions` sends,
 * on one node or many. It finds the recipients (the rule in messages/recipients.ts), numbers the
 * message for each session (or takes the cluster's number), keeps it for resume, and hands each
 * socket's bytes to the writer. A message walks one way: adapter → apply → session → socket.
 */
export class Delivery {
  readonly #store: SessionStore
  readonly #writer: SocketWriter
  readonly #revocations: Revocations
  readonly #topics: DeliveryTopics

  constructor (store: SessionStore, writer: SocketWriter, revocations: Revocations, topics: DeliveryTopics) {
    this.#store = store
    this.#writer = writer
    this.#revocations = revocations
    this.#topics = topics
  }

  /**
   * Applies a message from the adapter. `clusterSeq` is the message's number in the cluster order;
   * without one this node numbers it per session.
   * @returns for send/broadcast/publish/close the sockets reached; for subscribe and unsubscribe 1
   * when membership changed, else 0.
   */
  apply (message: ClusterMessage, clusterSeq?: number, among?: (sessionId: string) => boolean, epoch = ''): number {
    switch (message.kind) {
      case 'send': {
        const session = this.#store.find(message.sessionId)
        return session === undefined ? 0 : this.#fanOut([session], message, new Outbound(message.data, undefined, false), clusterSeq, among)
      }
      case 'broadcast': {
        const outbound = new Outbound(message.data, undefined, true)
        // Detached sessions read it from one shared log when they come back.
        if (!message.volatile && clusterSeq === undefined) this.#store.logBroadcast(outbound.stored(), message.except, Date.now())
        return this.#fanOut(this.#store.attached(), message, outbound, clusterSeq, among)
      }
      case 'publish': {
        // A user's channel is a topic its sessions never see: its messages arrive as `m` envelopes.
        const position = this.#positionOf(message, clusterSeq, epoch)
        return this.#fanOut(this.#store.subscribers(message.topic), message, new Outbound(message.data, shownTopic(message.topic), true, position), clusterSeq, among)
      }
      case 'presence':
        return this.#topics.presence.deliver(message.topic, message.joined, message.left, among)
      case 'close':
        return this.#close(message.sessionId, message.code, message.reason)
      case 'subscribe':
      case 'unsubscribe': {
        const changed = message.kind === 'subscribe'
          ? this.#store.subscribe(message.sessionId, message.topic)
          : this.#store.unsubscribe(message.sessionId, message.topic)
        if (changed) this.#topics.presence.touch(message.topic)
        return changed ? 1 : 0
      }
      case 'expire':
        this.#topics.presence.touchSession(message.sessionId)
        this.#store.expire(message.sessionId)
        return 0
      case 'rotate':
        this.#revocations.revokeSession(message.sessionId, Date.now())
        // The session's member changes with its user.
        this.#topics.presence.touchSession(message.sessionId)
        this.#store.rotate(message.sessionId, message.to, message.userId)
        this.#topics.presence.touchSession(message.to)
        return 0
      case 'revoke':
        this.#revocations.revokeSession(message.sessionId, Date.now())
        this.#topics.presence.touchSession(message.sessionId)
        return this.#revoke(message.sessionId)
      case 'revokeUser': {
        this.#revocations.revokeUser(message.userId, message.before)
        let count = 0
        for (const sessionId of this.#store.sessionsOfUser(message.userId)) {
          if (among === undefined || among(sessionId)) count += this.#revoke(sessionId)
        }
        return count
      }
      case 'closeUser': {
        let count = 0
        for (const sessionId of this.#store.sessionsOfUser(message.userId)) {
          if (among === undefined || among(sessionId)) count += this.#close(sessionId, message.code, message.reason)
        }
        return count
      }
    }
  }

  /**
   * The position of a topic message in its topic's history, for a topic that keeps one: on one node
   * the history numbers and keeps it here; in cluster mode Redis kept it and its number is its position.
   */
  #positionOf (message: ClusterMessage & { kind: 'publish' }, clusterSeq: number | undefined, epoch: string): string | undefined {
    const rules = this.#topics.rules
    if (message.volatile || !rules.anyHistory) return undefined
    const limits = rules.historyOf(message.topic)
    if (limits === undefined) return undefined
    if (clusterSeq === undefined) return this.#topics.histories.record(message.topic, limits, message.data, Date.now())
    return message.data.binary ? undefined : formatPosition(epoch, clusterSeq)
  }

  /** Revokes a session this node may hold and starts closing its sockets with 3000; returns how many. */
  #revoke (sessionId: string): number {
    if (this.#store.revoke(sessionId) === undefined) return 0
    return this.#close(sessionId, CLOSE_REVOKED, 'session revoked')
  }

  #fanOut (
    sessions: Iterable<LiveSession>,
    message: ClusterMessage & { kind: 'send' | 'broadcast' | 'publish' },
    outbound: Outbound,
    clusterSeq: number | undefined,
    among: ((sessionId: string) => boolean) | undefined
  ): number {
    const now = Date.now()
    // Candidates were found by topic or id: the rule only needs to say no to `except`.
    const isCandidate = (): boolean => true
    let count = 0
    for (const session of sessions) {
      if (among !== undefined && !among(session.id)) continue
      if (receives(message, session.id, isCandidate)) count += this.#deliverTo(session, outbound, message.volatile, now, clusterSeq)
    }
    return count
  }

  /** Numbers the message for one session, keeps it for resume, and writes it to the session's sockets. */
  #deliverTo (session: LiveSession, outbound: Outbound, volatile: boolean, now: number, clusterSeq: number | undefined): number {
    if (session.away !== undefined) {
      // Numbered when the session comes back, in the order it was sent.
      if (!volatile) this.#store.hold(session, outbound.stored(), now)
      return 0
    }
    let seq = VOLATILE_SEQ
    if (!volatile) {
      if (clusterSeq !== undefined) {
        seq = clusterSeq
        // The newest number this node delivered to the session: where a catch-up would start.
        if (seq > session.seq) session.seq = seq
      } else {
        seq = ++session.seq
        session.outbox?.push(seq, outbound.stored(), now)
      }
    }
    let envelope: EnvelopeFrame | undefined
    let count = 0
    for (const socket of session.sockets) {
      // A socket stays in its session until 'close'; skip it once the closing handshake started.
      if (socket.readyState !== OPEN) continue
      const state = stateOf(socket)
      if (!state.enveloped) {
        if (this.#writer.writeRaw(socket, outbound, volatile)) count++
        continue
      }
      // A resuming socket reads this message from its outbox when its turn comes (or, in cluster mode, after its welcome and replay).
      if (state.cursor !== undefined) {
        if (state.held !== undefined && !volatile) {
          state.held.push([seq, envelope ??= outbound.envelope(seq)])
          // A replay that cannot keep up with live traffic: the client comes back and resumes again.
          if (state.held.length > HELD_LIMIT) this.#writer.closeSlow(socket)
        }
        continue
      }
      // Cluster mode: numbered before this socket's welcome, so it came before the socket.
      if (!volatile && seq <= state.floor) continue
      envelope ??= outbound.envelope(seq)
      // Cluster mode: the socket is reading the topic's history; this waits for it (topic-history.ts).
      const hold = state.topicHolds !== undefined && !volatile && outbound.topic !== undefined ? state.topicHolds.get(outbound.topic) : undefined
      if (hold !== undefined) {
        if (hold.floor === undefined) {
          hold.held.push([seq, envelope])
          if (hold.held.length > HELD_LIMIT) this.#writer.closeSlow(socket)
          continue
        }
        // The history already had it: this node read it from its inbox after the history was read.
        if (seq <= hold.floor) continue
        // Inbox entries come in order: nothing older can follow.
        state.topicHolds?.delete(outbound.topic as string)
      }
      if (this.#writer.writeEnvelope(socket, envelope, volatile)) count++
    }
    return count
  }

  /** Starts the closing handshake on every socket of a session; returns how many sockets. */
  #close (sessionId: string, code: number, reason: string): number {
    const sockets: Iterable<WebSocket> = this.#store.get(sessionId)?.sockets ?? []
    let count = 0
    for (const socket of sockets) {
      if (socket.readyState === OPEN) {
        socket.close(code, reason)
        count++
      }
    }
    return count
  }
}
