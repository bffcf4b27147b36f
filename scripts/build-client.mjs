// Builds the browser client into dist/client/: esbuild bundles the modules of plugin/client/ into
// an ES module (glue-client.js) and a classic script (glue-client.global.js), each minified with an
// external source map; tsc emits only the type declarations, for `fastify-websocket-glue/client`.
import { execFileSync } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = fileURLToPath(new URL('..', import.meta.url))

// Start empty, so nothing of an earlier build (a renamed module's files) is served or published.
await rm(new URL('../dist/client/', import.meta.url), { recursive: true, force: true })

execFileSync(process.execPath, [fileURLToPath(import.meta.resolve('typescript/bin/tsc')), '-p', 'plugin/client/tsconfig.json'], {
  cwd: root,
  stdio: 'inherit'
})

const shared = {
  absWorkingDir: root,
  bundle: true,
  target: 'es2022',
  minify: true,
  // The maps carry the TypeScript sources, which the package does not ship, so devtools can show them.
  sourcemap: 'linked',
  legalComments: 'none',
  logLevel: 'warning'
}

await Promise.all([
  build({
    ...shared,
    entryPoints: ['plugin/client/glue-client.ts'],
    format: 'esm',
    outfile: 'dist/client/glue-client.js'
  }),
  // A classic script cannot export, so its entry puts the class on the page's global object.
  build({
    ...shared,
    stdin: {
      contents: "import { GlueClient } from './glue-client.ts'\nglobalThis.GlueClient = GlueClient\n",
      resolveDir: fileURLToPath(new URL('../plugin/client/', import.meta.url)),
      sourcefile: 'glue-client.global.ts',
      loader: 'ts'
    },
    format: 'iife',
    outfile: 'dist/client/glue-client.global.js'
  })
])
