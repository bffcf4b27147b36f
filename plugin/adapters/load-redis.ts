import { FST_WSGLUE_INVALID_OPTION } from '../errors.js'
import type { SequencedAdapter } from './adapter.js'

/** Whether a failed import is ioredis itself missing (the optional peer dependency was not installed). */
function isIoredisMissing (err: unknown): boolean {
  const { code, message } = err as { code?: unknown, message?: unknown }
  return (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String(message).includes("'ioredis'")
}

/**
 * Creates the Redis adapter for the plugin's `redis` option. Its module is imported only here, so an
 * app on one node never loads ioredis.
 * @throws FST_WSGLUE_INVALID_OPTION when ioredis is not installed, or the option is invalid.
 */
export async function loadRedisAdapter (value: unknown): Promise<SequencedAdapter> {
  const { createRedisAdapterFromOption } = await import('../redis/adapter.js').catch((err: unknown) => {
    if (!isIoredisMissing(err)) throw err
    throw new FST_WSGLUE_INVALID_OPTION('`redis` needs ioredis, an optional peer dependency that is not installed: install ioredis (npm install ioredis)')
  })
  return createRedisAdapterFromOption(value)
}
