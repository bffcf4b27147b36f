import { describe, FST_WSGLUE_INVALID_PIPE } from '../errors.js'
import type { SessionStats } from '../stats.js'
import { RunningPipe, type Pipe, type PipeCount, type PipeHost, type PipeStats } from './pipe.js'
import { isPipeSource, readPipeTarget, resolvePipeOptions } from './pipe-options.js'

/** Pipes one app may run at once: they are created by code, so more means a pipe per request by mistake. */
export const MAX_PIPES = 1000

/** Where each pipe count adds up in `stats()`. */
export const PIPE_STATS: Readonly<Record<PipeCount, keyof SessionStats & `pipe${string}`>> = {
  delivered: 'pipeDelivered',
  skipped: 'pipeSkipped',
  invalid: 'pipeInvalid',
  errors: 'pipeErrors',
  restarts: 'pipeRestarts'
}

/** The app's running pipes: starts them, lists them, and stops them all when the app closes. */
export class Pipes {
  readonly #host: PipeHost
  readonly #running = new Set<RunningPipe>()
  #created = 0
  #closing = false

  constructor (host: PipeHost) {
    this.#host = host
  }

  /**
   * Validates the arguments and starts a pipe.
   * @throws FST_WSGLUE_INVALID_PIPE
   */
  start (source: unknown, target: unknown, options: unknown): Pipe {
    if (this.#closing) throw new FST_WSGLUE_INVALID_PIPE('the app is closing')
    if (!isPipeSource(source)) throw new FST_WSGLUE_INVALID_PIPE(`expected \`source\` to be an async iterable, an iterable or a function returning one, got ${describe(source)}`)
    const checkedTarget = readPipeTarget(target)
    const resolved = resolvePipeOptions(options, `pipe-${this.#created + 1}`)
    if (this.#running.size >= MAX_PIPES) throw new FST_WSGLUE_INVALID_PIPE(`${MAX_PIPES} pipes are running already`)
    this.#created++
    const pipe = new RunningPipe(source, checkedTarget, resolved, this.#host)
    this.#running.add(pipe)
    this.#host.log.debug({ pipe: pipe.name }, 'pipe: started')
    pipe.done.then(() => { this.#running.delete(pipe) }, () => {})
    return pipe
  }

  /** The counters of every pipe still running or restarting. */
  list (): PipeStats[] {
    return [...this.#running].map((pipe) => pipe.stats())
  }

  /** Stops every pipe (app.close()); no pipe can start afterwards. */
  async stopAll (): Promise<void> {
    this.#closing = true
    await Promise.all([...this.#running].map(async (pipe) => await pipe.stop()))
  }
}

/** The `app.sessions` methods a pipe sends with. */
export interface PipeSender {
  publish (topic: string, data: unknown, options?: { volatile?: boolean }): number
  send (sessionId: string, data: unknown, options?: { volatile?: boolean }): number
  sendToUser (userId: string, data: unknown, options?: { volatile?: boolean }): number
}

/**
 * Sends one item's data to its destination through `app.sessions`, which validates both.
 * @throws FST_WSGLUE_INVALID_PIPE for a destination that is none of the three, and what the sessions method throws
 */
export function deliverTo (sender: PipeSender, destination: unknown, data: unknown, volatile: boolean): void {
  const options = { volatile }
  const target = destination as Partial<Record<'topic' | 'sessionId' | 'userId', unknown>> | null
  if (typeof target === 'object' && target !== null) {
    if (target.topic !== undefined) {
      sender.publish(target.topic as string, data, options)
      return
    }
    if (target.sessionId !== undefined) {
      sender.send(target.sessionId as string, data, options)
      return
    }
    if (target.userId !== undefined) {
      sender.sendToUser(target.userId as string, data, options)
      return
    }
  }
  throw new FST_WSGLUE_INVALID_PIPE(`expected \`to(item)\` to return { topic }, { sessionId }, { userId } or undefined, got ${describe(destination)}`)
}
