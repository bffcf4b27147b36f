import type { OriginCheck } from '../api/hooks.js'

const DEFAULT_PORTS: Readonly<Record<string, string>> = { 'http:': '80', 'https:': '443' }

/** The resolved `allowedOrigins` option. */
export type OriginPolicy = ReadonlySet<string> | OriginCheck | null

/**
 * Decides whether a handshake may proceed, to stop Cross-Site WebSocket Hijacking.
 * Without a policy the `Origin` must be an http: or https: origin naming the same host and port as `Host`.
 * @throws whatever a user `OriginCheck` throws; the caller treats that as a refusal.
 */
export function isOriginAllowed (
  origin: string | undefined,
  host: string | undefined,
  policy: OriginPolicy,
  request: Parameters<OriginCheck>[1]
): boolean {
  // Browsers always send Origin on websocket handshakes; its absence means a non-browser client,
  // which cookies-based hijacking cannot involve.
  if (origin === undefined) return true
  if (typeof policy === 'function') return policy(origin, request) === true
  // Opaque origins (sandboxed frames, file: pages) serialise as "null" and can never be matched.
  if (origin === 'null') return false
  if (policy !== null) return policy.has(origin.toLowerCase())
  return host !== undefined && sameHost(origin, host)
}

function sameHost (origin: string, host: string): boolean {
  let url: URL
  try {
    url = new URL(origin)
  } catch {
    return false
  }
  // Only http(s) pages are this host's own; ftp:, ws: or extension origins with a matching host are not.
  const defaultPort = DEFAULT_PORTS[url.protocol]
  if (defaultPort === undefined) return false
  // URL drops the scheme's default port, so drop it from Host as well before comparing.
  let expected = host.toLowerCase()
  if (expected.endsWith(':' + defaultPort)) {
    expected = expected.slice(0, -(defaultPort.length + 1))
  }
  return url.host === expected
}
