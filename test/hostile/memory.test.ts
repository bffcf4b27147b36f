import { test, type Test } from 'tap'
import {
  cookiePair,
  MiB,
  mib,
  openGlueSocket,
  openSocket,
  pauseReading,
  resumeUrl,
  startTarget,
  type GlueSocket,
  type OpenedSocket,
  type Target
} from '../helpers/index.js'
import type { SessionStats } from '../../plugin/index.js'

// What one client on one address may cost the server, whatever it does, with default options.
const ATTACK_BUDGET = 64 * MiB

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** Runs `attack` while sampling the target's memory; resolves with the highest heap + external growth seen. */
async function peakGrowth (target: Target, attack: () => Promise<void>): Promise<number> {
  const before = (await target.memory()).total
  let peak = 0
  const attacking = new AbortController()
  const sampling = (async () => {
    while (!attacking.signal.aborted) {
      peak = Math.max(peak, (await target.memory()).total - before)
      await sleep(100)
    }
  })()
  try {
    await attack()
  } finally {
    attacking.abort()
    await sampling
  }
  return Math.max(peak, (await target.memory()).total - before)
}

/** Proves the target still serves other sessions: a request from a fresh client is answered. */
async function servesOthers (t: Test, target: Target): Promise<void> {
  t.ok(target.alive(), 'the server process is running')
  const bystander = await openGlueSocket(target.wsUrl, { localAddress: '127.0.0.2' })
  bystander.sendEnvelope(['q', 1, { size: 2 }])
  let reply = await bystander.nextEnvelope()
  // The app may greet every new session with a message first.
  while (reply[0] !== 'r') reply = await bystander.nextEnvelope()
  t.same(reply, ['r', 1, 1, 'xx'], 'another client is answered')
  bystander.socket.close()
}

test('sockets that never read cannot pin memory with request replies', async (t) => {
  const target = await startTarget(t)
  let attackers: GlueSocket[] = []
  const growth = await peakGrowth(target, async () => {
    // Three sockets asking for 60 KB replies at 90 per second each, for 4 s, coming back when closed.
    const deadline = Date.now() + 4000
    let id = 0
    while (Date.now() < deadline) {
      attackers = await Promise.all(attackers.map(async (attacker) => {
        if (attacker.socket.readyState === attacker.socket.OPEN) return attacker
        attacker.socket.terminate()
        const again = await openGlueSocket(target.wsUrl, { headers: { cookie: cookiePair(attacker.setCookie[0]) } })
        pauseReading(again)
        return Object.assign(again, { setCookie: attacker.setCookie })
      }))
      while (attackers.length < 3) {
        const attacker = await openGlueSocket(target.wsUrl)
        pauseReading(attacker)
        attackers.push(attacker)
      }
      for (const attacker of attackers) {
        if (attacker.socket.readyState === attacker.socket.OPEN) attacker.sendEnvelope(['q', ++id, { size: 60_000 }])
      }
      await sleep(11)
    }
  })
  const stats = await target.stats()
  t.ok(stats.slowConsumerCloses >= 3, `the non-readers were closed as slow consumers (${stats.slowConsumerCloses})`)
  // Each socket holds at most twice sendHighWaterMark (1 MiB) before it is closed.
  t.ok(growth < 3 * 2 * MiB + 8 * MiB, `heap + external grew by at most ${mib(growth)}`)
  for (const attacker of attackers) attacker.socket.terminate()
  await servesOthers(t, target)
})

/** Polls the target's counters until `predicate` holds (the server handles closes after the client sees them). */
async function settledStats (target: Target, predicate: (stats: SessionStats) => boolean): Promise<SessionStats> {
  let stats = await target.stats()
  for (let i = 0; i < 200 && !predicate(stats); i++) {
    await sleep(10)
    stats = await target.stats()
  }
  return stats
}

