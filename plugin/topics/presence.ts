import type { FastifyBaseLogger } from 'fastify'
import type { WebSocket } from 'ws'
import type { SocketWriter } from '../delivery/socket-writer.js'
import type { LiveSession } from '../sessions/live-session.js'
import { stateOf } from '../sessions/socket-state.js'
import type { SessionStore } from '../sessions/store.js'
import type { SessionStats } from '../stats.js'
import { presenceEnvelope, type TopicMember } from '../wire/protocol.js'
import { memberKeyOf, memberOf } from './members.js'
import type { TopicRules } from './rules.js'

const OPEN = 1

/** Presence limits, from the resolved options. */
export interface PresenceOptions {
  readonly presenceInterval: number
  readonly maxMembers: number
}

/** A topic's member list as `members()` answers it: at most `maxMembers`, and how many there are. */
export interface MemberList {
  readonly members: TopicMember[]
  readonly count: number
}

/**
 * Cluster mode: where a node announces its members of a topic and learns who joined or left the
 * whole cluster (the Redis adapter). Counts are absolute, so announcing twice changes nothing.
 */
export interface ClusterPresence {
  /** Sets this node's count of each member (0: gone here); `full` replaces every count of the topic. */
  announceMembers (topic: string, counts: ReadonlyArray<[key: string, count: number]>, full: boolean): Promise<{ joined: string[], left: string[] }>
  /** The topic's members on every node, at most `cap`. */
  clusterMembers (topic: string, cap: number): Promise<{ keys: string[], count: number }>
  /** Tells every node's subscribers of the topic who joined and left (null, null: ask again). */
  emitPresence (topic: string, joined: TopicMember[] | null, left: TopicMember[] | null): void
}

/**
 * Who is subscribed to each topic that shows presence. A member is present while one of its
 * sessions is subscribed and has a socket open (on some node). Changes are not sent as they
 * happen: a change marks the topic, and once per `presenceInterval` each marked topic's members
 * are counted again and only the net difference goes out, in one batch. So a client that
 * subscribes and unsubscribes (or reconnects) in a loop costs its room at most one join and one
 * leave per interval, whatever its rate.
 */
export class TopicPresence {
  readonly #rules: TopicRules
  readonly #store: SessionStore
  readonly #writer: SocketWriter
  readonly #options: PresenceOptions
  readonly #stats: SessionStats
  readonly #log: FastifyBaseLogger
  #cluster: ClusterPresence | undefined
  /** Topics whose members may have changed since the last batch. */
  #dirty = new Set<string>()
  /** One node: each topic's members as last told. Cluster: this node's count of each member as last announced. */
  readonly #known = new Map<string, Map<string, number>>()
  /** Cluster: topics to announce in full (after this node's state in Redis was lost or withdrawn). */
  #full = new Set<string>()
  #timer: NodeJS.Timeout | undefined

  constructor (rules: TopicRules, store: SessionStore, writer: SocketWriter, options: PresenceOptions, stats: SessionStats, log: FastifyBaseLogger) {
    this.#rules = rules
    this.#store = store
    this.#writer = writer
    this.#options = options
    this.#stats = stats
    this.#log = log
  }

  /** Cluster mode: members are counted across nodes through `cluster`. */
  useCluster (cluster: ClusterPresence): void {
    this.#cluster = cluster
  }

