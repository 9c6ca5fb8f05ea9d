/**
 * Debian's Chromium (`apt-get install -y chromium`) driven by playwright-core, which never
 * downloads a browser. Without it the browser tests are skipped, unless REQUIRE_BROWSER=1 (as
 * .ci/run sets), where its absence fails the run.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';

/** `describe`, or `describe.skip` when the browser (or something else the tests need: `missing`) is not there. */
export function describeInBrowser(missing?: string): jest.Describe {
  const skipped = !existsSync(CHROMIUM) ? `no ${CHROMIUM} (apt-get install -y chromium)` : missing;
  if (skipped && process.env.REQUIRE_BROWSER === '1') throw new Error(`the browser tests cannot run: ${skipped}`);
  if (skipped) process.stderr.write(`\nbrowser tests skipped: ${skipped}\n`);
  return skipped ? describe.skip : describe;
}

/** Headless, with the browser's own calls home (updates, sync, background networking) off. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
  });
}

/**
 * Refuses every request of `context` to anything but `origin` (and `data:` URLs): the refused
 * URLs are collected in the returned list, which a test expects empty.
 */
export async function refuseOtherHosts(context: BrowserContext, origin: string): Promise<string[]> {
  const foreign: string[] = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(origin) || url.startsWith('data:')) return route.continue();
    foreign.push(url);
    return route.abort();
  });
  return foreign;
}
