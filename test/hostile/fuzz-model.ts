// What docs/protocol.md promises for each inbound frame, as a checkable model. The fuzz test
// derives the expected outcomes of a frame from its bytes alone and compares them with what a
// live server did. Shared with the server process (constants and IPC types).
import { createHash } from 'node:crypto'
import { isUtf8 } from 'node:buffer'

export const FUZZ_SECRET = 'fuzz-secret-that-is-long-enough-0123456789'
/** Request data (glue.v1) or raw text that asks the server what its onMessage has seen on this socket. */
export const PROBE = '\u0000glue-fuzz-probe'
/** The error the server's request handler throws with `expose: true`. */
export const APP_ERROR = Object.freeze({ code: 'APP_DENIED', message: 'denied by the application' })
/** The plugin's default maxPayload, which the server keeps. */
export const MAX_PAYLOAD = 64 * 1024
/** Deepest nesting a glue.v1 envelope may have (the envelope's own array counts); deeper closes 1008. */
export const MAX_ENVELOPE_DEPTH = 64

/**
 * Reply error codes of docs/protocol.md, plus the code of the server's exposed error. The server
 * under fuzz sets no `messageSchema` or `requestSchema`: every `m` reaches onMessage as the model
 * says, and GLUE_INVALID_DATA (a request failing `requestSchema`) is documented but never expected.
 */
export const REPLY_CODES: ReadonlySet<string> = new Set([
  'GLUE_NO_HANDLER',
  'GLUE_REQUEST_FAILED',
  'GLUE_SUBSCRIBE_REFUSED',
  'GLUE_SUBSCRIBE_FAILED',
  'GLUE_UNKNOWN_KIND',
  'GLUE_BAD_ENVELOPE',
  'GLUE_UNAVAILABLE',
  'GLUE_TOO_MANY_TOPICS',
  'GLUE_TOO_MANY_REQUESTS',
  'GLUE_INVALID_DATA',
  'GLUE_NO_PRESENCE',
  'GLUE_NOT_SUBSCRIBED',
  APP_ERROR.code
])

/** Close codes a peer problem may end with (RFC 6455 §7.4.1 and docs/protocol.md). */
export const PROTOCOL_CLOSES: readonly number[] = [1002, 1007, 1008, 1009]

export type ServerCommand =
  | { readonly cmd: 'stats' }
  | { readonly cmd: 'warnings' }
  | { readonly cmd: 'send', readonly sessionId: string, readonly data: unknown }
  | { readonly cmd: 'stop' }

export interface ServerReply {
  readonly id: number
  readonly ok: boolean
  readonly result?: unknown
  readonly error?: string
}

/** What the server's onMessage has seen on one socket. */
export interface ProbeAnswer {
  readonly count: number
  readonly digest: string
  readonly sessionId: string
}

/** The digest the server keeps of the last message its onMessage received. */
export function digestOf (data: string | Buffer): string {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data
  return createHash('sha256').update(typeof data === 'string' ? 't' : 'b').update(bytes).digest('hex')
}

/** What a socket saw in answer to one frame. */
export interface Observation {
  /** Messages onMessage received because of the frame; undefined when the socket closed. */
  readonly delivered: number | undefined
  readonly digest: string | undefined
  /** Reply envelopes other than the probe's. */
  readonly replies: readonly unknown[][]
  /** Anything else the server sent. */
  readonly other: ReadonlyArray<string | Buffer>
  readonly close: { readonly code: number, readonly reason: string } | undefined
}

/** One acceptable outcome of a frame. */
export type Expected =
  | { readonly kind: 'deliver', readonly digest: string | undefined, readonly count?: number }
  | { readonly kind: 'reply', readonly id: number, readonly accept: (value: unknown) => boolean, readonly what: string, readonly effect?: () => void }
  | { readonly kind: 'error', readonly id: number, readonly codes: readonly string[] }
  | { readonly kind: 'close', readonly codes: readonly number[], readonly reason?: RegExp, readonly afterReplies?: true }

/** Per-socket state the model needs: the session's subscriptions (one socket per fresh session). */
export interface ModelState {
  readonly subscribed: Set<string>
}

const close = (codes: readonly number[], reason?: RegExp): Expected => reason === undefined ? { kind: 'close', codes } : { kind: 'close', codes, reason }
const error = (id: number, ...codes: string[]): Expected => ({ kind: 'error', id, codes })

