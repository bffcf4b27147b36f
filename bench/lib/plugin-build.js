// Which build of the plugin a run measures, and a private copy of it (bench/run.js and bench/cluster.js).
import { createHash } from 'node:crypto'
import { cpSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const bench = join(dirname(fileURLToPath(import.meta.url)), '..')
const dist = join(bench, '..', 'dist')

/** A hash of dist/plugin/**\/*.js and the newest file time, or null when there is no build. */
export function pluginFingerprint () {
  const dir = join(dist, 'plugin')
  if (!existsSync(join(dir, 'index.js'))) return null
  const hash = createHash('sha256')
  let newest = 0
  const files = readdirSync(dir, { recursive: true }).filter((f) => f.endsWith('.js')).sort()
  for (const f of files) {
    hash.update(f).update(readFileSync(join(dir, f)))
    newest = Math.max(newest, statSync(join(dir, f)).mtimeMs)
  }
  return { sha256: hash.digest('hex').slice(0, 12), files: files.length, built: new Date(newest).toISOString() }
}

/**
 * Copies dist/plugin and dist/client to bench/results/.plugin/<name>/dist, so a rebuild during the run
 * cannot give two node processes different code. The copy sits inside the project, so its imports
 * still resolve to node_modules. Returns the copy's root (to remove later) and its plugin entry file.
 */
export function snapshotPlugin (name) {
  const root = join(bench, 'results', '.plugin', name)
  const dir = join(root, 'dist')
  for (const part of ['plugin', 'client']) {
    const from = join(dist, part)
    if (existsSync(from)) cpSync(from, join(dir, part), { recursive: true })
  }
  return { root, entry: join(dir, 'plugin', 'index.js') }
}
