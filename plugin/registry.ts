import type { WebSocket } from 'ws'
import type { EncodedData } from './encode.js'
import { CoalescingWriter, directTransport, frameOf, inspectSocket } from './frame.js'

/** A session: the identity behind a signed cookie, with the sockets (tabs) it has open on this node. */
export interface Session {
  /** The unsigned session id. */
  readonly id: string
  /** The open sockets of this session on this node. */
  readonly sockets: ReadonlySet<WebSocket>
}

// ws exposes readyState constants on the class; the numeric value is part of the WebSocket spec.
const OPEN = 1

class LiveSession implements Session {
  readonly id: string
  readonly sockets = new Set<WebSocket>()

  constructor (id: string) {
    this.id = id
  }
}

/** Maps session ids to their open sockets, and delivers to them. */
export class SessionRegistry {
  #sessions = new Map<string, LiveSession>()
  #writer = new CoalescingWriter()

  /** Adds a socket to its session, creating the session when it is its first socket. */
  join (sessionId: string, socket: WebSocket): Session {
    let session = this.#sessions.get(sessionId)
    if (session === undefined) {
      session = new LiveSession(sessionId)
      this.#sessions.set(sessionId, session)
    }
    inspectSocket(socket)
    session.sockets.add(socket)
    return session
  }

  /** Removes a socket; a session without sockets is forgotten. */
  leave (session: Session, socket: WebSocket): void {
    const live = this.#sessions.get(session.id)
    if (live === undefined) return
    live.sockets.delete(socket)
    if (live.sockets.size === 0) this.#sessions.delete(session.id)
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
    return session === undefined ? 0 : this.#deliver(session, data, frameOf(data))
  }

  /** Sends to every open socket of every session but `except`; returns how many sockets. */
  broadcast (data: EncodedData, except: string | undefined): number {
    // Framed once for every recipient: no per-socket encoding or header building.
    const frame = frameOf(data)
    let count = 0
    for (const session of this.#sessions.values()) {
      if (session.id !== except) count += this.#deliver(session, data, frame)
    }
    return count
  }

  #deliver (session: LiveSession, data: EncodedData, frame: Buffer): number {
    let count = 0
    for (const socket of session.sockets) {
      // A socket stays in its session until 'close'; skip it once the closing handshake started.
      if (socket.readyState !== OPEN) continue
      const transport = directTransport(socket)
      if (transport !== null) this.#writer.write(transport, frame)
      else socket.send(data.payload, { binary: data.binary })
      count++
    }
    return count
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
}
