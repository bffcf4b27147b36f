import { CLOSE_INVALID_PAYLOAD, CLOSE_POLICY_VIOLATION, TOPIC_MAX_BYTES } from '../constants.js'
import type { ReplyError } from '../errors.js'
import { isReservedTopic } from '../users/channel.js'
import { copyOf, jsonOf, ownsMemory, type EncodedData } from './encode.js'
import { parseHistoryRequest, type HistoryRequest } from '../topics/position.js'

/** The websocket subprotocol of the shipped client; see docs/protocol.md. */
export const GLUE_PROTOCOL = 'glue.v1'

// Envelope kinds, the first element of every text envelope (docs/protocol.md).
const MESSAGE = 'm'
const TOPIC = 't'
const REQUEST = 'q'
const REPLY = 'r'
const SUBSCRIBE = 's'
const UNSUBSCRIBE = 'u'
const WELCOME = 'w'
const GAP = 'g'
// Topic history and presence (docs/protocol.md, "Topic history" and "Presence").
const HISTORY = 'h'
const HISTORY_LOST = 'l'
const PRESENCE = 'p'
const MEMBERS = 'v'

/**
 * Deepest nesting of arrays and objects a glue.v1 text envelope may have, its own array included.
 * Deeper values would make JSON.stringify (and many handlers) overflow the stack.
 */
export const MAX_ENVELOPE_DEPTH = 64

// Sequence numbers in binary envelopes: 48 bits, the most writeUIntBE handles.
const SEQ_BYTES = 6

// First byte of a binary envelope.
const BINARY_MESSAGE = 0x00
const BINARY_TOPIC = 0x01

/** A request id: a client-chosen integer, echoed in the reply. */
export type RequestId = number

/** A decoded client envelope. */
export type InboundEnvelope =
  | { readonly kind: 'message', readonly data: string | Buffer, readonly value?: unknown }
  | { readonly kind: 'request', readonly id: RequestId, readonly data: unknown }
  | { readonly kind: 'subscribe', readonly id: RequestId, readonly topic: string, readonly history?: HistoryRequest }
  | { readonly kind: 'unsubscribe' | 'members', readonly id: RequestId, readonly topic: string }

/** A client envelope that cannot be processed: a close code and reason, or an error reply when it has an id. */
export interface InvalidEnvelope {
  readonly kind: 'invalid'
  readonly code: number
  readonly reason: string
  readonly id: RequestId | undefined
  /** True for a well-formed envelope of a kind this server does not know (a newer client). */
  readonly unknownKind: boolean
}

function invalid (code: number, reason: string, id?: RequestId, unknownKind = false): InvalidEnvelope {
  return { kind: 'invalid', code, reason, id, unknownKind }
}

function isRequestId (value: unknown): value is RequestId {
  return Number.isSafeInteger(value) && (value as number) >= 0
}

// String.prototype.isWellFormed is ES2024 (Node 20 and later); the ES2023 lib does not declare it.
type MaybeWellFormed = string & { isWellFormed (): boolean }

/**
 * Whether a topic name is valid: a non-empty, well-formed Unicode string (no lone surrogate, which
 * UTF-8 would turn into U+FFFD) of at most 255 UTF-8 bytes, not starting with U+0000 (reserved for
 * users' channels, see users/channel.ts).
 */
export function isTopic (value: unknown): value is string {
  return typeof value === 'string' && value !== '' && Buffer.byteLength(value) <= TOPIC_MAX_BYTES &&
    !isReservedTopic(value) && (value as MaybeWellFormed).isWellFormed()
}

// UTF-8 bytes of the JSON punctuation that matters for nesting; none occurs inside a multi-byte sequence.
const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_ARRAY = 0x5b
const CLOSE_ARRAY = 0x5d
const OPEN_OBJECT = 0x7b
const CLOSE_OBJECT = 0x7d

/** Whether JSON text nests arrays and objects deeper than `max`, found before anything is parsed. */
export function nestsDeeperThan (json: Buffer, max: number): boolean {
  // Each level takes at least one byte, so a short frame cannot be too deep.
  if (json.length <= max) return false
  let depth = 0
  let inString = false
  for (let i = 0; i < json.length; i++) {
    const byte = json[i]
    if (inString) {
      if (byte === BACKSLASH) i++
      else if (byte === QUOTE) inString = false
    } else if (byte === QUOTE) {
      inString = true
    } else if (byte === OPEN_ARRAY || byte === OPEN_OBJECT) {
      if (++depth > max) return true
    } else if (byte === CLOSE_ARRAY || byte === CLOSE_OBJECT) {
      depth--
    }
  }
  return false
}

