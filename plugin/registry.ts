import { randomBytes } from 'node:crypto'
import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import { CLOSE_TRY_AGAIN_LATER, COALESCE_FLUSH_BYTES, SLOW_CONSUMER_GRACE } from './constants.js'
import { DetachedSessions, type DetachedLimits } from './detached.js'
import type { EncodedData } from './encode.js'
import { CoalescingWriter, directTransport, frameOf, inspectSocket } from './frame.js'
import { LiveSession, type Session } from './live-session.js'
import { envelopeFrame, Outbound, type EnvelopeFrame, type StoredMessage } from './outbound.js'
import { Outbox } from './outbox.js'
import { gapEnvelope, GLUE_PROTOCOL, welcomeEnvelope, type ResumePoint } from './protocol.js'
import type { SessionStats } from './stats.js'
import type { ClusterMessage, GlueAdapter, StreamPosition } from './adapters/adapter.js'
import type { FastifyBaseLogger } from 'fastify'

export type { Session }

/** Delivery limits, from the resolved options. */
export interface DeliveryOptions extends DetachedLimits {
  readonly outboxMaxAge: number
  readonly sendHighWaterMark: number
  readonly drainTimeout: number
}

// ws exposes readyState constants on the class; the numeric value is part of the WebSocket spec.
const OPEN = 1
// Volatile messages carry sequence number 0: never stored, never replayed, never a gap.
const VOLATILE_SEQ = 0
/** Cluster mode: live messages held for one socket while its replay is read, before it counts as a slow consumer. */
const HELD_LIMIT = 10_000

const kEnveloped = Symbol('fastify-websocket-glue.enveloped')
const kAddress = Symbol('fastify-websocket-glue.address')
/** When the socket's unsent bytes went above the high-water mark; undefined while below. */
const kCongestedSince = Symbol('fastify-websocket-glue.congestedSince')
/** Next sequence number a resuming socket reads from the outbox; undefined once it is live. */
const kCursor = Symbol('fastify-websocket-glue.cursor')
/** Cluster mode: live messages held for a socket while its replay is read from the adapter. */
const kHeld = Symbol('fastify-websocket-glue.held')
type RegisteredSocket = WebSocket & {
  [kEnveloped]?: boolean
  [kAddress]?: string
  [kCursor]?: number
  [kHeld]?: EnvelopeFrame[]
  [kCongestedSince]?: number
}

/** Whether a socket speaks glue.v1 envelopes (it selected the subprotocol at the handshake). */
export function isEnveloped (socket: WebSocket): boolean {
  return (socket as RegisteredSocket)[kEnveloped] === true
}

/**
 * Maps session ids to their open sockets, topics and delivery state, and delivers to them.
 * Sessions that spoke glue.v1 outlive their last socket for the grace period, keeping an outbox.
 */
export class SessionRegistry {
  /** Sessions with at least one socket on this node. */
  #attached = new Map<string, LiveSession>()
  #detached: DetachedSessions
  #topics = new Map<string, Set<LiveSession>>()
  #addresses = new Map<string, number>()
  /** Sockets above the high-water mark: closed with 1013 when they do not drain within drainTimeout. */
  #congested = new Set<RegisteredSocket>()
  /** Sockets closed with 1013, terminated if still open at the deadline. */
  #slowClosing = new Map<WebSocket, number>()
  #writer: CoalescingWriter
  #options: DeliveryOptions
  #stats: SessionStats
  #adapter: GlueAdapter | undefined
  /** Set when the adapter numbers messages cluster-wide: then it, not this registry, keeps them for resume. */
  #cluster: GlueAdapter | undefined
  #log: FastifyBaseLogger | undefined

  constructor (options: DeliveryOptions, stats: SessionStats) {
    this.#options = options
    this.#stats = stats
    this.#detached = new DetachedSessions(options, stats, (session) => { this.#release(session) })
    // Below the high-water mark, or a burst of small frames would count as a slow reader.
    this.#writer = new CoalescingWriter(Math.min(COALESCE_FLUSH_BYTES, Math.ceil(options.sendHighWaterMark / 2)))
  }

