import type { FastifyBaseLogger } from 'fastify'
import type { EncodedData } from '../wire/encode.js'
import type { TopicMember } from '../wire/protocol.js'
import type { HistoryRequest } from '../topics/position.js'
import type { TopicHistoryLimits } from '../topics/rules.js'

/**
 * A message that travels between `app.sessions` and the sockets of every node. Payloads are
 * encoded once, by the node that sends them.
 */
export type ClusterMessage =
  | { readonly kind: 'send', readonly sessionId: string, readonly data: EncodedData, readonly volatile: boolean }
  | { readonly kind: 'broadcast', readonly data: EncodedData, readonly except: string | undefined, readonly volatile: boolean }
  | { readonly kind: 'publish', readonly topic: string, readonly data: EncodedData, readonly except: string | undefined, readonly volatile: boolean }
  | { readonly kind: 'close', readonly sessionId: string, readonly code: number, readonly reason: string }
  | { readonly kind: 'subscribe' | 'unsubscribe', readonly sessionId: string, readonly topic: string }
  /** A session without sockets anywhere outlived its grace period: its subscriptions end. */
  | { readonly kind: 'expire', readonly sessionId: string }
  /**
   * A session moves to a new id (login), bound to `userId`: its sockets, outbox, topics and history
   * follow, and every node refuses the old id from then on.
   */
  | { readonly kind: 'rotate', readonly sessionId: string, readonly to: string, readonly userId: string | null }
  /** A session is revoked (logout): every node refuses its id and closes its sockets with 3000. */
  | { readonly kind: 'revoke', readonly sessionId: string }
  /** Every session of a user is revoked: every node refuses the user's cookies issued at or before `before` (ms). */
  | { readonly kind: 'revokeUser', readonly userId: string, readonly before: number }
  /** Closes every socket of every session bound to a user. */
  | { readonly kind: 'closeUser', readonly userId: string, readonly code: number, readonly reason: string }
  /** Members joined and left a topic (null, null: too many to list); for its subscribers' sockets, never kept. */
  | { readonly kind: 'presence', readonly topic: string, readonly joined: TopicMember[] | null, readonly left: TopicMember[] | null }

/** The kinds of `ClusterMessage`. */
export type ClusterMessageKind = ClusterMessage['kind']

/** Cluster-wide counts, from `app.sessions.clusterCounts()`. */
export interface ClusterCounts {
  /** Live nodes (1 with the memory adapter). */
  readonly nodes: number
  /** Sessions with at least one open socket on some node. */
  readonly sessions: number
  /** Open sockets on all nodes. */
  readonly sockets: number
}

/** How an adapter's link to the other nodes is doing, from its optional `health()`. */
export interface AdapterHealth {
  /** Whether messages reach the other nodes now (false while the shared store is unreachable). */
  readonly connected: boolean
  /**
   * Messages routed to this node that it has not applied yet; undefined when unknown (not
   * connected) or when the adapter does not route messages.
   */
  readonly lag?: number
}

/** Where a session stands in the cluster's message order: what a new socket's welcome carries. */
export interface StreamPosition {
  /** Names the shared delivery state; a new one after the shared store lost its data. */
  readonly epoch: string
  /** Messages numbered above it reach the socket; what is at or below it came before. */
  readonly seq: number
}

/** Where a session stands as a socket of it opens, and whether the cluster knew it before. */
export interface WelcomePosition extends StreamPosition {
  /**
   * False when the session had no socket anywhere and no grace period left: a resume point it
   * brings cannot be filled.
   */
  readonly known: boolean
}

/** What a resuming session missed, read back from the shared store. */
export interface ReplayResult {
  /** The session's messages after the resume point, oldest first, with their sequence numbers. */
  readonly messages: ReadonlyArray<{ readonly seq: number, readonly message: ClusterMessage }>
  /** Messages that could not be replayed (limit, age); null when unknown (the store trimmed them). */
  readonly missed: number | null
}

