import type { EncodedData } from '../wire/encode.js'
import type { ClusterMessage, ClusterMessageKind } from '../adapters/adapter.js'
import type { TopicMember } from '../wire/protocol.js'

/**
 * The compact, versioned encoding of a cluster message on the Redis stream:
 *
 *   version[1] kind[1] flags[1] time[6] fields… payload…
 *
 * Fields are u16-length-prefixed UTF-8 strings (session id, topic, except, reason, user id), for
 * close a u16 code and for revokeUser a 6-byte time, in the order docs/protocol.md lists. The
 * payload, encoded once by the sender, is the rest.
 */
export const CODEC_VERSION = 1

const KIND_CODES: Readonly<Record<ClusterMessageKind, number>> = {
  send: 1, broadcast: 2, publish: 3, close: 4, subscribe: 5, unsubscribe: 6, expire: 7, rotate: 8, revoke: 9, revokeUser: 10, closeUser: 11, presence: 12
}
// Index = kind code; code 0 is unused.
const KINDS: ReadonlyArray<ClusterMessageKind | undefined> = [
  undefined, 'send', 'broadcast', 'publish', 'close', 'subscribe', 'unsubscribe', 'expire', 'rotate', 'revoke', 'revokeUser', 'closeUser', 'presence'
]

const FLAG_VOLATILE = 1
const FLAG_BINARY = 2
/** The payload is the JSON text of a value (not a string the application sent). */
const FLAG_JSON = 4
const FLAG_EXCEPT = 8
/** A rotate message binds the session to a user. */
const FLAG_USER = 16

const HEADER = 9

/** A decoded cluster message with the time its sender encoded it (ms since the epoch). */
export interface DecodedMessage {
  readonly message: ClusterMessage
  readonly time: number
}

/** Encodes a message; the payload bytes are shared, not copied, until the final concat. */
export function encodeClusterMessage (message: ClusterMessage, time: number): Buffer {
  const parts: Buffer[] = []
  let flags = 0
  let data: EncodedData | undefined
  const field = (value: string): void => {
    const bytes = Buffer.from(value, 'utf8')
    const length = Buffer.allocUnsafe(2)
    length.writeUInt16BE(bytes.length)
    parts.push(length, bytes)
  }
  const code = (value: number): void => {
    const bytes = Buffer.allocUnsafe(2)
    bytes.writeUInt16BE(value)
    parts.push(bytes)
  }
  switch (message.kind) {
    case 'send':
      field(message.sessionId)
      data = message.data
      if (message.volatile) flags |= FLAG_VOLATILE
      break
    case 'broadcast':
    case 'publish':
      if (message.kind === 'publish') field(message.topic)
      if (message.except !== undefined) {
        flags |= FLAG_EXCEPT
        field(message.except)
      }
      data = message.data
      if (message.volatile) flags |= FLAG_VOLATILE
      break
    case 'close':
      field(message.sessionId)
      code(message.code)
      field(message.reason)
      break
    case 'closeUser':
      field(message.userId)
      code(message.code)
      field(message.reason)
      break
    case 'rotate':
      field(message.sessionId)
      field(message.to)
      if (message.userId !== null) {
        flags |= FLAG_USER
        field(message.userId)
      }
      break
    case 'revoke':
      field(message.sessionId)
      break
    case 'revokeUser': {
      field(message.userId)
      const before = Buffer.allocUnsafe(6)
      before.writeUIntBE(clampTime(message.before), 0, 6)
      parts.push(before)
      break
    }
    case 'subscribe':
    case 'unsubscribe':
      field(message.sessionId)
      field(message.topic)
      break
    case 'expire':
      field(message.sessionId)
      break
    case 'presence': {
      field(message.topic)
      const json = JSON.stringify([message.joined, message.left])
      data = { payload: Buffer.from(json, 'utf8'), binary: false, json, text: undefined }
    }
  }
  if (data !== undefined) {
    if (data.binary) flags |= FLAG_BINARY
    else if (data.json !== undefined) flags |= FLAG_JSON
    parts.push(data.payload)
  }
  const header = Buffer.allocUnsafe(HEADER)
  header[0] = CODEC_VERSION
  header[1] = KIND_CODES[message.kind]
  header[2] = flags
  header.writeUIntBE(clampTime(time), 3, 6)
  parts.unshift(header)
  return Buffer.concat(parts)
}