/** Opens glue.v1 sockets without a cookie and closes each after its welcome: one fresh session each. */
async function mintSessions (target: Target, count: number, options: { speak?: boolean } = {}): Promise<string[]> {
  const cookies: string[] = []
  const open = async (): Promise<void> => {
    const client = await openGlueSocket(target.wsUrl)
    cookies.push(cookiePair(client.setCookie[0]))
    if (options.speak === true) client.sendEnvelope(['m', 'hello'])
    client.socket.close()
    await client.closed
  }
  for (let done = 0; done < count; done += 50) await Promise.all(Array.from({ length: Math.min(50, count - done) }, open))
  return cookies
}

test('a handshake flood cannot grow what detached sessions hold, nor what a broadcast costs them', async (t) => {
  const target = await startTarget(t)
  const baseline = (await target.memory()).total
  await mintSessions(target, 2500, { speak: true })
  let stats = await settledStats(target, (stats) => stats.sockets === 0 && stats.detachedSessions === 2500)
  const flooded = await target.memory()
  t.equal(stats.detachedSessions, 2500, 'every session that spoke is kept for its grace')
  const perSession = (flooded.total - baseline) / 2500
  t.ok(perSession < 2048, `about ${Math.round(perSession)} B per detached session`)
  // Detached sessions read broadcasts from one shared log when they come back: nothing per session now.
  await target.call('broadcast', { count: 500, size: 100 })
  const broadcasted = await target.memory()
  t.ok(broadcasted.total - flooded.total < 2 * MiB, `500 broadcasts added ${mib(broadcasted.total - flooded.total)} for 2500 detached sessions`)
  stats = await target.stats()
  t.equal(stats.messagesOut, 0, 'no socket was written to')
  t.ok(broadcasted.total - baseline < ATTACK_BUDGET, `all in all ${mib(broadcasted.total - baseline)}`)
  await servesOthers(t, target)
})

test('detached sessions stay within maxDetachedSessions; idle ones are evicted first, and an evicted session resumes with a gap', async (t) => {
  const target = await startTarget(t, { glue: { maxDetachedSessions: 40 } })
  const user = await openGlueSocket(target.wsUrl)
  const cookie = cookiePair(user.setCookie[0])
  const [userId] = await target.call<string[]>('sessionIds')
  user.sendEnvelope(['m', 'a real user says something'])
  user.socket.close()
  await user.closed
  await target.call('send', { sessionId: userId, data: 'while away' })
  await mintSessions(target, 100)
  let stats = await settledStats(target, (stats) => stats.sockets === 0 && stats.detachedEvictions >= 61)
  t.equal(stats.detachedSessions, 40, 'at most maxDetachedSessions are kept')
  t.equal(stats.detachedEvictions, 61, 'the oldest idle sessions went first')
  t.equal(await target.call('isKnown', { sessionId: userId }), true, 'the session with something to resume stays')
  const back = await openGlueSocket(resumeUrl(target.wsUrl, user.welcome.epoch, 0), { headers: { cookie } })
  t.same(await back.nextEnvelope(), ['m', 1, 'while away'], 'and resumes without loss')
  back.socket.close()
  await back.closed

  await mintSessions(target, 60, { speak: true })
  stats = await settledStats(target, (stats) => stats.sockets === 0 && stats.detachedEvictions >= 101)
  t.equal(stats.detachedSessions, 40)
  t.equal(await target.call('isKnown', { sessionId: userId }), false, 'sessions that spoke are evicted oldest first once no idle one is left')
  const late = await openGlueSocket(resumeUrl(target.wsUrl, user.welcome.epoch, 1), { headers: { cookie } })
  t.not(late.welcome.epoch, user.welcome.epoch, 'a new delivery state')
  t.same(await late.nextEnvelope(), ['g', null], 'the evicted session sees a gap')
  late.socket.close()
})

