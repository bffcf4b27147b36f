import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { RawData, WebSocket } from 'ws'
import { CLOSE_INTERNAL_ERROR, CLOSE_MESSAGE_TOO_BIG, CLOSE_POLICY_VIOLATION, CONNECT_QUEUE_BYTES, CONNECT_QUEUE_MESSAGES } from './constants.js'
import type { SessionEvents } from './events.js'
import type { Heartbeat } from './heartbeat.js'
import { sessionTag } from './identity.js'
import type { InboundContext } from './inbound.js'
import { abortRequests, createInboundHandler } from './inbound.js'
import { parseResume, RESUME_PARAM } from './protocol.js'
import type { RateLimiter } from './rate-limit.js'
import { isEnveloped, type Session, type SessionRegistry } from './registry.js'
import type { SessionStats } from './stats.js'

const kSession = Symbol('fastify-websocket-glue.session')
const kPending = Symbol('fastify-websocket-glue.pending')
const kPendingBytes = Symbol('fastify-websocket-glue.pendingBytes')
const kConnecting = Symbol('fastify-websocket-glue.connecting')
const kThrottled = Symbol('fastify-websocket-glue.throttled')

type GlueSocket = WebSocket & {
  [kSession]: Session
  /** Frames that arrived while async connect listeners were still running. */
  [kPending]?: Array<[Buffer, boolean]>
  [kPendingBytes]?: number
  [kConnecting]?: Promise<void>
  /** Set once the socket was closed for its rate: nothing it sends afterwards is dispatched. */
  [kThrottled]?: true
}

const OPEN = 1

