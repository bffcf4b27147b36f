import { describe, FST_WSGLUE_INVALID_DATA } from './errors.js'

/** A payload ready for the wire: encoded once, sent to any number of sockets. */
export interface EncodedData {
  readonly payload: Buffer
  readonly binary: boolean
  /** The JSON text of the value, for glue.v1 envelopes (a string's JSON is computed on demand). */
  readonly json: string | undefined
  /** The original string, when the data was one. */
  readonly text: string | undefined
}

/**
 * Turns user data into a frame payload: a string is a text frame, a Buffer, ArrayBuffer or view
 * is a binary frame, anything else is JSON text.
 * @throws FST_WSGLUE_INVALID_DATA when the value cannot be serialised.
 */
export function encodeData (data: unknown): EncodedData {
  // Encoding the string once here spares ws a Buffer.from per recipient.
  if (typeof data === 'string') return { payload: Buffer.from(data, 'utf8'), binary: false, json: undefined, text: data }
  if (Buffer.isBuffer(data)) return binary(data)
  if (data instanceof ArrayBuffer) return binary(Buffer.from(data))
  if (ArrayBuffer.isView(data)) return binary(Buffer.from(data.buffer, data.byteOffset, data.byteLength))
  let json: string | undefined
  try {
    json = JSON.stringify(data)
  } catch (err) {
    throw new FST_WSGLUE_INVALID_DATA(`JSON.stringify failed: ${(err as Error).message}`)
  }
  if (json === undefined) throw new FST_WSGLUE_INVALID_DATA(`got ${describe(data)}`)
  return { payload: Buffer.from(json, 'utf8'), binary: false, json, text: undefined }
}

function binary (payload: Buffer): EncodedData {
  return { payload, binary: true, json: undefined, text: undefined }
}

/** The JSON text of a text payload: the value's JSON, or the string as a JSON string. */
export function jsonOf (data: EncodedData): string {
  return data.json ?? JSON.stringify(data.text ?? data.payload.toString('utf8'))
}
