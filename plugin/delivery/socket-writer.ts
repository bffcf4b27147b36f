import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import type { SessionStats } from '../stats.js'
import { CLOSE_TRY_AGAIN_LATER, COALESCE_FLUSH_BYTES, SLOW_CONSUMER_GRACE } from '../constants.js'
import type { EnvelopeFrame, Outbound } from '../messages/outbound.js'
import { stateOf } from '../sessions/socket-state.js'
import type { EncodedData } from '../wire/encode.js'
import { CoalescingWriter, directTransport, frameOf } from '../wire/ws-fast-path.js'

/** Writer limits, from the resolved options. */
export interface WriterOptions {
  readonly sendHighWaterMark: number
  readonly drainTimeout: number
}

// ws exposes readyState constants on the class; the numeric value is part of the WebSocket spec.
const OPEN = 1

/**
 * The only place bytes are written to sockets, and the slow-consumer policy with them: above
 * `sendHighWaterMark` a volatile message is skipped, a socket that stays above it for
 * `drainTimeout` or reaches twice the mark is closed with 1013, so what one socket can pin stays
 * bounded whatever is written to it.
 */
export class SocketWriter {
  readonly #options: WriterOptions
  readonly #stats: SessionStats
  readonly #coalescer: CoalescingWriter
  /** Sockets above the mark, with the time they went above it in their state. */
  readonly #congested = new Set<WebSocket>()
  /** Sockets closed with 1013, terminated if still open at the deadline. */
  readonly #slowClosing = new Map<WebSocket, number>()

  constructor (options: WriterOptions, stats: SessionStats) {
    this.#options = options
    this.#stats = stats
    // Below the high-water mark, or a burst of small frames would count as a slow reader.
    this.#coalescer = new CoalescingWriter(Math.min(COALESCE_FLUSH_BYTES, Math.ceil(options.sendHighWaterMark / 2)))
  }

  /** A message for a plain websocket client: the raw payload. */
  writeRaw (socket: WebSocket, outbound: Outbound, volatile: boolean): boolean {
    const transport = this.#transport(socket)
    if (!this.#admit(socket, transport, volatile)) return false
    if (transport !== null) this.#coalescer.write(transport, outbound.rawFrame())
    else socket.send(outbound.raw.payload, { binary: outbound.raw.binary })
    this.#watchDrain(socket, transport)
    this.#stats.messagesOut++
    return true
  }

  /** A message for a glue.v1 client: its envelope. */
  writeEnvelope (socket: WebSocket, envelope: EnvelopeFrame, volatile: boolean): boolean {
    const transport = this.#transport(socket)
    if (!this.#admit(socket, transport, volatile)) return false
    this.#writeFrame(socket, transport, envelope)
    this.#watchDrain(socket, transport)
    this.#stats.messagesOut++
    return true
  }

  /** A replayed message, written by a catch-up that does its own flow control (see `buffered`). */
  writeReplayed (socket: WebSocket, envelope: EnvelopeFrame): void {
    this.#writeFrame(socket, this.#transport(socket), envelope)
    this.#stats.messagesOut++
  }

  /** A protocol envelope (reply, welcome, gap), in order with everything else written to the socket. */
  sendTo (socket: WebSocket, envelope: EncodedData): void {
    if (socket.readyState !== OPEN) return
    const transport = this.#transport(socket)
    if (!this.#admit(socket, transport, false)) return
    if (transport !== null) this.#coalescer.write(transport, frameOf(envelope))
    else socket.send(envelope.payload, { binary: envelope.binary })
    this.#watchDrain(socket, transport)
  }

  /** Unsent bytes of a socket: in its transport, or, when ws frames for it, in ws's queue too. */
  buffered (socket: WebSocket): number {
    const transport = this.#transport(socket)
    return transport !== null ? transport.writableLength : socket.bufferedAmount
  }

  /** Runs `then` once the socket has drained below the high-water mark (polled when ws frames for it). */
  whenDrained (socket: WebSocket, then: () => void): void {
    const transport = this.#transport(socket)
    if (transport !== null) transport.once('drain', then)
    else setTimeout(then, 10).unref()
  }

  /** Closes a socket as a slow consumer (1013); a peer that does not read the close frame is terminated later. */
  closeSlow (socket: WebSocket): void {
    if (socket.readyState !== OPEN) return
    this.#stats.slowConsumerCloses++
    this.#congested.delete(socket)
    socket.close(CLOSE_TRY_AGAIN_LATER, 'slow consumer')
    // A stalled reader never reads the close frame queued behind its backlog.
    this.#slowClosing.set(socket, Date.now() + SLOW_CONSUMER_GRACE)
  }

  /** The socket closed: nothing to watch any more. */
  forget (socket: WebSocket): void {
    this.#congested.delete(socket)
    this.#slowClosing.delete(socket)
  }

  /** Closes sockets that stayed above the mark for drainTimeout, and terminates slow consumers that did not finish closing. */
  sweep (now: number): void {
    for (const socket of this.#congested) {
      const state = stateOf(socket)
      if (socket.readyState !== OPEN || this.buffered(socket) <= this.#options.sendHighWaterMark) {
        state.congestedSince = undefined
        this.#congested.delete(socket)
      } else if ((state.congestedSince as number) + this.#options.drainTimeout <= now) {
        this.closeSlow(socket)
      }
    }
    for (const [socket, deadline] of this.#slowClosing) {
      if (deadline <= now) {
        this.#slowClosing.delete(socket)
        socket.terminate()
      }
    }
  }

  #transport (socket: WebSocket): Duplex | null {
    return directTransport(socket, stateOf(socket).plain)
  }

  #writeFrame (socket: WebSocket, transport: Duplex | null, envelope: EnvelopeFrame): void {
    if (transport !== null) {
      this.#coalescer.write(transport, envelope.head)
      this.#coalescer.write(transport, envelope.body)
    } else {
      // ws frames (and compresses) this one itself.
      socket.send(Buffer.concat([envelope.prefix, envelope.body]), { binary: envelope.binary })
    }
  }

  /** Before a write: volatile messages skip a socket above the mark; twice the mark closes it. */
  #admit (socket: WebSocket, transport: Duplex | null, volatile: boolean): boolean {
    const buffered = transport !== null ? transport.writableLength : socket.bufferedAmount
    const mark = this.#options.sendHighWaterMark
    if (buffered <= mark) return true
    if (volatile) {
      this.#stats.volatileDropped++
      return false
    }
    if (buffered < mark * 2) return true
    this.closeSlow(socket)
    return false
  }

  /** After a write: a socket above the mark starts its drain timeout, checked by the sweep. */
  #watchDrain (socket: WebSocket, transport: Duplex | null): void {
    const state = stateOf(socket)
    if (state.congestedSince !== undefined) return
    const buffered = transport !== null ? transport.writableLength : socket.bufferedAmount
    if (buffered <= this.#options.sendHighWaterMark) return
    state.congestedSince = Date.now()
    this.#congested.add(socket)
  }
}
