// Numbers the client's logic compares against, named so that no bare close code appears in it.

/** Close code of a normal `close()` (RFC 6455 §7.4.1). */
export const CLOSE_NORMAL = 1000
/** Close code of a policy violation, which the server sends to a client over its rate. */
export const CLOSE_POLICY_VIOLATION = 1008
/** Close code of a revoked session (IANA's 3000 "Unauthorized"): the client never comes back after it. */
export const CLOSE_REVOKED = 3000
/** Lowest close code an application may send (RFC 6455 §7.4.2). */
export const CLOSE_APP_MIN = 3000
/** Highest close code an application may send (RFC 6455 §7.4.2). */
export const CLOSE_APP_MAX = 4999
/** A close frame's payload is at most 125 bytes, two of them the code. */
export const CLOSE_REASON_MAX_BYTES = 123
/** Lowest application close code that means "do not come back" by default. */
export const DO_NOT_COME_BACK_MIN = 4000
/** Highest application close code that means "do not come back" by default. */
export const DO_NOT_COME_BACK_MAX = 4099
/** setTimeout fires at once for a delay above 2^31 - 1 ms, in browsers and in Node. */
export const MAX_TIMER_DELAY = 2 ** 31 - 1
