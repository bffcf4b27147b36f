// What arrives on the client's sockets: each frame read, replies handed to their callers, and
// messages delivered once and in order by keeping the session's resume point.
import { readEnvelope, resumeUrl, type GlueData, type GlueMember } from './envelope.js'
import { messageEvent, type GlueEmitter } from './events.js'
import type { GlueResumePoint } from './options.js'
import type { Replies } from './replies.js'
import type { TopicPositions } from './topic-positions.js'

/** The receiving side of a client: its position in the session's message stream and the dispatch of each frame. */
export class Inbound {
  #epoch: string | undefined
  #lastSeq = 0
  readonly #events: GlueEmitter
  readonly #replies: Replies
  readonly #positions: TopicPositions

  /** `resume` is where the first connection resumes, if the caller saved a position. */
  constructor (events: GlueEmitter, replies: Replies, resume: GlueResumePoint | undefined, positions: TopicPositions) {
    this.#events = events
    this.#replies = replies
    this.#positions = positions
    if (resume !== undefined) {
      this.#epoch = resume.epoch
      this.#lastSeq = resume.lastSeq
    }
  }

  /** The delivery epoch of the latest welcome, or of the `resume` option. */
  get epoch (): string | undefined {
    return this.#epoch
  }

  /** The sequence number up to which messages are processed. */
  get lastSeq (): number {
    return this.#lastSeq
  }

  /** The handshake URL of the next socket: once the client knows an epoch, it asks to resume after `lastSeq`. */
  socketUrl (url: string): string {
    return this.#epoch === undefined ? url : resumeUrl(url, this.#epoch, this.#lastSeq)
  }

  /** Handles a frame: a plain message unless `glue` (the socket speaks glue.v1), then an envelope. */
  receive (data: unknown, glue: boolean): void {
    if (!glue) {
      this.#deliver(data as GlueData)
      return
    }
    const envelope = readEnvelope(data)
    if (envelope === undefined) return
    switch (envelope.kind) {
      case 'message':
        this.#deliver(envelope.data, envelope.seq, envelope.topic, envelope.position)
        break
      case 'history':
        if (this.#positions.accept(envelope.topic, envelope.position)) {
          this.#events.emitTopic(envelope.topic, messageEvent(envelope.data, 0, envelope.topic, envelope.position, true))
        }
        break
      case 'lost':
        this.#events.emit('gap', { missed: envelope.missed, topic: envelope.topic })
        break
      case 'presence':
        this.#presence(envelope.topic, envelope.joined, envelope.left)
        break
      case 'reply':
        this.#replies.settle(envelope.id, envelope.failure, envelope.value)
        break
      case 'welcome':
        // Messages above the welcome's seq follow: after a resume, a trim or another epoch alike.
        this.#epoch = envelope.epoch
        this.#lastSeq = envelope.seq
        break
      case 'gap':
        this.#events.emit('gap', { missed: envelope.missed })
        break
    }
  }

  #presence (topic: string, joined: GlueMember[] | null, left: GlueMember[] | null): void {
    if (joined === null || left === null) {
      this.#events.emit('membersstale', { topic })
      return
    }
    for (const member of left) this.#events.emit('leave', { topic, member })
    for (const member of joined) this.#events.emit('join', { topic, member })
  }

  #deliver (data: GlueData, seq?: number, topic?: string, position?: string): void {
    // Volatile messages carry seq 0: delivered, never tracked. A replay may repeat what came before the drop.
    if (seq !== undefined && seq > 0) {
      if (seq <= this.#lastSeq) return
      this.#lastSeq = seq
    }
    // A topic message the topic's history delivered already.
    if (topic !== undefined && !this.#positions.accept(topic, position)) return
    const event = messageEvent(data, seq, topic, position)
    if (topic === undefined) this.#events.emit('message', event)
    else this.#events.emitTopic(topic, event)
  }
}
