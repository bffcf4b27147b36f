import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import WebSocket from 'ws'
import glue, { type GlueOptions } from '../plugin/index.js'

export const SECRET = 'test-secret-that-is-long-enough-0123456789'

/**
 * The environment for a child process that attacks or fuzzes a server: without V8 coverage, so a
 * child killed in the middle of writing its report cannot spoil the run's coverage. In-process
 * tests measure coverage.
 */
export function withoutCoverage (): NodeJS.ProcessEnv {
  const env = { ...process.env }
  delete env.NODE_V8_COVERAGE
  return env
}

/** Captures the JSON log lines of a Fastify app. */
export interface LogCapture {
  readonly stream: Writable
  readonly lines: Array<Record<string, unknown>>
  /** Resolves with the first line whose msg matches (already logged or logged later). */
  waitFor (msg: string | RegExp): Promise<Record<string, unknown>>
}

export function createLogCapture (): LogCapture {
  const lines: Array<Record<string, unknown>> = []
  const waiters: Array<{ match: (line: Record<string, unknown>) => boolean, resolve: (line: Record<string, unknown>) => void }> = []
  const matcher = (msg: string | RegExp) => (line: Record<string, unknown>) =>
    typeof msg === 'string' ? line.msg === msg : msg.test(String(line.msg))
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const text of chunk.toString().split('\n')) {
        if (text === '') continue
        const line = JSON.parse(text) as Record<string, unknown>
        lines.push(line)
        for (let i = waiters.length - 1; i >= 0; i--) {
          const waiter = waiters[i]
          if (waiter !== undefined && waiter.match(line)) {
            waiters.splice(i, 1)
            waiter.resolve(line)
          }
        }
      }
      callback()
    }
  })
  return {
    stream,
    lines,
    waitFor (msg) {
      const match = matcher(msg)
      const found = lines.find(match)
      if (found !== undefined) return Promise.resolve(found)
      return new Promise((resolve) => { waiters.push({ match, resolve }) })
    }
  }
}

export interface StartedApp {
  readonly app: FastifyInstance
  readonly port: number
  readonly httpUrl: string
  readonly wsUrl: string
  readonly logs: LogCapture
}

export interface StartOptions {
  /** Options for glue; `cookie.secret` defaults to SECRET. */
  glue?: GlueOptions
  fastify?: FastifyServerOptions
  /** Runs before glue is registered (e.g. to register @fastify/cookie first). */
  before?: (app: FastifyInstance) => Promise<void> | void
  /** Runs after glue is registered (routes, listeners). */
  after?: (app: FastifyInstance) => Promise<void> | void
  port?: number
}

