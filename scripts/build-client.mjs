// Builds the browser client: tsc emits the ES module and its types, esbuild the classic script.
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = fileURLToPath(new URL('..', import.meta.url))

execFileSync(process.execPath, [fileURLToPath(import.meta.resolve('typescript/bin/tsc')), '-p', 'plugin/client/tsconfig.json'], {
  cwd: root,
  stdio: 'inherit'
})

// A classic script cannot export, so the entry puts the class on the page's global object.
await build({
  stdin: {
    contents: "import { GlueClient } from './glue-client.ts'\nglobalThis.GlueClient = GlueClient\n",
    resolveDir: fileURLToPath(new URL('../plugin/client/', import.meta.url)),
    sourcefile: 'glue-client.global.ts',
    loader: 'ts'
  },
  absWorkingDir: root,
  bundle: true,
  format: 'iife',
  target: 'es2022',
  minify: true,
  legalComments: 'none',
  outfile: 'dist/client/glue-client.global.js',
  logLevel: 'warning'
})
