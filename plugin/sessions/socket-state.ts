import type { WebSocket } from 'ws'
import type { LiveSession } from './live-session.js'
import type { EnvelopeFrame } from '../messages/outbound.js'
import type { SharedDeflate } from '../wire/ws-fast-path.js'

/** A topic's live messages as a socket reads the topic's history (cluster mode). */
export interface TopicHold {
  readonly held: Array<[seq: number, envelope: EnvelopeFrame]>
  /** Set once the history is written: live messages numbered at or below it were in it. */
  floor: number | undefined
}

const kState = Symbol('fastify-websocket-glue.socketState')

/**
 * Everything the plugin keeps about one socket, in one object hung on the socket under one Symbol.
 * Each field belongs to the module named in its comment; nothing else writes it.
 */
export class SocketState {
  /** The session this socket belongs to (store). */
  session: LiveSession
  /** `request.ip` of the handshake, for the per-address count (store). */
  readonly address: string
  /** Whether the socket selected glue.v1 and speaks envelopes. */
  readonly enveloped: boolean
  /** Whether it negotiated no extension, so pre-built frames may be written to it (ws fast path). */
  readonly plain: boolean
  /** Its permessage-deflate, when a fan-out may write it one compressed copy (ws fast path). */
  readonly deflate: SharedDeflate | undefined
  /** Next sequence number a resuming socket reads from its outbox; undefined once it is live (resume). */
  cursor: number | undefined
  /** Cluster mode: live messages held until the socket's welcome and replay are written, with their numbers (resume). */
  held: Array<[seq: number, envelope: EnvelopeFrame]> | undefined
  /** Cluster mode: messages numbered at or below it came before this socket's welcome and skip it (resume). */
  floor = 0
  /**
   * Cluster mode: per topic whose history this socket is reading, the live messages held until the
   * history is written, with their numbers; then the newest number the history held, below which
   * live messages this node reads late are skipped (topic history).
   */
  topicHolds: Map<string, TopicHold> | undefined
  /** When its unsent bytes went above the high-water mark; undefined below it (socket writer). */
  congestedSince: number | undefined
  /** With `writeDelay`: when its last write went to the kernel, and whether writes now wait for the end of its window (socket writer). */
  writtenAt = 0
  delaying = false
  /**
   * Frames that arrived while the socket was not ready to dispatch (async connect listeners, or a
   * cluster welcome, still running), their bytes, and how many such waits are open (connection).
   */
  pending: Array<[Buffer, boolean]> | undefined
  pendingBytes = 0
  gates = 0
  /** Settles once the async connect listeners have (connection). */
  connecting: Promise<void> | undefined
  /** Set once closed for its rate: nothing it sends afterwards is dispatched (connection). */
  throttled = false
  /** Its inbound token bucket (rate limit). */
  tokens = -1
  refilledAt = 0
  /** False once pinged and not answered yet (heartbeat). */
  alive = true
  /** Requests and subscription checks still in progress, and the signals of its running request handlers (inbound). */
  inFlight = 0
  aborts: Set<AbortController> | undefined

  constructor (session: LiveSession, address: string, enveloped: boolean, plain: boolean, deflate?: SharedDeflate) {
    this.session = session
    this.address = address
    this.enveloped = enveloped
    this.plain = plain
    this.deflate = deflate
    this.cursor = undefined
    this.held = undefined
    this.topicHolds = undefined
    this.congestedSince = undefined
    this.pending = undefined
    this.connecting = undefined
    this.aborts = undefined
  }
}

/** The state of a socket the plugin has taken in. */
export function stateOf (socket: WebSocket): SocketState {
  return (socket as WebSocket & { [kState]: SocketState })[kState]
}

/** Hangs a state on a socket that joins its session. */
export function attachState (socket: WebSocket, state: SocketState): void {
  (socket as WebSocket & { [kState]?: SocketState })[kState] = state
}

/** Whether the plugin has taken the socket in (it may have failed before that). */
export function hasState (socket: WebSocket): boolean {
  return (socket as WebSocket & { [kState]?: SocketState })[kState] !== undefined
}
