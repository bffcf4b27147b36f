import { test } from 'tap'
import { DETACHED_MESSAGE_COST, DETACHED_SESSION_COST, DetachedSessions } from '../../plugin/sessions/detached.js'
import { LiveSession } from '../../plugin/sessions/live-session.js'
import type { StoredMessage } from '../../plugin/messages/outbound.js'
import { Outbox } from '../../plugin/messages/outbox.js'
import { createStats } from '../../plugin/stats.js'

const limits = { outboxLimit: 3, sessionGrace: 1000, maxDetachedSessions: 100, maxDetachedBytes: 1_000_000 }

function stored (text: string, shared = false): StoredMessage {
  return { body: Buffer.from(text), topic: false, binary: false, shared }
}

function session (id: string, seq = 0): LiveSession {
  const live = new LiveSession(id, null)
  live.epoch = 'e'
  live.outbox = new Outbox(limits.outboxLimit)
  live.seq = seq
  return live
}

function kept (live: LiveSession): string[] {
  const texts: string[] = []
  for (let seq = 1; seq <= live.seq; seq++) {
    const message = live.outbox?.get(seq)
    if (message !== undefined) texts.push(`${seq}:${message.body.toString()}`)
  }
  return texts
}

test('a returning session numbers what it missed in the order it was sent', (t) => {
  const released: string[] = []
  const detached = new DetachedSessions(limits, createStats(), (s) => { released.push(s.id) })
  const a = session('a')
  detached.detach(a, 0, a.seq === 0)
  detached.hold(a, stored('s1'), 1)
  detached.broadcast(stored('b2', true), undefined, 2)
  detached.broadcast(stored('b3', true), 'a', 3)
  detached.hold(a, stored('s4'), 4)
  detached.reattach(a)
  t.same(kept(a), ['1:s1', '2:b2', '3:s4'], 'the broadcast that excluded it is not there')
  t.equal(detached.size, 0)
  t.same(released, [])
  t.end()
})

test('messages beyond the outbox are numbered first and lost, so the gap has the right size', (t) => {
  const detached = new DetachedSessions(limits, createStats(), () => {})
  const a = session('a', 2)
  a.outbox?.push(1, stored('old1'), 0)
  a.outbox?.push(2, stored('old2'), 0)
  detached.detach(a, 0, a.seq === 0)
  for (let i = 1; i <= 6; i++) detached.broadcast(stored(`b${i}`, true), undefined, i)
  detached.hold(a, stored('s7'), 7)
  detached.reattach(a)
  // Six broadcasts and a send: the log keeps the last 3 broadcasts, the outbox the last 3 messages.
  t.equal(a.seq, 9)
  t.same(kept(a), ['7:b5', '8:b6', '9:s7'])
  t.equal(a.outbox?.oldestSeq(10), 7, 'a client at 2 is told 4 are gone')
  t.end()
})

test('an except that was dropped from the log is not counted as lost', (t) => {
  const detached = new DetachedSessions({ ...limits, outboxLimit: 2 }, createStats(), () => {})
  const a = session('a')
  a.outbox = new Outbox(2)
  detached.detach(a, 0, a.seq === 0)
  detached.broadcast(stored('not for a', true), 'a', 1)
  detached.broadcast(stored('b2', true), undefined, 2)
  detached.broadcast(stored('b3', true), undefined, 3)
  detached.reattach(a)
  t.same(kept(a), ['1:b2', '2:b3'], 'no number was spent on the excluded broadcast')
  t.end()
})

test('idle sessions are evicted first, then the oldest; bytes count too', (t) => {
  const stats = createStats()
  const released: string[] = []
  const detached = new DetachedSessions({ ...limits, maxDetachedSessions: 2 }, stats, (s) => { released.push(s.id) })
  const busy = session('busy', 1)
  detached.detach(busy, 0, busy.seq === 0)
  detached.detach(session('idle1'), 0, true)
  detached.detach(session('idle2'), 0, true)
  t.same(released, ['idle1'], 'the idle one went although it left later')
  t.equal(stats.detachedEvictions, 1)
  t.equal(detached.bytes, 2 * DETACHED_SESSION_COST)
  detached.hold(busy, stored('x'.repeat(100)), 1)
  t.equal(detached.bytes, 2 * DETACHED_SESSION_COST + DETACHED_MESSAGE_COST + 100, 'a message for one session is charged with its body')
  detached.broadcast(stored('y'.repeat(100), true), undefined, 2)
  t.equal(detached.bytes, 2 * DETACHED_SESSION_COST + DETACHED_MESSAGE_COST + 100, 'a broadcast is charged to nobody')

  const tight = new DetachedSessions({ ...limits, maxDetachedBytes: 3 * DETACHED_SESSION_COST }, stats, (s) => { released.push(s.id) })
  const first = session('first', 1)
  const second = session('second', 1)
  tight.detach(first, 0, first.seq === 0)
  tight.detach(second, 0, second.seq === 0)
  tight.hold(second, stored('z'.repeat(DETACHED_SESSION_COST)), 1)
  t.equal(released.at(-1), 'first', 'over the byte budget, the oldest goes')
  t.equal(tight.size, 1)
  t.end()
})

test('sweep releases the sessions whose grace has ended', (t) => {
  const released: string[] = []
  const stats = createStats()
  const detached = new DetachedSessions(limits, stats, (s) => { released.push(s.id) })
  detached.detach(session('a', 1), 0, false)
  detached.detach(session('b'), 500, true)
  detached.sweep(999, 0)
  t.same(released, [])
  detached.sweep(1000, 0)
  t.same(released, ['a'])
  detached.sweep(1500, 0)
  t.same(released, ['a', 'b'])
  t.equal(stats.detachedSessions, 0)
  t.end()
})

test('outboxLimit 0 keeps nothing and counts everything as lost', (t) => {
  const detached = new DetachedSessions({ ...limits, outboxLimit: 0 }, createStats(), () => {})
  const a = new LiveSession('a', null)
  a.epoch = 'e'
  detached.detach(a, 0, a.seq === 0)
  detached.hold(a, stored('s'), 1)
  detached.broadcast(stored('b', true), undefined, 2)
  detached.reattach(a)
  t.equal(a.seq, 2)
  t.equal(a.outbox, undefined)
  t.end()
})
