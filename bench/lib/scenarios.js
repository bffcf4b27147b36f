// The scenarios of bench/run.js: four base scenarios and the variants that rerun them with other settings.

export const ALL_SCENARIOS = ['connect', 'connect-warm', 'broadcast', 'broadcast-turn', 'broadcast-delay', 'broadcast-deflate', 'targeted', 'targeted-delay', 'echo']

// Scenarios that rerun a base scenario with other settings: `batch` overrides --batch, `warm` runs the
// warm-up rounds first, `metrics` limits the figures reported, `server` goes to
// every target's start() (a target ignores what it has no equivalent for), `targets` limits who runs.
export const VARIANTS = {
  // Handshakes into a server that has already served --warm-rounds x --connections of them (opened, then
  // reset by the client), with no forced GC before them: the JIT has compiled the handshake path, as in
  // a server that has run a while. `connect` measures code being compiled (see run.js). No memory figures.
  'connect-warm': { base: 'connect', warm: true, metrics: ['handshakesPerSec', 'serverCpuPerHandshakeUs', 'serverUserPerHandshakeUs', 'serverSystemPerHandshakeUs', 'serverMainThreadPerHandshakeUs'] },
  // One broadcast per turn of the event loop: nothing for same-tick coalescing to merge.
  'broadcast-turn': { base: 'broadcast', batch: 1 },
  // The same loop with glue's writeDelay (--write-delay ms); the other targets have no such option.
  'broadcast-delay': { base: 'broadcast', batch: 1, server: (opts) => ({ writeDelay: opts.writeDelay }), targets: ['glue', 'ws', 'fastify-ws'] },
  // permessage-deflate on every target, no context takeover (each message compressed on its own), and
  // distinct JSON-like payloads of --deflate-size bytes.
  'broadcast-deflate': {
    base: 'broadcast',
    batch: 1,
    server: (opts) => ({ deflate: { serverNoContextTakeover: true }, payloads: { count: opts.messages, size: opts.deflateSize } }),
    targets: ['glue', 'ws', 'fastify-ws']
  },
  // Targeted sends with glue's writeDelay: far below one message per socket per window.
  'targeted-delay': { base: 'targeted', server: (opts) => ({ writeDelay: opts.writeDelay }), targets: ['glue', 'ws', 'fastify-ws'] }
}

/**
 * The server and client code a target runs: glue-b is glue on a second build of the plugin
 * (`--glue-b DIR`; its server process is told which build through BENCH_GLUE_ENTRY).
 */
export function kindOf (target) {
  return target === 'glue-b' ? 'glue' : target
}

/** The targets that run a scenario. */
export function targetsOf (scenario, opts) {
  const only = VARIANTS[scenario]?.targets
  return only === undefined ? opts.targets : opts.targets.filter((t) => only.includes(kindOf(t)))
}

/** The base scenario a scenario runs: itself, or the one it is a variant of. */
export function baseOf (scenario) {
  return VARIANTS[scenario]?.base ?? scenario
}