/** Decodes one client frame of a glue.v1 socket. */
export function parseInbound (raw: Buffer, isBinary: boolean): InboundEnvelope | InvalidEnvelope {
  if (isBinary) {
    if (raw.length === 0 || raw[0] !== BINARY_MESSAGE) return invalid(CLOSE_POLICY_VIOLATION, 'unknown binary envelope')
    return { kind: 'message', data: raw.subarray(1) }
  }
  if (nestsDeeperThan(raw, MAX_ENVELOPE_DEPTH)) return invalid(CLOSE_POLICY_VIOLATION, 'envelope nested too deeply')
  let envelope: unknown
  try {
    envelope = JSON.parse(raw.toString('utf8'))
  } catch {
    return invalid(CLOSE_INVALID_PAYLOAD, 'envelope is not JSON')
  }
  if (!Array.isArray(envelope)) return invalid(CLOSE_INVALID_PAYLOAD, 'envelope is not an array')
  const [kind, first, second, third] = envelope as unknown[]
  switch (kind) {
    case MESSAGE:
      if (envelope.length !== 2) return invalid(CLOSE_POLICY_VIOLATION, 'message envelope takes 1 field')
      return { kind: 'message', data: typeof first === 'string' ? first : JSON.stringify(first), value: first }
    // A known kind with a usable id gets an error reply, whatever else is wrong: the client can probe.
    case REQUEST:
      if (!isRequestId(first)) return invalid(CLOSE_POLICY_VIOLATION, 'request envelope needs an id and data')
      if (envelope.length !== 3) return invalid(CLOSE_POLICY_VIOLATION, 'request envelope needs an id and data', first)
      return { kind: 'request', id: first, data: second }
    case SUBSCRIBE: {
      // A fourth element asks for the topic's history.
      if (!isRequestId(first)) return invalid(CLOSE_POLICY_VIOLATION, 'subscription envelope needs an id and a topic')
      if (envelope.length !== 3 && envelope.length !== 4) return invalid(CLOSE_POLICY_VIOLATION, 'subscription envelope needs an id and a topic', first)
      if (!isTopic(second)) return invalid(CLOSE_POLICY_VIOLATION, 'invalid topic', first)
      if (envelope.length === 3) return { kind: 'subscribe', id: first, topic: second }
      const history = parseHistoryRequest(third)
      if (history === undefined) return invalid(CLOSE_POLICY_VIOLATION, 'invalid history request', first)
      return { kind: 'subscribe', id: first, topic: second, history }
    }
    case MEMBERS:
    case UNSUBSCRIBE:
      if (!isRequestId(first)) return invalid(CLOSE_POLICY_VIOLATION, 'subscription envelope needs an id and a topic')
      if (envelope.length !== 3) return invalid(CLOSE_POLICY_VIOLATION, 'subscription envelope needs an id and a topic', first)
      if (!isTopic(second)) return invalid(CLOSE_POLICY_VIOLATION, 'invalid topic', first)
      return { kind: kind === MEMBERS ? 'members' : 'unsubscribe', id: first, topic: second }
    default:
      return invalid(CLOSE_POLICY_VIOLATION, 'unknown envelope kind', isRequestId(first) ? first : undefined, true)
  }
}

/**
 * The part of a `m`/`t` envelope shared by every recipient: everything after the sequence number.
 * Outboxes keep it, so it gets its own memory: a slice of Node's shared pool would pin a whole slab.
 */
export function envelopeBody (topic: string | undefined, data: EncodedData, position?: string): Buffer {
  if (data.binary) {
    // encodeData's payloads are already their own memory; one decoded from a bus message is a slice of it.
    if (topic === undefined) return ownsMemory(data.payload) ? data.payload : copyOf(data.payload)
    const length = Buffer.byteLength(topic)
    const body = Buffer.allocUnsafeSlow(1 + length + data.payload.length)
    body[0] = length
    body.write(topic, 1, 'utf8')
    data.payload.copy(body, 1 + length)
    return body
  }
  // A topic that keeps history adds the message's position, which the client holds to ask for what came after.
  const text = `${topic === undefined ? '' : JSON.stringify(topic) + ','}${jsonOf(data)}${position === undefined ? '' : ',"' + position + '"'}]`
  const body = Buffer.allocUnsafeSlow(Buffer.byteLength(text))
  body.write(text, 0, 'utf8')
  return body
}

