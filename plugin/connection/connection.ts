import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { RawData, WebSocket } from 'ws'
import { closeCodeLabel } from '../stats.js'
import { CLOSE_INTERNAL_ERROR, CLOSE_MESSAGE_TOO_BIG, CLOSE_POLICY_VIOLATION, CONNECT_QUEUE_BYTES, CONNECT_QUEUE_MESSAGES } from '../constants.js'
import type { Resume } from '../delivery/resume.js'
import { sessionTag } from '../handshake/identity.js'
import { hasState, stateOf } from '../sessions/socket-state.js'
import { GLUE_PROTOCOL, parseResume, RESUME_PARAM } from '../wire/protocol.js'
import type { Heartbeat } from './heartbeat.js'
import { abortRequests, createInboundHandler, createMessageHandler, type InboundContext } from './inbound.js'
import type { RateLimiter } from './rate-limit.js'

const OPEN = 1

// The session tag of a debug line costs a SHA-256 per connection: skip it when debug is off.
function debugEnabled (log: FastifyBaseLogger): boolean {
  return (log as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled?.('debug') === true
}

/** What a connection needs from the plugin instance. */
export interface ConnectionContext extends InboundContext {
  readonly resume: Resume
  readonly heartbeat: Heartbeat
  readonly maxPayload: number
  readonly rateLimiter: RateLimiter
  /** True when the plugin registered @fastify/websocket itself, so its error handler is ours to replace. */
  readonly ownsWebsocket: boolean
  /** True when `maxSocketsPerAddress` is on, so sockets are counted per `request.ip`. */
  readonly countsAddresses: boolean
}

/** The parts of Node's net.Socket that tie an upgraded socket to its HTTP exchange. */
interface UpgradedTransport {
  _httpMessage?: { detachSocket?: (socket: unknown) => void } | null
}

/**
 * Creates the websocket route handler: a socket joins its session, glue.v1 sockets get their
 * welcome, and inbound frames go to the hooks or the envelope dispatcher. The listeners are shared
 * functions that find everything through the socket's state, so a connection costs no closures,
 * and none of them lets an exception out: the socket closes with 1011 instead.
 */
export function createConnectionHandler (context: ConnectionContext): (socket: WebSocket, request: FastifyRequest) => void {
  const { store, writer, resume, events, heartbeat, maxPayload, log, rateLimiter, stats } = context
  const dispatchEnvelope = createInboundHandler(context)
  const handleMessage = createMessageHandler(context)

  function dispatch (socket: WebSocket, buffer: Buffer, isBinary: boolean): void {
    const state = stateOf(socket)
    if (state.enveloped) {
      dispatchEnvelope(state.session, socket, buffer, isBinary)
    } else if (context.checkMessage !== undefined || events.has('message')) {
      handleMessage(state.session, socket, isBinary ? buffer : buffer.toString('utf8'))
    }
  }

  /** Something the plugin did not expect went wrong while handling this socket: 1011 and an error log. */
  function failSocket (socket: WebSocket, err: unknown): void {
    stats.internalErrors++
    const session = hasState(socket) ? sessionTag(stateOf(socket).session.id) : undefined
    log.error({ err, session }, 'websocket handling failed')
    if (socket.readyState === OPEN) socket.close(CLOSE_INTERNAL_ERROR, 'internal error')
    else socket.terminate()
  }

  function onMessage (this: WebSocket, raw: RawData, isBinary: boolean): void {
    try {
      // With binaryType 'nodebuffer' ws hands over one Buffer, fragments already joined.
      receive(this, raw as Buffer, isBinary)
    } catch (err) {
      failSocket(this, err)
    }
  }

  function receive (socket: WebSocket, buffer: Buffer, isBinary: boolean): void {
    const state = stateOf(socket)
    // ws enforces maxPayload itself unless the app registered @fastify/websocket with a larger one.
    if (buffer.length > maxPayload) {
      log.info({ session: sessionTag(state.session.id), bytes: buffer.length }, 'websocket message too big')
      socket.close(CLOSE_MESSAGE_TOO_BIG, 'message too big')
      return
    }
    // ws still emits messages while the close handshake runs; a throttled socket's are dropped.
    if (state.throttled) return
    if (!rateLimiter(socket, Date.now())) {
      state.throttled = true
      stats.rateLimitCloses++
      log.info({ session: sessionTag(state.session.id) }, 'websocket rate limit exceeded')
      socket.close(CLOSE_POLICY_VIOLATION, 'rate limit exceeded')
      return
    }
    stats.messagesIn++
    state.session.heardFrom = true
    if (state.gates === 0) {
      dispatch(socket, buffer, isBinary)
      return
    }
    const pending = state.pending ??= []
    pending.push([buffer, isBinary])
    state.pendingBytes += buffer.length
    // An async onConnect (or a cluster welcome) is still running: let TCP hold the rest back rather than this process.
    if (pending.length >= CONNECT_QUEUE_MESSAGES || state.pendingBytes >= CONNECT_QUEUE_BYTES) socket.pause()
  }

  function onClose (this: WebSocket, code: number, reason: Buffer): void {
    const state = stateOf(this)
    const session = state.session
    try {
      heartbeat.delete(this)
      writer.forget(this)
      store.leave(this)
      abortRequests(this)
      stats.closesByCode[closeCodeLabel(code)]++
      if (debugEnabled(log)) log.debug({ session: sessionTag(session.id), code }, 'websocket closed')
    } catch (err) {
      stats.internalErrors++
      log.error({ err, session: sessionTag(session.id) }, 'websocket close handling failed')
    }
    const emitClose = (): void => { events.emit('close', [session, this, code, reason.toString('utf8')]) }
    // Close listeners run after connect listeners have settled and pending messages went out.
    if (state.connecting !== undefined) state.connecting.then(emitClose, emitClose)
    else emitClose()
  }

  function onError (this: WebSocket, err: Error): void {
    // ws has already sent the close frame (1002, 1007, 1009); terminating here could cut it off.
    log.info({ err, session: sessionTag(stateOf(this).session.id) }, 'websocket peer error')
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

  function failConnect (socket: WebSocket): void {
    if (socket.readyState === OPEN) socket.close(CLOSE_INTERNAL_ERROR, 'connect listener failed')
  }

  /**
   * Holds the socket's inbound frames until `ready` settles: an async onConnect, or a cluster
   * welcome that needs a round trip. When the last wait ends, what waited is dispatched in order;
   * when onConnect failed, the socket closes with 1011 and what waited is dropped.
   */
  function waitFor (socket: WebSocket, ready: Promise<boolean>): Promise<void> {
    const state = stateOf(socket)
    state.gates++
    return ready.then((ok) => {
      state.gates--
      if (!ok) {
        state.pending = undefined
        failConnect(socket)
        return
      }
      if (state.gates > 0) return
      const pending = state.pending ?? []
      state.pending = undefined
      state.pendingBytes = 0
      for (const [buffer, isBinary] of pending) dispatch(socket, buffer, isBinary)
      if (socket.isPaused) socket.resume()
    }).catch((err: unknown) => { failSocket(socket, err) })
  }

  function open (socket: WebSocket, request: FastifyRequest): void {
    // The handshake guarantees the id; listeners are attached before any await, so no message is missed.
    // request.ip costs a getpeername(): only the per-address limit needs it.
    const address = context.countsAddresses ? request.ip : ''
    const session = store.join(request.sessionId as string, socket, address, socket.protocol === GLUE_PROTOCOL, request.sessionUserId)
    socket.on('message', onMessage)
    socket.on('close', onClose)
    releaseHandshake(socket)
    heartbeat.add(socket)
    const state = stateOf(socket)
    if (state.enveloped) {
      const welcomed = resume.welcome(session, socket, parseResume((request.query as Record<string, unknown> | undefined)?.[RESUME_PARAM]))
      // waitFor never rejects: a failure closes the socket.
      if (welcomed !== undefined) waitFor(socket, welcomed.then(() => true)).catch(() => {})
    }
    if (debugEnabled(request.log)) request.log.debug({ session: sessionTag(session.id) }, 'websocket connected')

    const result = events.emit('connect', [session, socket, request])
    if (result === false) failConnect(socket)
    else if (result !== true) state.connecting = waitFor(socket, result)
  }

  return function onSocket (socket: WebSocket, request: FastifyRequest): void {
    try {
      open(socket, request)
    } catch (err) {
      failSocket(socket, err)
    }
  }
}
