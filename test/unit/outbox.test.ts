import { test } from 'tap'
import type { StoredMessage } from '../../plugin/messages/outbound.js'
import { Outbox } from '../../plugin/messages/outbox.js'

const message = (n: number): StoredMessage => ({ body: Buffer.from(String(n)), topic: false, binary: false, shared: false })
const bodies = (outbox: Outbox): string[] => [...outbox.messages()].map((m) => m.body.toString())

test('keeps consecutive messages and finds each by its sequence number', (t) => {
  const outbox = new Outbox(10)
  t.equal(outbox.size, 0)
  t.equal(outbox.oldestSeq(1), 1, 'empty: the next sequence number')
  t.equal(outbox.get(1), undefined)
  for (let seq = 1; seq <= 3; seq++) outbox.push(seq, message(seq), seq)
  t.equal(outbox.size, 3)
  t.equal(outbox.oldestSeq(4), 1)
  t.equal(outbox.get(2)?.body.toString(), '2')
  t.equal(outbox.get(0), undefined, 'before the oldest')
  t.equal(outbox.get(4), undefined, 'not sent yet')
  t.same(bodies(outbox), ['1', '2', '3'])
  t.end()
})

test('grows from a small ring up to its limit, then drops the oldest', (t) => {
  const outbox = new Outbox(6)
  // Past the initial capacity of 4, and wrapped around before growing.
  for (let seq = 1; seq <= 20; seq++) {
    outbox.push(seq, message(seq), seq)
    t.equal(outbox.size, Math.min(seq, 6))
    t.equal(outbox.oldestSeq(seq + 1), Math.max(1, seq - 5))
  }
  t.same(bodies(outbox), ['15', '16', '17', '18', '19', '20'])
  t.equal(outbox.get(14), undefined, 'dropped')
  t.equal(outbox.get(15)?.body.toString(), '15')
  t.equal(outbox.get(20)?.body.toString(), '20')
  t.end()
})

test('keeps its order when it grows with the ring wrapped around', (t) => {
  const outbox = new Outbox(8)
  for (let seq = 1; seq <= 4; seq++) outbox.push(seq, message(seq), 0)
  // Age out two, so the head moves; the next pushes wrap around the initial four slots.
  outbox.trimBefore(1)
  t.equal(outbox.size, 0, 'all older than the cutoff')
  for (let seq = 5; seq <= 7; seq++) outbox.push(seq, message(seq), seq)
  outbox.trimBefore(6)
  t.same(bodies(outbox), ['6', '7'])
  for (let seq = 8; seq <= 12; seq++) outbox.push(seq, message(seq), seq)
  t.same(bodies(outbox), ['6', '7', '8', '9', '10', '11', '12'], 'grew past four slots in order')
  for (let seq = 6; seq <= 12; seq++) t.equal(outbox.get(seq)?.body.toString(), String(seq))
  t.end()
})

test('trims by age from the oldest, by the times given to push', (t) => {
  const outbox = new Outbox(100)
  for (let seq = 1; seq <= 10; seq++) outbox.push(seq, message(seq), seq * 10)
  outbox.trimBefore(50)
  t.same(bodies(outbox), ['5', '6', '7', '8', '9', '10'], 'times 10 to 40 were older than 50')
  t.equal(outbox.oldestSeq(11), 5)
  outbox.trimBefore(50)
  t.equal(outbox.size, 6, 'trimming again with the same cutoff drops nothing')
  outbox.trimBefore(1000)
  t.equal(outbox.size, 0)
  t.equal(outbox.oldestSeq(11), 11, 'empty again: the next sequence number')
  t.end()
})

test('clear forgets everything; the next push starts a new run', (t) => {
  const outbox = new Outbox(3)
  for (let seq = 1; seq <= 5; seq++) outbox.push(seq, message(seq), seq)
  outbox.clear()
  t.equal(outbox.size, 0)
  t.same(bodies(outbox), [])
  t.equal(outbox.get(5), undefined)
  outbox.push(40, message(40), 40)
  t.equal(outbox.oldestSeq(41), 40)
  t.equal(outbox.get(40)?.body.toString(), '40')
  t.end()
})

test('a limit of 1 keeps the last message only', (t) => {
  const outbox = new Outbox(1)
  outbox.push(1, message(1), 1)
  outbox.push(2, message(2), 2)
  t.same(bodies(outbox), ['2'])
  t.equal(outbox.get(1), undefined)
  t.end()
})

test('holds a bounded amount however many messages pass through', (t) => {
  const outbox = new Outbox(500)
  for (let seq = 1; seq <= 100_000; seq++) outbox.push(seq, message(seq), seq)
  t.equal(outbox.size, 500)
  t.equal(outbox.oldestSeq(100_001), 99_501)
  t.equal(outbox.get(100_000)?.body.toString(), '100000')
  t.end()
})
