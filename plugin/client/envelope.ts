// The glue.v1 wire format (docs/protocol.md): client envelopes out, server envelopes in, and the
// resume parameter of the handshake URL. Pure functions, no state.
import type { Failure } from './errors.js'

/** The subprotocol the client offers; when the server selects it, frames carry envelopes. */
export const GLUE_PROTOCOL = 'glue.v1'
const RESUME_PARAM = 'glue_resume'
/** A binary envelope's header: the type byte and a 48-bit big-endian sequence number. */
const BINARY_HEADER = 7

const BlobClass = (globalThis as { Blob?: new (parts: unknown[]) => object }).Blob

/** Data the client can send: strings and binary go out as they are, anything else as JSON text. */
export type GlueSendData = string | ArrayBuffer | ArrayBufferView | object | number | boolean | null

/**
 * Data the client receives: a string for text, an ArrayBuffer for binary, and on glue.v1 any JSON
 * value the server sent (`app.sessions.send(id, { a: 1 })` arrives as the object).
 */
export type GlueData = string | ArrayBuffer | object | number | boolean | null

/** What a plain socket sends for a message: a string, binary, or a Blob. */
export type Frame = string | ArrayBuffer | ArrayBufferView | object

/** A queued message (id 0) or request: its frame as raw mode sends it, and whether the data was a string. */
export type Outgoing = [id: number, frame: Frame, text: boolean]

/** What a server frame asks of the client; `undefined` from {@link readEnvelope} means drop it. */
export type ServerEnvelope =
  | { readonly kind: 'message', readonly data: GlueData, readonly seq?: number, readonly topic?: string, readonly position?: string }
  | { readonly kind: 'history', readonly topic: string, readonly position: string, readonly data: GlueData }
  | { readonly kind: 'lost', readonly topic: string, readonly missed: number | null }
  | { readonly kind: 'presence', readonly topic: string, readonly joined: GlueMember[] | null, readonly left: GlueMember[] | null }
  | { readonly kind: 'reply', readonly id: unknown, readonly failure: Failure | null, readonly value: unknown }
  | { readonly kind: 'welcome', readonly epoch: string, readonly seq: number }
  | { readonly kind: 'gap', readonly missed: number | null }

/**
 * The frame `send()` gives to a plain socket: strings, binary and Blobs as they are, anything else as JSON text.
 * @throws TypeError when `data` cannot be turned into JSON
 */
export function toFrame (data: GlueSendData): Frame {
  if (typeof data === 'string' || data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data
  if (BlobClass !== undefined && data instanceof BlobClass) return data
  const text: string | undefined = JSON.stringify(data)
  if (text === undefined) throw new TypeError(`Expected \`data\` to be a string, binary or JSON-serialisable, got ${typeof data}`)
  return text
}

/** `0x00 payload`: a binary message on glue.v1. */
function binaryEnvelope (frame: ArrayBuffer | ArrayBufferView | object): object {
  if (!(frame instanceof ArrayBuffer) && !ArrayBuffer.isView(frame)) return new (BlobClass as NonNullable<typeof BlobClass>)([new Uint8Array(1), frame])
  const bytes = ArrayBuffer.isView(frame) ? new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength) : new Uint8Array(frame)
  const envelope = new Uint8Array(bytes.length + 1)
  envelope.set(bytes, 1)
  return envelope
}

/** The wire form of a queued message or request: on glue.v1 its envelope, otherwise the frame itself. */
export function encodeOutgoing ([id, frame, text]: Outgoing, glue: boolean): Frame {
  if (!glue) return frame
  return typeof frame !== 'string'
    ? binaryEnvelope(frame)
    : `[${id === 0 ? '"m"' : `"q",${id}`},${text ? JSON.stringify(frame) : frame}]`
}

/** A member of a topic that shows presence: a user id (`user` true) or an opaque id for an anonymous session. */
export interface GlueMember {
  readonly id: string
  readonly user: boolean
}

/**
 * `["s", id, topic]`, `["s", id, topic, history]` (a subscribe asking for history), `["u", id, topic]`
 * or `["v", id, topic]` (a member list).
 */
export function encodeTopicCall (kind: 's' | 'u' | 'v', id: number, topic: string, history?: object): string {
  return JSON.stringify(history === undefined ? [kind, id, topic] : [kind, id, topic, history])
}

/** The handshake URL that asks the server to resume after `lastSeq` of delivery epoch `epoch`. */
export function resumeUrl (url: string, epoch: string, lastSeq: number): string {
  const resumed = new URL(url)
  resumed.search += `${resumed.search === '' ? '' : '&'}${RESUME_PARAM}=${encodeURIComponent(epoch)}.${lastSeq}`
  return resumed.href
}

/** Reads a frame of a glue.v1 socket: a text frame (string) or a binary one (ArrayBuffer). */
export function readEnvelope (data: unknown): ServerEnvelope | undefined {
  return typeof data === 'string' ? readText(data) : readBinary(data as ArrayBuffer)
}

function readText (data: string): ServerEnvelope | undefined {
  let envelope: unknown
  // A text frame that is no envelope (an app's own socket.send('pong')) is a plain message.
  try {
    if (data.startsWith('[')) envelope = JSON.parse(data)
  } catch {}
  if (!Array.isArray(envelope) || typeof envelope[0] !== 'string' || envelope[0].length !== 1) {
    return { kind: 'message', data }
  }
  const [kind, first, second, third, fourth] = envelope as [string, number, unknown, unknown, unknown]
  if (kind === 'm') return { kind: 'message', data: second as GlueData, seq: first }
  if (kind === 't') return { kind: 'message', data: third as GlueData, seq: first, topic: second as string, position: typeof fourth === 'string' ? fourth : undefined }
  if (kind === 'h') return { kind: 'history', topic: first as unknown as string, position: second as string, data: third as GlueData }
  if (kind === 'l') return { kind: 'lost', topic: first as unknown as string, missed: (second as number | null) ?? null }
  if (kind === 'p') return { kind: 'presence', topic: first as unknown as string, joined: second as GlueMember[] | null, left: third as GlueMember[] | null }
  if (kind === 'r') return { kind: 'reply', id: first, failure: second === 1 ? null : third as Failure, value: third }
  if (kind === 'w') return { kind: 'welcome', epoch: first as unknown as string, seq: second as number }
  if (kind === 'g') return { kind: 'gap', missed: first ?? null }
  // Any other kind is a control envelope of a newer server: ignored.
  return undefined
}

function readBinary (buffer: ArrayBuffer): ServerEnvelope | undefined {
  const bytes = new Uint8Array(buffer)
  const type = bytes[0] as number
  // Only envelopes are valid binary frames on glue.v1; anything else is dropped.
  if (bytes.length < BINARY_HEADER || type > 1) return undefined
  const view = new DataView(buffer)
  const seq = view.getUint16(1) * 2 ** 32 + view.getUint32(3)
  if (type === 0) return { kind: 'message', data: buffer.slice(BINARY_HEADER), seq }
  const end = BINARY_HEADER + 1 + (bytes[BINARY_HEADER] as number)
  return { kind: 'message', data: buffer.slice(end), seq, topic: new TextDecoder().decode(bytes.subarray(BINARY_HEADER + 1, end)) }
}
