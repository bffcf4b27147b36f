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
  /** Handshakes refused (origin, socket limits, handshake rate). */
  refusedHandshakes: number
  /** Sockets closed with 1011 because the plugin failed while handling them (logged at error level). */
  internalErrors: number
  /** Revoked session ids and users this node refuses (until their cookies would have expired anyway). */
  revocations: number
  /** Revocations forgotten early to keep within `maxRevocations` (their cookies would be accepted again). */
  revocationEvictions: number
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
    revocations: 0,
    revocationEvictions: 0
  }
}
