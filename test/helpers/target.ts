// A plugin server in a child process (test/fixtures/hostile-target.mjs), for hostile and memory tests.
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import type { Test } from 'tap'
import type { GlueOptions, SessionStats } from '../../plugin/index.js'

/**
 * The environment for a child process that attacks or fuzzes a server: without V8 coverage, so a
 * child killed in the middle of writing its report cannot spoil the run's coverage. In-process
 * tests measure coverage.
 */
export function withoutCoverage (): NodeJS.ProcessEnv {
  const env = { ...process.env }
  delete env.NODE_V8_COVERAGE
  // tap 21 records coverage through @tapjs/processinfo, which every child loads from NODE_OPTIONS.
  env._TAPJS_PROCESSINFO_COVERAGE_ = '0'
  return env
}

/** What the target process can be asked to behave like (see test/fixtures/hostile-target.mjs). */
export interface TargetConfig {
  /** JSON-serialisable plugin options; defaults for everything not given. */
  glue?: Omit<GlueOptions, 'onConnect' | 'onMessage' | 'onClose' | 'answerRequest' | 'authorizeSubscribe' | 'adapter' | 'redis'>
  authorizeAll?: boolean
  /** onConnect waits until the test calls `releaseConnect`. */
  slowConnect?: boolean
  /** Request handlers never answer; they end when their signal aborts. */
  requestsHang?: boolean
  /** Every new socket's session is sent this many bytes at connect. */
  sendOnConnect?: number
  recordMessages?: boolean
}

export interface MemoryFigures {
  readonly heap: number
  readonly external: number
  /** Heap plus external memory (Buffers), after two full collections. */
  readonly total: number
  readonly rss: number
}

/** A server in a child process: it can crash without taking the test down, and its memory is its own. */
export interface Target {
  readonly port: number
  readonly wsUrl: string
  readonly child: ChildProcess
  /** Whether the process is still running. */
  alive (): boolean
  memory (): Promise<MemoryFigures>
  stats (): Promise<SessionStats>
  call<T = unknown> (cmd: string, args?: Record<string, unknown>): Promise<T>
}

export const MiB = 1024 * 1024

export async function startTarget (t: Test, config: TargetConfig = {}): Promise<Target> {
  const child = fork('test/fixtures/hostile-target.mjs', [JSON.stringify(config)], {
    execArgv: ['--expose-gc'],
    env: withoutCoverage(),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  let exited = false
  const pending = new Map<number, { resolve: (value: unknown) => void, reject: (err: Error) => void }>()
  let nextId = 0
  child.on('exit', () => {
    exited = true
    for (const { reject } of pending.values()) reject(new Error('the target process exited'))
    pending.clear()
  })
  const [ready] = await once(child, 'message') as [{ ready: number }]
  child.on('message', (message: { id: number, ok: boolean, result?: unknown, error?: string }) => {
    const entry = pending.get(message.id)
    pending.delete(message.id)
    if (message.ok) entry?.resolve(message.result)
    else entry?.reject(new Error(message.error))
  })
  t.teardown(() => { child.kill('SIGKILL') })
  const call = async <T>(cmd: string, args: Record<string, unknown> = {}): Promise<T> => {
    if (exited) throw new Error('the target process exited')
    return await new Promise<T>((resolve, reject) => {
      const id = nextId++
      pending.set(id, { resolve: resolve as (value: unknown) => void, reject })
      child.send({ id, cmd, args })
    })
  }
  return {
    port: ready.ready,
    wsUrl: `ws://127.0.0.1:${ready.ready}/ws`,
    child,
    alive: () => !exited && child.exitCode === null && child.signalCode === null,
    memory: async () => await call<MemoryFigures>('memory'),
    stats: async () => await call<SessionStats>('stats'),
    call
  }
}

/** Mebibytes with one decimal, for messages. */
export function mib (bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`
}
