import { test } from 'tap'
import { receives, type Addressing } from '../../plugin/messages/recipients.js'

const subscribedTo = (...topics: string[]) => (topic: string): boolean => topics.includes(topic)
const nothing = subscribedTo()

test('a send reaches its session only', (t) => {
  const send: Addressing = { kind: 'send', sessionId: 'a' }
  t.equal(receives(send, 'a', nothing), true)
  t.equal(receives(send, 'b', subscribedTo('x')), false)
  t.end()
})

test('a broadcast reaches every session but the one in except', (t) => {
  t.equal(receives({ kind: 'broadcast', except: undefined }, 'a', nothing), true)
  t.equal(receives({ kind: 'broadcast', except: 'a' }, 'a', nothing), false)
  t.equal(receives({ kind: 'broadcast', except: 'a' }, 'b', nothing), true)
  t.end()
})

test('a publish reaches the subscribers of its topic but the one in except', (t) => {
  const publish: Addressing = { kind: 'publish', topic: 'news', except: undefined }
  t.equal(receives(publish, 'a', subscribedTo('news')), true)
  t.equal(receives(publish, 'a', subscribedTo('sport')), false)
  t.equal(receives({ kind: 'publish', topic: 'news', except: 'a' }, 'a', subscribedTo('news')), false)
  t.equal(receives({ kind: 'publish', topic: 'news', except: 'a' }, 'b', subscribedTo('news')), true)
  let asked = 0
  receives({ kind: 'publish', topic: 'news', except: 'a' }, 'a', () => { asked++; return true })
  t.equal(asked, 0, 'membership is not looked up for the excepted session')
  t.end()
})

test('close, subscribe, unsubscribe and expire are not messages', (t) => {
  for (const kind of ['close', 'subscribe', 'unsubscribe', 'expire'] as const) {
    t.equal(receives({ kind }, 'a', subscribedTo('news')), false, kind)
  }
  t.end()
})
