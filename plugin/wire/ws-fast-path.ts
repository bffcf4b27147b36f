import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import type { EncodedData } from './encode.js'

// RFC 6455 §5.2 opcodes, with the FIN bit set: every message we send is a single frame.
const FIN_TEXT = 0x81
const FIN_BINARY = 0x82

/**
 * The fast path into `ws` internals: frames built once and written straight to a socket's transport,
 * skipping ws's per-socket framing. Everything here falls back to `socket.send()` when the internals
 * it relies on are missing.
 */

/** The ws internals the fast path relies on. */
interface WsInternals {
  _socket?: Duplex | null
  _sender?: { _queue?: unknown[], _state?: number } | null
}

/** Whether a socket negotiated no extension (they never change later): only then may pre-built frames go to it. */
export function isPlain (socket: WebSocket): boolean {
  return socket.extensions === ''
}

/**
 * Builds the head of an unmasked server frame carrying `length` payload bytes, followed by
 * `prefix` (the first `prefix.length` of those bytes): the rest of the payload is written after it.
 */
export function frameHead (length: number, binary: boolean, prefix?: Buffer): Buffer {
  const size = length < 126 ? 2 : length <= 0xffff ? 4 : 10
  const head = Buffer.allocUnsafe(size + (prefix?.length ?? 0))
  head[0] = binary ? FIN_BINARY : FIN_TEXT
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

/**
 * Returns the socket's transport when a pre-built frame may be written to it directly: no
 * extension (permessage-deflate would need per-socket compression) and nothing queued in ws's sender.
 */
export function directTransport (socket: WebSocket, plain: boolean): Duplex | null {
  const internals = socket as unknown as WsInternals
  const transport = internals._socket
  const sender = internals._sender
  if (transport == null || sender == null || !plain) return null
  if (sender._state !== 0 || (sender._queue?.length ?? 1) !== 0) return null
  return transport
}

/**
 * Coalesces the frames written to one transport during the current tick into a single write: a
 * burst of N small messages costs one syscall per socket, not N. Once `flushBytes` are waiting,
 * they go to the kernel at once, so a burst never looks like a slow reader.
 */
export class CoalescingWriter {
  readonly #flushBytes: number
  #corked: Duplex[] = []
  #flush = (): void => {
    const corked = this.#corked
    this.#corked = []
    for (const transport of corked) transport.uncork()
  }

  constructor (flushBytes: number) {
    this.#flushBytes = flushBytes
  }

  write (transport: Duplex, frame: Buffer): void {
    if (transport.writableCorked === 0 && transport.writableLength < this.#flushBytes) {
      transport.cork()
      if (this.#corked.push(transport) === 1) process.nextTick(this.#flush)
    }
    transport.write(frame)
    if (transport.writableCorked !== 0 && transport.writableLength >= this.#flushBytes) transport.uncork()
  }
}
