import type { EncodedData } from '../wire/encode.js'
import { deflateMessage, frameHead, frameOf, storedBlock, type SharedDeflate } from '../wire/ws-fast-path.js'
import { envelopeBody, envelopePrefix } from '../wire/protocol.js'

/** The bytes of one message for one glue.v1 session: a per-session head and the shared body. */
export interface EnvelopeFrame {
  /** The websocket frame header followed by the envelope's per-session prefix. */
  readonly head: Buffer
  /** The envelope's per-session prefix alone (for sockets that ws must frame itself). */
  readonly prefix: Buffer
  readonly body: Buffer
  readonly binary: boolean
  /** The fan-out it belongs to, which compresses the body once for every deflate socket; undefined for one session. */
  readonly fanOut: Outbound | undefined
}

/** What an outbox keeps of a message: only the shared envelope body, not the caller's data. */
export interface StoredMessage {
  readonly body: Buffer
  readonly topic: boolean
  readonly binary: boolean
  /** True for broadcasts and topic messages, whose body every recipient's outbox shares. */
  readonly shared: boolean
}

/** Frames a stored message for a session, with its sequence number. */
export function envelopeFrame (message: StoredMessage, seq: number, fanOut?: Outbound): EnvelopeFrame {
  const prefix = envelopePrefix(message.topic, seq, message.binary)
  const head = frameHead(prefix.length + message.body.length, message.binary, prefix)
  return { head, prefix, body: message.body, binary: message.binary, fanOut }
}

/**
 * An envelope for a socket with shared permessage-deflate, in two parts: a head (frame header with
 * RSV1 and the prefix as a stored block) and the body compressed once for the whole fan-out.
 * Below ws's threshold the envelope goes uncompressed, as ws would send it.
 */
export function deflatedEnvelope (envelope: EnvelopeFrame, fanOut: Outbound, deflate: SharedDeflate): [Buffer, Buffer] {
  if (envelope.prefix.length + envelope.body.length < deflate.threshold) return [envelope.head, envelope.body]
  const body = fanOut.deflatedBody(deflate)
  const prefix = storedBlock(envelope.prefix)
  return [frameHead(prefix.length + body.length, envelope.binary, prefix, true), body]
}

/**
 * One outgoing message in the two shapes a socket may need: raw (plain websocket clients) and as a
 * glue.v1 envelope. The payload is encoded once and the shared parts are built at most once,
 * whatever the number of recipients; only the small sequence-numbered head differs per session.
 */
export class Outbound {
  readonly raw: EncodedData
  readonly topic: string | undefined
  readonly shared: boolean
  /** The message's place in its topic's history (`<epoch>.<n>`), for a topic that keeps one. */
  readonly position: string | undefined
  #rawFrame: Buffer | undefined
  #stored: StoredMessage | undefined
  /** Compressed once per window size (sockets may have asked for smaller windows): raw frames and envelope bodies. */
  #deflatedFrames: Map<number, Buffer> | undefined
  #deflatedBodies: Map<number, Buffer> | undefined

  constructor (raw: EncodedData, topic: string | undefined, shared: boolean, position?: string) {
    this.raw = raw
    this.topic = topic
    this.shared = shared
    this.position = position
  }

  rawFrame (): Buffer {
    this.#rawFrame ??= frameOf(this.raw)
    return this.#rawFrame
  }

  /** The raw frame, compressed once for every socket with this shared permessage-deflate (below the threshold, uncompressed). */
  deflatedFrame (deflate: SharedDeflate): Buffer {
    if (this.raw.payload.length < deflate.threshold) return this.rawFrame()
    this.#deflatedFrames ??= new Map()
    let frame = this.#deflatedFrames.get(deflate.windowBits)
    if (frame === undefined) {
      const payload = deflateMessage(this.raw.payload, deflate)
      frame = Buffer.concat([frameHead(payload.length, this.raw.binary, undefined, true), payload])
      this.#deflatedFrames.set(deflate.windowBits, frame)
    }
    return frame
  }

  /** The envelope body compressed once, to follow a per-session prefix in a stored block. */
  deflatedBody (deflate: SharedDeflate): Buffer {
    this.#deflatedBodies ??= new Map()
    let body = this.#deflatedBodies.get(deflate.windowBits)
    if (body === undefined) {
      body = deflateMessage(this.stored().body, deflate)
      this.#deflatedBodies.set(deflate.windowBits, body)
    }
    return body
  }

  stored (): StoredMessage {
    this.#stored ??= { body: envelopeBody(this.topic, this.raw, this.position), topic: this.topic !== undefined, binary: this.raw.binary, shared: this.shared }
    return this.#stored
  }

  envelope (seq: number): EnvelopeFrame {
    return envelopeFrame(this.stored(), seq, this.shared ? this : undefined)
  }
}
