// Every error the client creates, and the reply failures it settles waiting calls with.

/**
 * Codes carried by {@link GlueClientError}: the client's own, the server's reply codes
 * (docs/protocol.md), and any code an application's `onRequest` error exposes.
 */
export type GlueErrorCode =
  | 'GLUE_INVALID_OPTION'
  | 'GLUE_QUEUE_FULL'
  | 'GLUE_CLOSED'
  | 'GLUE_SOCKET_ERROR'
  | 'GLUE_RECONNECT_FAILED'
  | 'GLUE_PROTOCOL_UNAVAILABLE'
  | 'GLUE_TIMEOUT'
  | 'GLUE_DISCONNECTED'
  | 'GLUE_UNSUBSCRIBED'
  | 'GLUE_NO_PRESENCE'
  | 'GLUE_NOT_SUBSCRIBED'
  | 'GLUE_NO_HANDLER'
  | 'GLUE_REQUEST_FAILED'
  | 'GLUE_SUBSCRIBE_REFUSED'
  | 'GLUE_SUBSCRIBE_FAILED'
  | 'GLUE_BAD_ENVELOPE'
  | (string & {})

/** Error emitted, thrown (bad options, bad `close()` arguments) or rejected with by the client; `code` says which. */
export class GlueClientError extends Error {
  readonly code: GlueErrorCode
  /** What the failure concerns: the unsent message or request data, or the topic of a subscription. */
  readonly data: unknown

  constructor (code: GlueErrorCode, message: string, data?: unknown) {
    super(message)
    this.name = 'GlueClientError'
    this.code = code
    this.data = data
  }
}

/** A reply error as the server sends it, or one of the client's own. */
export interface Failure { readonly code: string, readonly message: string }

/** What a call sent on a socket gets when that socket closes before the reply. */
export const DISCONNECTED: Failure = { code: 'GLUE_DISCONNECTED', message: 'The connection closed before the reply arrived' }

/** What a call waiting for the server gets when the client is closed. */
export const CLOSED: Failure = { code: 'GLUE_CLOSED', message: 'The client closed before the server answered' }

/** The `GLUE_CLOSED` error of a call made while the client is closed; `data` is what was not sent. */
export function clientClosed (data?: unknown): GlueClientError {
  return new GlueClientError('GLUE_CLOSED', 'The client is closed: call connect() first', data)
}

/** The `GLUE_PROTOCOL_UNAVAILABLE` error of a topic or request call without glue.v1, turned off by `raw` or not selected by the server. */
export function protocolUnavailable (raw: boolean): GlueClientError {
  return new GlueClientError('GLUE_PROTOCOL_UNAVAILABLE', `Topics and requests need the glue.v1 subprotocol, which ${raw ? 'the raw option turns off' : 'the server did not select'}`)
}

/** The `GLUE_INVALID_OPTION` error for option `name`: it names the rule and shows the value received. */
export function invalidOption (name: string, rule: string, value: unknown): GlueClientError {
  const shown = typeof value === 'string' ? `"${value}"` : String(value)
  return new GlueClientError('GLUE_INVALID_OPTION', `Expected \`${name}\` to be ${rule}, got ${shown} (${typeof value})`)
}