// The session tag of a debug line costs a SHA-256 per connection: skip it when debug is off.
function debugEnabled (log: FastifyBaseLogger): boolean {
  return (log as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled?.('debug') === true
}

/** What a connection needs from the plugin instance. */
export interface ConnectionContext extends InboundContext {
  readonly registry: SessionRegistry
  readonly events: SessionEvents
  readonly heartbeat: Heartbeat
  readonly maxPayload: number
  readonly log: FastifyBaseLogger
  readonly rateLimiter: RateLimiter
  readonly stats: SessionStats
  /** True when the plugin registered @fastify/websocket itself, so its error handler is ours to replace. */
  readonly ownsWebsocket: boolean
}

/** The parts of Node's net.Socket that tie an upgraded socket to its HTTP exchange. */
interface UpgradedTransport {
  _httpMessage?: { detachSocket?: (socket: unknown) => void } | null
}

/**
 * Creates the websocket route handler. The socket listeners are shared functions that find their
 * session through a Symbol, so a connection costs no closures.
 */
export function createConnectionHandler (context: ConnectionContext): (socket: WebSocket, request: FastifyRequest) => void {
  const { registry, events, heartbeat, maxPayload, log, rateLimiter, stats } = context
  const dispatchEnvelope = createInboundHandler(context)

  function dispatch (socket: GlueSocket, buffer: Buffer, isBinary: boolean): void {
    if (isEnveloped(socket)) {
      dispatchEnvelope(socket[kSession], socket, buffer, isBinary)
    } else if (events.has('message')) {
      events.emit('message', [socket[kSession], isBinary ? buffer : buffer.toString('utf8'), socket])
    }
  }

  /**
   * Something the plugin did not expect went wrong while handling this socket: it closes with 1011
   * and the error is logged, but nothing a client sends can throw out of a listener.
   */
  function failSocket (socket: GlueSocket, err: unknown): void {
    stats.internalErrors++
    log.error({ err, session: socket[kSession] === undefined ? undefined : sessionTag(socket[kSession].id) }, 'websocket handling failed')
    if (socket.readyState === OPEN) socket.close(CLOSE_INTERNAL_ERROR, 'internal error')
    else socket.terminate()
  }

  function onMessage (this: WebSocket, raw: RawData, isBinary: boolean): void {
    const socket = this as GlueSocket
    try {
      receive(socket, raw as Buffer, isBinary)
    } catch (err) {
      failSocket(socket, err)
    }
  }

  // With binaryType 'nodebuffer' ws hands over one Buffer, fragments already joined.
  function receive (socket: GlueSocket, buffer: Buffer, isBinary: boolean): void {
    // ws enforces maxPayload itself unless the app registered @fastify/websocket with a larger one.
    if (buffer.length > maxPayload) {
      log.info({ session: sessionTag(socket[kSession].id), bytes: buffer.length }, 'websocket message too big')
      socket.close(CLOSE_MESSAGE_TOO_BIG, 'message too big')
      return
    }
    // ws still emits messages while the close handshake runs; a throttled socket's are dropped.
    if (socket[kThrottled] === true) return
    if (!rateLimiter(socket, Date.now())) {
      socket[kThrottled] = true
      stats.rateLimitCloses++
      log.info({ session: sessionTag(socket[kSession].id) }, 'websocket rate limit exceeded')
      socket.close(CLOSE_POLICY_VIOLATION, 'rate limit exceeded')
      return
    }
    stats.messagesIn++
    registry.heardFrom(socket[kSession])
    const pending = socket[kPending]
    if (pending === undefined) {
      dispatch(socket, buffer, isBinary)
      return
    }
    pending.push([buffer, isBinary])
    socket[kPendingBytes] = (socket[kPendingBytes] ?? 0) + buffer.length
    // An async onConnect is still running: let TCP hold the rest back rather than this process.
    if (pending.length >= CONNECT_QUEUE_MESSAGES || (socket[kPendingBytes] as number) >= CONNECT_QUEUE_BYTES) socket.pause()
  }

  function onClose (this: WebSocket, code: number, reason: Buffer): void {
    const socket = this as GlueSocket
    const session = socket[kSession]
    try {
      heartbeat.delete(socket)
      registry.leave(session, socket)
      abortRequests(socket)
      if (debugEnabled(log)) log.debug({ session: sessionTag(session.id), code }, 'websocket closed')
    } catch (err) {
      stats.internalErrors++
      log.error({ err, session: sessionTag(session.id) }, 'websocket close handling failed')
    }
    const emitClose = (): void => { events.emit('close', [session, socket, code, reason.toString('utf8')]) }
    // Close listeners run after connect listeners have settled and pending messages went out.
    if (socket[kConnecting] !== undefined) {
      socket[kConnecting].then(emitClose, emitClose)
    } else {
      emitClose()
    }
  }

  function onError (this: WebSocket, err: Error): void {
    // ws has already sent the close frame (1002, 1007, 1009); terminating here could cut it off.
    log.info({ err, session: sessionTag((this as GlueSocket)[kSession].id) }, 'websocket peer error')
  }

  /**
   * Lets go of the HTTP exchange once the socket is upgraded: @fastify/websocket leaves the
   * ServerResponse (and through it the request and its headers) on the net socket, and its error
   * listener closes over the Fastify request and reply, about 3 KB per connection in all.
   */
  function releaseHandshake (socket: WebSocket): void {
    const transport = (socket as unknown as { _socket?: UpgradedTransport })._socket
    transport?._httpMessage?.detachSocket?.(transport)
    if (context.ownsWebsocket) {
      socket.removeAllListeners('error')
      socket.on('error', onError)
    }
  }

  function failConnect (socket: GlueSocket): void {
    if (socket.readyState === OPEN) socket.close(CLOSE_INTERNAL_ERROR, 'connect listener failed')
  }

  /** The async connect listeners settled: deliver what waited, or close with 1011 when they failed. */
  function connected (socket: GlueSocket, ok: boolean): void {
    const pending = socket[kPending] ?? []
    socket[kPending] = undefined
    socket[kPendingBytes] = undefined
    socket[kConnecting] = undefined
    if (!ok) {
      failConnect(socket)
      return
    }
    for (const [buffer, isBinary] of pending) dispatch(socket, buffer, isBinary)
    if (socket.isPaused) socket.resume()
  }

  return function onSocket (socket: WebSocket, request: FastifyRequest): void {
    const glueSocket = socket as GlueSocket
    try {
      open(glueSocket, request)
    } catch (err) {
      failSocket(glueSocket, err)
    }
  }

  function open (socket: GlueSocket, request: FastifyRequest): void {
    // admitHandshake guarantees the id; listeners are attached before any await, so no message is missed.
    const resume = parseResume((request.query as Record<string, unknown> | undefined)?.[RESUME_PARAM])
    const session = registry.join(request.sessionId as string, socket, request.ip, resume)
    socket[kSession] = session
    socket.on('message', onMessage)
    socket.on('close', onClose)
    releaseHandshake(socket)
    heartbeat.add(socket)
    if (debugEnabled(request.log)) request.log.debug({ session: sessionTag(session.id) }, 'websocket connected')

    const result = events.emit('connect', [session, socket, request])
    if (result === false) {
      failConnect(socket)
    } else if (result !== true) {
      socket[kPending] = []
      socket[kConnecting] = result.then((ok) => {
        try {
          connected(socket, ok)
        } catch (err) {
          failSocket(socket, err)
        }
      })
    }
  }
}
