import type { EncodedData } from '../wire/encode.js'
import { frameHead, frameOf } from '../wire/ws-fast-path.js'
import { envelopeBody, envelopePrefix } from '../wire/protocol.js'

/** The bytes of one message for one glue.v1 session: a per-session head and the shared body. */
export interface EnvelopeFrame {
  /** The websocket frame header followed by the envelope's per-session prefix. */
  readonly head: Buffer
  /** The envelope's per-session prefix alone (for sockets that ws must frame itself). */
  readonly prefix: Buffer
  readonly body: Buffer
  readonly binary: boolean
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
export function envelopeFrame (message: StoredMessage, seq: number): EnvelopeFrame {
  const prefix = envelopePrefix(message.topic, seq, message.binary)
  const head = frameHead(prefix.length + message.body.length, message.binary, prefix)
  return { head, prefix, body: message.body, binary: message.binary }
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
  #rawFrame: Buffer | undefined
  #stored: StoredMessage | undefined

  constructor (raw: EncodedData, topic: string | undefined, shared: boolean) {
    this.raw = raw
    this.topic = topic
    this.shared = shared
  }

  rawFrame (): Buffer {
    this.#rawFrame ??= frameOf(this.raw)
    return this.#rawFrame
  }

  stored (): StoredMessage {
    this.#stored ??= { body: envelopeBody(this.topic, this.raw), topic: this.topic !== undefined, binary: this.raw.binary, shared: this.shared }
    return this.#stored
  }

  envelope (seq: number): EnvelopeFrame {
    return envelopeFrame(this.stored(), seq)
  }
}
