// Drives the fuzz test: the server process, ws clients that probe the server after every frame,
// and raw TCP handshakes.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import { connect as connectTcp, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { withoutCoverage } from '../helpers/index.js'
import { PROBE, type Observation, type ProbeAnswer, type ServerCommand, type ServerReply } from './fuzz-model.js'

const SERVER_FILE = fileURLToPath(new URL('./fuzz-server.ts', import.meta.url))
const STDERR_TAIL = 16 * 1024

/** Resolves once `ready()` is true or `ms` have passed; `wake` lets an event cut the wait short. */
class Waiter {
  #wake: (() => void) | undefined

  notify (): void {
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
  }

  async until (ready: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms
    while (!ready()) {
      const left = deadline - Date.now()
      if (left <= 0) return false
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.#wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
    return true
  }
}

type Pending = Map<number, { resolve: (value: unknown) => void, reject: (err: Error) => void }>

/** The glue server in a child process (test/hostile/fuzz-server.ts), reached over IPC. */
export class FuzzServer {
  port = 0
  readonly #child: ChildProcess
  readonly #pending: Pending = new Map()
  readonly #exited: Promise<void>
  #exit: string | undefined
  #stderr = ''
  #nextId = 0

  private constructor (child: ChildProcess) {
    this.#child = child
    this.#exited = new Promise((resolve) => { child.once('exit', () => resolve()).once('error', () => resolve()) })
    child.stderr?.on('data', (chunk: Buffer) => { this.#stderr = (this.#stderr + chunk.toString()).slice(-STDERR_TAIL) })
    child.on('message', (message: ServerReply) => {
      const entry = this.#pending.get(message.id)
      if (entry === undefined) return
      this.#pending.delete(message.id)
      if (message.ok) entry.resolve(message.result)
      else entry.reject(new Error(message.error))
    })
    const ended = (why: string): void => {
      this.#exit ??= why
      for (const entry of this.#pending.values()) entry.reject(new Error(this.death))
      this.#pending.clear()
    }
    child.on('exit', (code, signal) => { ended(`exit code ${code}, signal ${signal}`) })
    child.on('error', (err) => { ended(`could not start: ${err.message}`) })
  }

  /** Starts a server process and resolves once it listens. */
  static async start (): Promise<FuzzServer> {
    const server = new FuzzServer(spawn(process.execPath, ['--import', 'tsx', SERVER_FILE], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: withoutCoverage() }))
    // The server announces its port with the reply id -1.
    server.port = await new Promise<number>((resolve, reject) => {
      server.#pending.set(-1, { resolve: (port) => { resolve(port as number) }, reject })
    })
    return server
  }

  get alive (): boolean {
    return this.#exit === undefined
  }

  /** Why the process ended, with the end of its stderr (the crash's stack trace). */
  get death (): string {
    return `fuzz server died (${this.#exit ?? 'still running'}); its stderr ends with:\n${this.#stderr.slice(-4000)}`
  }

  /** Resolves true when the process exits within `ms` (a crash shortly after a bad frame). */
  async diesWithin (ms: number): Promise<boolean> {
    if (!this.alive) return true
    let timer: NodeJS.Timeout | undefined
    const exited = await Promise.race([
      this.#exited.then(() => true),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms) })
    ])
    clearTimeout(timer)
    return exited
  }

  call (command: ServerCommand): Promise<unknown> {
    if (!this.alive) return Promise.reject(new Error(this.death))
    return new Promise((resolve, reject) => {
      const id = this.#nextId++
      this.#pending.set(id, { resolve, reject })
      this.#child.send({ id, command })
    })
  }

  async stats (): Promise<{ sockets: number, sessions: number }> {
    return await this.call({ cmd: 'stats' }) as { sockets: number, sessions: number }
  }

  /** Waits until the server counts no open socket. */
  async drained (ms = 5000): Promise<void> {
    const deadline = Date.now() + ms
    let sockets = -1
    while (Date.now() < deadline) {
      sockets = (await this.stats()).sockets
      if (sockets === 0) return
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    throw new Error(`the server still counts ${sockets} open socket(s) ${ms} ms after every client closed`)
  }

  /** Stops the server through app.close() and resolves with its exit code. */
  async stop (): Promise<number | null> {
    if (this.alive) {
      await this.call({ cmd: 'stop' }).catch(() => undefined)
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5000)
      await this.#exited
      clearTimeout(timer)
    }
    return this.#child.exitCode
  }
}

/** A frame to send: its message bytes, and where to cut them into fragments. */
export interface FrameToSend {
  readonly bytes: Buffer
  readonly binary: boolean
  readonly cuts: readonly number[]
  /** How many times to send it back to back (a burst), 1 by default. */
  readonly repeat?: number
}

/** A websocket handshake from the ws client. */
export interface HandshakeToSend {
  readonly path: string
  /** The query string without `?`, or ''. */
  readonly query: string
  readonly protocols: readonly string[] | undefined
  readonly cookie: string | undefined
  readonly origin: string | undefined
}

let nextProbeId = 8e15

/** A ws client that asks the server, after every frame, what its onMessage saw (see PROBE). */
export class FuzzClient {
  readonly socket: WebSocket
  readonly inbox: Array<string | Buffer> = []
  closed: { code: number, reason: string } | undefined
  readonly #waiter = new Waiter()
  #read = 0
  #count = 0
  /** Messages sent so far, probes included: what the server's rate limit counts. */
  sent = 0

  constructor (socket: WebSocket) {
    this.socket = socket
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      this.inbox.push(isBinary ? data : data.toString('utf8'))
      this.#waiter.notify()
    })
    socket.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString('utf8') }
      this.#waiter.notify()
    })
  }

  get glue (): boolean {
    return this.socket.protocol === 'glue.v1'
  }

  /** Resolves with the next message not read yet, or undefined when none arrives in time. */
  async next (ms = 3000): Promise<string | Buffer | undefined> {
    await this.#waiter.until(() => this.#read < this.inbox.length || this.closed !== undefined, ms)
    return this.#read < this.inbox.length ? this.inbox[this.#read++] : undefined
  }

  /**
   * Sends a frame (or nothing) followed by a probe, and reports what came back before the probe's
   * answer. `replyExpected` waits a little longer for replies of async handlers.
   */
  async exchange (frame: FrameToSend | undefined, replyExpected: boolean): Promise<Observation> {
    if (frame !== undefined) {
      for (let i = 0; i < (frame.repeat ?? 1); i++) this.#send(frame)
    }
    const probeId = nextProbeId++
    this.socket.send(this.glue ? JSON.stringify(['q', probeId, PROBE]) : PROBE)
    this.sent++
    let answer: ProbeAnswer | undefined
    const replies: unknown[][] = []
    const other: Array<string | Buffer> = []
    const read = (): void => {
      while (this.#read < this.inbox.length) {
        const message = this.inbox[this.#read++] as string | Buffer
        const parsed = typeof message === 'string' ? parseJson(message) : undefined
        if (this.glue && Array.isArray(parsed) && parsed[0] === 'r') {
          if (parsed[1] === probeId) answer = parsed[3] as ProbeAnswer
          else replies.push(parsed)
        } else if (!this.glue && typeof (parsed as ProbeAnswer | undefined)?.sessionId === 'string') {
          answer = parsed as ProbeAnswer
        } else {
          other.push(message)
        }
      }
    }
    await this.#waiter.until(() => { read(); return answer !== undefined || this.closed !== undefined }, 5000)
    if (replyExpected && answer !== undefined) {
      await this.#waiter.until(() => { read(); return replies.length > 0 || this.closed !== undefined }, 1000)
    }
    // A close frame may be on its way right behind the last message.
    if (answer === undefined && this.closed === undefined) {
      throw new Error(`no answer to the probe and no close within 5 s; received meanwhile: ${JSON.stringify(other.concat(...replies.map((r) => JSON.stringify(r))))}`)
    }
    const delivered = answer === undefined ? undefined : answer.count - this.#count
    if (answer !== undefined) this.#count = answer.count
    return { delivered, digest: answer?.digest, replies, other, close: answer === undefined ? this.closed : undefined }
  }

  /** The session id, as the server's probe answer names it. */
  async sessionId (): Promise<string> {
    this.socket.send(this.glue ? JSON.stringify(['q', nextProbeId, PROBE]) : PROBE)
    this.sent++
    const wanted = nextProbeId++
    for (;;) {
      const message = await this.next()
      if (message === undefined) throw new Error('no probe answer')
      const parsed = typeof message === 'string' ? parseJson(message) : undefined
      if (Array.isArray(parsed) && parsed[1] === wanted) return (parsed[3] as ProbeAnswer).sessionId
      if (!this.glue && typeof (parsed as ProbeAnswer | undefined)?.sessionId === 'string') return (parsed as ProbeAnswer).sessionId
    }
  }

  #send (frame: FrameToSend): void {
    const parts: Buffer[] = []
    let from = 0
    for (const cut of frame.cuts) {
      parts.push(frame.bytes.subarray(from, cut))
      from = cut
    }
    parts.push(frame.bytes.subarray(from))
    parts.forEach((part, i) => { this.socket.send(part, { binary: frame.binary, fin: i === parts.length - 1 }) })
    this.sent++
  }

  /** Closes from our side (if the server has not) and waits for the close to complete. */
  async close (): Promise<void> {
    if (this.closed === undefined) {
      if (this.socket.readyState === WebSocket.OPEN) this.socket.close(1000)
      if (!await this.#waiter.until(() => this.closed !== undefined, 2000)) this.socket.terminate()
      await this.#waiter.until(() => this.closed !== undefined, 2000)
    }
  }
}

