/**
 * The status page's charts in headless Chromium, against a real pgmaitre in front of a real
 * cluster: pgbench traffic (reads and writes, more clients than num_init_children so some
 * wait) makes the series move, then a standby is stopped and the page shows it red. Everything
 * is read from the page — the "now" values under each chart (DOM) and the pixels uPlot drew
 * (canvas) — not from /api/history. Screenshots go to test-output/. Skips without Chromium.
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
import { runCommand } from '../../src/demo/pg-exec';

const OUT = path.resolve(__dirname, '../../../test-output');
const HEALTH = "sr_check_user = 'postgres'\nhealth_check_user = 'postgres'\nhealth_check_period = 1\nhealth_check_timeout = 2\nhealth_check_max_retries = 1\nhealth_check_retry_delay = 1\nsr_check_period = 1\n";

/** RGB of the page's per-node colours (COLORS in status-page.ts), by node index. */
const NODE_RGB: readonly [number, number, number][] = [[0xa3, 0x71, 0xf7], [0x58, 0xa6, 0xff], [0x3f, 0xb9, 0x50]];

/**
 * Reads one chart's canvas: how high (in CSS pixels above the plot's bottom) the highest pixel
 * of a colour sits, and how many pixels are the red "node down" shading.
 */
async function canvasFacts(page: Page, chartId: string, rgb: readonly [number, number, number]): Promise<{ height: number; red: number }> {
  return page.evaluate(([id, c]) => {
    // runs in the page (DOM types are not in this project's lib)
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const canvas = (globalThis as any).document.querySelector(`#${id} canvas`);
    const ctx = canvas.getContext('2d');
    const width: number = canvas.width;
    const height: number = canvas.height;
    const px: Uint8ClampedArray = ctx.getImageData(0, 0, width, height).data;
    const near = (i: number, r: number, g: number, b: number, tol: number) =>
      Math.abs(px[i]! - r) <= tol && Math.abs(px[i + 1]! - g) <= tol && Math.abs(px[i + 2]! - b) <= tol && px[i + 3]! > 200;
    let top = height;
    let bottom = 0;
    let red = 0;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = (y * width + x) * 4;
        if (near(i, c[0]!, c[1]!, c[2]!, 30)) { top = Math.min(top, y); bottom = Math.max(bottom, y); }
        // the shading is translucent red over the dark panel: red well above green and blue
        if (px[i + 3]! > 0 && px[i]! > 70 && px[i]! > px[i + 1]! * 1.6 && px[i]! > px[i + 2]! * 1.6) red++;
      }
    }
    const ratio = canvas.width / canvas.getBoundingClientRect().width;
    return { height: bottom >= top ? (bottom - top) / ratio : 0, red };
  }, [chartId, rgb] as const);
}

/** The "now" value under a chart for one series, as the page shows it. */
async function nowValue(page: Page, key: string): Promise<{ value: number | null; down: boolean }> {
  const loc = page.locator(`[data-series="${key}"]`);
  const v = await loc.getAttribute('data-value');
  return { value: v === null || v === '' ? null : Number(v), down: (await loc.getAttribute('class'))?.includes('down') ?? false };
}