/**
 * The per-session start of a `m`/`t` envelope: `["m",seq,` / `["t",seq,` for text, the type byte
 * and a 6-byte big-endian sequence number for binary.
 */
export function envelopePrefix (topic: boolean, seq: number, binary: boolean): Buffer {
  if (!binary) return Buffer.from(`["${topic ? TOPIC : MESSAGE}",${seq},`, 'latin1')
  const prefix = Buffer.allocUnsafe(1 + SEQ_BYTES)
  prefix[0] = topic ? BINARY_TOPIC : BINARY_MESSAGE
  prefix.writeUIntBE(seq, 1, SEQ_BYTES)
  return prefix
}

/** `["r", id, 1, value]` for a success, `["r", id, 0, { code, message }]` for an error. */
export function replyEnvelope (id: RequestId, error: ReplyError | null, value?: unknown): EncodedData {
  // JSON.stringify gives undefined for functions and symbols: those become null, like in arrays.
  const body = error === null ? `1,${JSON.stringify(value) ?? 'null'}` : `0,${JSON.stringify(error)}`
  return textEnvelope(`["${REPLY}",${id},${body}]`)
}

function textEnvelope (json: string): EncodedData {
  return { payload: Buffer.from(json, 'utf8'), binary: false, json, text: undefined }
}

/** Where a reconnecting client left off: the delivery epoch it knew and the last sequence it processed. */
export interface ResumePoint {
  readonly epoch: string
  readonly seq: number
}

/** The query parameter a glue.v1 client sets on reconnect: `glue_resume=<epoch>.<seq>`. */
export const RESUME_PARAM = 'glue_resume'

const RESUME_RE = /^([A-Za-z0-9_-]{1,32})\.(\d{1,15})$/

/** Reads `glue_resume`; anything malformed counts as no resume point (the client then starts from now). */
export function parseResume (value: unknown): ResumePoint | undefined {
  if (typeof value !== 'string') return undefined
  const match = RESUME_RE.exec(value)
  if (match === null) return undefined
  return { epoch: match[1] as string, seq: Number(match[2]) }
}

/** `["w", epoch, seq]`: the first envelope of every glue.v1 socket; messages after `seq` follow. */
export function welcomeEnvelope (epoch: string, seq: number): EncodedData {
  return textEnvelope(`["${WELCOME}",${JSON.stringify(epoch)},${seq}]`)
}

/** `["g", missed]`: messages were lost; `missed` is their number, or null when unknown. */
export function gapEnvelope (missed: number | null): EncodedData {
  return textEnvelope(`["${GAP}",${missed === null ? 'null' : missed}]`)
}

/** `["h", topic, position, data]`: a message from a topic's history, `json` its data as JSON text. */
export function historyEnvelope (topic: string, position: string, json: string): EncodedData {
  return textEnvelope(`["${HISTORY}",${JSON.stringify(topic)},"${position}",${json}]`)
}

/** `["l", topic, missed]`: history the client asked for is gone; `missed` is how much, or null when unknown. */
export function historyLostEnvelope (topic: string, missed: number | null): EncodedData {
  return textEnvelope(`["${HISTORY_LOST}",${JSON.stringify(topic)},${missed === null ? 'null' : missed}]`)
}

/** A member of a topic as clients see it: a user id, or an opaque id for an anonymous session. */
export interface TopicMember {
  readonly id: string
  /** True when `id` is the user id the session is bound to. */
  readonly user: boolean
}

/**
 * `["p", topic, joined, left]`: members who joined and left the topic since the last batch; or
 * `["p", topic, null, null]` when more changed than a batch lists: the client asks for the list again.
 */
export function presenceEnvelope (topic: string, joined: readonly TopicMember[] | null, left: readonly TopicMember[] | null): EncodedData {
  return textEnvelope(`["${PRESENCE}",${JSON.stringify(topic)},${JSON.stringify(joined)},${JSON.stringify(left)}]`)
}
