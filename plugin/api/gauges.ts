import type { FastifyBaseLogger } from 'fastify'
import type { AdapterHealth, GlueAdapter } from '../adapters/adapter.js'
import { ADAPTER_HEALTH_TIMEOUT } from '../constants.js'
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
    let timer: NodeJS.Timeout | undefined
    // A store that stopped answering must not hold a scrape: past the timeout it counts as unreachable.
    const late = new Promise<AdapterHealth>((resolve) => {
      timer = setTimeout(() => {
        log.warn({ timeout: ADAPTER_HEALTH_TIMEOUT }, 'adapter health check timed out')
        resolve({ connected: false })
      }, ADAPTER_HEALTH_TIMEOUT)
    })
    try {
      return await Promise.race([adapter.health(), late])
    } catch (err) {
      log.warn({ err }, 'adapter health check failed')
      return { connected: false }
    } finally {
      clearTimeout(timer)
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
