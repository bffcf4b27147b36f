import type { EncodedData } from './encode.js'
import { frameOf } from './frame.js'

/**
 * One outgoing message in the two shapes a socket may need: raw (plain websocket clients) and as a
 * glue.v1 envelope. Each shape is encoded and framed at most once, whatever the number of recipients.
 */
export class Outbound {
  readonly raw: EncodedData
  #toEnvelope: (data: EncodedData) => EncodedData
  #envelope: EncodedData | undefined
  #rawFrame: Buffer | undefined
  #envelopeFrame: Buffer | undefined

  constructor (raw: EncodedData, toEnvelope: (data: EncodedData) => EncodedData) {
    this.raw = raw
    this.#toEnvelope = toEnvelope
  }

  data (enveloped: boolean): EncodedData {
    if (!enveloped) return this.raw
    this.#envelope ??= this.#toEnvelope(this.raw)
    return this.#envelope
  }

  frame (enveloped: boolean): Buffer {
    if (!enveloped) {
      this.#rawFrame ??= frameOf(this.raw)
      return this.#rawFrame
    }
    this.#envelopeFrame ??= frameOf(this.data(true))
    return this.#envelopeFrame
  }
}
