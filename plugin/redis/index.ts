// The `fastify-websocket-glue/redis` entry: the Redis adapter and its message codec. It needs the
// optional peer dependency ioredis; the core entry never loads this module statically.
export { createRedisAdapter } from './adapter.js'
export type { RedisAdapterOptions, RedisClientLike } from './options.js'
export { CODEC_VERSION, encodeClusterMessage, decodeClusterMessage } from './codec.js'
export type { DecodedMessage } from './codec.js'
export { createRedisStreamSource } from './stream-source.js'
export type { RedisStreamSourceOptions, RedisStreamEntry } from './stream-source.js'
