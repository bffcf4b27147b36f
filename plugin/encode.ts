import { describe, FST_WSGLUE_INVALID_DATA } from './errors.js'

/** A payload ready for the wire: encoded once, sent to any number of sockets. */
export interface EncodedData {
  readonly payload: Buffer
  readonly binary: boolean
}

/**
 * Turns user data into a frame payload: a string is a text frame, a Buffer, ArrayBuffer or view
 * is a binary frame, anything else is JSON text.
 * @throws FST_WSGLUE_INVALID_DATA when the value cannot be serialised.
 */
export function encodeData (data: unknown): EncodedData {
  // Encoding the string once here spares ws a Buffer.from per recipient.
  if (typeof data === 'string') return { payload: Buffer.from(data, 'utf8'), binary: false }
  if (Buffer.isBuffer(data)) return { payload: data, binary: true }
  if (data instanceof ArrayBuffer) return { payload: Buffer.from(data), binary: true }
  if (ArrayBuffer.isView(data)) {
    return { payload: Buffer.from(data.buffer, data.byteOffset, data.byteLength), binary: true }
  }
  let text: string | undefined
  try {
    text = JSON.stringify(data)
  } catch (err) {
    throw new FST_WSGLUE_INVALID_DATA(`JSON.stringify failed: ${(err as Error).message}`)
  }
  if (text === undefined) throw new FST_WSGLUE_INVALID_DATA(`got ${describe(data)}`)
  return { payload: Buffer.from(text, 'utf8'), binary: false }
}