/** Delivery limits an adapter applies to replays, from the plugin's options. */
export interface AdapterLimits {
  readonly outboxLimit: number
  readonly outboxMaxAge: number
  readonly sessionGrace: number
  readonly maxTopicsPerSession: number
  /** How long a revocation must be remembered (ms): a cookie's lifetime and the clock skew it is allowed. */
  readonly revocationLifetime: number
  /** Revocations of each kind a shared store keeps at most (`maxRevocations`). */
  readonly maxRevocations: number
  /** The history limits of a topic (`topicHistory`), or undefined when it keeps none; a shared store keeps at least that much. */
  readonly historyOf?: (topic: string) => TopicHistoryLimits | undefined
}

/** A topic's history read back from a shared store, for a subscribing client or `sessions.history()`. */
export interface TopicHistoryResult {
  /** The store's dataset: positions are `<epoch>.<n>`. */
  readonly epoch: string
  /** Kept text and JSON messages, oldest first, with their numbers and their data as JSON text. */
  readonly entries: ReadonlyArray<{ readonly n: number, readonly json: string }>
  /** Messages asked for that are gone; null when unknown. */
  readonly missed: number | null
}

/** What the plugin gives an adapter: delivery to this node's sockets, and what this node holds. */
export interface AdapterHost {
  /**
   * Applies a message to this node's sockets. `clusterSeq` is its number in the cluster order, `epoch`
   * the dataset that numbered it (a topic message's position);
   * without one (a local adapter) the node numbers it per session. `among` narrows the sessions it
   * may reach (a sharded adapter delivers each shard's copy of a broadcast to that shard's sessions).
   * @returns for send/broadcast/publish/close the number of sockets reached; for subscribe and
   * unsubscribe 1 when membership changed, else 0.
   */
  apply (message: ClusterMessage, clusterSeq?: number, among?: (sessionId: string) => boolean, epoch?: string): number
  /**
   * Messages may have missed this node's sockets (the shared store lost its data, or routed past the
   * node for a while): each glue.v1 socket of the sessions `affects` picks gets a new welcome and
   * reads back what it missed. `epoch` is the shared store's dataset now; a new one is a gap.
   */
  resync (epoch: string, affects?: (sessionId: string) => boolean, announced?: Promise<void>): void
  /** Replaces the topics of a session this node holds (the adapter learnt them in its message order). */
  setTopics (sessionId: string, topics: readonly string[]): void
  /** Topics of a session as this node knows them (complete for the sessions it holds). */
  topicsOf (sessionId: string): string[]
  /** Sessions on this node subscribed to a topic. */
  subscriberCount (topic: string): number
  /** Open sockets of a session on this node. */
  socketCount (sessionId: string): number
  /** Open sockets per session on this node, to announce presence again after an outage. */
  localSessions (): IterableIterator<[sessionId: string, sockets: number]>
  /** Sessions and sockets on this node. */
  localCounts (): { sessions: number, sockets: number }
  /** Sessions bound to a user on this node. */
  sessionsOf (userId: string): string[]
  /**
   * Revocations the shared store holds, for a node that starts or may have missed some: session
   * ids with the time they were revoked, and users with the time up to which their cookies are refused.
   */
  restoreRevocations (sessions: ReadonlyArray<[sessionId: string, at: number]>, users: ReadonlyArray<[userId: string, before: number]>): void
  /**
   * A subscribe or unsubscribe the node emitted will never be applied (the shared store found it
   * changed nothing, or it was not delivered): the node stops waiting for it. A sequencing adapter
   * calls it; a local adapter applies every change at once.
   */
  unchanged (sessionId: string, topic: string): void
  readonly log: FastifyBaseLogger
}