  start (): void {
    if (!this.#rules.anyPresence) return
    this.#timer = setInterval(() => { this.flush() }, this.#options.presenceInterval)
    this.#timer.unref()
  }

  stop (): void {
    clearInterval(this.#timer)
  }

  /** A topic's subscribers changed. */
  touch (topic: string): void {
    if (this.#rules.anyPresence && this.#rules.presenceOf(topic)) this.#dirty.add(topic)
  }

  /** A session opened or closed a socket, moved to a user, or left its topics: each of its topics may change. */
  touchSession (sessionId: string): void {
    if (!this.#rules.anyPresence) return
    for (const topic of this.#store.topicsOf(sessionId)) this.touch(topic)
  }

  /** Cluster mode: this node's counts in the shared store were lost or withdrawn; announce every topic again. */
  reannounce (): void {
    for (const topic of this.#known.keys()) {
      this.#full.add(topic)
      this.#dirty.add(topic)
    }
  }

  /** Counts the members of every marked topic again and sends the net changes (one batch per topic). */
  flush (): void {
    const topics = this.#dirty
    this.#dirty = new Set()
    for (const topic of topics) {
      try {
        this.#flushTopic(topic)
      } catch (err) {
        this.#log.error({ err, topic }, 'presence update failed')
      }
    }
  }

  /** The members of a topic: on one node counted now; with Redis, asked of the cluster. */
  async members (topic: string): Promise<MemberList> {
    const cap = this.#options.maxMembers
    if (!this.#rules.presenceOf(topic)) return { members: [], count: 0 }
    if (this.#cluster !== undefined) {
      const { keys, count } = await this.#cluster.clusterMembers(topic, cap)
      return { members: keys.slice(0, cap).map(memberOf), count }
    }
    // Counted at the last batch, unless something changed since: a list costs no walk of the subscribers.
    const counts = !this.#dirty.has(topic) && this.#known.has(topic) ? this.#known.get(topic) as Map<string, number> : this.#count(topic)
    const members: TopicMember[] = []
    for (const key of counts.keys()) {
      if (members.length >= cap) break
      members.push(memberOf(key))
    }
    return { members, count: counts.size }
  }

  /** Writes a batch of changes to this node's subscribers of the topic (`among`: the sessions a shard's copy is for). */
  deliver (topic: string, joined: TopicMember[] | null, left: TopicMember[] | null, among?: (sessionId: string) => boolean): number {
    const envelope = presenceEnvelope(topic, joined, left)
    let count = 0
    for (const session of this.#store.subscribers(topic)) {
      if (among !== undefined && !among(session.id)) continue
      for (const socket of session.sockets) {
        if (!this.#writable(socket)) continue
        this.#writer.sendTo(socket, envelope)
        count++
      }
    }
    return count
  }

  #writable (socket: WebSocket): boolean {
    const state = stateOf(socket)
    // A socket still being welcomed asks for the list once it is live.
    return socket.readyState === OPEN && state.enveloped && state.cursor === undefined
  }

  /** This node's members of a topic: sessions subscribed with a socket open here, counted per member. */
  #count (topic: string): Map<string, number> {
    const counts = new Map<string, number>()
    for (const session of this.#store.subscribers(topic) as Iterable<LiveSession>) {
      if (session.sockets.size === 0 || session.revoked) continue
      const key = memberKeyOf(session)
      counts.set(key, (counts.get(key) ?? 0) + 1)
    }
    return counts
  }

  #flushTopic (topic: string): void {
    const now = this.#count(topic)
    const before = this.#known.get(topic) ?? new Map<string, number>()
    if (now.size === 0) this.#known.delete(topic)
    else this.#known.set(topic, now)
    const cluster = this.#cluster
    if (cluster === undefined) {
      const joined: string[] = []
      const left: string[] = []
      for (const key of now.keys()) if (!before.has(key)) joined.push(key)
      for (const key of before.keys()) if (!now.has(key)) left.push(key)
      this.#send(joined, left, (joinedMembers, leftMembers) => this.deliver(topic, joinedMembers, leftMembers))
      return
    }
    const full = this.#full.delete(topic)
    const changes: Array<[string, number]> = []
    for (const [key, count] of now) if (full || before.get(key) !== count) changes.push([key, count])
    for (const key of before.keys()) if (!now.has(key)) changes.push([key, 0])
    if (changes.length === 0 && !full) return
    cluster.announceMembers(topic, changes, full).then(({ joined, left }) => {
      this.#send(joined, left, (joinedMembers, leftMembers) => { cluster.emitPresence(topic, joinedMembers, leftMembers) })
    }, (err: unknown) => {
      // Announced again in full on the next batch: counts are absolute.
      this.#log.debug({ err, topic }, 'presence update not announced; retrying')
      this.#full.add(topic)
      this.#dirty.add(topic)
    })
  }

  #send (joined: string[], left: string[], send: (joined: TopicMember[] | null, left: TopicMember[] | null) => void): void {
    const changes = joined.length + left.length
    if (changes === 0) return
    if (changes > this.#options.maxMembers) {
      // Too many to list: clients ask for the list again.
      this.#stats.presenceOverflows++
      send(null, null)
      return
    }
    this.#stats.presenceEvents += changes
    send(joined.map(memberOf), left.map(memberOf))
  }
}
