import type { FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { Session } from '../sessions/live-session.js'

/** Runs when a socket has joined its session. May be async; a throw or rejection closes that socket with 1011. */
export type ConnectListener = (session: Session, socket: WebSocket, request: FastifyRequest) => unknown
/**
 * Runs for every inbound message: `data` is a string for text frames and a Buffer for binary frames,
 * or, with `messageSchema`, the validated value (typed `Data` through `defineGlueOptions`).
 */
export type MessageListener<Data = string | Buffer> = (session: Session, data: Data, socket: WebSocket) => unknown
/** Runs once a socket has closed, with the close code and reason it closed with. */
export type CloseListener = (session: Session, socket: WebSocket, code: number, reason: string) => unknown

/**
 * Decides whether a client may subscribe its session to a topic. May be async. Without one, every
 * client-initiated subscription is refused.
 */
export type SubscribeAuthorizer = (session: Session, topic: string, socket: WebSocket) => boolean | Promise<boolean>

/**
 * Answers a `client.request(data)`: the return value (or resolved value) is the reply. A thrown
 * error rejects the client's promise with `{ code, message }` only when it has `expose: true`;
 * anything else is logged and reported as `GLUE_REQUEST_FAILED`. `signal` aborts when the socket
 * closes, so long work can stop: nobody is left to read the reply. With `requestSchema`, `data` has
 * passed it (typed `Data` through `defineGlueOptions`).
 */
export type RequestHandler<Data = unknown> = (session: Session, data: Data, socket: WebSocket, signal: AbortSignal) => unknown

/**
 * Names the user behind a websocket handshake from the app's own authentication (a JWT, a server
 * session): a user id, or null/undefined for nobody. May be async. When it differs from the user the
 * session cookie is bound to, the session is rotated on the 101 (see `sessions.login()`). Throwing,
 * rejecting or returning something else refuses the handshake with HTTP 500.
 */
export type IdentifyUser = (request: FastifyRequest) => string | null | undefined | Promise<string | null | undefined>

/** Decides whether a handshake's `Origin` may connect. Throwing counts as a refusal. */
export type OriginCheck = (origin: string, request: FastifyRequest) => boolean
