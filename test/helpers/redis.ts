// A real redis-server per test file, on a free loopback port without persistence.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { Redis } from 'ioredis'
import type { Test } from 'tap'
import { freePort } from './sockets.js'

const REDIS_BINARY = process.env.REDIS_SERVER ?? 'redis-server'

/** A real redis-server on a free loopback port, without persistence: a restart empties it. */
export interface RedisServer {
  readonly port: number
  readonly url: string
  /** Kills the server (SIGKILL, like a crash). */
  kill (): Promise<void>
  /** Starts it again on the same port, empty. */
  start (): Promise<void>
  /** Stops the process without closing its connections (SIGSTOP): Redis stops answering. */
  freeze (): void
  /** Lets a frozen server run again (SIGCONT). */
  thaw (): void
  /** A fresh client for inspecting or tampering with the data. */
  client (): Redis
}

/** Whether redis-server can run here; CI must have it (the suite fails there instead of skipping). */
export function redisAvailable (): boolean {
  return spawnSync(REDIS_BINARY, ['--version']).status === 0
}

/**
 * The `skip` option of every test that needs redis-server: a reason locally when it is missing;
 * never in CI, where a missing binary makes the test fail (a broken image cannot pass green).
 */
export const redisSkip: string | false = process.env.CI !== undefined && process.env.CI !== ''
  ? false
  : redisAvailable() ? false : 'redis-server is not installed (apt-get install redis-server)'

/** Starts redis-server for one test file and stops it in teardown. */
export async function startRedis (t: Test): Promise<RedisServer> {
  let port = await freePort()
  let child: ChildProcess | undefined
  const clients: Redis[] = []

  /** Starts redis-server on `port`; a port taken meanwhile is tried again for a while (a restart must keep its port). */
  async function start (): Promise<void> {
    await spawnWhilePortTaken(20, async () => { await new Promise((resolve) => setTimeout(resolve, 100)) })
  }

  /** Spawns redis-server, and while its port is taken runs `beforeRetry` and tries again, `attempts` times in all. */
  async function spawnWhilePortTaken (attempts: number, beforeRetry: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await spawnServer()
      } catch (error) {
        if (attempt >= attempts || !String(error).includes('Address already in use')) throw error
        await beforeRetry()
      }
    }
  }

  async function spawnServer (): Promise<void> {
    const proc = spawn(REDIS_BINARY, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] })
    child = proc
    // A test process that dies without teardown (a tap timeout, a signal) must not leave redis-server
    // behind: a tiny watchdog reads our end of a pipe and kills the server once that pipe closes,
    // which the kernel does however this process ends.
    const watchdog = spawn('sh', ['-c', `read _; kill -9 ${String(proc.pid)} 2>/dev/null`], { stdio: ['pipe', 'ignore', 'ignore'] })
    watchdog.unref()
    ;(watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.()
    proc.once('exit', () => { watchdog.kill('SIGKILL') })
    let output = ''
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        output += chunk.toString()
        if (output.includes('Ready to accept connections')) {
          proc.stdout?.off('data', onData)
          proc.stdout?.resume()
          resolve()
        }
      }
      proc.stdout?.on('data', onData)
      proc.once('exit', (code) => reject(new Error(`redis-server exited with ${String(code)}: ${output}`)))
    })
  }

  async function kill (): Promise<void> {
    const proc = child
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return
    const exited = once(proc, 'exit')
    proc.kill('SIGKILL')
    await exited
  }

  // Before the first start the port may still change: another test process can take it between
  // freePort() and redis-server's bind.
  await spawnWhilePortTaken(5, async () => { port = await freePort() })
  t.teardown(async () => {
    for (const client of clients) client.disconnect()
    await kill()
  })
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    start,
    freeze () { child?.kill('SIGSTOP') },
    thaw () { child?.kill('SIGCONT') },
    client () {
      const client = new Redis(port, '127.0.0.1', { lazyConnect: false, maxRetriesPerRequest: 1 })
      client.on('error', () => {})
      clients.push(client)
      return client
    }
  }
}

/**
 * The nodes' timeout in cluster tests. A loaded CI machine can stall an event loop for hundreds of
 * milliseconds; with this, a live node is reaped only after a stall of over 1.3 s. Tests of reaping
 * itself use a shorter one.
 */
export const NODE_TIMEOUT = 2000

/** A key prefix of its own for each test, so clusters of different tests never meet. */
export function uniquePrefix (): string {
  return `t${randomBytes(5).toString('hex')}`
}