function parseJson (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/**
 * The outcome of a handshake: an open client, or the HTTP status and body of a refusal (or of a
 * 101 that the client itself refused, such as one selecting none of the offered subprotocols).
 */
export type HandshakeOutcome =
  | { readonly status: 101, readonly client: FuzzClient }
  | { readonly status: number, readonly body: string }

/** Opens a ws client with the given handshake. Rejects when the server answers no HTTP response at all. */
export async function handshake (port: number, spec: HandshakeToSend): Promise<HandshakeOutcome> {
  const url = `ws://127.0.0.1:${port}${spec.path}${spec.query === '' ? '' : '?' + spec.query}`
  const options: WebSocket.ClientOptions = { handshakeTimeout: 5000, headers: spec.cookie === undefined ? {} : { cookie: spec.cookie } }
  if (spec.origin !== undefined) options.origin = spec.origin
  const socket = spec.protocols === undefined ? new WebSocket(url, options) : new WebSocket(url, [...spec.protocols], options)
  const client = new FuzzClient(socket)
  return await new Promise<HandshakeOutcome>((resolve, reject) => {
    socket.once('open', () => { resolve({ status: 101, client }) })
    socket.once('unexpected-response', (request, response: IncomingMessage) => {
      let body = ''
      response.on('data', (chunk: Buffer) => { body += chunk.toString() })
      response.on('end', () => {
        request.destroy()
        resolve({ status: response.statusCode ?? 0, body })
      })
      response.on('error', () => { resolve({ status: response.statusCode ?? 0, body }) })
    })
    // ws emits 'upgrade' before it checks the response: a 101 it then refuses is still a 101.
    let upgraded = false
    socket.once('upgrade', () => { upgraded = true })
    socket.on('error', (err) => {
      if (upgraded) resolve({ status: 101, body: `the client failed the connection: ${err.message}` })
      else reject(new Error(`handshake failed without an HTTP answer: ${err.message}`))
    })
  })
}

/** A TCP connection that sent a hand-written upgrade request. */
export class RawConnection {
  readonly socket: Socket
  #data = Buffer.alloc(0)
  #headEnd = -1
  ended = false
  readonly #waiter = new Waiter()

  private constructor (socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      this.#data = Buffer.concat([this.#data, chunk])
      if (this.#headEnd === -1) this.#headEnd = this.#data.indexOf('\r\n\r\n')
      this.#waiter.notify()
    })
    socket.on('close', () => {
      this.ended = true
      this.#waiter.notify()
    })
    socket.on('error', () => {})
  }

  /** Connects, writes `head` and waits for the response head. */
  static async open (port: number, head: string): Promise<RawConnection> {
    const socket = connectTcp(port, '127.0.0.1')
    const connection = new RawConnection(socket)
    await once(socket, 'connect')
    socket.write(head)
    await connection.#waiter.until(() => connection.#headEnd !== -1 || connection.ended, 5000)
    return connection
  }

  /** The HTTP status of the response, or 0 when none arrived. */
  get status (): number {
    if (this.#headEnd === -1) return 0
    const match = /^HTTP\/1\.1 (\d{3})/.exec(this.#data.subarray(0, this.#headEnd).toString('latin1'))
    return match === null ? 0 : Number(match[1])
  }

  get head (): string {
    return this.#headEnd === -1 ? this.#data.toString('latin1') : this.#data.subarray(0, this.#headEnd).toString('latin1')
  }

  /** Bytes after the response head. */
  get received (): Buffer {
    return this.#headEnd === -1 ? Buffer.alloc(0) : this.#data.subarray(this.#headEnd + 4)
  }

  async until (ready: () => boolean, ms: number): Promise<boolean> {
    return await this.#waiter.until(ready, ms)
  }

  async destroy (): Promise<void> {
    this.socket.destroy()
    await this.#waiter.until(() => this.ended, 2000)
  }
}
