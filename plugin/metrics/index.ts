// The `fastify-websocket-glue/metrics` entry: the plugin's counters and gauges as Prometheus
// metrics through prom-client, an optional peer dependency that the core entry never loads.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Counter, Gauge, register as globalRegistry, type Metric } from 'prom-client'
import type { SessionGauges, SessionStats } from '../stats.js'
import { CLOSE_CODE_LABELS } from '../stats.js'
import { invalid } from '../config/validate.js'
import { resolveMetricsOptions, type GlueMetricsOptions } from '../config/metrics-options.js'

type CounterStat = Exclude<keyof SessionStats, 'sockets' | 'sessions' | 'detachedSessions' | 'closesByCode' | 'revocations' | PipeStat>
type PipeStat = 'pipeDelivered' | 'pipeSkipped' | 'pipeInvalid'
type LocalGauge = Exclude<keyof SessionGauges, 'adapter'>

/** Counters of `stats()`: metric name (after the prefix), the field, the help text. */
const COUNTERS: ReadonlyArray<readonly [string, CounterStat, string]> = [
  ['messages_in_total', 'messagesIn', 'Messages received from clients.'],
  ['messages_out_total', 'messagesOut', 'Messages written to sockets (a broadcast to 10 sockets counts 10).'],
  ['replayed_total', 'replayed', 'Messages written again to resuming clients.'],
  ['gaps_total', 'gaps', 'Resumes that could not be filled completely (the client got a gap).'],
  ['slow_consumer_closes_total', 'slowConsumerCloses', 'Sockets closed with 1013 for not reading fast enough.'],
  ['rate_limit_closes_total', 'rateLimitCloses', 'Sockets closed with 1008 for sending faster than the rate limit.'],
  ['volatile_dropped_total', 'volatileDropped', 'Volatile messages dropped for sockets above the high-water mark.'],
  ['refused_handshakes_total', 'refusedHandshakes', 'Handshakes refused (origin, socket limits, handshake rate).'],
  ['detached_evictions_total', 'detachedEvictions', 'Detached sessions released before their grace ended, to stay within the limits.'],
  ['internal_errors_total', 'internalErrors', 'Sockets closed with 1011 because the plugin failed while handling them.'],
  ['invalid_messages_total', 'invalidMessages', 'Client messages and requests refused by the messageSchema or requestSchema.'],
  ['revocation_evictions_total', 'revocationEvictions', 'Revocations forgotten early to stay within maxRevocations.'],
  ['pipe_errors_total', 'pipeErrors', 'Errors that ended a run of a pipe source (sessions.pipe), over every pipe.'],
  ['pipe_restarts_total', 'pipeRestarts', 'Restarts of pipe sources after an error, over every pipe.'],
  ['history_requests_total', 'historyRequests', "Clients' requests for a topic's history."],
  ['history_messages_total', 'historyMessages', 'Messages written to clients from topic histories.'],
  ['presence_events_total', 'presenceEvents', 'Join and leave events sent, one per member change and topic.'],
  ['presence_overflows_total', 'presenceOverflows', 'Presence batches with more changes than maxMembers, sent as a request to fetch the list again.']
]

/** Gauges of `gauges()`: metric name, the field, the help text. */
const GAUGES: ReadonlyArray<readonly [string, LocalGauge, string]> = [
  ['sockets', 'sockets', 'Open sockets.'],
  ['sessions', 'sessions', 'Sessions with at least one open socket.'],
  ['detached_sessions', 'detachedSessions', 'Sessions without sockets, kept for their grace period.'],
  ['buffered_bytes', 'bufferedBytes', 'Bytes written to sockets that the peers have not taken yet.'],
  ['outbox_messages', 'outboxMessages', 'Messages kept for resume in the outboxes of connected sessions.'],
  ['detached_bytes', 'detachedBytes', 'Bytes charged to the detached-session budget (maxDetachedBytes).']
]

