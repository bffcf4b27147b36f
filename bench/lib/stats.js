// Small numeric helpers shared by the orchestrator and the clients.

export function median (values) {
  const xs = values.filter((v) => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b)
  if (xs.length === 0) return null
  const mid = xs.length >> 1
  return xs.length % 2 === 1 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2
}

/** Nearest-rank percentile of an already sorted array. */
export function percentile (sorted, p) {
  if (sorted.length === 0) return null
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]
}

/** Merges latency sample arrays (microseconds) and summarises them. */
export function summariseLatencies (arrays) {
  let total = 0
  for (const a of arrays) total += a.length
  const all = new Float64Array(total)
  let i = 0
  for (const a of arrays) { all.set(a, i); i += a.length }
  all.sort()
  return {
    samples: total,
    p50: percentile(all, 50),
    p99: percentile(all, 99),
    max: total === 0 ? null : all[total - 1]
  }
}
