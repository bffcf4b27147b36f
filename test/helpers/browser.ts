// A browser's cookie jar for tests: HTTP requests and glue.v1 sockets that keep and send the session cookie.
import type { Test } from 'tap'
import { openGlueSocket, type GlueSocket } from './sockets.js'

/** One browser profile: its cookies go with every request and socket, and Set-Cookie updates them. */
export interface Browser {
  /** Cookies as a Cookie header (`a=1; b=2`), '' when none. */
  readonly cookie: string
  /** The value of one cookie, or undefined. */
  get (name: string): string | undefined
  /** An HTTP request to `path` on `base` with the jar's cookies; Set-Cookie lines update the jar. */
  fetch (path: string, init?: { method?: string, body?: unknown, headers?: Record<string, string> }): Promise<{ status: number, body: unknown, setCookie: string[] }>
  /** Opens a glue.v1 socket on `wsUrl` with the jar's cookies (terminated in teardown); its 101 Set-Cookie updates the jar. */
  open (t: Test, wsUrl: string, query?: string): Promise<GlueSocket>
}

function absorb (jar: Map<string, string>, lines: readonly string[]): void {
  for (const line of lines) {
    const pair = line.split(';', 1)[0] ?? ''
    const index = pair.indexOf('=')
    const name = pair.slice(0, index)
    const value = pair.slice(index + 1)
    // Max-Age=0 deletes it, as a browser does.
    if (value === '' || /;\s*Max-Age=0(;|$)/i.test(line)) jar.delete(name)
    else jar.set(name, value)
  }
}

/** A fresh browser profile talking to `httpUrl`. */
export function createBrowser (httpUrl: string): Browser {
  const jar = new Map<string, string>()
  const header = (): string => [...jar].map(([name, value]) => `${name}=${value}`).join('; ')
  return {
    get cookie () { return header() },
    get: (name) => jar.get(name),
    async fetch (path, init = {}) {
      const headers: Record<string, string> = { ...init.headers }
      if (jar.size > 0) headers.cookie = header()
      let body: string | undefined
      if (init.body !== undefined) {
        body = JSON.stringify(init.body)
        headers['content-type'] = 'application/json'
      }
      const response = await fetch(httpUrl + path, { method: init.method ?? 'GET', headers, body })
      const setCookie = response.headers.getSetCookie()
      absorb(jar, setCookie)
      const text = await response.text()
      let parsed: unknown = text
      try { parsed = JSON.parse(text) } catch {}
      return { status: response.status, body: parsed, setCookie }
    },
    async open (t, wsUrl, query = '') {
      const socket = await openGlueSocket(wsUrl + query, jar.size === 0 ? {} : { headers: { cookie: header() } })
      t.teardown(() => socket.socket.terminate())
      absorb(jar, socket.setCookie)
      return socket
    }
  }
}
