import { test } from 'tap'
import { PendingChanges } from '../../plugin/sessions/pending-changes.js'

test('the last change asked for holds until every change on its way is settled', (t) => {
  const pending = new PendingChanges()
  t.equal(pending.intended('s', 'news'), undefined, 'nothing on its way: the node\'s own membership decides')
  pending.add('s', 'news', true)
  pending.add('s', 'news', false)
  t.equal(pending.intended('s', 'news'), false, 'the unsubscribe was asked last')
  pending.settle('s', 'news')
  t.equal(pending.intended('s', 'news'), false, 'the subscribe was applied; the unsubscribe is still coming')
  pending.settle('s', 'news')
  t.equal(pending.intended('s', 'news'), undefined)
  pending.settle('s', 'news')
  t.equal(pending.intended('s', 'news'), undefined, 'an apply nobody waited for (another node\'s change) is harmless')
  t.end()
})

test('joins on their way count toward the topic limit; a session that leaves is forgotten', (t) => {
  const pending = new PendingChanges()
  pending.add('s', 'a', true)
  pending.add('s', 'b', true)
  pending.add('s', 'c', false)
  t.equal(pending.joining('s', () => false), 2)
  t.equal(pending.joining('s', (topic) => topic === 'a'), 1, 'a topic the node lists already is not counted twice')
  t.equal(pending.joining('other', () => false), 0)
  pending.forget('s')
  t.equal(pending.joining('s', () => false), 0)
  t.equal(pending.intended('s', 'a'), undefined)
  t.end()
})
