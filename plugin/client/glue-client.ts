// Browser client for fastify-websocket-glue. No runtime dependencies, and no DOM-only types in
// its signatures, so it also runs in Node with the `ws` package injected as `WebSocket`.
// The glue.v1 wire protocol it speaks is described in docs/protocol.md. This entry re-exports the
// public API; each module under plugin/client/ holds one part of the client.
export { GlueClient, type GlueSubscribeOptions } from './client.js'
export type { GlueData, GlueSendData, GlueMember } from './envelope.js'
export { GlueClientError, type GlueErrorCode } from './errors.js'
export type {
  GlueClientEventMap,
  GlueCloseEvent,
  GlueGapEvent,
  GlueListener,
  GlueMemberList,
  GlueMembersStaleEvent,
  GluePresenceEvent,
  GlueMessageEvent,
  GlueReconnectingEvent,
  GlueRevokedEvent,
  GlueState,
  GlueStateChangeEvent,
  GlueTopicEvent,
  GlueTopicListener
} from './events.js'
export type { GlueClientOptions, GlueRequestOptions, GlueResumePoint } from './options.js'
export type { GlueSocket, GlueSocketConstructor } from './socket.js'