function isRequestId (value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

function hasLoneSurrogate (value: string): boolean {
  return LONE_SURROGATE.test(value)
}

/** Deepest nesting of arrays and objects in JSON text (strings skipped). */
export function nestingDepth (text: string): number {
  let depth = 0
  let max = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++
      else if (c === 0x22) inString = false
    } else if (c === 0x22) {
      inString = true
    } else if (c === 0x5b || c === 0x7b) {
      max = Math.max(max, ++depth)
    } else if (c === 0x5d || c === 0x7d) {
      depth--
    }
  }
  return max
}

function tryStringify (value: unknown): string | undefined {
  try {
    return JSON.stringify(value)
  } catch {
    return undefined
  }
}

/** `JSON.stringify` equality, which is what survives a round trip through the wire. */
function sameJson (expected: string | undefined): (value: unknown) => boolean {
  return (value) => expected === undefined || tryStringify(value) === expected
}

function requestOutcomes (id: number, data: unknown): Expected[] {
  if (typeof data === 'string') {
    if (data.startsWith('throw') || data.startsWith('reject')) return [error(id, 'GLUE_REQUEST_FAILED')]
    if (data.startsWith('expose-plain')) return [error(id, 'GLUE_REQUEST_FAILED')]
    if (data.startsWith('expose')) return [error(id, APP_ERROR.code)]
    if (data.startsWith('nothing')) return [{ kind: 'reply', id, accept: (value) => value === null, what: 'null' }]
  }
  const json = tryStringify(data)
  const echo: Expected = { kind: 'reply', id, accept: sameJson(json), what: `the request data echoed (${json === undefined ? 'too deep to compare' : 'same JSON'})` }
  // Data the server cannot serialise back (too deep for JSON.stringify) is a handler failure.
  return json === undefined ? [echo, error(id, 'GLUE_REQUEST_FAILED')] : [echo]
}

function isValidTopic (value: unknown): value is string {
  return typeof value === 'string' && value !== '' && !hasLoneSurrogate(value) && Buffer.byteLength(value) <= 255
}

function subscriptionOutcomes (kind: 's' | 'u', id: number, topic: unknown, state: ModelState): Expected[] {
  const bad = error(id, 'GLUE_BAD_ENVELOPE')
  if (!isValidTopic(topic)) return [bad]
  let outcomes: Expected[]
  if (kind === 'u') {
    const was = state.subscribed.has(topic)
    outcomes = [{ kind: 'reply', id, accept: (value) => value === was, what: String(was), effect: () => { state.subscribed.delete(topic) } }]
  } else if (topic.startsWith('deny')) {
    outcomes = [error(id, 'GLUE_SUBSCRIBE_REFUSED')]
  } else if (topic.startsWith('boom') || topic.startsWith('reject')) {
    outcomes = [error(id, 'GLUE_SUBSCRIBE_FAILED')]
  } else {
    outcomes = [{ kind: 'reply', id, accept: (value) => value === topic, what: 'the topic', effect: () => { state.subscribed.add(topic) } }]
  }
  return outcomes
}

/** Whether the fourth element of a subscribe is a history request: `{}`, `{ last }`, `{ since }` or both. */
function isHistoryRequest (value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  return Object.entries(value).every(([key, field]) =>
    (key === 'last' && Number.isSafeInteger(field) && (field as number) >= 0) ||
    (key === 'since' && typeof field === 'string' && WELL_FORMED_RESUME.test(field)))
}

function envelopeOutcomes (envelope: unknown, state: ModelState): Expected[] {
  if (!Array.isArray(envelope)) return [close([1007])]
  const [kind, first, second] = envelope as unknown[]
  const arity = envelope.length
  switch (kind) {
    case 'm': {
      if (arity !== 2) return [close([1008])]
      const data = typeof first === 'string' ? first : tryStringify(first)
      return [{ kind: 'deliver', digest: data === undefined ? undefined : digestOf(data) }]
    }
    // A usable id gets an error reply for a malformed envelope; without one the socket closes.
    case 'q':
      if (!isRequestId(first)) return [close([1008])]
      return arity === 3 ? requestOutcomes(first, second) : [error(first, 'GLUE_BAD_ENVELOPE')]
    case 's':
    case 'u':
      if (!isRequestId(first)) return [close([1008])]
      // A subscribe may ask for history in a fourth element (this server keeps none: the reply alone answers).
      if (kind === 's' && arity === 4) {
        return isValidTopic(second) && isHistoryRequest(envelope[3]) ? subscriptionOutcomes(kind, first, second, state) : [error(first, 'GLUE_BAD_ENVELOPE')]
      }
      return arity === 3 ? subscriptionOutcomes(kind, first, second, state) : [error(first, 'GLUE_BAD_ENVELOPE')]
    case 'v':
      // A member list: this server shows no presence.
      if (!isRequestId(first)) return [close([1008])]
      return [error(first, arity === 3 && isValidTopic(second) ? 'GLUE_NO_PRESENCE' : 'GLUE_BAD_ENVELOPE')]
    default: {
      if (!isRequestId(first)) return [close([1008])]
      const outcomes = [error(first, 'GLUE_UNKNOWN_KIND')]
      // The protocol's kinds are one-letter strings; a kind of another shape is not "well-formed".
      if (typeof kind !== 'string' || kind.length !== 1) outcomes.push(close([1008]))
      return outcomes
    }
  }
}

