// Request/response over the Node IPC channel between the orchestrator and its child processes.

/**
 * Wraps a forked child so the parent can `await call(cmd, args)`.
 * Pending calls reject when the child exits, so a crashed target cannot hang the run.
 */
export function createCaller (child) {
  let nextId = 0
  const pending = new Map()
  let exited = null

  child.on('message', (msg) => {
    if (msg == null || typeof msg.id !== 'number') return
    const entry = pending.get(msg.id)
    if (entry === undefined) return
    pending.delete(msg.id)
    if (msg.ok) entry.resolve(msg.result)
    else entry.reject(new Error(`${entry.cmd}: ${msg.error}`))
  })
  child.on('exit', (code, signal) => {
    exited = `child exited (code ${code}, signal ${signal})`
    for (const entry of pending.values()) entry.reject(new Error(`${entry.cmd}: ${exited}`))
    pending.clear()
  })

  return function call (cmd, args = {}) {
    if (exited !== null) return Promise.reject(new Error(`${cmd}: ${exited}`))
    return new Promise((resolve, reject) => {
      const id = nextId++
      pending.set(id, { cmd, resolve, reject })
      child.send({ id, cmd, args })
    })
  }
}

/** Serves commands from the parent; each handler may be async. */
export function serve (handlers) {
  process.on('message', async (msg) => {
    if (msg == null || typeof msg.id !== 'number') return
    const handler = handlers[msg.cmd]
    try {
      if (handler === undefined) throw new Error(`unknown command ${msg.cmd}`)
      const result = await handler(msg.args ?? {})
      process.send({ id: msg.id, ok: true, result })
    } catch (err) {
      process.send({ id: msg.id, ok: false, error: err?.stack ?? String(err) })
    }
  })
  // The parent going away must not leave servers or clients behind.
  process.on('disconnect', () => process.exit(0))
}

/** Rejects with `<what> timed out after <ms> ms` unless `promise` settles first. */
export function withTimeout (promise, ms, what) {
  let timer
  return Promise.race([
    promise,
    new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms) })
  ]).finally(() => clearTimeout(timer))
}
