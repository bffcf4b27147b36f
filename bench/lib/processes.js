// What the Redis benchmarks (cluster.js, streams.js) share: flags, child processes, a redis-server.
import { fork, spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { Redis } from 'ioredis'
import { createCaller, withTimeout } from './rpc.js'

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Reads `--name N`, `--name=N` and `--kebab-name N` flags over `defaults` (camelCase keys, every
 * value a positive integer); `--help` prints `help` and exits.
 */
export function parseFlags (argv, defaults, help) {
  const opts = { ...defaults }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--help' || arg === '-h') { console.log(help); process.exit(0) }
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}\n${help}`)
    let [flag, value] = arg.slice(2).split('=', 2)
    if (value === undefined) value = argv[++i]
    const key = flag.replace(/-([a-z])/g, (_, c) => c.toUpperCase())
    if (!(key in defaults)) throw new Error(`unknown flag --${flag}\n${help}`)
    const n = Number(value)
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} must be a positive integer, received ${value}`)
    opts[key] = n
  }
  return opts
}

// Every child process, so nothing outlives the run: killed on exit, on signals and on failure.
// Forked children also exit by themselves when the IPC channel closes (rpc.js).
const children = new Set()
process.on('exit', () => {
  for (const child of children) {
    try { child.kill('SIGKILL') } catch {}
  }
})
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => process.exit(130))

/** Forks `file` (a path) with extra `env`, killed when this process ends; `call` talks to it over IPC. */
export function forkChild (file, env) {
  const child = fork(file, [], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  children.add(child)
  child.on('exit', () => children.delete(child))
  return { child, call: createCaller(child) }
}

export function freePort () {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

// redis-server runs under a small sh guard that kills it once the guard's stdin closes. The pipe closes
// when this process ends in any way (even SIGKILL), so Redis never outlives the run. The guard gets its
// own process group, so a Ctrl-C at the terminal cannot kill it before it has stopped Redis.
/** Starts an empty redis-server on a free loopback port: `{ url, admin, stop, version }`. */
export async function startRedis () {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const guard = spawn('sh', ['-c',
      `redis-server --port ${port} --bind 127.0.0.1 --save '' --appendonly no --loglevel warning & r=$!; read _; kill $r; wait $r`],
    { stdio: ['pipe', 'pipe', 'pipe'], detached: true })
    let output = ''
    const keep = (chunk) => { output = (output + chunk).slice(-2000) }
    guard.stdout.on('data', keep)
    guard.stderr.on('data', keep)
    const url = `redis://127.0.0.1:${port}`
    const admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false })
    admin.on('error', () => {})
    for (let i = 0; i < 50 && guard.exitCode === null; i++) {
      try {
        await admin.connect()
        await admin.ping()
        const stop = async () => {
          admin.disconnect()
          guard.stdin.end()
          if (guard.exitCode === null) await withTimeout(new Promise((resolve) => guard.once('exit', resolve)), 5000, 'redis stop').catch(() => {})
        }
        return { url, admin, stop, version: (await admin.info('server')).match(/redis_version:(\S+)/)?.[1] }
      } catch {
        await sleep(100)
      }
    }
    admin.disconnect()
    guard.stdin.end()
    // A port taken between freePort() and redis-server's bind: try another.
    if (attempt >= 3) throw new Error(`redis-server did not start: ${output.trim()}`)
  }
}