/** What every adapter does: carry messages between `app.sessions` and the sockets of every node. */
interface AdapterBase {
  /** A short name for logs. */
  readonly name: string
  /** Connects; the plugin awaits it during `register`. Rejects when the transport is unreachable. */
  start (host: AdapterHost, limits: AdapterLimits): Promise<void>
  /** Disconnects; called from the plugin's `onClose`. */
  stop (): Promise<void>
  /**
   * Hands a message to every node. Synchronous delivery (memory) returns what the host returned;
   * asynchronous delivery returns 0 for sends and 1 for accepted subscription changes.
   * @throws FST_WSGLUE_CLUSTER_UNAVAILABLE when the transport is down and its buffer is full.
   */
  emit (message: ClusterMessage): number
  /** Resolves once every message emitted so far has its place in the cluster order; undefined when none is pending. */
  settled (): Promise<void> | undefined
  /**
   * Optional: how many messages the adapter failed to deliver outright (the shared store refused a
   * command: logged, not retried). `settled()` resolves for them too; a pipe compares this count
   * before and after, so its source does not acknowledge items that may be among them.
   */
  readonly undelivered?: number
  /** A socket of a session, bound to `userId` (or anonymous), opened on this node (presence); or closed. */
  socketOpened (sessionId: string, userId: string | null): void
  socketClosed (sessionId: string): void
  /** Open sockets of a session on every node. */
  presence (sessionId: string): Promise<number>
  /** Live nodes, sessions and sockets on every node. */
  clusterCounts (): Promise<ClusterCounts>
  /** Topics of a session, cluster-wide. */
  clusterTopicsOf (sessionId: string): Promise<string[]>
  /** Sessions subscribed to a topic, cluster-wide. */
  clusterSubscriberCount (topic: string): Promise<number>
  /**
   * Optional: the state of the link to the other nodes, read by `app.sessions.gauges()` (a metrics
   * scrape). Should answer promptly: a rejection, or no answer within 1 s, reads as not connected.
   */
  health? (): Promise<AdapterHealth>
  /** Sessions bound to a user, cluster-wide. */
  clusterSessionsOf (userId: string): Promise<string[]>
  /**
   * A fresh session id, from `mint`, that the adapter keeps where it keeps `sessionId` (a sharded
   * adapter: on the same shard), so a rotation moves the session's state within one store.
   */
  colocate (sessionId: string, mint: () => string): string
}

/** An adapter that leaves numbering and outboxes to each node: the memory adapter. */
export interface LocalAdapter extends AdapterBase {
  readonly sequenced: false
}

/**
 * An adapter that numbers every message cluster-wide and keeps them for resume (the nodes keep no
 * outbox): the Redis adapter.
 */
export interface SequencedAdapter extends AdapterBase {
  readonly sequenced: true
  /**
   * Where a session stands for the socket whose `socketOpened` was just called: every message to
   * the session numbered above it reaches this node. Never rejects; without the shared store it
   * answers from what this node knows.
   */
  welcomePosition (sessionId: string): Promise<WelcomePosition>
  /** The session's messages after `afterSeq` up to `untilSeq`, within the resume limits. */
  replay (sessionId: string, afterSeq: number, untilSeq: number): Promise<ReplayResult>
  /**
   * Optional: a topic's history as the shard of `sessionId` (or the first shard) numbered it, within
   * `limits` and what `request` asks. Rejects with FST_WSGLUE_CLUSTER_UNAVAILABLE without the store.
   */
  topicHistory? (topic: string, request: HistoryRequest, limits: TopicHistoryLimits, sessionId?: string): Promise<TopicHistoryResult>
  /** Optional: cluster-wide presence (see topics/presence.ts); without it members are counted per node. */
  announceMembers? (topic: string, counts: ReadonlyArray<[key: string, count: number]>, full: boolean): Promise<{ joined: string[], left: string[] }>
  clusterMembers? (topic: string, cap: number): Promise<{ keys: string[], count: number }>
}

/**
 * The transport between `app.sessions` and the sockets of every node. Adapters never touch
 * sockets: they hand messages to the host.
 */
export type GlueAdapter = LocalAdapter | SequencedAdapter