/** The acceptable outcomes of one text or binary message on a glue.v1 socket. */
export function glueOutcomes (bytes: Buffer, binary: boolean, state: ModelState): Expected[] {
  if (bytes.length > MAX_PAYLOAD) return [close([1009])]
  if (binary) {
    if (bytes.length === 0 || bytes[0] !== 0x00) return [close([1008])]
    return [{ kind: 'deliver', digest: digestOf(bytes.subarray(1)) }]
  }
  if (!isUtf8(bytes)) return [close([1007])]
  const text = bytes.toString('utf8')
  let envelope: unknown
  try {
    envelope = JSON.parse(text)
  } catch {
    return [close([1007])]
  }
  // Checked before anything is parsed, whatever the envelope says.
  if (nestingDepth(text) > MAX_ENVELOPE_DEPTH) return [close([1008], /^envelope nested too deeply$/)]
  return envelopeOutcomes(envelope, state)
}

/** The acceptable outcomes of one message on a socket without subprotocol: onMessage gets it as is. */
export function rawOutcomes (bytes: Buffer, binary: boolean): Expected[] {
  if (bytes.length > MAX_PAYLOAD) return [close([1009])]
  if (!binary && !isUtf8(bytes)) return [close([1007])]
  return [{ kind: 'deliver', digest: digestOf(binary ? bytes : bytes.toString('utf8')) }]
}

/** The plugin's default rate limit, which the server keeps: a bucket of 200 messages refilled at 100/s. */
export const RATE_LIMIT_BURST = 200

/**
 * The acceptable outcomes of `repeat` copies of a message sent at once, after `sent` messages on
 * the socket: those of one message (delivered `repeat` times), or, once the socket may have used
 * up its bucket, a close for the rate limit, possibly after the frame itself was answered.
 */
export function rateLimited (single: readonly Expected[], repeat: number, sent: number): Expected[] {
  const outcomes = repeat === 1 ? [...single] : single.map((outcome): Expected => outcome.kind === 'deliver' ? { ...outcome, count: repeat } : outcome)
  // The probe after the frame counts too.
  if (sent + repeat + 1 > RATE_LIMIT_BURST) outcomes.push({ kind: 'close', codes: [1008], reason: /^rate limit exceeded$/, afterReplies: true })
  return outcomes
}

/** The first acceptable outcome that matches the observation, or undefined. */
export function matchOutcome (expected: readonly Expected[], seen: Observation): Expected | undefined {
  return expected.find((outcome) => matches(outcome, seen))
}

function matches (outcome: Expected, seen: Observation): boolean {
  if (seen.other.length > 0) return false
  switch (outcome.kind) {
    case 'deliver':
      return seen.close === undefined && seen.replies.length === 0 && seen.delivered === (outcome.count ?? 1) &&
        (outcome.digest === undefined || outcome.digest === seen.digest)
    case 'reply':
    case 'error': {
      if (seen.close !== undefined || seen.delivered !== 0 || seen.replies.length !== 1) return false
      const [, id, status, value] = seen.replies[0] as unknown[]
      if (id !== outcome.id) return false
      if (outcome.kind === 'reply') return status === 1 && outcome.accept(value)
      const err = value as { code?: unknown, message?: unknown } | null
      return status === 0 && typeof err?.message === 'string' && outcome.codes.includes(err.code as string)
    }
    case 'close':
      return seen.close !== undefined && (seen.replies.length === 0 || outcome.afterReplies === true) && outcome.codes.includes(seen.close.code) &&
        (outcome.reason === undefined || outcome.reason.test(seen.close.reason))
  }
}