test('maxDetachedBytes bounds the messages kept for detached sessions', async (t) => {
  // Every new session is sent 100 KB at connect, so each detached session holds one unique message.
  const target = await startTarget(t, { sendOnConnect: 100_000 })
  const growth = await peakGrowth(target, async () => { await mintSessions(target, 600) })
  const stats = await settledStats(target, (stats) => stats.sockets === 0 && stats.detachedSessions + stats.detachedEvictions === 600)
  // 32 MiB of detached memory holds about 330 of them.
  t.ok(stats.detachedSessions < 340 && stats.detachedSessions > 300, `${stats.detachedSessions} kept`)
  t.equal(stats.detachedEvictions, 600 - stats.detachedSessions)
  t.ok(growth < 32 * MiB + 8 * MiB, `heap + external grew by at most ${mib(growth)}`)
  await servesOthers(t, target)
})

test('a session cannot subscribe to more than maxTopicsPerSession topics', async (t) => {
  const target = await startTarget(t, { authorizeAll: true, glue: { maxTopicsPerSession: 100 } })
  const first = await openGlueSocket(target.wsUrl)
  const cookie = cookiePair(first.setCookie[0])
  const tabs = [first, ...await Promise.all([1, 2].map(async () => await openGlueSocket(target.wsUrl, { headers: { cookie } })))]
  const [sessionId] = await target.call<string[]>('sessionIds')
  const codes = new Map<string, number>()
  await Promise.all(tabs.map(async (tab, n) => {
    for (let i = 0; i < 60; i++) tab.sendEnvelope(['s', i, `topic-${n}-${i}`])
    for (let i = 0; i < 60; i++) {
      const reply = await tab.nextEnvelope()
      const code = reply[2] === 1 ? 'ok' : (reply[3] as { code: string }).code
      codes.set(code, (codes.get(code) ?? 0) + 1)
    }
  }))
  t.equal(codes.get('ok'), 100, '100 subscriptions granted')
  t.equal(codes.get('GLUE_TOO_MANY_TOPICS'), 80, 'the rest refused with GLUE_TOO_MANY_TOPICS')
  t.equal(await target.call('topicCount', { sessionId }), 100)
  for (const tab of tabs) tab.socket.close()
  await servesOthers(t, target)
})

test('requests in progress are capped per socket, and their handlers are told when the socket closes', async (t) => {
  const target = await startTarget(t, { requestsHang: true })
  const client = await openGlueSocket(target.wsUrl)
  for (let i = 0; i < 150; i++) client.sendEnvelope(['q', i, null])
  const refusals: unknown[] = []
  for (let i = 0; i < 50; i++) refusals.push(await client.nextEnvelope())
  t.ok(refusals.every((reply) => (reply as unknown[])[2] === 0 && ((reply as unknown[])[3] as { code: string }).code === 'GLUE_TOO_MANY_REQUESTS'), '50 refused')
  t.same(await target.call('requests'), { waiting: 100, aborted: 0 }, '100 (maxPendingRequests) in progress')
  client.socket.close()
  await client.closed
  let requests = await target.call<{ waiting: number, aborted: number }>('requests')
  for (let i = 0; i < 50 && requests.waiting > 0; i++) {
    await sleep(20)
    requests = await target.call('requests')
  }
  t.same(requests, { waiting: 0, aborted: 100 }, 'every handler saw its signal abort')
  await servesOthers(t, target)
})

test('messages sent while an async onConnect runs are held back by TCP, not by server memory, and none is lost', async (t) => {
  const target = await startTarget(t, { slowConnect: true, recordMessages: true })
  const payload = 'p'.repeat(64_000)
  let client: OpenedSocket | undefined
  const growth = await peakGrowth(target, async () => {
    client = await openSocket(target.wsUrl)
    // 150 x 64 KB (under the rate limit's burst): 9.6 MB the server must not buffer.
    for (let i = 0; i < 150; i++) client.socket.send(`${i}:${payload}`)
    await sleep(1500)
  })
  t.ok(growth < 4 * MiB, `heap + external grew by at most ${mib(growth)} while onConnect ran`)
  await target.call('releaseConnect')
  let received: number[] = []
  for (let i = 0; i < 100 && received.length < 150; i++) {
    await sleep(50)
    received = await target.call<number[]>('received')
  }
  t.same(received, Array.from({ length: 150 }, (_, i) => i), 'every message arrives, in order, once onConnect resolves')
  client?.socket.close()
})
