import type { FastifyBaseLogger } from 'fastify'
import type { WebSocket } from 'ws'
import type { ClusterMessage, GlueAdapter } from '../adapters/adapter.js'
import type { SessionEvents } from '../api/events.js'
import type { RequestHandler, SubscribeAuthorizer } from '../api/hooks.js'
import type { SocketWriter } from '../delivery/socket-writer.js'
import { REPLY_ERRORS, type ReplyError } from '../errors.js'
import { sessionTag } from '../handshake/identity.js'
import type { Session } from '../sessions/live-session.js'
import { stateOf } from '../sessions/socket-state.js'
import type { SessionStore } from '../sessions/store.js'
import type { SessionStats } from '../stats.js'
import { parseInbound, replyEnvelope, type RequestId } from '../wire/protocol.js'
import type { CheckResult, DataCheck } from './validation.js'
import type { TopicHistoryReplies } from '../delivery/topic-history.js'
import type { HistoryRequest } from '../topics/position.js'
import type { TopicPresence } from '../topics/presence.js'
import type { TopicRules } from '../topics/rules.js'
import { chargeRate } from './rate-limit.js'
import { HISTORY_MESSAGES_PER_TOKEN } from '../constants.js'

/** What the glue.v1 dispatcher needs from the plugin instance. */
export interface InboundContext {
  readonly store: SessionStore
  readonly writer: SocketWriter
  readonly adapter: GlueAdapter
  readonly events: SessionEvents
  readonly log: FastifyBaseLogger
  readonly stats: SessionStats
  /** `messageSchema` and `requestSchema`, compiled; undefined without one. */
  readonly checkMessage: DataCheck | undefined
  readonly checkRequest: DataCheck | undefined
  readonly authorizeSubscribe: SubscribeAuthorizer | undefined
  readonly answerRequest: RequestHandler | undefined
  readonly maxTopicsPerSession: number
  readonly maxPendingRequests: number
  /** Topic history and presence (issue 17). */
  readonly topicRules: TopicRules
  readonly topicHistory: TopicHistoryReplies
  readonly presence: TopicPresence
}

/** The socket closed: request handlers still running for it are told through their signal. */
export function abortRequests (socket: WebSocket): void {
  const aborts = stateOf(socket).aborts
  if (aborts === undefined) return
  for (const controller of aborts) controller.abort()
  aborts.clear()
}

interface ExposedError { expose?: unknown, code?: unknown, message?: unknown }

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function'
}

const BINARY_REFUSED: CheckResult = { ok: false, message: 'a binary message cannot match messageSchema' }
const NOT_JSON: CheckResult = { ok: false, message: 'the message is not JSON' }

/** A plain socket's text, parsed for `messageSchema`. */
function checkText (check: DataCheck, text: string): CheckResult {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return NOT_JSON
  }
  return check(value)
}

/**
 * Creates what hands a client message to the `message` listeners: as it came, or, with
 * `messageSchema`, its value once validated. `value` is the envelope's element for glue.v1 text;
 * a plain socket's text is parsed here. An invalid message is dropped, logged and counted.
 */
export function createMessageHandler (context: InboundContext): (session: Session, socket: WebSocket, data: string | Buffer, value?: unknown) => void {
  const { events, log, stats, checkMessage } = context
  return function handleMessage (session, socket, data, value) {
    if (checkMessage === undefined) {
      if (events.has('message')) events.emit('message', [session, data, socket])
      return
    }
    const result = typeof data !== 'string' ? BINARY_REFUSED : value === undefined ? checkText(checkMessage, data) : checkMessage(value)
    if (result.ok) {
      events.emit('message', [session, result.value as string, socket])
      return
    }
    stats.invalidMessages++
    log.info({ session: sessionTag(session.id), reason: result.message }, 'invalid client message dropped')
  }
}

