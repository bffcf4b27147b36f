import type { WebSocket } from 'ws'
import type { EncodedData } from './encode.js'
import { CoalescingWriter, directTransport, frameOf, inspectSocket } from './frame.js'
import { Outbound, type EnvelopeFrame } from './outbound.js'
import { GLUE_PROTOCOL } from './protocol.js'

/** A session: the identity behind a signed cookie, with the sockets (tabs) it has open on this node. */
export interface Session {
  /** The unsigned session id. */
  readonly id: string
  /** The open sockets of this session on this node. */
  readonly sockets: ReadonlySet<WebSocket>
}

// ws exposes readyState constants on the class; the numeric value is part of the WebSocket spec.
const OPEN = 1

const kEnveloped = Symbol('fastify-websocket-glue.enveloped')
type RegisteredSocket = WebSocket & { [kEnveloped]?: boolean }

class LiveSession implements Session {
  readonly id: string
  readonly sockets = new Set<RegisteredSocket>()
  /** Created on first subscription: most sessions never subscribe. */
  topics: Set<string> | undefined
  /** Sequence number of the last message delivered to this session (glue.v1 clients see it). */
  seq = 0

  constructor (id: string) {
    this.id = id
  }
}

/** Whether a socket speaks glue.v1 envelopes (it selected the subprotocol at the handshake). */
export function isEnveloped (socket: WebSocket): boolean {
  return (socket as RegisteredSocket)[kEnveloped] === true
}

/** Maps session ids to their open sockets and topics, and delivers to them. */
export class SessionRegistry {
  #sessions = new Map<string, LiveSession>()
  #topics = new Map<string, Set<LiveSession>>()
  #writer = new CoalescingWriter()

  /** Adds a socket to its session, creating the session when it is its first socket. */
  join (sessionId: string, socket: WebSocket): Session {
    let session = this.#sessions.get(sessionId)
    if (session === undefined) {
      session = new LiveSession(sessionId)
      this.#sessions.set(sessionId, session)
    }
    const registered = socket as RegisteredSocket
    registered[kEnveloped] = socket.protocol === GLUE_PROTOCOL
    inspectSocket(socket)
    session.sockets.add(registered)
    return session
  }

  /** Removes a socket; a session without sockets is forgotten, with its topic memberships. */
  leave (session: Session, socket: WebSocket): void {
    const live = this.#sessions.get(session.id)
    if (live === undefined) return
    live.sockets.delete(socket)
    if (live.sockets.size > 0) return
    this.#sessions.delete(session.id)
    for (const topic of live.topics ?? []) this.#removeMember(topic, live)
  }

  get (sessionId: string): Session | undefined {
    return this.#sessions.get(sessionId)
  }

  has (sessionId: string): boolean {
    return this.#sessions.has(sessionId)
  }

  get size (): number {
    return this.#sessions.size
  }

  values (): IterableIterator<Session> {
    return this.#sessions.values()
  }

  /** Sends to every open socket of a session; returns how many sockets it was written to. */
  send (sessionId: string, data: EncodedData): number {
    const session = this.#sessions.get(sessionId)
    return session === undefined ? 0 : this.#deliver(session, new Outbound(data))
  }

  /** Sends to every open socket of every session but `except`; returns how many sockets. */
  broadcast (data: EncodedData, except: string | undefined): number {
    return this.#deliverAll(this.#sessions.values(), new Outbound(data), except)
  }

  /** Sends to every open socket of every session subscribed to `topic` but `except`. */
  publish (topic: string, data: EncodedData, except: string | undefined): number {
    const members = this.#topics.get(topic)
    if (members === undefined) return 0
    return this.#deliverAll(members.values(), new Outbound(data, topic), except)
  }

  /** Sends a glue.v1 envelope to one socket, in order with everything else written to it. */
  sendTo (socket: WebSocket, envelope: EncodedData): void {
    if (socket.readyState !== OPEN) return
    const transport = directTransport(socket)
    if (transport !== null) this.#writer.write(transport, frameOf(envelope))
    else socket.send(envelope.payload, { binary: envelope.binary })
  }

  /** Subscribes a session to a topic; false when the session has no open socket here. */
  subscribe (sessionId: string, topic: string): boolean {
    const session = this.#sessions.get(sessionId)
    if (session === undefined) return false
    session.topics ??= new Set()
    session.topics.add(topic)
    let members = this.#topics.get(topic)
    if (members === undefined) {
      members = new Set()
      this.#topics.set(topic, members)
    }
    members.add(session)
    return true
  }

  /** Unsubscribes a session; false when it was not subscribed. */
  unsubscribe (sessionId: string, topic: string): boolean {
    const session = this.#sessions.get(sessionId)
    if (session?.topics?.delete(topic) !== true) return false
    this.#removeMember(topic, session)
    return true
  }

  topicsOf (sessionId: string): string[] {
    return [...(this.#sessions.get(sessionId)?.topics ?? [])]
  }

  subscriberCount (topic: string): number {
    return this.#topics.get(topic)?.size ?? 0
  }

  /** Starts the closing handshake on every socket of a session; returns how many sockets. */
  close (sessionId: string, code: number, reason: string): number {
    const session = this.#sessions.get(sessionId)
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
    for (const session of this.#sessions.values()) yield * session.sockets
  }

  #removeMember (topic: string, session: LiveSession): void {
    const members = this.#topics.get(topic)
    members?.delete(session)
    if (members?.size === 0) this.#topics.delete(topic)
  }

  #deliverAll (sessions: Iterable<LiveSession>, outbound: Outbound, except: string | undefined): number {
    let count = 0
    for (const session of sessions) {
      if (session.id !== except) count += this.#deliver(session, outbound)
    }
    return count
  }

  #deliver (session: LiveSession, outbound: Outbound): number {
    const seq = ++session.seq
    let envelope: EnvelopeFrame | undefined
    let count = 0
    for (const socket of session.sockets) {
      // A socket stays in its session until 'close'; skip it once the closing handshake started.
      if (socket.readyState !== OPEN) continue
      count++
      const transport = directTransport(socket)
      if (socket[kEnveloped] !== true) {
        if (transport !== null) this.#writer.write(transport, outbound.rawFrame())
        else socket.send(outbound.raw.payload, { binary: outbound.raw.binary })
        continue
      }
      envelope ??= outbound.envelope(seq)
      if (transport !== null) {
        this.#writer.write(transport, envelope.head)
        this.#writer.write(transport, envelope.body)
      } else {
        // ws frames (and compresses) this one itself.
        socket.send(Buffer.concat([envelope.prefix, envelope.body]), { binary: envelope.binary })
      }
    }
    return count
  }
}