describe('status page charts in a browser', { skip: CHROMIUM === undefined ? 'chromium not installed' : false, timeout: 180_000 }, () => {
  const fx = withCluster({ standbys: 2, pgbench: 1 });
  let px: PgmaitreProcess;
  let browser: Browser;
  let httpPort: number;

  before(async () => {
    httpPort = await freePort();
    // read_your_writes off: with it, a session's reads right after its own update wait on the
    // primary until a standby has replayed it, and this test wants node 1's reads to dominate
    // the throughput chart's scale; the routing itself is tested elsewhere.
    px = await startPgmaitre({
      config: `listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\n${backendLines(fx.cluster, [0, 1, 1])}\n${HEALTH}` +
        `http_port = ${httpPort}\nhttp_listen_addresses = '127.0.0.1'\nnum_init_children = 6\nlisten_backlog_multiplier = 4\nstatement_level_load_balance = on\nread_your_writes = off\n`,
    });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await px?.stop();
  });

  test('series move under pgbench, and a stopped standby turns red', async () => {
    fs.mkdirSync(OUT, { recursive: true });
    const page = await browser.newPage({ viewport: { width: 1400, height: 1500 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    // Offline: any request that does not go to pgmaitre fails the test.
    const foreign: string[] = [];
    page.on('request', (r) => { if (!r.url().startsWith(`http://127.0.0.1:${httpPort}/`)) foreign.push(r.url()); });
    await page.goto(`http://127.0.0.1:${httpPort}/`);
    await page.waitForFunction("document.querySelectorAll('#c-throughput canvas').length > 0 && document.querySelector('[data-series=\"reads-1\"]') !== null", undefined, { timeout: 10_000 });
    const idle = await canvasFacts(page, 'c-throughput', NODE_RGB[1]!);
    assert.equal(idle.red, 0, 'no red before anything is down');

    // pgbench takes 4 of the 6 client slots (9 reads for 1 write); two idle sessions take the
    // others, so three more clients queue for a slot until the idle ones leave.
    const pgbench = (seconds: number) => runCommand(fx.cluster.pg.bin('pgbench'), [
      '-n', '-c', '4', '-j', '2', '-T', String(seconds), '-b', 'select-only@9', '-b', 'simple-update@1',
      '-h', '127.0.0.1', '-p', String(px.port), '-U', 'postgres', 'postgres',
    ]);
    const client = (): Client => {
      const c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres' });
      c.on('error', () => {});
      return c;
    };
    const load = pgbench(8);
    // Watch the page for the whole run: the highest value each series showed under its chart.
    const keys = ['reads-1', 'reads-2', 'writes-0', 'p99-1', 'pool-1', 'waiting'] as const;
    const highest: Record<string, number> = {};
    let loadDone = false;
    const watching = (async () => {
      while (!loadDone) {
        for (const k of keys) highest[k] = Math.max(highest[k] ?? 0, (await nowValue(page, k)).value ?? 0);
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    const holders = [client(), client()];
    await Promise.all(holders.map((c) => c.connect()));
    const queued = [client(), client(), client()];
    const queuedConnected = Promise.all(queued.map((c) => c.connect()));
    const deadline = Date.now() + 4000;
    while (Date.now() < deadline && (highest['waiting'] ?? 0) === 0) await new Promise((r) => setTimeout(r, 100));
    await page.screenshot({ path: path.join(OUT, 'status-charts-traffic.png'), fullPage: true });
    await Promise.all(holders.map((c) => c.end()));
    await queuedConnected;
    await Promise.all(queued.map((c) => c.end()));
    await load;
    await new Promise((r) => setTimeout(r, 1200)); // the last second of the run reaches the page
    loadDone = true;
    await watching;
    assert.ok(highest['reads-1']! > 5, `node 1 reads/s on the page: ${highest['reads-1']}`);
    assert.ok(highest['reads-2']! > 5, `node 2 reads/s on the page: ${highest['reads-2']}`);
    assert.ok(highest['writes-0']! > 0, `node 0 writes/s on the page: ${highest['writes-0']}`);
    assert.ok(highest['p99-1']! > 0, `node 1 p99 on the page: ${highest['p99-1']}`);
    assert.ok(highest['pool-1']! > 0, `node 1 connections in use on the page: ${highest['pool-1']}`);
    assert.ok(highest['waiting']! > 0, 'waiting clients rose above 0 on the page');
    const busy = await canvasFacts(page, 'c-throughput', NODE_RGB[1]!);
    assert.ok(busy.height > idle.height + 20, `node 1's line rose on the canvas: ${idle.height} -> ${busy.height} px`);

    // Phase 2: stop standby 2 under load.
    const load2 = pgbench(6);
    await new Promise((r) => setTimeout(r, 1000));
    await fx.cluster.stopNode('standby2', 'immediate');
    await page.waitForFunction(`document.querySelector('[data-node-id="2"]')?.className.includes('s-down')`, undefined, { timeout: 10_000 });
    await page.waitForFunction(`document.querySelector('[data-series="reads-2"]')?.className === 'down'`, undefined, { timeout: 5000 });
    // Red shading appears once a sample with the node down is drawn, and grows with time.
    let red = 0;
    const until = Date.now() + 5000;
    while (Date.now() < until && red < 200) {
      red = (await canvasFacts(page, 'c-throughput', NODE_RGB[2]!)).red;
      await new Promise((r) => setTimeout(r, 250));
    }
    await load2;
    await new Promise((r) => setTimeout(r, 1500));
    const after2 = await nowValue(page, 'reads-2');
    const after1 = await nowValue(page, 'reads-1');
    await page.screenshot({ path: path.join(OUT, 'status-charts-standby-down.png'), fullPage: true });
    assert.ok(red >= 200, `red "node down" shading drawn on the throughput canvas: ${red} px`);
    assert.ok(after2.down, 'node 2 marked down under the charts');
    assert.equal(after2.value ?? 0, 0, 'node 2 takes no reads once down');
    assert.ok(after1.value !== null, 'node 1 still drawn');
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(foreign, [], 'the page loads nothing from outside pgmaitre');
    await page.close();
    await fx.cluster.startNode('standby2');
  });
});
