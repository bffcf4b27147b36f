// Helpers for the tests of the shipped browser client (GlueClient) under Node.
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import glue, { type GlueOptions } from '../../plugin/index.js'
import type { GlueClient, GlueClientEventMap, GlueSocketConstructor } from '../../plugin/client/glue-client.js'

export const CLIENT_SECRET = 'client-test-secret-that-is-long-enough-42'

/** A Fastify app with the plugin, listening on 127.0.0.1. */
export interface GlueServer {
  readonly app: FastifyInstance
  readonly port: number
  readonly url: string
}

/**
 * Starts the plugin on 127.0.0.1; port 0 picks a free one, a given port restarts on it. A test that
 * restarts starts on freePort(), below the ephemeral range, so no outgoing socket takes it meanwhile.
 */
export async function startServer (options: GlueOptions = {}, port = 0): Promise<GlueServer> {
  const app = Fastify({ logger: false })
  await app.register(glue, { cookie: { secret: CLIENT_SECRET }, ...options })
  await app.listen({ port, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('expected a TCP address')
  return { app, port: address.port, url: `ws://127.0.0.1:${address.port}/ws` }
}

/** The id of the only session of a server. */
export function onlySession (server: GlueServer): string {
  const sessions = [...server.app.sessions]
  if (sessions.length !== 1) throw new Error(`expected one session, got ${sessions.length}`)
  return (sessions[0] as { id: string }).id
}

/** Resolves with the next `type` event of the client whose payload passes `filter`. */
export function nextEvent<K extends keyof GlueClientEventMap> (
  client: GlueClient,
  type: K,
  filter: (event: GlueClientEventMap[K]) => boolean = () => true
): Promise<GlueClientEventMap[K]> {
  return new Promise((resolve) => {
    const listener = (event: GlueClientEventMap[K]): void => {
      if (!filter(event)) return
      client.off(type, listener)
      resolve(event)
    }
    client.on(type, listener)
  })
}

/** Records every event of a client, in order, as `[type, payload]`. */
export function recordEvents (client: GlueClient): Array<[keyof GlueClientEventMap, unknown]> {
  const seen: Array<[keyof GlueClientEventMap, unknown]> = []
  for (const type of ['open', 'message', 'close', 'reconnecting', 'statechange', 'error'] as const) {
    client.on(type, (event: unknown) => { seen.push([type, event]) })
  }
  return seen
}

/** Closes a client and waits until its socket is really gone, so the test ends clean. */
export async function closeClient (client: GlueClient): Promise<void> {
  if (client.state === 'closed') return
  const closed = client.state === 'reconnecting' ? Promise.resolve() : nextEvent(client, 'close')
  client.close()
  await closed
}

/**
 * `ws` with a cookie jar, so a Node client keeps its session across reconnects as a browser does.
 * `jar` holds the cookies the upgrade responses set; pass one to share it, as tabs of a browser do.
 * `urls` and `transports` record the URL and the TCP socket of every websocket the class opens.
 */
export function cookieWebSocket (jar = new Map<string, string>()): { WebSocket: GlueSocketConstructor, jar: Map<string, string>, urls: string[], transports: Duplex[] } {
  const urls: string[] = []
  const transports: Duplex[] = []
  class CookieWebSocket extends WebSocket {
    constructor (url: string | URL, protocols?: string | string[]) {
      const cookie = [...jar].map(([name, value]) => `${name}=${value}`).join('; ')
      super(url, protocols, cookie === '' ? {} : { headers: { cookie } })
      urls.push(String(url))
      this.once('upgrade', (response: IncomingMessage) => {
        transports.push(response.socket)
        for (const line of response.headers['set-cookie'] ?? []) {
          const pair = line.split(';', 1)[0] ?? ''
          const index = pair.indexOf('=')
          jar.set(pair.slice(0, index), pair.slice(index + 1))
        }
      })
    }
  }
  return { WebSocket: CookieWebSocket, jar, urls, transports }
}

/** Collects the text frames of a `ws` socket; `next()` returns the first one not returned yet that matches, waiting if needed. */
export function inbox (socket: WebSocket): { readonly all: string[], next: (match?: string | RegExp) => Promise<string> } {
  const all: string[] = []
  const taken = new Set<number>()
  const waiters: Array<{ test: (text: string) => boolean, resolve: (text: string) => void }> = []
  const tester = (match: string | RegExp | undefined) => (text: string): boolean =>
    match === undefined || (typeof match === 'string' ? text === match : match.test(text))
  socket.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) return
    const text = data.toString()
    all.push(text)
    const index = waiters.findIndex((waiter) => waiter.test(text))
    if (index === -1) return
    taken.add(all.length - 1)
    waiters.splice(index, 1)[0]?.resolve(text)
  })
  return {
    all,
    next (match) {
      const test = tester(match)
      const index = all.findIndex((text, i) => !taken.has(i) && test(text))
      if (index !== -1) {
        taken.add(index)
        return Promise.resolve(all[index] as string)
      }
      return new Promise((resolve) => { waiters.push({ test, resolve }) })
    }
  }
}

/** The frames inbox of {@link inbox}. */
export type Inbox = ReturnType<typeof inbox>

/**
 * Opens a `ws` socket and resolves once it is open, with its inbox and the upgrade's Set-Cookie lines.
 * The inbox listens from the start: a frame sent right after the 101 can arrive before `open` resolves.
 */
export async function openInboxSocket (url: string, headers: Record<string, string> = {}): Promise<{ socket: WebSocket, frames: Inbox, setCookie: string[] }> {
  const socket = new WebSocket(url, { headers })
  const frames = inbox(socket)
  let setCookie: string[] = []
  socket.once('upgrade', (response: IncomingMessage) => { setCookie = response.headers['set-cookie'] ?? [] })
  await new Promise<void>((resolve, reject) => {
    socket.once('open', resolve)
    socket.once('error', reject)
  })
  return { socket, frames, setCookie }
}

/** Closes a `ws` socket and waits for its close event. */
export async function closeSocket (socket: WebSocket): Promise<void> {
  if (socket.readyState === WebSocket.CLOSED) return
  const closed = new Promise((resolve) => socket.once('close', resolve))
  socket.close()
  await closed
}
