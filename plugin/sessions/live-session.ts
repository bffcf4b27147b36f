import type { WebSocket } from 'ws'
import type { StoredMessage } from '../messages/outbound.js'
import type { Outbox } from '../messages/outbox.js'

/** A session: the identity behind a signed cookie, with the sockets (tabs) it has open on this node. */
export interface Session {
  /** The unsigned session id. After a rotation (`sessions.login()`) the same object carries the new id. */
  readonly id: string
  /** The user the session is bound to (`sessions.login()` or `identify`), or null when anonymous. */
  readonly userId: string | null
  /** The open sockets of this session on this node. */
  readonly sockets: ReadonlySet<WebSocket>
}

/** A message sent to a detached session: numbered only when the session comes back. */
export interface AwayMessage {
  /** Its place among the broadcasts and other messages of detached sessions on this node. */
  readonly order: number
  readonly message: StoredMessage
  readonly time: number
}

/** What a session keeps while it has no socket: set when its last socket closes, cleared when one comes back. */
export interface AwayState {
  /** When it is released (ms, Date.now clock). */
  readonly releaseAt: number
  /** The broadcast log's total when it left: broadcasts after it are for this session. */
  readonly broadcastMark: number
  /** Targeted and topic messages sent meanwhile, oldest first, at most `outboxLimit`. */
  readonly messages: AwayMessage[]
  /** Messages that no longer fit in `messages`. */
  dropped: number
  /** Broadcasts meanwhile that excluded this session (`except`). */
  excepted: number
  /** Bytes charged to the detached budget. */
  bytes: number
}

/** A session as this node's store keeps it. */
export class LiveSession implements Session {
  /** Changes only when the session is rotated (store). */
  id: string
  userId: string | null
  readonly sockets = new Set<WebSocket>()
  /** Set once revoked: its sockets are closing, and it is released rather than detached when they are gone. */
  revoked = false
  /** Sequence number of the last message numbered for this session. */
  seq = 0
  /** Identifies this delivery state; set once a glue.v1 socket joins (the session becomes resumable). */
  epoch: string | undefined
  outbox: Outbox | undefined
  /** Set while the session is detached. */
  away: AwayState | undefined
  /** Whether a client of this session has sent a message: only sessions that did something are kept after they leave. */
  heardFrom = false

  constructor (id: string, userId: string | null) {
    this.id = id
    this.userId = userId
  }
}
