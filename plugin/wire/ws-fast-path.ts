import type { Duplex } from 'node:stream'
import { constants as zlibConstants, deflateRawSync, type ZlibOptions } from 'node:zlib'
import type { WebSocket } from 'ws'
import type { EncodedData } from './encode.js'

// RFC 6455 §5.2 opcodes, with the FIN bit set: every message we send is a single frame.
const FIN_TEXT = 0x81
const FIN_BINARY = 0x82
// RFC 7692 §6: RSV1 marks the first frame of a compressed message.
const RSV1 = 0x40
// zlib turns a raw-deflate window of 8 bits into 9, which a peer that asked for 8 may not accept.
const MIN_SHARED_WINDOW_BITS = 9
const DEFAULT_WINDOW_BITS = 15

/**
 * The fast path into `ws` internals: frames built once and written straight to a socket's transport,
 * skipping ws's per-socket framing. Everything here falls back to `socket.send()` when the internals
 * it relies on are missing.
 */

/** ws's permessage-deflate extension object, as far as the fast path reads it. */
interface WsDeflate {
  params?: Record<string, unknown> | null
  _threshold?: number
  _options?: { zlibDeflateOptions?: ZlibOptions }
}

/** The ws internals the fast path relies on. */
interface WsInternals {
  _socket?: Duplex | null
  _sender?: { _queue?: unknown[], _state?: number } | null
  _extensions?: Record<string, WsDeflate | undefined>
}

/** Whether a socket negotiated no extension (they never change later): only then may pre-built frames go to it. */
export function isPlain (socket: WebSocket): boolean {
  return socket.extensions === ''
}

/** How a socket compresses, when one compressed copy of a message suits it and every socket like it. */
export interface SharedDeflate {
  /** The window the peer allowed (`server_max_window_bits`), 15 by default. */
  readonly windowBits: number
  /** ws's `threshold`: smaller messages go uncompressed, as ws would send them. */
  readonly threshold: number
  /** The server's `zlibDeflateOptions` (level, memLevel, strategy). */
  readonly options: ZlibOptions
}

/**
 * What a socket negotiated for permessage-deflate, when it is `server_no_context_takeover`: then each
 * message is compressed on its own (RFC 7692 §7.1.1.1), so a fan-out can compress once for every such
 * socket. Undefined otherwise (no compression, context takeover, or internals ws no longer has).
 */
export function sharedDeflateOf (socket: WebSocket): SharedDeflate | undefined {
  if (socket.extensions !== 'permessage-deflate') return undefined
  const extension = (socket as unknown as WsInternals)._extensions?.['permessage-deflate']
  const params = extension?.params
  if (params == null || params.server_no_context_takeover !== true || typeof extension?._threshold !== 'number') return undefined
  const bits = params.server_max_window_bits
  const windowBits = typeof bits === 'number' ? bits : DEFAULT_WINDOW_BITS
  if (windowBits < MIN_SHARED_WINDOW_BITS) return undefined
  return { windowBits, threshold: extension._threshold, options: extension._options?.zlibDeflateOptions ?? {} }
}

/**
 * Compresses a whole message the way RFC 7692 §7.2.1 asks without context takeover: a raw deflate
 * stream ending in a sync flush, whose trailing `00 00 ff ff` is removed (the peer adds it back).
 */
export function deflateMessage (payload: Buffer, deflate: SharedDeflate): Buffer {
  const compressed = deflateRawSync(payload, { ...deflate.options, windowBits: deflate.windowBits, finishFlush: zlibConstants.Z_SYNC_FLUSH })
  return compressed.subarray(0, compressed.length - 4)
}

/**
 * `bytes` as a stored (uncompressed) deflate block (RFC 1951 §3.2.4). It ends on a byte boundary, so
 * a per-session envelope prefix in one can precede a body compressed once for every session.
 */
export function storedBlock (bytes: Buffer): Buffer {
  const block = Buffer.allocUnsafe(5 + bytes.length)
  // BFINAL 0, BTYPE 00, padded to the byte; then LEN and its one's complement, little-endian.
  block[0] = 0
  block.writeUInt16LE(bytes.length, 1)
  block.writeUInt16LE(~bytes.length & 0xffff, 3)
  bytes.copy(block, 5)
  return block
}

