// Headless Chromium for the browser tests: Debian's package, driven by playwright-core.
import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'
import type { Test } from 'tap'

export const CHROMIUM = '/usr/bin/chromium'

/** Whether the suite runs in CI, where a missing browser fails instead of skipping. */
export const inCI = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false'

/** false when Chromium is installed, else the reason the browser tests skip (locally only). */
export const chromiumMissing: false | string = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing: install the Debian package chromium (.ci/run does)`

/** Launches headless Chromium, closed in teardown. */
export async function launchChromium (t: Test): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run']
  })
  t.teardown(() => browser.close())
  return browser
}
