import { test } from 'tap'
import { createHandshakeLimiter } from '../../plugin/handshake/handshake-limit.js'

test('allows a burst per address, then the sustained rate', (t) => {
  const limiter = createHandshakeLimiter({ handshakesPerSecond: 10, burst: 3 })
  t.same([1, 2, 3, 4].map(() => limiter.allow('a', 0)), [true, true, true, false], 'a burst of 3')
  t.equal(limiter.allow('b', 0), true, 'another address has its own bucket')
  t.equal(limiter.allow('a', 50), false, 'half a token after 50 ms')
  t.equal(limiter.allow('a', 100), true, 'one token after 100 ms at 10/s')
  t.end()
})

test('forgets addresses whose bucket is full again', (t) => {
  const limiter = createHandshakeLimiter({ handshakesPerSecond: 10, burst: 2 })
  limiter.allow('a', 0)
  limiter.allow('a', 0)
  limiter.sweep(100)
  t.equal(limiter.allow('a', 100), true, 'still refilling: remembered, one token back')
  t.equal(limiter.allow('a', 100), false)
  limiter.sweep(10_000)
  t.same([limiter.allow('a', 10_000), limiter.allow('a', 10_000), limiter.allow('a', 10_000)], [true, true, false], 'a fresh bucket after being forgotten')
  t.end()
})

test('false allows everything', (t) => {
  const limiter = createHandshakeLimiter(false)
  for (let i = 0; i < 1000; i++) if (!limiter.allow('a', 0)) t.fail('refused')
  limiter.sweep(0)
  t.pass('never refuses')
  t.end()
})
