import { test } from 'tap'
import { BroadcastLog, type LoggedBroadcast } from '../../plugin/sessions/broadcast-log.js'

const message = { body: Buffer.from('x'), topic: false, binary: false, shared: true }
const entry = (order: number, time = order, except?: string): LoggedBroadcast => ({ order, message, time, except })

test('returns what was logged since a mark, and how much of it is gone', (t) => {
  const log = new BroadcastLog(3)
  log.push(entry(1))
  const mark = log.total
  for (let order = 2; order <= 6; order++) log.push(entry(order))
  const { kept, dropped } = log.since(mark)
  t.same(kept.map((e) => e.order), [4, 5, 6], 'the newest, up to the limit')
  t.equal(dropped, 2, 'the rest is counted')
  t.same(log.since(log.total), { kept: [], dropped: 0 }, 'nothing since now')
  t.end()
})

test('trims by age and keeps counting after a clear', (t) => {
  const log = new BroadcastLog(100)
  for (let order = 1; order <= 10; order++) log.push(entry(order, order * 10))
  log.trimBefore(55)
  t.same(log.since(0).kept.map((e) => e.order), [6, 7, 8, 9, 10])
  t.equal(log.since(0).dropped, 5)
  log.clear()
  t.equal(log.total, 10)
  t.same(log.since(8), { kept: [], dropped: 2 })
  t.end()
})

test('a limit of 0 keeps nothing but counts everything', (t) => {
  const log = new BroadcastLog(0)
  log.push(entry(1))
  log.push(entry(2))
  t.same(log.since(0), { kept: [], dropped: 2 })
  t.end()
})

test('stays bounded over many pushes', (t) => {
  const log = new BroadcastLog(5)
  for (let order = 1; order <= 10_000; order++) log.push(entry(order))
  t.same(log.since(9990).kept.map((e) => e.order), [9996, 9997, 9998, 9999, 10000])
  t.end()
})
