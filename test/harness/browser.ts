/**
 * Headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core, for the status page
 * tests. The flags keep it from reaching the network (closed here) and from needing a sandbox as
 * root.
 */
import * as fs from 'node:fs';
import type { Browser } from 'playwright-core';

/** Path of the Chromium binary, or undefined when it is not installed (tests skip). */
export const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));

/** Launches headless Chromium. */
export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}
