// neostandard (standard's rules for flat config) with typescript-eslint for the .ts files.
// `npm run lint` covers plugin/, example/, test/, bench/ and scripts/; what .gitignore ignores is skipped.
import neostandard, { resolveIgnoresFromGitignore } from 'neostandard'

export default neostandard({
  ts: true,
  noJsx: true,
  ignores: resolveIgnoresFromGitignore()
})
