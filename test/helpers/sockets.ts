// Real websocket clients for tests: ws sockets, glue.v1 sockets, raw upgrades and frames, and waiting helpers.
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { connect, createServer, type Socket } from 'node:net'
import type { Test } from 'tap'
import WebSocket from 'ws'

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
  readonly socket: Socket
  /** Bytes received after the 101 response. */
  readonly received: () => Buffer
  readonly ended: Promise<void>
}

/** The text of a websocket upgrade request to 127.0.0.1:`port`, for tests that write raw bytes. */
export function upgradeRequest (port: number, path = '/ws', extraHeaders = ''): string {
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extraHeaders}\r\n`
}

/** Performs the upgrade with raw bytes and resolves once the 101 has arrived. */
export async function rawUpgrade (port: number, path = '/ws', extraHeaders = ''): Promise<RawSocket> {
  const socket = connect(port, '127.0.0.1')
  let buffer = Buffer.alloc(0)
  let upgraded = false
  const ended = new Promise<void>((resolve) => { socket.on('close', () => resolve()) })
  socket.on('error', () => {})
  await once(socket, 'connect')
  socket.write(upgradeRequest(port, path, extraHeaders))
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

/** Stops reading from the socket: the kernel buffers fill, then the server's. */
export function pauseReading (client: OpenedSocket): void {
  (client.socket as unknown as { _socket: { pause: () => void } })._socket.pause()
}

/** The query a glue.v1 client adds to resume after `seq` of `epoch`. */
export function resumeQuery (epoch: string, seq: number): string {
  return `?glue_resume=${epoch}.${seq}`
}

/** The websocket URL a glue.v1 client reconnects to, to resume after `seq` of `epoch`. */
export function resumeUrl (wsUrl: string, epoch: string, seq: number): string {
  return wsUrl + resumeQuery(epoch, seq)
}

/** The envelopes a glue.v1 socket received after its welcome, parsed, in order. */
export function envelopesOf (socket: GlueSocket): unknown[][] {
  return socket.received.slice(1).map((frame) => JSON.parse(String(frame)) as unknown[])
}

/** The data of the `m`/`t` envelopes a glue.v1 socket received so far (after the welcome), in order. */
export function dataOf (socket: GlueSocket): unknown[] {
  return envelopesOf(socket)
    .filter((envelope) => envelope[0] === 'm' || envelope[0] === 't')
    .map((envelope) => envelope[envelope.length - 1])
}

/**
 * Resolves once an asynchronous query answers `expected` (compared as JSON), asking again every
 * 20 ms (bounded): cluster-wide answers travel through the adapter.
 */
export async function eventually<T> (query: () => Promise<T>, expected: T, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last: T | undefined
  while (Date.now() < deadline) {
    last = await query().catch(() => undefined)
    if (JSON.stringify(last) === JSON.stringify(expected)) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`timed out waiting for ${what}: last ${JSON.stringify(last)}`)
}

/** Where freePort() looks: from here up to the kernel's ephemeral range. */
const FIRST_FREE_PORT = 10_000

/** The first port of the kernel's ephemeral range (Linux); the usual default where it cannot be read. */
function firstEphemeralPort (): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
    if (Number.isInteger(low)) return low
  } catch {}
  return 32_768
}

/** Binds `port` on loopback (0: any free one) and releases it: the port bound, or undefined when it was taken. */
async function bindAndRelease (port: number): Promise<number | undefined> {
  const server = createServer()
  try {
    server.listen(port, '127.0.0.1')
    await once(server, 'listening')
  } catch {
    return undefined
  }
  const bound = (server.address() as { port: number }).port
  server.close()
  await once(server, 'close')
  return bound
}

/**
 * A loopback port nothing listens on, for a server that is started (or restarted) on it later.
 * It lies below the ephemeral range: a port from that range can be taken while the server is down
 * by any outgoing connection, including a client of the test reconnecting to that very port (the
 * kernel may pick the destination port as the source: a TCP self-connect). CI once failed so.
 */
export async function freePort (): Promise<number> {
  const ephemeralLow = firstEphemeralPort()
  if (ephemeralLow - FIRST_FREE_PORT < 1_000) {
    const any = await bindAndRelease(0)
    if (any === undefined) throw new Error('no free loopback port')
    return any
  }
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await bindAndRelease(FIRST_FREE_PORT + Math.floor(Math.random() * (ephemeralLow - FIRST_FREE_PORT)))
    if (port !== undefined) return port
  }
  throw new Error(`no free port in ${FIRST_FREE_PORT}-${ephemeralLow - 1} after 50 tries`)
}

/** A glue.v1 socket and the `name=value` cookie of its session. */
export type Tab = GlueSocket & { readonly cookie: string }

/** Opens a glue.v1 socket on `node` as the session behind `cookie` (a new session when omitted); terminated in teardown. */
export async function openTab (t: Test, node: { readonly wsUrl: string }, cookie?: string, query = ''): Promise<Tab> {
  const socket = await openGlueSocket(node.wsUrl + query, cookie === undefined ? {} : { headers: { cookie } })
  t.teardown(() => socket.socket.terminate())
  return { ...socket, cookie: cookie ?? cookiePair(socket.setCookie[0]) }
}