/** Builds a Fastify app with glue and listens on 127.0.0.1 (port 0 unless given). */
export async function startApp (options: StartOptions = {}): Promise<StartedApp> {
  const logs = createLogCapture()
  const app = Fastify({ logger: { level: 'debug', stream: logs.stream }, ...options.fastify })
  await options.before?.(app)
  const glueOptions = options.glue ?? {}
  await app.register(glue, { ...glueOptions, cookie: { secret: SECRET, ...glueOptions.cookie } })
  await options.after?.(app)
  await app.listen({ host: '127.0.0.1', port: options.port ?? 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  const path = glueOptions.path ?? '/ws'
  return {
    app,
    logs,
    port: address.port,
    httpUrl: `http://127.0.0.1:${address.port}`,
    wsUrl: `ws://127.0.0.1:${address.port}${path}`
  }
}

export interface OpenedSocket {
  readonly socket: WebSocket
  readonly response: IncomingMessage
  /** The raw Set-Cookie header lines of the 101 response. */
  readonly setCookie: string[]
  /** Messages received so far, in order (text frames as strings, binary as Buffers). */
  readonly received: Array<string | Buffer>
  /** Resolves with the next message not yet consumed by nextMessage(). */
  nextMessage (): Promise<string | Buffer>
  /** Resolves when the socket has closed, with the code and reason. */
  readonly closed: Promise<{ code: number, reason: string }>
}

/** Opens a ws client and resolves once it is open. */
export async function openSocket (url: string, options: WebSocket.ClientOptions = {}, protocols?: string | string[]): Promise<OpenedSocket> {
  const socket = protocols === undefined ? new WebSocket(url, { ...options }) : new WebSocket(url, protocols, { ...options })
  const received: Array<string | Buffer> = []
  let consumed = 0
  const waiters: Array<(data: string | Buffer) => void> = []
  socket.on('message', (data: Buffer, isBinary: boolean) => {
    const message = isBinary ? data : data.toString()
    received.push(message)
    const waiter = waiters.shift()
    if (waiter !== undefined) {
      consumed++
      waiter(message)
    }
  })
  const closed = new Promise<{ code: number, reason: string }>((resolve) => {
    socket.on('close', (code, reason) => { resolve({ code, reason: reason.toString() }) })
  })
  socket.on('error', () => {})
  // ws emits 'open' in the same tick as 'upgrade', so listen for both up front.
  const opened = once(socket, 'open')
  const [response] = await Promise.race([
    once(socket, 'upgrade') as Promise<[IncomingMessage]>,
    once(socket, 'unexpected-response').then(([, res]) => { throw new Error(`unexpected response ${(res as IncomingMessage).statusCode}`) })
  ])
  await opened
  const header = response.headers['set-cookie']
  return {
    socket,
    response,
    setCookie: header ?? [],
    received,
    closed,
    nextMessage () {
      if (consumed < received.length) return Promise.resolve(received[consumed++] as string | Buffer)
      return new Promise((resolve) => { waiters.push(resolve) })
    }
  }
}

/** Opens a ws client that the server must refuse; resolves with the HTTP status and body. */
export async function refusedHandshake (url: string, options: WebSocket.ClientOptions = {}): Promise<{ status: number, body: string }> {
  const socket = new WebSocket(url, options)
  socket.on('error', () => {})
  const [, response] = await Promise.race([
    once(socket, 'unexpected-response') as Promise<[unknown, IncomingMessage]>,
    once(socket, 'open').then(() => { socket.terminate(); throw new Error('handshake was accepted') })
  ])
  let body = ''
  for await (const chunk of response) body += String(chunk)
  return { status: response.statusCode ?? 0, body }
}

/** The `name=value` part of a Set-Cookie line, ready for a Cookie header. */
export function cookiePair (setCookie: string | undefined): string {
  if (setCookie === undefined) throw new Error('no Set-Cookie')
  return setCookie.split(';')[0] as string
}

/** Resolves once `predicate` is true, checking on each event-loop turn (bounded). */
export async function until (predicate: () => boolean, what = 'condition', timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** A TCP connection that performed the websocket handshake by hand, for byte-level tests. */
export interface RawSocket {
  readonly socket: import('node:net').Socket
  /** Bytes received after the 101 response. */
  readonly received: () => Buffer
  readonly ended: Promise<void>
}

/** Performs the upgrade with raw bytes and resolves once the 101 has arrived. */
export async function rawUpgrade (port: number, path = '/ws', extraHeaders = ''): Promise<RawSocket> {
  const { connect } = await import('node:net')
  const socket = connect(port, '127.0.0.1')
  let buffer = Buffer.alloc(0)
  let upgraded = false
  const ended = new Promise<void>((resolve) => { socket.on('close', () => resolve()) })
  socket.on('error', () => {})
  await once(socket, 'connect')
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extraHeaders}\r\n`)
  await new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk])
      if (!upgraded) {
        const end = buffer.indexOf('\r\n\r\n')
        if (end === -1) return
        const head = buffer.subarray(0, end).toString()
        if (!head.startsWith('HTTP/1.1 101')) { reject(new Error(head)); return }
        upgraded = true
        buffer = buffer.subarray(end + 4)
        resolve()
      }
    })
  })
  return { socket, received: () => buffer, ended }
}

/** The close code of the first close frame in server-to-client bytes, or undefined. */
export function closeCodeOf (bytes: Buffer): number | undefined {
  let offset = 0
  while (offset + 2 <= bytes.length) {
    const opcode = (bytes[offset] as number) & 0x0f
    let length = (bytes[offset + 1] as number) & 0x7f
    let header = 2
    if (length === 126) { length = bytes.readUInt16BE(offset + 2); header = 4 }
    if (opcode === 0x8) return length >= 2 ? bytes.readUInt16BE(offset + header) : 1005
    offset += header + length
  }
  return undefined
}

/** A glue.v1 client speaking raw envelopes, for protocol tests. */
export interface GlueSocket extends OpenedSocket {
  /** The `["w", epoch, seq]` envelope every glue.v1 socket receives first. */
  readonly welcome: { epoch: string, seq: number }
  /** Sends an envelope as JSON text. */
  sendEnvelope (envelope: unknown[]): void
  /** Resolves with the next text frame, parsed. */
  nextEnvelope (): Promise<unknown[]>
}

export async function openGlueSocket (url: string, options: WebSocket.ClientOptions = {}): Promise<GlueSocket> {
  const opened = await openSocket(url, options, 'glue.v1')
  const first = await opened.nextMessage()
  const welcome = typeof first === 'string' ? JSON.parse(first) as unknown[] : []
  if (welcome[0] !== 'w') throw new Error(`expected a welcome envelope first, got ${String(first)}`)
  return {
    ...opened,
    welcome: { epoch: welcome[1] as string, seq: welcome[2] as number },
    sendEnvelope (envelope) { opened.socket.send(JSON.stringify(envelope)) },
    async nextEnvelope () {
      const message = await opened.nextMessage()
      if (typeof message !== 'string') throw new Error('expected a text envelope')
      return JSON.parse(message) as unknown[]
    }
  }
}

/** A masked client text frame, for writing through a RawSocket. */
export function clientFrame (text: string): Buffer {
  const payload = Buffer.from(text)
  const mask = Buffer.from([1, 2, 3, 4])
  const masked = Buffer.from(payload.map((byte, i) => byte ^ (mask[i % 4] as number)))
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked])
}
