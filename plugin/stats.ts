import type { AdapterHealth } from './adapters/adapter.js'
import { CLOSE_APP_MAX, CLOSE_APP_MIN } from './constants.js'

/**
 * The close codes `stats().closesByCode` counts apart; 3000–4999 count as `app`, any other code as
 * `other`, so a metric labelled with them stays low in cardinality whatever peers send.
 */
export const CLOSE_CODE_LABELS = Object.freeze(['1000', '1001', '1002', '1005', '1006', '1007', '1008', '1009', '1011', '1013', 'app', 'other'] as const)

/** A label of `stats().closesByCode`: a close code, `app` (3000–4999) or `other`. */
export type CloseCodeLabel = typeof CLOSE_CODE_LABELS[number]

/** Closed sockets by close code, as `stats().closesByCode` counts them. */
export type CloseCounts = Record<CloseCodeLabel, number>

/** The label `closesByCode` counts a close code under. */
export function closeCodeLabel (code: number): CloseCodeLabel {
  if (code >= CLOSE_APP_MIN && code <= CLOSE_APP_MAX) return 'app'
  const label = String(code)
  return (CLOSE_CODE_LABELS as readonly string[]).includes(label) ? label as CloseCodeLabel : 'other'
}

/** Counters an operator needs, readable through `app.sessions.stats()`. */
export interface SessionStats {
  /** Open sockets. */
  sockets: number
  /** Sessions with at least one open socket. */
  sessions: number
  /** Sessions without sockets, kept for their grace period so their clients can resume. */
  detachedSessions: number
  /** Detached sessions released before their grace ended to keep within `maxDetachedSessions`/`maxDetachedBytes`. */
  detachedEvictions: number
  /** Messages received from clients. */
  messagesIn: number
  /** Messages written to sockets (one per socket: a broadcast to 10 sockets counts 10). */
  messagesOut: number
  /** Messages written again to resuming clients. */
  replayed: number
  /** Resumes that could not be filled completely (the client got a gap event). */
  gaps: number
  /** Sockets closed with 1013 for not reading fast enough. */
  slowConsumerCloses: number
  /** Sockets closed with 1008 for sending faster than the rate limit. */
  rateLimitCloses: number
  /** Volatile messages dropped for sockets above the high-water mark. */
  volatileDropped: number
  /** Clients' requests for a topic's history, and the messages written in answer. */
  historyRequests: number
  historyMessages: number
  /** Join and leave events sent (one per member change and topic, whatever the number of subscribers). */
  presenceEvents: number
  /** Presence batches with more changes than `maxMembers`, sent as "ask for the list again". */
  presenceOverflows: number
  /** Items every pipe of this node handed over, skipped (map or to gave undefined), and dropped as invalid, since start. */
  pipeDelivered: number
  pipeSkipped: number
  pipeInvalid: number
  /** Errors that ended a run of a pipe's source, and restarts of sources, over every pipe. */
  pipeErrors: number
  pipeRestarts: number
  /** Handshakes refused (origin, socket limits, handshake rate). */
  refusedHandshakes: number
  /** Sockets closed with 1011 because the plugin failed while handling them (logged at error level). */
  internalErrors: number
  /** Client messages and requests whose data failed `messageSchema` or `requestSchema`. */
  invalidMessages: number
  /**
   * Closed sockets by the close code the server saw (the peer's, 1005 without one, 1006 without a
   * close frame): a fixed set of codes, `app` for 3000–4999, `other` for the rest.
   */
  closesByCode: CloseCounts
  /** Revoked session ids and users this node refuses (until their cookies would have expired anyway). */
  revocations: number
  /** Revocations forgotten early to keep within `maxRevocations` (their cookies would be accepted again). */
  revocationEvictions: number
}

/** Zeroed close counts, one per label. */
export function createCloseCounts (): CloseCounts {
  return Object.fromEntries(CLOSE_CODE_LABELS.map((label) => [label, 0])) as CloseCounts
}

/** Creates zeroed counters; the plugin's modules update them in place. */
export function createStats (): SessionStats {
  return {
    sockets: 0,
    sessions: 0,
    detachedSessions: 0,
    detachedEvictions: 0,
    messagesIn: 0,
    messagesOut: 0,
    replayed: 0,
    gaps: 0,
    slowConsumerCloses: 0,
    rateLimitCloses: 0,
    volatileDropped: 0,
    refusedHandshakes: 0,
    internalErrors: 0,
    invalidMessages: 0,
    historyRequests: 0,
    historyMessages: 0,
    presenceEvents: 0,
    presenceOverflows: 0,
    pipeDelivered: 0,
    pipeSkipped: 0,
    pipeInvalid: 0,
    pipeErrors: 0,
    pipeRestarts: 0,
    closesByCode: createCloseCounts(),
    revocations: 0,
    revocationEvictions: 0
  }
}

/** What this node holds right now, from `app.sessions.gauges()`: levels, where `stats()` has counters. */
export interface SessionGauges {
  /** Open sockets. */
  readonly sockets: number
  /** Sessions with at least one open socket. */
  readonly sessions: number
  /** Sessions without sockets, kept for their grace period. */
  readonly detachedSessions: number
  /** Bytes written to sockets that the peers have not taken yet, summed over every open socket. */
  readonly bufferedBytes: number
  /** Messages kept for resume in the outboxes of connected sessions (0 with a sequenced adapter such as Redis, which keeps them). */
  readonly outboxMessages: number
  /** Bytes charged to the detached-session budget (`maxDetachedBytes`): detached sessions and what is kept for them. */
  readonly detachedBytes: number
  /** The adapter's name and link, when the adapter reports one (the Redis adapter does; the memory adapter does not). */
  readonly adapter: ({ readonly name: string } & AdapterHealth) | undefined
}
