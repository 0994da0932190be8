/**
 * The status page's query cache chart in headless Chromium, against a real pgmaitre
 * (memory_cache_enabled = on) in front of a real primary: the same SELECTs again and again make
 * the hit ratio under the chart climb and its green line rise on the canvas; without the cache
 * the chart stays hidden. Read from the page (DOM and canvas pixels), not from /api/history.
 * Skips without Chromium.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { Client } from 'pg';
import { CHROMIUM, launchChromium } from '../harness/browser';
import { freePort, startPgmaitre, withCluster, type PgmaitreProcess } from '../harness/cluster';
import { backendLines } from '../harness/in-process';

const OUT = path.resolve(__dirname, '../../../test-output');
const GREEN: readonly [number, number, number] = [0x3f, 0xb9, 0x50];

/** How high (CSS px) the highest pixel of colour `c` sits above the lowest one on a chart's canvas. */
async function lineHeight(page: Page, chartId: string, c: readonly [number, number, number]): Promise<number> {
  return page.evaluate(([id, rgb]) => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const canvas = (globalThis as any).document.querySelector(`#${id} canvas`);
    const ctx = canvas.getContext('2d');
    const px: Uint8ClampedArray = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let top = canvas.height;
    let bottom = 0;
    for (let y = 0; y < canvas.height; y++) {
      for (let x = 0; x < canvas.width; x++) {
        const i = (y * canvas.width + x) * 4;
        if (Math.abs(px[i]! - rgb[0]!) <= 30 && Math.abs(px[i + 1]! - rgb[1]!) <= 30 && Math.abs(px[i + 2]! - rgb[2]!) <= 30 && px[i + 3]! > 200) {
          top = Math.min(top, y);
          bottom = Math.max(bottom, y);
        }
      }
    }
    // the plot's bottom edge: the line's lowest possible point is the canvas height minus the x axis
    return bottom >= top ? (canvas.height - top) / (canvas.width / canvas.getBoundingClientRect().width) : 0;
  }, [chartId, c] as const);
}

describe('status page: the query cache hit-ratio chart', { skip: CHROMIUM === undefined ? 'chromium not installed' : false, timeout: 180_000 }, () => {
  const fx = withCluster({ standbys: 0, pgbench: 1 });
  let px: PgmaitreProcess;
  let off: PgmaitreProcess;
  let browser: Browser;
  let httpPort: number;
  let httpOff: number;

  before(async () => {
    httpPort = await freePort();
    httpOff = await freePort();
    const common = `listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\n${backendLines(fx.cluster)}\nsr_check_user = 'postgres'\nhttp_listen_addresses = '127.0.0.1'\n`;
    px = await startPgmaitre({ config: `${common}http_port = ${httpPort}\nmemory_cache_enabled = on\n` });
    off = await startPgmaitre({ config: `${common}http_port = ${httpOff}\n` });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await px?.stop();
    await off?.stop();
  });

  test('repeated SELECTs: the hit ratio climbs under the chart and its line rises on the canvas', async () => {
    fs.mkdirSync(OUT, { recursive: true });
    const page = await browser.newPage({ viewport: { width: 1400, height: 1600 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(`http://127.0.0.1:${httpPort}/`);
    await page.waitForFunction("document.querySelectorAll('#c-cache canvas').length > 0 && document.querySelector('[data-series=\"cache-hit-ratio\"]') !== null", undefined, { timeout: 10_000 });
    assert.equal(await page.locator('#c-cache').isVisible(), true, 'the chart is shown with the cache on');
    const idle = await lineHeight(page, 'c-cache', GREEN);

    const c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres' });
    await c.connect();
    let highest = 0;
    let hitsPerSec = 0;
    let busy = 0;
    try {
      // Until the page shows a high ratio and has drawn it (a line needs two samples with a ratio).
      const until = Date.now() + 20_000;
      while (Date.now() < until && (highest < 80 || busy <= idle + 40)) {
        for (let i = 0; i < 50; i++) await c.query('SELECT abalance FROM pgbench_accounts WHERE aid = $1', [1 + (i % 5)]);
        const v = await page.locator('[data-series="cache-hit-ratio"]').getAttribute('data-value');
        highest = Math.max(highest, v === null || v === '' ? 0 : Number(v));
        const h = await page.locator('[data-series="cache-hits"]').getAttribute('data-value');
        hitsPerSec = Math.max(hitsPerSec, h === null || h === '' ? 0 : Number(h));
        if (highest >= 80) busy = await lineHeight(page, 'c-cache', GREEN);
      }
    } finally {
      await c.end();
    }
    assert.ok(highest >= 80, `hit ratio shown under the chart: ${highest} %`);
    assert.ok(hitsPerSec > 0, `hits/s shown under the chart: ${hitsPerSec}`);
    await page.screenshot({ path: path.join(OUT, 'status-cache-chart.png'), fullPage: true });
    assert.ok(busy > idle + 40, `the hit-ratio line rose on the canvas: ${idle} -> ${busy} px`);
    assert.deepEqual(pageErrors, []);
    await page.close();
  });

  test('without the query cache the chart is hidden', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1200 } });
    await page.goto(`http://127.0.0.1:${httpOff}/`);
    await page.waitForFunction("document.querySelectorAll('#c-throughput canvas').length > 0", undefined, { timeout: 10_000 });
    assert.equal(await page.locator('#c-cache').isVisible(), false);
    assert.equal(await page.locator('#c-cache canvas').count(), 0);
    await page.close();
  });
});
