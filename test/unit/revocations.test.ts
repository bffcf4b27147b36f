import { test } from 'tap'
import { createStats } from '../../plugin/stats.js'
import { Revocations } from '../../plugin/users/revocations.js'

const LIFETIME = 1000
const claims = (sessionId: string, userId: string | null = null, issuedAt = 0): { sessionId: string, userId: string | null, issuedAt: number } => ({ sessionId, userId, issuedAt })

test('a revoked session id is refused until one cookie lifetime has passed', (t) => {
  const stats = createStats()
  const revocations = new Revocations(LIFETIME, 10, stats, () => {})
  revocations.revokeSession('a', 100)
  revocations.revokeSession('b', 600)
  t.ok(revocations.refuses(claims('a')))
  t.notOk(revocations.refuses(claims('c')))
  revocations.sweep(1099)
  t.ok(revocations.refuses(claims('a')), 'kept while a cookie it refuses could be valid')
  revocations.sweep(1100)
  t.notOk(revocations.refuses(claims('a')), 'forgotten: any cookie it could refuse has expired')
  t.ok(revocations.refuses(claims('b')))
  t.equal(stats.revocations, 1)
  t.end()
})

test('a revoked user refuses the cookies issued at or before the revocation, not after', (t) => {
  const revocations = new Revocations(LIFETIME, 10, createStats(), () => {})
  revocations.revokeUser('ada', 500)
  revocations.revokeUser('ada', 400)
  t.ok(revocations.refuses(claims('x', 'ada', 500)), 'issued at the revocation')
  t.ok(revocations.refuses(claims('x', 'ada', 100)))
  t.notOk(revocations.refuses(claims('x', 'ada', 501)), 'a later login; an older revocation never moves it back')
  t.notOk(revocations.refuses(claims('x', 'bob', 100)), 'another user')
  t.notOk(revocations.refuses(claims('x', null, 100)), 'anonymous')
  revocations.sweep(1500)
  t.notOk(revocations.refuses(claims('x', 'ada', 100)))
  t.end()
})

test('each kind holds at most max entries, the oldest evicted first', (t) => {
  const stats = createStats()
  let evictions = 0
  const revocations = new Revocations(LIFETIME, 3, stats, () => { evictions++ })
  for (let i = 0; i < 5; i++) revocations.revokeSession(`s${i}`, i)
  revocations.revokeSession('s2', 10)
  revocations.revokeSession('s5', 11)
  t.same(['s0', 's1', 's2', 's3', 's4', 's5'].map((id) => revocations.refuses(claims(id))), [false, false, true, false, true, true],
    'a revocation made again counts as new')
  t.equal(stats.revocationEvictions, 3)
  t.equal(evictions, 3)
  for (let i = 0; i < 5; i++) revocations.revokeUser(`u${i}`, i)
  t.equal(revocations.size, 6)
  t.equal(stats.revocations, 6)
  t.end()
})
