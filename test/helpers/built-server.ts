// A built server script (`dist/…/server.js`) run as its own process, as `npm run example` runs it.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import type { Test } from 'tap'

export interface BuiltServer {
  /** The url the server logged once it listened. */
  readonly url: string
  /** The message of that log line. */
  readonly message: string
  /** Sends SIGTERM and resolves with the exit code. */
  stop (): Promise<number | null>
}

/**
 * Starts `file` with Node and `env` on top of this process's environment, and waits for the log
 * line that carries its url (the process is killed in teardown if still running).
 */
export async function startBuiltServer (t: Test, file: string, env: Record<string, string>): Promise<BuiltServer> {
  const child = spawn(process.execPath, [file], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = once(child, 'exit')
  t.teardown(async () => {
    if (child.exitCode === null) child.kill('SIGKILL')
    await exited
  })
  for await (const text of createInterface({ input: child.stdout })) {
    const line = JSON.parse(text) as { msg: string, url?: string }
    if (line.url !== undefined) {
      return {
        url: line.url,
        message: line.msg,
        async stop () {
          child.kill('SIGTERM')
          const [code] = await exited as [number | null]
          return code
        }
      }
    }
  }
  throw new Error(`${file} exited before it logged its url`)
}