/**
 * Builds the head of an unmasked server frame carrying `length` payload bytes, followed by
 * `prefix` (the first `prefix.length` of those bytes): the rest of the payload is written after it.
 * `compressed` sets RSV1, for a permessage-deflate payload.
 */
export function frameHead (length: number, binary: boolean, prefix?: Buffer, compressed = false): Buffer {
  const size = length < 126 ? 2 : length <= 0xffff ? 4 : 10
  const head = Buffer.allocUnsafe(size + (prefix?.length ?? 0))
  head[0] = (binary ? FIN_BINARY : FIN_TEXT) | (compressed ? RSV1 : 0)
  if (size === 2) {
    head[1] = length
  } else if (size === 4) {
    head[1] = 126
    head.writeUInt16BE(length, 2)
  } else {
    head[1] = 127
    head.writeBigUInt64BE(BigInt(length), 2)
  }
  prefix?.copy(head, size)
  return head
}

/** A complete frame in one Buffer, so a broadcast is framed once and written to every socket as is. */
export function frameOf (data: EncodedData): Buffer {
  return Buffer.concat([frameHead(data.payload.length, data.binary), data.payload])
}

/** The socket's TCP transport, whatever ws is doing with it; null before the upgrade or after ws let go. */
export function transportOf (socket: WebSocket): Duplex | null {
  return (socket as unknown as WsInternals)._socket ?? null
}

/**
 * Returns the socket's transport when a pre-built frame may be written to it directly: `prebuilt`
 * says the frame suits the socket (no extension, or one compressed copy for `server_no_context_takeover`),
 * and nothing may be queued in ws's sender (a frame it is compressing would come out later).
 */
export function directTransport (socket: WebSocket, prebuilt: boolean): Duplex | null {
  const internals = socket as unknown as WsInternals
  const transport = internals._socket
  const sender = internals._sender
  if (transport == null || sender == null || !prebuilt) return null
  if (sender._state !== 0 || (sender._queue?.length ?? 1) !== 0) return null
  return transport
}

const kWrittenInTick = Symbol('fastify-websocket-glue.writtenInTick')

/**
 * Coalesces the frames written to one transport during the current tick into a single write: a
 * burst of N small messages costs one syscall per socket, not N. Once `flushBytes` are waiting,
 * they go to the kernel at once, so a burst never looks like a slow reader.
 *
 * An `eager` write (a message for one session) goes to the kernel at once when it is the first to
 * its transport in this tick: waiting for the tick's end would only delay it behind the caller's
 * other work. A second write in the same tick corks the transport, so bursts still coalesce.
 */
export class CoalescingWriter {
  readonly #flushBytes: number
  #corked: Duplex[] = []
  /** Advances at the end of every tick that wrote, so a transport's mark says whether it was written in this one. */
  #tick = 0
  #scheduled = false
  #flush = (): void => {
    this.#scheduled = false
    this.#tick++
    const corked = this.#corked
    this.#corked = []
    for (const transport of corked) transport.uncork()
  }

  constructor (flushBytes: number) {
    this.#flushBytes = flushBytes
  }

  /** Writes a frame, given whole or as a head and the `rest` of it. */
  write (transport: Duplex, frame: Buffer, rest?: Buffer, eager = false): void {
    if (transport.writableCorked === 0 && transport.writableLength < this.#flushBytes) {
      const marked = transport as Duplex & { [kWrittenInTick]?: number }
      if (eager && marked[kWrittenInTick] !== this.#tick) {
        marked[kWrittenInTick] = this.#tick
        this.#schedule()
        // Both parts in one write.
        if (rest !== undefined) transport.cork()
        transport.write(frame)
        if (rest !== undefined) {
          transport.write(rest)
          transport.uncork()
        }
        return
      }
      transport.cork()
      this.#corked.push(transport)
      this.#schedule()
    }
    transport.write(frame)
    if (rest !== undefined) transport.write(rest)
    if (transport.writableCorked !== 0 && transport.writableLength >= this.#flushBytes) transport.uncork()
  }

  #schedule (): void {
    if (this.#scheduled) return
    this.#scheduled = true
    process.nextTick(this.#flush)
  }
}
