// The part of a WebSocket the client drives, typed so that both the DOM class and `ws` fit.

// Method syntax keeps the handler parameter bivariant, so the `ws` class and the DOM class both fit.
interface GlueHandler<E> { handle (event: E): void }

/** The part of a WebSocket the client uses. The DOM `WebSocket` and the `ws` package both fit. */
export interface GlueSocket {
  readonly readyState: number
  readonly protocol: string
  binaryType: string
  onopen: GlueHandler<unknown>['handle'] | null
  onmessage: GlueHandler<{ data: unknown }>['handle'] | null
  onclose: GlueHandler<{ code: number, reason: string, wasClean: boolean }>['handle'] | null
  onerror: GlueHandler<unknown>['handle'] | null
  send (data: never): void
  close (code?: number, reason?: string): void
}

/** A WebSocket constructor, such as `globalThis.WebSocket` or `ws`'s default export. */
export type GlueSocketConstructor = new (url: string, protocols?: string | string[]) => GlueSocket

/** `readyState` of a socket that can send. */
export const OPEN = 1