function clampTime (time: number): number {
  return Math.max(0, Math.min(time, 2 ** 48 - 1))
}

/** Decodes a message; undefined for another version or a malformed buffer (dropped by the caller). */
export function decodeClusterMessage (buffer: Buffer): DecodedMessage | undefined {
  if (buffer.length < HEADER || buffer[0] !== CODEC_VERSION) return undefined
  const kind = KINDS[buffer[1] as number]
  if (kind === undefined) return undefined
  const flags = buffer[2] as number
  const time = buffer.readUIntBE(3, 6)
  let offset = HEADER
  const field = (): string | undefined => {
    if (offset + 2 > buffer.length) return undefined
    const length = buffer.readUInt16BE(offset)
    if (offset + 2 + length > buffer.length) return undefined
    const value = buffer.toString('utf8', offset + 2, offset + 2 + length)
    offset += 2 + length
    return value
  }
  const data = (): EncodedData => {
    const payload = buffer.subarray(offset)
    if ((flags & FLAG_BINARY) !== 0) return { payload, binary: true, json: undefined, text: undefined }
    if ((flags & FLAG_JSON) === 0) return { payload, binary: false, json: undefined, text: undefined }
    // Decoded only if a glue.v1 socket on this node needs the envelope: most nodes skip most sends.
    let json: string | undefined
    return { payload, binary: false, get json () { return (json ??= payload.toString('utf8')) }, text: undefined }
  }
  const volatile = (flags & FLAG_VOLATILE) !== 0
  let message: ClusterMessage | undefined
  switch (kind) {
    case 'send': {
      const sessionId = field()
      if (sessionId !== undefined) message = { kind, sessionId, data: data(), volatile }
      break
    }
    case 'broadcast':
    case 'publish': {
      const topic = kind === 'publish' ? field() : ''
      const except = (flags & FLAG_EXCEPT) !== 0 ? field() : undefined
      if (topic === undefined || ((flags & FLAG_EXCEPT) !== 0 && except === undefined)) break
      message = kind === 'publish'
        ? { kind, topic, except, data: data(), volatile }
        : { kind, except, data: data(), volatile }
      break
    }
    case 'close':
    case 'closeUser': {
      const target = field()
      if (target === undefined || offset + 2 > buffer.length) break
      const code = buffer.readUInt16BE(offset)
      offset += 2
      const reason = field()
      if (reason === undefined) break
      message = kind === 'close' ? { kind, sessionId: target, code, reason } : { kind, userId: target, code, reason }
      break
    }
    case 'rotate': {
      const sessionId = field()
      const to = field()
      const userId = (flags & FLAG_USER) !== 0 ? field() : null
      if (sessionId !== undefined && to !== undefined && userId !== undefined) message = { kind, sessionId, to, userId }
      break
    }
    case 'revoke': {
      const sessionId = field()
      if (sessionId !== undefined) message = { kind, sessionId }
      break
    }
    case 'revokeUser': {
      const userId = field()
      if (userId === undefined || offset + 6 > buffer.length) break
      message = { kind, userId, before: buffer.readUIntBE(offset, 6) }
      break
    }
    case 'subscribe':
    case 'unsubscribe': {
      const sessionId = field()
      const topic = field()
      if (sessionId !== undefined && topic !== undefined) message = { kind, sessionId, topic }
      break
    }
    case 'expire': {
      const sessionId = field()
      if (sessionId !== undefined) message = { kind, sessionId }
      break
    }
    case 'presence': {
      const topic = field()
      const changes = topic === undefined ? undefined : readPresence(buffer.subarray(offset))
      if (changes !== undefined) message = { kind, topic: topic as string, joined: changes[0], left: changes[1] }
    }
  }
  return message === undefined ? undefined : { message, time }
}

/** The members of a presence message: two lists of `{ id, user }`, or two nulls; undefined when malformed. */
function readPresence (payload: Buffer): [TopicMember[] | null, TopicMember[] | null] | undefined {
  let value: unknown
  try {
    value = JSON.parse(payload.toString('utf8'))
  } catch {
    return undefined
  }
  const isList = (list: unknown): list is TopicMember[] | null => list === null || (Array.isArray(list) &&
    list.every((member) => typeof (member as TopicMember | null)?.id === 'string' && typeof (member as TopicMember).user === 'boolean'))
  if (!Array.isArray(value) || value.length !== 2 || !isList(value[0]) || !isList(value[1])) return undefined
  return [value[0], value[1]]
}
