import type { FastifyBaseLogger } from 'fastify'
import type { AdapterHealth, GlueAdapter } from '../adapters/adapter.js'
import type { SocketWriter } from '../delivery/socket-writer.js'
import type { SessionStore } from '../sessions/store.js'
import type { SessionGauges, SessionStats } from '../stats.js'

/** Creates `app.sessions.gauges()`: what this node holds, measured only when asked (a metrics scrape). */
export function createGauges (
  store: SessionStore,
  writer: SocketWriter,
  adapter: GlueAdapter,
  stats: SessionStats,
  log: FastifyBaseLogger
): () => Promise<SessionGauges> {
  async function adapterHealth (): Promise<AdapterHealth | undefined> {
    if (adapter.health === undefined) return undefined
    try {
      return await adapter.health()
    } catch (err) {
      log.warn({ err }, 'adapter health check failed')
      return { connected: false }
    }
  }

  return async function gauges () {
    let bufferedBytes = 0
    for (const socket of store.sockets()) bufferedBytes += writer.buffered(socket)
    let outboxMessages = 0
    for (const session of store.attached()) outboxMessages += session.outbox?.size ?? 0
    const local = {
      sockets: stats.sockets,
      sessions: stats.sessions,
      detachedSessions: stats.detachedSessions,
      bufferedBytes,
      outboxMessages,
      detachedBytes: store.detachedBytes
    }
    const health = await adapterHealth()
    return { ...local, adapter: health === undefined ? undefined : { name: adapter.name, ...health } }
  }
}
