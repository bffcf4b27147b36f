import { test } from 'tap'
import { TopicHistories } from '../../plugin/topics/history.js'
import { parseHistoryRequest, parsePosition } from '../../plugin/topics/position.js'
import { encodeData } from '../../plugin/wire/encode.js'

const ALL = { last: undefined, since: undefined }
const limits = { limit: 3, maxAge: 1000 }
const data = (value: unknown): ReturnType<typeof encodeData> => encodeData(value)
const values = (answer: { entries: ReadonlyArray<{ json: string }> }): unknown[] => answer.entries.map((entry) => JSON.parse(entry.json) as unknown)

test('numbers each topic on its own and keeps the newest within the limit', (t) => {
  const histories = new TopicHistories(1 << 20)
  const first = histories.record('a', limits, data(1), 0)
  histories.record('b', limits, data('x'), 0)
  for (let i = 2; i <= 5; i++) histories.record('a', limits, data(i), 0)
  t.match(first, /^[\w-]+\.1$/)
  t.same(values(histories.read('a', limits, ALL, 0)), [3, 4, 5])
  t.same(values(histories.read('b', limits, ALL, 0)), ['x'])
  const since = parsePosition(first)
  t.same(histories.read('a', limits, { last: undefined, since }, 0).missed, 1, 'position 2 was trimmed')
  t.same(histories.read('a', limits, { last: 1, since }, 0), { entries: [histories.read('a', limits, ALL, 0).entries[2]], missed: 3 }, 'last after since counts the rest as missed')
  t.same(histories.read('a', limits, { last: 0, since: undefined }, 0).entries, [], 'last 0 asks for nothing')
  t.same(histories.read('a', limits, { last: undefined, since: { epoch: since?.epoch as string, n: 99 } }, 0).missed, null, 'a position from the future is unknown')
  t.end()
})

test('drops by age on read and on sweep, and forgets a history left empty', (t) => {
  const histories = new TopicHistories(1 << 20)
  const position = histories.record('a', limits, data('old'), 0)
  histories.record('a', limits, data('new'), 900)
  t.same(values(histories.read('a', limits, ALL, 1500)), ['new'])
  histories.sweep(2000, () => limits)
  t.same(histories.read('a', limits, ALL, 2000), { entries: [], missed: 0 })
  t.same(histories.read('a', limits, { last: undefined, since: parsePosition(position) }, 2000).missed, null, 'the history was forgotten: a position from it is unknown')
  const again = histories.record('a', limits, data('again'), 2000)
  t.not(again.split('.')[0], position.split('.')[0], 'a new history has a new epoch')
  histories.sweep(2100, () => undefined)
  t.same(histories.read('a', limits, ALL, 2100).entries, [], 'a topic that no longer keeps history is emptied')
  t.equal(histories.bytes, 0, 'nothing left')
  t.end()
})

test('the byte budget drops the oldest message of the node first and stays bounded under churn', (t) => {
  const histories = new TopicHistories(4000)
  const big = { limit: 10_000, maxAge: 1e9 }
  histories.record('old', big, data('x'.repeat(500)), 0)
  for (let i = 0; i < 50_000; i++) histories.record('busy', { limit: 2, maxAge: 1e9 }, data(i), i)
  t.same(values(histories.read('busy', { limit: 2, maxAge: 1e9 }, ALL, 50_000)), [49_998, 49_999])
  t.equal(histories.read('old', big, ALL, 0).entries.length, 1, 'the old message stays while the budget allows')
  for (let i = 0; i < 20; i++) histories.record('other', big, data('y'.repeat(300)), 60_000 + i)
  t.ok(histories.bytes <= 4000, `${histories.bytes} bytes within the budget`)
  t.equal(histories.read('old', big, ALL, 0).entries.length, 0, 'the oldest message went first')
  const none = new TopicHistories(0)
  none.record('a', limits, data(1), 0)
  t.same(none.read('a', limits, ALL, 0).entries, [], 'a budget of 0 keeps nothing')
  t.end()
})

test('history requests and positions: what parses and what does not', (t) => {
  t.same(parseHistoryRequest({}), { last: undefined, since: undefined })
  t.same(parseHistoryRequest({ last: 3, since: 'ab_-.12' }), { last: 3, since: { epoch: 'ab_-', n: 12 } })
  for (const bad of [null, [], 'x', { last: -1 }, { last: 1.5 }, { since: 'a.b' }, { since: '.1' }, { since: 'a.1234567890123456' }, { other: 1 }]) {
    t.equal(parseHistoryRequest(bad), undefined, JSON.stringify(bad))
  }
  t.equal(parsePosition(5), undefined)
  t.end()
})
