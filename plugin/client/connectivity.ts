// Browser signals that a waiting reconnection may succeed now: the network is back (`online`), or
// the page is visible again (a laptop opened, a phone tab brought to the front), when timers may
// have been throttled and the server may have come back long ago.

interface EventSource {
  addEventListener (type: string, listener: () => void): void
  removeEventListener (type: string, listener: () => void): void
}

/** The globals of a browser page or worker that the client listens to; Node (with `ws`) has none of them. */
export interface BrowserScope {
  addEventListener?: EventSource['addEventListener']
  removeEventListener?: EventSource['removeEventListener']
  document?: Partial<EventSource> & { readonly visibilityState?: string }
}

function isEventSource (target: Partial<EventSource> | undefined): target is EventSource {
  return typeof target?.addEventListener === 'function' && typeof target.removeEventListener === 'function'
}

/**
 * Calls `onChance` when the browser comes back online or the page becomes visible, and returns what
 * removes those listeners. Where the globals are missing (Node), it listens to nothing.
 * @param scope where the events fire: the page's global object, whose `document` fires visibilitychange
 */
export function watchConnectivity (onChance: () => void, scope: BrowserScope = globalThis as BrowserScope): () => void {
  const page = scope.document
  const onOnline = (): void => { onChance() }
  const onVisibilityChange = (): void => {
    if (page?.visibilityState === 'visible') onChance()
  }
  const sources: Array<[EventSource, string, () => void]> = []
  if (isEventSource(scope)) sources.push([scope, 'online', onOnline])
  if (isEventSource(page)) sources.push([page, 'visibilitychange', onVisibilityChange])
  for (const [source, type, listener] of sources) source.addEventListener(type, listener)
  return () => {
    for (const [source, type, listener] of sources) source.removeEventListener(type, listener)
  }
}