  /** Connects the adapter: presence goes to it, and a sequencing adapter takes over numbering and resume. */
  useAdapter (adapter: GlueAdapter, log: FastifyBaseLogger): void {
    this.#adapter = adapter
    this.#cluster = adapter.sequenced ? adapter : undefined
    this.#log = log
  }

  /**
   * Applies a message from the adapter to this node's sockets: the single way in for everything
   * `app.sessions` sends, on one node or many. `seq` 0 means this registry numbers it per session.
   */
  deliver (message: ClusterMessage, seq: number): number {
    switch (message.kind) {
      case 'send': return this.send(message.sessionId, message.data, message.volatile, seq)
      case 'broadcast': return this.broadcast(message.data, message.except, message.volatile, seq)
      case 'publish': return this.publish(message.topic, message.data, message.except, message.volatile, seq)
      case 'close': return this.close(message.sessionId, message.code, message.reason)
      case 'subscribe': return this.subscribe(message.sessionId, message.topic) ? 1 : 0
      case 'unsubscribe': return this.unsubscribe(message.sessionId, message.topic) ? 1 : 0
      case 'expire': {
        const session = this.#find(message.sessionId)
        for (const topic of session?.topics ?? []) this.#removeMember(topic, session as LiveSession)
        if (session !== undefined) session.topics = undefined
        return 0
      }
    }
  }

  /** Cluster mode: the shared delivery state restarted or skipped ahead; every glue.v1 client hears of it. */
  resync (position: StreamPosition): void {
    for (const session of this.#attached.values()) {
      for (const socket of session.sockets as Set<RegisteredSocket>) {
        if (socket[kEnveloped] !== true) continue
        this.#stats.gaps++
        this.sendTo(socket, welcomeEnvelope(position.epoch, position.seq))
        this.sendTo(socket, gapEnvelope(null))
      }
    }
  }

