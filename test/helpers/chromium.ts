// Headless Chromium for the browser tests: Debian's package, driven by playwright-core.
import { existsSync } from 'node:fs'
import { chromium, type Browser, type Page } from 'playwright-core'
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

/**
 * Records the page's uncaught errors and console errors, and returns the list it fills.
 * Chromium itself logs every refused websocket connection while a server restarts; the page
 * cannot prevent that and its client retries, so those lines are not the page's errors.
 */
export function recordPageErrors (page: Page): string[] {
  const pageErrors: string[] = []
  page.on('pageerror', (err) => { pageErrors.push(err.message) })
  page.on('console', (message) => {
    if (message.type() === 'error' && !/WebSocket connection to .* failed/.test(message.text())) pageErrors.push(message.text())
  })
  return pageErrors
}
