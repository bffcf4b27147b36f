import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import type { SessionStats } from '../stats.js'
import { CLOSE_TRY_AGAIN_LATER, COALESCE_FLUSH_BYTES, SLOW_CONSUMER_GRACE } from '../constants.js'
import { deflatedEnvelope, type EnvelopeFrame, type Outbound } from '../messages/outbound.js'
import { stateOf } from '../sessions/socket-state.js'
import type { EncodedData } from '../wire/encode.js'
import { CoalescingWriter, directTransport, frameOf, transportOf } from '../wire/ws-fast-path.js'

/** Writer limits, from the resolved options. */
export interface WriterOptions {
  readonly sendHighWaterMark: number
  readonly drainTimeout: number
  readonly writeDelay: number
}

// ws exposes readyState constants on the class; the numeric value is part of the WebSocket spec.
const OPEN = 1

/**
 * The only place bytes are written to sockets, and the slow-consumer policy with them: above
 * `sendHighWaterMark` a volatile message is skipped, a socket that stays above it for
 * `drainTimeout` or reaches twice the mark is closed with 1013, so what one socket can pin stays
 * bounded whatever is written to it.
 *
 * With `writeDelay`, fan-outs, and messages for a socket that wrote within the last window, wait in
 * its corked transport until the window ends, so a busy socket gets one write per window. Held bytes
 * are unsent bytes: they count toward the mark, and past the flush threshold they go out at once.
 */
