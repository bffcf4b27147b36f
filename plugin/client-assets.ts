import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance } from 'fastify'

// What a browser loads from the client prefix: the scripts, and their source maps.
const CLIENT_ASSET_RE = /^\/[\w.-]+\.js(?:\.map)?$/

// The built client lives next to the plugin (dist/plugin → dist/client), also when the plugin runs from source.
function clientDirectory (): string {
  const beside = new URL('../client/', import.meta.url)
  if (existsSync(new URL('glue-client.js', beside))) return fileURLToPath(beside)
  return fileURLToPath(new URL('../dist/client/', import.meta.url))
}

/** Serves the browser client under `prefix`, encapsulated so the app's own @fastify/static is unaffected. */
export async function serveClientAssets (fastify: FastifyInstance, prefix: string): Promise<void> {
  await fastify.register(async function glueClient (child) {
    await child.register(fastifyStatic, {
      root: clientDirectory(),
      prefix,
      decorateReply: false,
      index: false,
      // Everything else in the directory (type declarations) is for bundlers, not browsers: 404.
      allowedPath: (pathName) => CLIENT_ASSET_RE.test(pathName),
      // The file names carry no version, so browsers revalidate on every load (ETag, then 304)
      // and pick up an upgrade at once; no max-age that would keep an old client running.
      cacheControl: false,
      etag: true,
      setHeaders (reply) {
        reply.header('cache-control', 'no-cache')
        reply.header('x-content-type-options', 'nosniff')
      }
    })
  })
}