/** A one-line description of the acceptable outcomes, for failure messages. */
export function describeOutcomes (expected: readonly Expected[]): string {
  return expected.map(describeOutcome).join(' or ')
}

function describeOutcome (outcome: Expected): string {
  switch (outcome.kind) {
    case 'deliver': return `delivered to onMessage${outcome.count === undefined ? '' : ` ${outcome.count} times`}${outcome.digest === undefined ? '' : ' as is'}`
    case 'reply': return `reply ["r", ${outcome.id}, 1, ${outcome.what}]`
    case 'error': return `reply ["r", ${outcome.id}, 0, {code: ${outcome.codes.join('|')}}]`
    case 'close': return `close ${outcome.codes.join('|')}${outcome.reason === undefined ? '' : ` with reason ${String(outcome.reason)}`}`
  }
}

/** Whether a parsed text frame is a well-formed reply envelope with a documented error code. */
export function isDocumentedReply (envelope: unknown[]): boolean {
  if (envelope.length !== 4 || envelope[0] !== 'r' || !isRequestId(envelope[1])) return false
  if (envelope[2] === 1) return true
  if (envelope[2] !== 0) return false
  const err = envelope[3] as Record<string, unknown> | null
  return typeof err === 'object' && err !== null && Object.keys(err).length === 2 &&
    typeof err.message === 'string' && typeof err.code === 'string' && REPLY_CODES.has(err.code)
}

const WELL_FORMED_RESUME = /^[A-Za-z0-9_-]{1,32}\.\d{1,15}$/

/**
 * Whether a fresh session's welcome must, may or must not be followed by `["g", null]` for this
 * query string: a resume point from an unknown epoch announces a gap, a malformed one counts as absent.
 */
export function gapAfterWelcome (query: string): 'must' | 'may' | 'never' {
  const values = new URLSearchParams(query).getAll('glue_resume')
  if (values.length === 1 && WELL_FORMED_RESUME.test(values[0] as string) && /^[\w.=&-]*$/.test(query)) return 'must'
  return values.some((value) => /\.\d/.test(value)) || /%|\+/.test(query) ? 'may' : 'never'
}

/** A websocket frame as the server wrote it. */
export interface ServerFrame {
  readonly opcode: number
  readonly payload: Buffer
}

/** Splits server-to-client bytes into frames; a trailing partial frame is left out. */
export function serverFrames (bytes: Buffer): ServerFrame[] {
  const frames: ServerFrame[] = []
  let offset = 0
  while (offset + 2 <= bytes.length) {
    let length = (bytes[offset + 1] as number) & 0x7f
    let head = 2
    if (length === 126) {
      if (offset + 4 > bytes.length) break
      length = bytes.readUInt16BE(offset + 2)
      head = 4
    } else if (length === 127) {
      if (offset + 10 > bytes.length) break
      length = Number(bytes.readBigUInt64BE(offset + 2))
      head = 10
    }
    if (offset + head + length > bytes.length) break
    frames.push({ opcode: (bytes[offset] as number) & 0x0f, payload: bytes.subarray(offset + head, offset + head + length) })
    offset += head + length
  }
  return frames
}

/**
 * Close codes a server may answer with to client bytes: the protocol errors, plus the code of any
 * complete client close frame in them (the server echoes it; 1005 stands for an empty close body).
 */
export function allowedRawCloses (sent: Buffer): Set<number> {
  const codes = new Set(PROTOCOL_CLOSES)
  let offset = 0
  while (offset + 2 <= sent.length) {
    const opcode = (sent[offset] as number) & 0x0f
    const masked = ((sent[offset + 1] as number) & 0x80) !== 0
    let length = (sent[offset + 1] as number) & 0x7f
    let head = 2
    if (length === 126) {
      if (offset + 4 > sent.length) break
      length = sent.readUInt16BE(offset + 2)
      head = 4
    } else if (length === 127) {
      if (offset + 10 > sent.length) break
      const big = sent.readBigUInt64BE(offset + 2)
      if (big > BigInt(sent.length)) break
      length = Number(big)
      head = 10
    }
    const mask = masked ? sent.subarray(offset + head, offset + head + 4) : Buffer.alloc(4)
    if (masked) head += 4
    if (offset + head + length > sent.length) break
    if (opcode === 0x8) {
      if (length === 0) codes.add(1005)
      else if (length >= 2) codes.add((((sent[offset + head] as number) ^ (mask[0] as number)) << 8) | ((sent[offset + head + 1] as number) ^ (mask[1] as number)))
    }
    offset += head + length
  }
  return codes
}
