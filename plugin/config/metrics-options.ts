// Options of the fastify-websocket-glue/metrics plugin; prom-client appears here as a type only.
import type { Registry } from 'prom-client'
import { invalid, isPlainObject } from './validate.js'

/** Options of `app.register(glueMetrics, options)`. */
export interface GlueMetricsOptions {
  /**
   * The prom-client registry the metrics join: fastify-metrics' (`app.metrics.client.register`),
   * your own, or prom-client's global one.
   * @default register (prom-client's global registry)
   */
  registry?: Registry
  /**
   * The start of every metric name; letters, digits, `_` and `:`, not starting with a digit.
   * @default 'glue_'
   */
  prefix?: string
}

/** Validated metrics options. */
export interface ResolvedGlueMetricsOptions {
  readonly registry: Registry
  readonly prefix: string
}

/** Default values of the optional metrics options (the registry's default is prom-client's global one). */
export const METRICS_DEFAULTS = Object.freeze({ prefix: 'glue_' })

// Prometheus metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; the prefix may be empty.
const PREFIX_RE = /^(?:[a-zA-Z_:][a-zA-Z0-9_:]*)?$/

/**
 * Merges the metrics options with the defaults and validates them.
 * @throws FST_WSGLUE_INVALID_OPTION naming the option, the rule and the value received.
 */
export function resolveMetricsOptions (raw: unknown, globalRegistry: Registry): ResolvedGlueMetricsOptions {
  if (raw !== undefined && !isPlainObject(raw)) throw invalid('options', 'an object', raw)
  const prefix = raw?.prefix ?? METRICS_DEFAULTS.prefix
  if (typeof prefix !== 'string' || !PREFIX_RE.test(prefix)) {
    throw invalid('prefix', 'a Prometheus metric name prefix (letters, digits, "_" and ":", not starting with a digit)', raw?.prefix)
  }
  const registry = raw?.registry ?? globalRegistry
  const candidate = registry as Partial<Registry> | null
  if (typeof candidate !== 'object' || candidate === null || typeof candidate.registerMetric !== 'function' ||
    typeof candidate.getSingleMetric !== 'function' || typeof candidate.removeSingleMetric !== 'function') {
    throw invalid('registry', 'a prom-client Registry', raw?.registry)
  }
  return Object.freeze({ registry: registry as Registry, prefix })
}
