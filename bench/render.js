// Re-renders the markdown table of a saved run: node bench/render.js bench/results/<run>.json
import { readFileSync, writeFileSync } from 'node:fs'
import { renderMarkdown } from './lib/report.js'

const file = process.argv[2]
if (file === undefined || !file.endsWith('.json')) {
  console.error('usage: node bench/render.js <results .json file>')
  process.exit(1)
}
const { meta, summary, ratios, spreads } = JSON.parse(readFileSync(file, 'utf8'))
const markdown = renderMarkdown({ meta, summary, ratios, spreads, opts: meta.options })
writeFileSync(file.replace(/\.json$/, '.md'), markdown)
console.log(markdown)
