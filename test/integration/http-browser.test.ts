/**
 * The status page in headless Chromium (playwright-core): it renders the nodes, and after a
 * node goes down in the Cluster object the page shows it down within the refresh interval.
 * A screenshot goes to test-output/. Skips when Chromium is not installed.
 */
import { CHROMIUM, launchChromium } from '../harness/browser';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHttpServer, type HttpServer } from '../../src/http/server';
import { addSession, makeContext, type TestContext } from '../fixtures/admin/context';

const OUT = path.resolve(__dirname, '../../../test-output');

describe('status page in a browser', { skip: CHROMIUM === undefined ? 'chromium not installed' : false, timeout: 60_000 }, () => {
  let t: TestContext;
  let server: HttpServer;
  let url: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let browser: any;

  before(async () => {
    t = makeContext();
    addSession(t);
    server = createHttpServer(t.ctx, { port: 0, listenAddresses: '127.0.0.1' });
    url = `http://127.0.0.1:${await server.listen()}/`;
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server.close();
  });

  test('renders nodes and shows a node going down within the refresh interval', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    await page.goto(url);
    const status = (id: number) => page.locator(`[data-node-id="${id}"] .status`);
    await page.waitForFunction("document.querySelectorAll('[data-node-id]').length === 3", undefined, { timeout: 5000 });
    assert.equal(await status(1).textContent(), 'up');
    assert.equal(await page.locator('[data-node-id="0"] .role').textContent(), 'primary');
    assert.equal(await page.locator('#sessions tr').count(), 1);

    t.cluster.setStatus(1, 'down', 'health check failed 3 times');
    const started = Date.now();
    await page.waitForFunction(`document.querySelector('[data-node-id="1"] .status')?.textContent === 'down'`, undefined, { timeout: 2500 });
    assert.ok(Date.now() - started <= 2500);
    assert.match(await page.locator('[data-node-id="1"]').getAttribute('class'), /s-down/);
    assert.match(await page.locator('#events').textContent(), /node 1 status up -> down/);
    fs.mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: path.join(OUT, 'status-page.png'), fullPage: true });
    await page.close();
  });
});
