import { test } from 'tap'
import { watchConnectivity } from '../../plugin/client/connectivity.js'

/** A global object and a document as a browser has them: event targets, the document with a visibility state. */
function browserScope (): { scope: EventTarget & { document: EventTarget & { visibilityState: string } }, page: EventTarget & { visibilityState: string } } {
  const page = Object.assign(new EventTarget(), { visibilityState: 'hidden' })
  return { scope: Object.assign(new EventTarget(), { document: page }), page }
}

test('calls back when the browser comes online or the page becomes visible, until unwatched', async (t) => {
  const { scope, page } = browserScope()
  let chances = 0
  const unwatch = watchConnectivity(() => { chances++ }, scope)
  scope.dispatchEvent(new Event('online'))
  t.equal(chances, 1, 'online')
  page.dispatchEvent(new Event('visibilitychange'))
  t.equal(chances, 1, 'a page that became hidden is no chance')
  page.visibilityState = 'visible'
  page.dispatchEvent(new Event('visibilitychange'))
  t.equal(chances, 2, 'a page that became visible is one')
  scope.dispatchEvent(new Event('offline'))
  t.equal(chances, 2, 'offline is none')
  unwatch()
  scope.dispatchEvent(new Event('online'))
  page.dispatchEvent(new Event('visibilitychange'))
  t.equal(chances, 2, 'nothing once unwatched')
})

test('listens to nothing where the browser globals are missing, as in Node', async (t) => {
  const unwatchBare = watchConnectivity(() => { t.fail('no event can call back') }, {})
  unwatchBare()
  // A worker has a global object but no document: only online counts there.
  const worker = new EventTarget()
  let chances = 0
  const unwatchWorker = watchConnectivity(() => { chances++ }, worker)
  worker.dispatchEvent(new Event('online'))
  t.equal(chances, 1)
  unwatchWorker()
  t.equal(typeof (globalThis as { addEventListener?: unknown }).addEventListener, 'undefined', 'Node has no global addEventListener')
  watchConnectivity(() => { t.fail('Node fires no online event') })()
})
