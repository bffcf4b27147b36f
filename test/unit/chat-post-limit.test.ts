import { test } from 'tap'
import { createPostLimit } from '../../example/chat/post-limit.js'

test('allows a burst, then refills at the rate, never above the burst', async (t) => {
  const limit = createPostLimit({ postsPerSecond: 2, burst: 3 })
  t.same([1, 2, 3, 4].map(() => limit.take('a', 0)), [true, true, true, false], 'a burst of 3')
  t.equal(limit.take('a', 400), false, '0.8 of a post refilled')
  t.equal(limit.take('a', 500), true, 'one post refilled after 500 ms at 2/s')
  t.equal(limit.take('a', 500), false)
  t.same([1, 2, 3, 4].map(() => limit.take('a', 60_000)), [true, true, true, false], 'a long pause refills the burst only')
})

test('keeps one budget per session', async (t) => {
  const limit = createPostLimit({ postsPerSecond: 1, burst: 1 })
  t.equal(limit.take('a', 0), true)
  t.equal(limit.take('a', 0), false)
  t.equal(limit.take('b', 0), true, 'another session has its own')
})

test('tracks at most maxTracked sessions, forgetting the one that posted least recently', async (t) => {
  const limit = createPostLimit({ postsPerSecond: 1, burst: 1, maxTracked: 2 })
  limit.take('a', 0)
  limit.take('b', 0)
  limit.take('a', 0)
  limit.take('c', 0)
  t.equal(limit.size, 2)
  t.equal(limit.take('a', 0), false, 'a posted recently: still tracked, still spent')
  t.equal(limit.take('b', 0), true, 'b was forgotten: a full burst again')
})

test('uses 1 post per second, a burst of 5 and 10,000 sessions by default', async (t) => {
  const limit = createPostLimit()
  t.same([1, 2, 3, 4, 5, 6].map(() => limit.take('a', 0)), [true, true, true, true, true, false])
  t.equal(limit.take('a', 999), false)
  t.equal(limit.take('a', 1000), true)
  for (let i = 0; i < 10_050; i++) limit.take(`s${i}`, 0)
  t.equal(limit.size, 10_000)
})

test('rejects options outside their range with a RangeError naming the option', async (t) => {
  for (const [options, message] of [
    [{ postsPerSecond: 0 }, 'Expected postsPerSecond to be a positive number, got 0'],
    [{ postsPerSecond: Infinity }, 'Expected postsPerSecond to be a positive number, got Infinity'],
    [{ postsPerSecond: Number.NaN }, 'Expected postsPerSecond to be a positive number, got NaN'],
    [{ burst: 0 }, 'Expected burst to be an integer >= 1, got 0'],
    [{ burst: 1.5 }, 'Expected burst to be an integer >= 1, got 1.5'],
    [{ maxTracked: 0 }, 'Expected maxTracked to be an integer >= 1, got 0']
  ] as const) {
    t.throws(() => createPostLimit(options), { name: 'RangeError', message })
  }
})
