import type { AdapterHost, ClusterCounts, LocalAdapter } from './adapter.js'

/**
 * The default adapter: one node, delivery in the same tick. Numbering per session and outboxes for
 * resume stay in the registry.
 */
export function createMemoryAdapter (): LocalAdapter {
  let host: AdapterHost | undefined
  const connected = (): AdapterHost => {
    if (host === undefined) throw new Error('memory adapter used before start')
    return host
  }
  return {
    name: 'memory',
    sequenced: false,
    async start (given) {
      host = given
    },
    async stop () {},
    emit (message) {
      return connected().apply(message)
    },
    settled () {
      return undefined
    },
    socketOpened () {},
    socketClosed () {},
    async presence (sessionId) {
      return connected().socketCount(sessionId)
    },
    async clusterCounts (): Promise<ClusterCounts> {
      return { nodes: 1, ...connected().localCounts() }
    },
    async clusterTopicsOf (sessionId) {
      return connected().topicsOf(sessionId)
    },
    async clusterSubscriberCount (topic) {
      return connected().subscriberCount(topic)
    },
    async clusterSessionsOf (userId) {
      return connected().sessionsOf(userId)
    },
    colocate (_sessionId, mint) {
      return mint()
    }
  }
}
