// The server under fuzz, in its own process: an uncaught exception or unhandled rejection kills it,
// which the parent notices whatever tap does with its own process handlers.
// Run with `node --import tsx test/hostile/fuzz-server.ts`; it talks to the parent over IPC.
import Fastify from 'fastify'
import type { WebSocket } from 'ws'
import glue from '../../plugin/index.js'
import { APP_ERROR, digestOf, FUZZ_SECRET, PROBE, type ProbeAnswer, type ServerCommand, type ServerReply } from './fuzz-model.js'

interface Seen { count: number, digest: string }
const seen = new WeakMap<WebSocket, Seen>()

function seenBy (socket: WebSocket): Seen {
  let entry = seen.get(socket)
  if (entry === undefined) {
    entry = { count: 0, digest: '' }
    seen.set(socket, entry)
  }
  return entry
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

// Listener leaks (MaxListenersExceededWarning) and the like, for the parent's final check.
const warnings: string[] = []
process.on('warning', (warning) => { warnings.push(`${warning.name}: ${warning.message}`) })

const app = Fastify({ logger: { level: 'error', stream: process.stderr } })
await app.register(glue, {
  cookie: { secret: FUZZ_SECRET },
  onConnect (_session, _socket, request) {
    // An async connect listener makes the plugin queue the frames that arrive meanwhile.
    if ((request.query as Record<string, unknown>).fuzz_slow === '1') return tick()
    return undefined
  },
  onMessage (session, data, socket) {
    const entry = seenBy(socket)
    if (socket.protocol === '' && data === PROBE) {
      const answer: ProbeAnswer = { count: entry.count, digest: entry.digest, sessionId: session.id }
      socket.send(JSON.stringify(answer))
      return
    }
    entry.count++
    entry.digest = digestOf(data)
  },
  answerRequest (session, data, socket) {
    if (data === PROBE) {
      const entry = seenBy(socket)
      const answer: ProbeAnswer = { count: entry.count, digest: entry.digest, sessionId: session.id }
      return answer
    }
    if (typeof data === 'string') {
      if (data.startsWith('throw')) throw new Error('handler failed on purpose')
      if (data.startsWith('expose-plain')) throw Object.assign(new Error(APP_ERROR.message), { expose: true })
      if (data.startsWith('expose')) throw Object.assign(new Error(APP_ERROR.message), { expose: true, code: APP_ERROR.code })
      if (data.startsWith('reject')) return Promise.reject(new Error('handler rejected on purpose'))
      if (data.startsWith('async')) return tick().then(() => data)
      if (data.startsWith('nothing')) return undefined
    }
    return data
  },
  authorizeSubscribe (_session, topic) {
    if (topic.startsWith('deny')) return false
    if (topic.startsWith('boom')) throw new Error('authorizer failed on purpose')
    if (topic.startsWith('reject')) return Promise.reject(new Error('authorizer rejected on purpose'))
    if (topic.startsWith('later')) return tick().then(() => true)
    return true
  }
})
app.get('/health', async () => ({ ok: true }))
await app.listen({ host: '127.0.0.1', port: 0 })

async function run (command: ServerCommand): Promise<unknown> {
  switch (command.cmd) {
    case 'stats':
      return app.sessions.stats()
    case 'warnings':
      return warnings
    case 'send':
      return app.sessions.send(command.sessionId, command.data)
    case 'stop':
      await app.close()
      setImmediate(() => process.exit(0))
      return true
  }
}

process.on('message', (message: { id: number, command: ServerCommand }) => {
  run(message.command).then(
    (result) => { process.send?.({ id: message.id, ok: true, result } satisfies ServerReply) },
    (err: unknown) => { process.send?.({ id: message.id, ok: false, error: String(err) } satisfies ServerReply) }
  )
})
// The parent going away must not leave the server behind.
process.on('disconnect', () => process.exit(0))
const address = app.server.address()
process.send?.({ id: -1, ok: true, result: typeof address === 'object' && address !== null ? address.port : 0 } satisfies ServerReply)