/** Creates the dispatcher of client envelopes: messages, requests and subscriptions. */
export function createInboundHandler (context: InboundContext): (session: Session, socket: WebSocket, raw: Buffer, isBinary: boolean) => void {
  const { store, writer, adapter, log } = context
  const handleMessage = createMessageHandler(context)

  /**
   * Changes a subscription through the adapter, so it holds on every node, and replies once it has
   * its place in the cluster order: a publish the client triggers after the reply then reaches it.
   */
  function changeSubscription (socket: WebSocket, id: RequestId, message: ClusterMessage & { kind: 'subscribe' | 'unsubscribe' }, then?: (ok: boolean) => void): void {
    // This node knows its sessions' topics: a change that changes nothing never reaches the adapter,
    // so no client can churn the shared store.
    // It compares with what the node will hold once its own changes on their way are applied: in
    // cluster mode they come back from Redis after the reply.
    const subscribed = store.willBeSubscribed(message.sessionId, message.topic)
    if (subscribed === (message.kind === 'subscribe')) {
      reply(socket, id, null, message.kind === 'subscribe' ? message.topic : false)
      then?.(true)
      return
    }
    let changed: number
    store.changing(message.sessionId, message.topic, message.kind === 'subscribe')
    try {
      changed = adapter.emit(message)
    } catch (err) {
      store.unchanged(message.sessionId, message.topic)
      log.warn({ err }, 'subscription change refused')
      reply(socket, id, REPLY_ERRORS.unavailable)
      then?.(false)
      return
    }
    const value = message.kind === 'subscribe' ? (changed === 1 ? message.topic : null) : changed === 1
    const answer = (): void => {
      if (value === null) reply(socket, id, REPLY_ERRORS.refused)
      else reply(socket, id, null, value)
      then?.(value !== null)
    }
    const pending = adapter.settled()
    if (pending === undefined) answer()
    else pending.then(answer).catch((err: unknown) => { log.error({ err }, 'answering a client failed') })
  }

  /**
   * Counts a request of `socket` in and returns the function that counts it out (once, whatever
   * path ends it); undefined, after an error reply, when the socket has as many as it may.
   */
  function begin (socket: WebSocket, id: RequestId): (() => void) | undefined {
    const state = stateOf(socket)
    if (state.inFlight >= context.maxPendingRequests) {
      reply(socket, id, REPLY_ERRORS.tooManyRequests)
      return undefined
    }
    state.inFlight++
    let counted = true
    return () => {
      if (counted) state.inFlight--
      counted = false
    }
  }

  function reply (socket: WebSocket, id: RequestId, error: ReplyError | null, value?: unknown): void {
    let envelope
    try {
      envelope = replyEnvelope(id, error, value)
    } catch (err) {
      log.error({ err }, 'request reply is not serialisable')
      envelope = replyEnvelope(id, REPLY_ERRORS.requestFailed)
    }
    writer.sendTo(socket, envelope)
  }

  // Settles a sync or async result, so sync handlers reply in the same tick.
  function settle (result: unknown, onValue: (value: unknown) => void, onError: (err: unknown) => void): void {
    if (!isThenable(result)) {
      onValue(result)
      return
    }
    Promise.resolve(result).then(onValue, onError).catch((err: unknown) => { log.error({ err }, 'answering a client failed') })
  }

  function handleRequest (session: Session, socket: WebSocket, id: RequestId, data: unknown): void {
    const handler = context.answerRequest
    if (handler === undefined) {
      reply(socket, id, REPLY_ERRORS.noHandler)
      return
    }
    if (context.checkRequest !== undefined) {
      const checked = context.checkRequest(data)
      if (!checked.ok) {
        context.stats.invalidMessages++
        log.info({ session: sessionTag(session.id), reason: checked.message }, 'invalid request data refused')
        reply(socket, id, { code: REPLY_ERRORS.invalidData.code, message: checked.message })
        return
      }
      data = checked.value
    }
    const counted = begin(socket, id)
    if (counted === undefined) return
    const controller = new AbortController()
    const state = stateOf(socket)
    const aborts = state.aborts ??= new Set()
    aborts.add(controller)
    const done = (): void => {
      counted()
      aborts.delete(controller)
    }
    const fail = (err: unknown): void => {
      done()
      const exposed = err as ExposedError | null
      if (exposed?.expose === true && typeof exposed.message === 'string') {
        reply(socket, id, { code: typeof exposed.code === 'string' ? exposed.code : REPLY_ERRORS.requestFailed.code, message: exposed.message })
        return
      }
      log.error({ err, session: sessionTag(session.id) }, 'request handler failed')
      reply(socket, id, REPLY_ERRORS.requestFailed)
    }
    try {
      settle(handler(session, data, socket, controller.signal), (value) => {
        done()
        reply(socket, id, null, value)
      }, fail)
    } catch (err) {
      fail(err)
    }
  }

  /**
   * Subscribes, then writes the history the client asked for right after the reply: on one node in
   * the same tick; in cluster mode the socket holds the topic's live messages meanwhile.
   */
  function subscribeWithHistory (session: Session, socket: WebSocket, id: RequestId, topic: string, history: HistoryRequest | undefined): void {
    if (history === undefined) {
      changeSubscription(socket, id, { kind: 'subscribe', sessionId: session.id, topic })
      return
    }
    context.topicHistory.hold(socket, topic)
    changeSubscription(socket, id, { kind: 'subscribe', sessionId: session.id, topic }, (ok) => {
      if (ok) context.topicHistory.serve(session, socket, topic, history)
      else context.topicHistory.release(socket, topic, 0)
    })
  }

  /** Answers a member list request of a subscriber of a topic that shows presence. */
  function handleMembers (session: Session, socket: WebSocket, id: RequestId, topic: string): void {
    if (!context.topicRules.presenceOf(topic)) {
      reply(socket, id, REPLY_ERRORS.noPresence)
      return
    }
    if (!store.isSubscribed(session.id, topic)) {
      reply(socket, id, REPLY_ERRORS.notSubscribed)
      return
    }
    const done = begin(socket, id)
    if (done === undefined) return
    context.presence.members(topic).then((list) => {
      done()
      chargeRate(socket, Math.floor(list.members.length / HISTORY_MESSAGES_PER_TOKEN))
      reply(socket, id, null, list)
    }, (err: unknown) => {
      done()
      log.warn({ err, topic }, 'member list failed')
      reply(socket, id, REPLY_ERRORS.unavailable)
    })
  }

  function handleSubscribe (session: Session, socket: WebSocket, id: RequestId, topic: string, history?: HistoryRequest): void {
    const authorize = context.authorizeSubscribe
    if (authorize === undefined) {
      reply(socket, id, REPLY_ERRORS.refused)
      return
    }
    if (atTopicLimit(session.id, topic)) {
      reply(socket, id, REPLY_ERRORS.tooManyTopics)
      return
    }
    const done = begin(socket, id)
    if (done === undefined) return
    const fail = (err: unknown): void => {
      done()
      log.error({ err, session: sessionTag(session.id), topic }, 'subscription check failed')
      reply(socket, id, REPLY_ERRORS.authorizerFailed)
    }
    const decide = (allowed: unknown): void => {
      done()
      // Checked again: other subscriptions may have been granted while an async check ran.
      if (allowed !== true) reply(socket, id, REPLY_ERRORS.refused)
      else if (atTopicLimit(session.id, topic)) reply(socket, id, REPLY_ERRORS.tooManyTopics)
      else subscribeWithHistory(session, socket, id, topic, history)
    }
    try {
      settle(authorize(session, topic, socket), decide, fail)
    } catch (err) {
      fail(err)
    }
  }

  function atTopicLimit (sessionId: string, topic: string): boolean {
    return store.topicCountAsked(sessionId) >= context.maxTopicsPerSession && !store.willBeSubscribed(sessionId, topic)
  }

  return function dispatch (session, socket, raw, isBinary) {
    const envelope = parseInbound(raw, isBinary)
    switch (envelope.kind) {
      case 'message':
        handleMessage(session, socket, envelope.data, envelope.value)
        return
      case 'request':
        handleRequest(session, socket, envelope.id, envelope.data)
        return
      case 'subscribe':
        handleSubscribe(session, socket, envelope.id, envelope.topic, envelope.history)
        return
      case 'members':
        handleMembers(session, socket, envelope.id, envelope.topic)
        return
      case 'unsubscribe':
        changeSubscription(socket, envelope.id, { kind: 'unsubscribe', sessionId: session.id, topic: envelope.topic })
        return
      case 'invalid':
        log.info({ session: sessionTag(session.id), reason: envelope.reason }, 'invalid glue envelope')
        // An envelope with a usable id gets an error reply, so a newer client can probe; others end the socket.
        if (envelope.id !== undefined) {
          reply(socket, envelope.id, envelope.unknownKind
            ? REPLY_ERRORS.unknownKind
            : { code: REPLY_ERRORS.badEnvelope.code, message: envelope.reason })
        } else {
          socket.close(envelope.code, envelope.reason)
        }
    }
  }
}