  /** Open sockets per session on this node. */
  * socketCounts (): IterableIterator<[string, number]> {
    for (const session of this.#attached.values()) yield [session.id, session.sockets.size]
  }

  /**
   * Adds a socket to its session, creating the session when needed. A glue.v1 socket first gets
   * its welcome, then whatever it missed since `resume`, before anything else is written to it.
   */
  join (sessionId: string, socket: WebSocket, address: string, resume: ResumePoint | undefined): Session {
    let session = this.#attached.get(sessionId)
    if (session === undefined) {
      session = this.#detached.get(sessionId)
      if (session !== undefined) {
        this.#detached.reattach(session)
      } else {
        session = new LiveSession(sessionId)
        // Cluster mode: subscriptions are cluster-wide; this node indexes those of its own sessions.
        for (const topic of this.#cluster?.topicsOf(sessionId) ?? []) this.#addMember(session, topic)
      }
      this.#attached.set(sessionId, session)
      this.#stats.sessions++
    }
    this.#stats.sockets++
    this.#addresses.set(address, (this.#addresses.get(address) ?? 0) + 1)

    const registered = socket as RegisteredSocket
    registered[kAddress] = address
    registered[kEnveloped] = socket.protocol === GLUE_PROTOCOL
    inspectSocket(socket)
    session.sockets.add(registered)
    this.#adapter?.socketOpened(sessionId)
    if (registered[kEnveloped]) this.#welcome(session, registered, resume)
    return session
  }

  /** Removes a socket; a session without sockets is detached for the grace period or forgotten. */
  leave (session: Session, socket: WebSocket): void {
    const live = this.#attached.get(session.id)
    if (live === undefined || !live.sockets.delete(socket)) return
    this.#stats.sockets--
    this.#slowClosing.delete(socket)
    this.#congested.delete(socket)
    this.#adapter?.socketClosed(session.id)
    const address = (socket as RegisteredSocket)[kAddress] as string
    const count = (this.#addresses.get(address) ?? 1) - 1
    if (count === 0) this.#addresses.delete(address)
    else this.#addresses.set(address, count)
    if (live.sockets.size > 0) return
    this.#stats.sessions--
    this.#attached.delete(live.id)
    // Only a glue.v1 session can resume. In cluster mode its messages wait in Redis; nothing needs to stay here.
    if (live.epoch !== undefined && this.#options.sessionGrace > 0 && this.#cluster === undefined) {
      this.#detached.detach(live, Date.now())
    } else {
      this.#release(live)
    }
  }

  /** Records that a client of the session sent something: a session that did is evicted after those that never did. */
  heardFrom (session: Session): void {
    (session as LiveSession).heardFrom = true
  }

  /** Open sockets of a session on this node (0 for unknown or detached sessions). */
  socketCount (sessionId: string): number {
    return this.#attached.get(sessionId)?.sockets.size ?? 0
  }

  /** Open sockets from one remote address. */
  addressCount (address: string): number {
    return this.#addresses.get(address) ?? 0
  }

  get (sessionId: string): Session | undefined {
    return this.#attached.get(sessionId)
  }

  has (sessionId: string): boolean {
    return this.#attached.has(sessionId)
  }

  /** Whether the session is known here: connected, or detached within its grace period. */
  isKnown (sessionId: string): boolean {
    return this.#find(sessionId) !== undefined
  }

  get size (): number {
    return this.#stats.sessions
  }

  /** Bytes charged to the detached-session budget (`maxDetachedBytes`). */
  get detachedBytes (): number {
    return this.#detached.bytes
  }

  values (): IterableIterator<Session> {
    return this.#attached.values()
  }

  /** Sends to every open socket of a session, or keeps it for a detached one; returns how many sockets. */
  send (sessionId: string, data: EncodedData, volatile: boolean, seq = 0): number {
    const session = this.#find(sessionId)
    return session === undefined ? 0 : this.#deliver(session, new Outbound(data, undefined, false), volatile, Date.now(), seq)
  }

  /** Sends to every session but `except`; returns how many sockets. Detached sessions read it from a shared log. */
  broadcast (data: EncodedData, except: string | undefined, volatile: boolean, seq = 0): number {
    const outbound = new Outbound(data, undefined, true)
    const now = Date.now()
    if (!volatile && seq === 0) this.#detached.broadcast(outbound.stored(), except, now)
    return this.#deliverAll(this.#attached.values(), outbound, except, volatile, seq, now)
  }

  /** Sends to every session subscribed to `topic` but `except`. */
  publish (topic: string, data: EncodedData, except: string | undefined, volatile: boolean, seq = 0): number {
    const members = this.#topics.get(topic)
    if (members === undefined) return 0
    return this.#deliverAll(members.values(), new Outbound(data, topic, true), except, volatile, seq, Date.now())
  }

  /** Sends a glue.v1 envelope to one socket, in order with everything else written to it. */
  sendTo (socket: WebSocket, envelope: EncodedData): void {
    if (socket.readyState !== OPEN) return
    const transport = directTransport(socket)
    if (!this.#admit(socket as RegisteredSocket, transport, false)) return
    if (transport !== null) this.#writer.write(transport, frameOf(envelope))
    else socket.send(envelope.payload, { binary: envelope.binary })
    this.#watchDrain(socket as RegisteredSocket, transport)
  }

  /** Subscribes a session to a topic; false when the session is not known here. */
  subscribe (sessionId: string, topic: string): boolean {
    const session = this.#find(sessionId)
    if (session === undefined) return false
    this.#addMember(session, topic)
    return true
  }

  /** Unsubscribes a session; false when it was not subscribed. */
  unsubscribe (sessionId: string, topic: string): boolean {
    const session = this.#find(sessionId)
    if (session?.topics?.delete(topic) !== true) return false
    this.#removeMember(topic, session)
    return true
  }

  topicsOf (sessionId: string): string[] {
    return [...(this.#find(sessionId)?.topics ?? [])]
  }

  /** How many topics a session has on this node. */
  topicCount (sessionId: string): number {
    return this.#find(sessionId)?.topics?.size ?? 0
  }

  subscriberCount (topic: string): number {
    return this.#topics.get(topic)?.size ?? 0
  }

  /** Starts the closing handshake on every socket of a session; returns how many sockets. */
  close (sessionId: string, code: number, reason: string): number {
    const session = this.#attached.get(sessionId)
    if (session === undefined) return 0
    let count = 0
    for (const socket of session.sockets) {
      if (socket.readyState === OPEN) {
        socket.close(code, reason)
        count++
      }
    }
    return count
  }

  /** Every socket of every session, for shutdown. */
  * sockets (): IterableIterator<WebSocket> {
    for (const session of this.#attached.values()) yield * session.sockets
  }

  /**
   * Periodic upkeep: releases detached sessions past their grace, drops outbox messages past their
   * age, closes sockets that stayed above the high-water mark too long, and terminates slow
   * consumers that did not finish closing.
   */
  sweep (now: number): void {
    const cutoff = now - this.#options.outboxMaxAge
    this.#detached.sweep(now, cutoff)
    for (const session of this.#attached.values()) session.outbox?.trimBefore(cutoff)
    for (const socket of this.#congested) {
      if (socket.readyState !== OPEN || this.#buffered(socket, directTransport(socket)) <= this.#options.sendHighWaterMark) {
        socket[kCongestedSince] = undefined
        this.#congested.delete(socket)
      } else if ((socket[kCongestedSince] as number) + this.#options.drainTimeout <= now) {
        this.#congested.delete(socket)
        this.#closeSlow(socket)
      }
    }
    for (const [socket, deadline] of this.#slowClosing) {
      if (deadline <= now) {
        this.#slowClosing.delete(socket)
        socket.terminate()
      }
    }
  }

  /** A session connected or detached on this node. */
  #find (sessionId: string): LiveSession | undefined {
    return this.#attached.get(sessionId) ?? this.#detached.get(sessionId)
  }

  #release (session: LiveSession): void {
    for (const topic of session.topics ?? []) this.#removeMember(topic, session)
  }

  #addMember (session: LiveSession, topic: string): void {
    session.topics ??= new Set()
    session.topics.add(topic)
    let members = this.#topics.get(topic)
    if (members === undefined) {
      members = new Set()
      this.#topics.set(topic, members)
    }
    members.add(session)
  }

  #removeMember (topic: string, session: LiveSession): void {
    const members = this.#topics.get(topic)
    members?.delete(session)
    if (members?.size === 0) this.#topics.delete(topic)
  }

  #welcome (session: LiveSession, socket: RegisteredSocket, resume: ResumePoint | undefined): void {
    if (this.#cluster !== undefined) {
      this.#welcomeFromCluster(this.#cluster, session, socket, resume)
      return
    }
    if (session.epoch === undefined) {
      session.epoch = randomBytes(6).toString('base64url')
      if (this.#options.outboxLimit > 0) session.outbox = new Outbox(this.#options.outboxLimit)
    }
    const nextSeq = session.seq + 1
    // New tabs start from now; a resume from another epoch (restart, expiry) or from the future cannot be filled.
    if (resume === undefined || resume.epoch !== session.epoch || resume.seq >= nextSeq) {
      this.sendTo(socket, welcomeEnvelope(session.epoch, session.seq))
      if (resume !== undefined && (resume.epoch !== session.epoch || resume.seq >= nextSeq)) {
        this.#stats.gaps++
        this.sendTo(socket, gapEnvelope(null))
      }
      return
    }
    session.outbox?.trimBefore(Date.now() - this.#options.outboxMaxAge)
    const oldest = session.outbox?.oldestSeq(nextSeq) ?? nextSeq
    this.sendTo(socket, welcomeEnvelope(session.epoch, Math.max(resume.seq, oldest - 1)))
    socket[kCursor] = resume.seq + 1
    this.#catchUp(session, socket)
  }

  /**
   * Replays a resuming socket from the outbox, as fast as it reads: it stops at the high-water mark
   * and goes on at 'drain'. Meanwhile live messages skip the socket (they are in the outbox too),
   * so a long backlog neither floods memory nor is overtaken by new messages.
   */
  #catchUp (session: LiveSession, socket: RegisteredSocket): void {
    const transport = directTransport(socket)
    let cursor = socket[kCursor] as number
    while (cursor <= session.seq && socket.readyState === OPEN) {
      if (this.#buffered(socket, transport) > this.#options.sendHighWaterMark) {
        socket[kCursor] = cursor
        const resume = (): void => { if (this.#attached.get(session.id) === session) this.#catchUp(session, socket) }
        if (transport !== null) transport.once('drain', resume)
        else setTimeout(resume, 10).unref()
        return
      }
      const oldest = session.outbox?.oldestSeq(session.seq + 1) ?? session.seq + 1
      if (cursor < oldest) {
        // Trimmed before this client got to it (limit or age): say how much is gone, never skip silently.
        this.#stats.gaps++
        this.sendTo(socket, gapEnvelope(oldest - cursor))
        cursor = oldest
        continue
      }
      const message = session.outbox?.get(cursor) as StoredMessage
      this.#stats.replayed++
      this.#stats.messagesOut++
      this.#writeFrame(socket, transport, envelopeFrame(message, cursor))
      cursor++
    }
    socket[kCursor] = undefined
  }

  /**
   * Cluster mode: the welcome carries this node's position in the cluster order. A resume reads
   * what the session missed from the adapter; live messages meanwhile are held for this socket and
   * written after the replay, so nothing overtakes and nothing is written twice.
   */
  #welcomeFromCluster (cluster: GlueAdapter, session: LiveSession, socket: RegisteredSocket, resume: ResumePoint | undefined): void {
    const position = (cluster.position as () => StreamPosition)()
    session.epoch = position.epoch
    if (resume === undefined || resume.epoch !== position.epoch || resume.seq >= position.seq) {
      // A client ahead of this node (it came from a node further along) gets the rest live.
      const start = resume !== undefined && resume.epoch === position.epoch ? resume.seq : position.seq
      this.sendTo(socket, welcomeEnvelope(position.epoch, start))
      if (resume !== undefined && resume.epoch !== position.epoch) {
        this.#stats.gaps++
        this.sendTo(socket, gapEnvelope(null))
      }
      return
    }
    this.sendTo(socket, welcomeEnvelope(position.epoch, resume.seq))
    socket[kHeld] = []
    socket[kCursor] = resume.seq + 1
    const finish = (missed: number | null): void => {
      if (missed !== 0) {
        this.#stats.gaps++
        this.sendTo(socket, gapEnvelope(missed))
      }
    }
    ;(cluster.replay as NonNullable<GlueAdapter['replay']>)(session.id, resume.seq, position.seq).then((result) => {
      if (socket.readyState !== OPEN) return
      finish(result.missed)
      for (const { seq, message } of result.messages) {
        if (message.kind !== 'send' && message.kind !== 'broadcast' && message.kind !== 'publish') continue
        this.#stats.replayed++
        this.#writeEnvelope(socket, new Outbound(message.data, message.kind === 'publish' ? message.topic : undefined, false).envelope(seq), false)
      }
    }, (err: unknown) => {
      this.#log?.error({ err }, 'resume from the adapter failed')
      finish(null)
    }).finally(() => {
      const held = socket[kHeld] ?? []
      socket[kHeld] = undefined
      socket[kCursor] = undefined
      for (const envelope of held) {
        if (socket.readyState === OPEN) this.#writeEnvelope(socket, envelope, false)
      }
    }).catch((err: unknown) => {
      this.#log?.error({ err }, 'writing a resumed socket failed')
      if (socket.readyState === OPEN) socket.terminate()
    })
  }

  #deliverAll (sessions: Iterable<LiveSession>, outbound: Outbound, except: string | undefined, volatile: boolean, clusterSeq: number, now: number): number {
    let count = 0
    for (const session of sessions) {
      if (session.id !== except) count += this.#deliver(session, outbound, volatile, now, clusterSeq)
    }
    return count
  }

  #deliver (session: LiveSession, outbound: Outbound, volatile: boolean, now: number, clusterSeq: number): number {
    if (session.away !== undefined) {
      // Numbered when the session comes back, in the order it was sent.
      if (!volatile) this.#detached.hold(session, outbound.stored(), now)
      return 0
    }
    let seq = VOLATILE_SEQ
    // A cluster number comes with the message; only the memory adapter's messages are numbered here.
    if (!volatile && clusterSeq !== 0) {
      seq = clusterSeq
    } else if (!volatile) {
      seq = ++session.seq
      session.outbox?.push(seq, outbound.stored(), now)
    }
    let envelope: EnvelopeFrame | undefined
    let count = 0
    for (const socket of session.sockets as Set<RegisteredSocket>) {
      // A socket stays in its session until 'close'; skip it once the closing handshake started.
      if (socket.readyState !== OPEN) continue
      if (socket[kEnveloped] !== true) {
        if (this.#writeRaw(socket, outbound, volatile)) count++
        continue
      }
      // A resuming socket reads this message from the outbox when its turn comes (or, in cluster mode, after its replay).
      if (socket[kCursor] !== undefined) {
        const held = socket[kHeld]
        if (held !== undefined && !volatile) {
          held.push(envelope ??= outbound.envelope(seq))
          // A replay that cannot keep up with live traffic: the client comes back and resumes again.
          if (held.length > HELD_LIMIT && socket.readyState === OPEN) this.#closeSlow(socket)
        }
        continue
      }
      envelope ??= outbound.envelope(seq)
      if (this.#writeEnvelope(socket, envelope, volatile)) count++
    }
    return count
  }

  #writeRaw (socket: RegisteredSocket, outbound: Outbound, volatile: boolean): boolean {
    const transport = directTransport(socket)
    if (!this.#admit(socket, transport, volatile)) return false
    if (transport !== null) this.#writer.write(transport, outbound.rawFrame())
    else socket.send(outbound.raw.payload, { binary: outbound.raw.binary })
    this.#watchDrain(socket, transport)
    this.#stats.messagesOut++
    return true
  }

  #writeEnvelope (socket: RegisteredSocket, envelope: EnvelopeFrame, volatile: boolean): boolean {
    const transport = directTransport(socket)
    if (!this.#admit(socket, transport, volatile)) return false
    this.#writeFrame(socket, transport, envelope)
    this.#watchDrain(socket, transport)
    this.#stats.messagesOut++
    return true
  }

  #writeFrame (socket: WebSocket, transport: Duplex | null, envelope: EnvelopeFrame): void {
    if (transport !== null) {
      this.#writer.write(transport, envelope.head)
      this.#writer.write(transport, envelope.body)
    } else {
      // ws frames (and compresses) this one itself.
      socket.send(Buffer.concat([envelope.prefix, envelope.body]), { binary: envelope.binary })
    }
  }

  /** Unsent bytes of a socket: in its transport, or, when ws frames for it, in ws's queue too. */
  #buffered (socket: WebSocket, transport: Duplex | null): number {
    return transport !== null ? transport.writableLength : socket.bufferedAmount
  }

  /**
   * The slow-consumer policy, before every write. Above the high-water mark a volatile message is
   * skipped; a socket that reaches twice the mark is closed with 1013 at once, so its memory stays
   * bounded. Between the two it may go on: #watchDrain gives it drainTimeout to get below the mark.
   */
  #admit (socket: RegisteredSocket, transport: Duplex | null, volatile: boolean): boolean {
    const buffered = this.#buffered(socket, transport)
    const mark = this.#options.sendHighWaterMark
    if (buffered <= mark) return true
    if (volatile) {
      this.#stats.volatileDropped++
      return false
    }
    if (buffered < mark * 2) return true
    this.#congested.delete(socket)
    this.#closeSlow(socket)
    return false
  }

  /** After a write: a socket above the mark starts its drain timeout, checked by the sweep. */
  #watchDrain (socket: RegisteredSocket, transport: Duplex | null): void {
    if (socket[kCongestedSince] !== undefined || this.#buffered(socket, transport) <= this.#options.sendHighWaterMark) return
    socket[kCongestedSince] = Date.now()
    this.#congested.add(socket)
  }

  #closeSlow (socket: WebSocket): void {
    if (socket.readyState !== OPEN) return
    this.#stats.slowConsumerCloses++
    socket.close(CLOSE_TRY_AGAIN_LATER, 'slow consumer')
    // A stalled reader never reads the close frame queued behind its backlog.
    this.#slowClosing.set(socket, Date.now() + SLOW_CONSUMER_GRACE)
  }
}