async function glueMetrics (fastify: FastifyInstance, rawOptions: GlueMetricsOptions): Promise<void> {
  const { registry, prefix } = resolveMetricsOptions(rawOptions, globalRegistry)
  const sessions = fastify.sessions
  const names = [
    ...COUNTERS.map(([name]) => name), 'closes_total', 'pipe_items_total', 'pipes',
    ...GAUGES.map(([name]) => name), 'revocations', 'adapter_connected', 'cluster_lag_messages'
  ].map((name) => prefix + name)
  const taken = names.find((name) => registry.getSingleMetric(name) !== undefined)
  if (taken !== undefined) {
    throw invalid('prefix', `a prefix whose metrics the registry does not have yet (it has ${taken}: give each app its own prefix or registry)`, prefix)
  }

  // One scrape collects every metric in the same tick: they share one measurement of the gauges.
  let measuring: Promise<SessionGauges> | undefined
  const measure = (): Promise<SessionGauges> => {
    if (measuring === undefined) {
      measuring = sessions.gauges()
      setImmediate(() => { measuring = undefined })
    }
    return measuring
  }

  const registers = [registry]
  const metrics: Metric[] = []
  for (const [name, field, help] of COUNTERS) {
    metrics.push(new Counter({
      name: prefix + name,
      help,
      registers,
      collect () {
        // The plugin keeps the count; the metric mirrors it at each scrape.
        this.reset()
        this.inc(sessions.stats()[field])
      }
    }))
  }
  metrics.push(new Counter({
    name: prefix + 'closes_total',
    help: 'Closed sockets by close code (a fixed set of codes; app for 3000-4999, other for the rest).',
    labelNames: ['code'],
    registers,
    collect () {
      const closes = sessions.stats().closesByCode
      this.reset()
      for (const code of CLOSE_CODE_LABELS) this.inc({ code }, closes[code])
    }
  }))
  metrics.push(new Counter({
    name: prefix + 'pipe_items_total',
    help: 'Items of every pipe (sessions.pipe) by outcome: delivered, skipped (map or to gave undefined), invalid (refused and dropped).',
    labelNames: ['outcome'],
    registers,
    collect () {
      const stats = sessions.stats()
      this.reset()
      this.inc({ outcome: 'delivered' }, stats.pipeDelivered)
      this.inc({ outcome: 'skipped' }, stats.pipeSkipped)
      this.inc({ outcome: 'invalid' }, stats.pipeInvalid)
    }
  }))
  metrics.push(new Gauge({
    name: prefix + 'pipes',
    help: 'Pipes running or restarting.',
    registers,
    collect () {
      this.set(sessions.pipes().length)
    }
  }))
  for (const [name, field, help] of GAUGES) {
    metrics.push(new Gauge({
      name: prefix + name,
      help,
      registers,
      async collect () {
        this.set((await measure())[field])
      }
    }))
  }
  metrics.push(new Gauge({
    name: prefix + 'revocations',
    help: 'Revoked sessions and users this node refuses until their cookies would have expired.',
    registers,
    collect () {
      this.set(sessions.stats().revocations)
    }
  }))
  metrics.push(new Gauge({
    name: prefix + 'adapter_connected',
    help: 'Whether the adapter reaches the other nodes (1) or not (0); only for adapters that report it, such as Redis.',
    labelNames: ['adapter'],
    registers,
    async collect () {
      const { adapter } = await measure()
      this.reset()
      if (adapter !== undefined) this.set({ adapter: adapter.name }, adapter.connected ? 1 : 0)
    }
  }))
  metrics.push(new Gauge({
    name: prefix + 'cluster_lag_messages',
    help: 'Messages routed to this node that it has not applied yet; absent while unknown.',
    labelNames: ['adapter'],
    registers,
    async collect () {
      const { adapter } = await measure()
      this.reset()
      if (adapter?.lag !== undefined) this.set({ adapter: adapter.name }, adapter.lag)
    }
  }))

  fastify.addHook('onClose', async function removeMetrics () {
    for (const metric of metrics) registry.removeSingleMetric((metric as unknown as { name: string }).name)
  })
}

/**
 * Registers the plugin's metrics with a prom-client registry: the counters of `app.sessions.stats()`,
 * closes by close code and the gauges of `app.sessions.gauges()`, read at each scrape. Register it
 * after fastify-websocket-glue; its metrics leave the registry when the app closes.
 * @throws FST_WSGLUE_INVALID_OPTION (at register) for an invalid option, or a registry that already
 * has metrics of that prefix.
 */
const plugin = fp(glueMetrics, { fastify: '5.x', name: 'fastify-websocket-glue-metrics', dependencies: ['fastify-websocket-glue'] })

export default plugin
export { plugin as glueMetrics }
export type { GlueMetricsOptions } from '../config/metrics-options.js'