export class SocketWriter {
  readonly #options: WriterOptions
  readonly #stats: SessionStats
  readonly #coalescer: CoalescingWriter
  readonly #flushBytes: number
  /** Sockets above the mark, with the time they went above it in their state. */
  readonly #congested = new Set<WebSocket>()
  /** Sockets closed with 1013, terminated if still open at the deadline. */
  readonly #slowClosing = new Map<WebSocket, number>()
  /** Sockets holding frames until their write-delay window ends, and the one timer that ends it. */
  readonly #delayed = new Set<WebSocket>()
  #delayTimer: NodeJS.Timeout | undefined
  readonly #endWindow = (): void => {
    this.#delayTimer = undefined
    this.flush()
  }

  constructor (options: WriterOptions, stats: SessionStats) {
    this.#options = options
    this.#stats = stats
    // Below the high-water mark, or a burst of small frames would count as a slow reader.
    this.#flushBytes = Math.min(COALESCE_FLUSH_BYTES, Math.ceil(options.sendHighWaterMark / 2))
    this.#coalescer = new CoalescingWriter(this.#flushBytes)
  }

  /** A message for a plain websocket client: the raw payload (a fan-out compresses it once for deflate sockets). */
  writeRaw (socket: WebSocket, outbound: Outbound, volatile: boolean): boolean {
    const state = stateOf(socket)
    const deflate = outbound.shared ? state.deflate : undefined
    const transport = directTransport(socket, state.plain || deflate !== undefined)
    if (!this.#admit(socket, transport, volatile)) return false
    if (transport !== null) this.#put(socket, transport, deflate === undefined ? outbound.rawFrame() : outbound.deflatedFrame(deflate), undefined, !outbound.shared)
    else socket.send(outbound.raw.payload, { binary: outbound.raw.binary })
    this.#watchDrain(socket, transport)
    this.#stats.messagesOut++
    return true
  }

  /** A message for a glue.v1 client: its envelope (a fan-out's body compressed once for deflate sockets). */
  writeEnvelope (socket: WebSocket, envelope: EnvelopeFrame, volatile: boolean): boolean {
    const state = stateOf(socket)
    const deflate = envelope.fanOut !== undefined ? state.deflate : undefined
    const transport = directTransport(socket, state.plain || deflate !== undefined)
    if (!this.#admit(socket, transport, volatile)) return false
    if (transport !== null && deflate !== undefined && envelope.fanOut !== undefined) {
      const [head, body] = deflatedEnvelope(envelope, envelope.fanOut, deflate)
      this.#put(socket, transport, head, body, false)
    } else {
      this.#writeFrame(socket, transport, envelope, envelope.fanOut === undefined)
    }
    this.#watchDrain(socket, transport)
    this.#stats.messagesOut++
    return true
  }

  /** A replayed message, written by a catch-up that does its own flow control (see `buffered`). */
  writeReplayed (socket: WebSocket, envelope: EnvelopeFrame): void {
    this.#writeFrame(socket, this.#transport(socket), envelope, false)
    this.#stats.messagesOut++
  }

  /** A protocol envelope (reply, welcome, gap), in order with everything else written to the socket. */
  sendTo (socket: WebSocket, envelope: EncodedData): void {
    if (socket.readyState !== OPEN) return
    const transport = this.#transport(socket)
    if (!this.#admit(socket, transport, false)) return
    if (transport !== null) this.#put(socket, transport, frameOf(envelope), undefined, true)
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

  /** The socket closed: nothing to watch any more, and what it held for its window is dropped with its transport. */
  forget (socket: WebSocket): void {
    this.#congested.delete(socket)
    this.#slowClosing.delete(socket)
    if (this.#delayed.delete(socket)) stateOf(socket).delaying = false
  }

  /** Ends every write-delay window now: held frames go to the kernel (at the window's end, and before shutdown closes the sockets). */
  flush (): void {
    if (this.#delayTimer !== undefined) {
      clearTimeout(this.#delayTimer)
      this.#delayTimer = undefined
    }
    const now = Date.now()
    for (const socket of this.#delayed) this.#release(socket, now)
  }

  /** Sockets holding frames for their write-delay window. */
  get delayed (): number {
    return this.#delayed.size
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

  #writeFrame (socket: WebSocket, transport: Duplex | null, envelope: EnvelopeFrame, eager: boolean): void {
    if (transport !== null) {
      this.#put(socket, transport, envelope.head, envelope.body, eager)
    } else {
      // ws frames (and compresses) this one itself.
      socket.send(Buffer.concat([envelope.prefix, envelope.body]), { binary: envelope.binary })
    }
  }

  /**
   * Writes one frame (in one or two parts) to a socket's transport: held for its window, or coalesced
   * within the tick; `eager` (a message for one session) goes out at once if it is the tick's first.
   */
  #put (socket: WebSocket, transport: Duplex, frame: Buffer, rest: Buffer | undefined, eager: boolean): void {
    if (this.#options.writeDelay > 0 && this.#holds(socket, transport, eager)) {
      transport.write(frame)
      if (rest !== undefined) transport.write(rest)
      if (transport.writableLength >= this.#flushBytes) this.#release(socket, Date.now())
      return
    }
    this.#coalescer.write(transport, frame, rest, eager)
  }

  /**
   * writeDelay: whether this write waits for the end of the socket's window. A fan-out (broadcast,
   * publish, replay) always waits: it goes to many sockets at once, and each of them saves a write per
   * message that joins it. A message for one session waits only on a socket that wrote within the
   * last window, so a quiet socket gets it at once and pays nothing.
   */
  #holds (socket: WebSocket, transport: Duplex, eager: boolean): boolean {
    const state = stateOf(socket)
    if (state.delaying) return true
    if (eager) {
      const now = Date.now()
      if (now - state.writtenAt >= this.#options.writeDelay) {
        state.writtenAt = now
        return false
      }
    }
    // Already corked for this tick: it leaves with the tick's other frames, in the same write.
    if (transport.writableCorked !== 0) return false
    transport.cork()
    state.delaying = true
    this.#delayed.add(socket)
    // One timer for every socket: none waits longer than the window.
    this.#delayTimer ??= setTimeout(this.#endWindow, this.#options.writeDelay)
    return true
  }

  /** Ends one socket's window: what it held goes out in one write, and a new window starts now. */
  #release (socket: WebSocket, now: number): void {
    const state = stateOf(socket)
    state.delaying = false
    state.writtenAt = now
    this.#delayed.delete(socket)
    const transport = transportOf(socket)
    if (transport !== null && transport.writableCorked !== 0) transport.uncork()
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
