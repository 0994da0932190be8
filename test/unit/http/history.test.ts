/** The charts' data: histogram quantiles, the history sampler, and the assets the page loads. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { histogramQuantile, HistorySampler } from '../../../src/http/history';
import { createHttpServer } from '../../../src/http/server';
import { observeQueryLatency } from '../../../src/admin/latency';
import { makeContext } from '../../fixtures/admin/context';
import { STATUS_PAGE_HTML } from '../../../src/http/status-page';

test('histogramQuantile interpolates inside the bucket like PromQL histogram_quantile', () => {
  const bounds = [0.001, 0.01, 0.1, Infinity];
  // 10 under 1 ms, 80 in (1 ms, 10 ms], 10 in (10 ms, 100 ms]
  const cum = [10, 90, 100, 100];
  assert.equal(histogramQuantile(0.05, bounds, cum), 0.0005);
  assert.ok(Math.abs(histogramQuantile(0.5, bounds, cum)! - (0.001 + 0.009 * (40 / 80))) < 1e-12);
  assert.ok(Math.abs(histogramQuantile(0.99, bounds, cum)! - (0.01 + 0.09 * 0.9)) < 1e-12);
  assert.equal(histogramQuantile(0.5, bounds, [0, 0, 0, 0]), null);
  // everything beyond the last finite bound: that bound
  assert.equal(histogramQuantile(0.99, bounds, [0, 0, 0, 5]), 0.1);
});

test('the sampler turns counters into rates, keeps latency per interval, status and slots, in a bounded ring', async () => {
  const t = makeContext();
  const h = new HistorySampler(t.ctx, { intervalMs: 100, capacity: 3 });
  await h.sampleNow();
  const n1 = t.cluster.node(1)!.counters as { select_cnt: number; insert_cnt: number };
  n1.select_cnt += 40;
  n1.insert_cnt += 4;
  for (let i = 0; i < 100; i++) observeQueryLatency(1, i < 50 ? 0.0002 : 0.02);
  await new Promise((r) => setTimeout(r, 200));
  await h.sampleNow();
  const s = h.snapshot();
  assert.equal(s.t.length, 2);
  const node1 = s.nodes.find((n) => n.id === 1)!;
  assert.equal(node1.reads[0], null, 'no rate before a second sample');
  const dt = s.t[1]! - s.t[0]!;
  assert.ok(Math.abs(node1.reads[1]! * dt - 40) < 0.5, `reads/s ${node1.reads[1]} for 40 in ${dt}s`);
  assert.ok(Math.abs(node1.writes[1]! * dt - 4) < 0.1);
  assert.ok(node1.p50[1]! > 0 && node1.p50[1]! <= 0.5, `p50 ${node1.p50[1]} ms`);
  assert.ok(node1.p99[1]! > 10 && node1.p99[1]! <= 25, `p99 ${node1.p99[1]} ms`);
  assert.equal(node1.lagBytes[1], 1024);
  assert.deepEqual(s.nodes.map((n) => n.up[1]), [1, 1, 0]);
  assert.deepEqual(s.nodes.map((n) => n.primary[1]), [1, 0, 0]);
  assert.equal(s.nodes[0]!.lagBytes[1], null, 'no lag for the primary');
  assert.equal(node1.poolActive[1], 1);
  assert.equal(s.nodes[2]!.poolActive[1], null);
  assert.deepEqual(s.clients.capacity, [4, 4]);
  // no new statements: rate 0, latency gap (null)
  for (let i = 0; i < 2; i++) {
    await new Promise((r) => setTimeout(r, 20));
    await h.sampleNow();
  }
  const later = h.snapshot();
  assert.equal(later.t.length, 3, 'ring capacity');
  assert.equal(later.nodes[1]!.reads[2], 0);
  assert.equal(later.nodes[1]!.p99[2], null);
});

test('HTTP: /api/history, uPlot served from node_modules, the page loads only what pgmaitre serves', async () => {
  const t = makeContext();
  const server = createHttpServer(t.ctx, { port: 0, listenAddresses: '127.0.0.1', historyIntervalMs: 100 });
  const base = `http://127.0.0.1:${await server.listen()}`;
  try {
    await new Promise((r) => setTimeout(r, 350));
    const h = await (await fetch(`${base}/api/history?seconds=60`)).json() as { t: number[]; nodes: unknown[]; interval: number };
    assert.ok(h.t.length >= 2, `samples: ${h.t.length}`);
    assert.equal(h.nodes.length, 3);
    assert.equal(h.interval, 0.1);
    const js = await fetch(`${base}/assets/uplot.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type') ?? '', /javascript/);
    assert.match(await js.text(), /uPlot/);
    const css = await fetch(`${base}/assets/uplot.css`);
    assert.equal(css.status, 200);
    assert.match(css.headers.get('content-type') ?? '', /text\/css/);
    assert.equal((await fetch(`${base}/assets/../package.json`)).status, 404);
    // Every src/href of the page is one of ours (relative), none is absolute (no CDN).
    const refs = [...STATUS_PAGE_HTML.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    assert.deepEqual(refs.sort(), ['assets/uplot.css', 'assets/uplot.js']);
  } finally {
    await server.close();
  }
});

test('the sampler: the query cache hit ratio and hits/misses per second per interval; no cache series with the cache off', async () => {
  const t = makeContext();
  const h0 = new HistorySampler(t.ctx, { intervalMs: 100 });
  await h0.sampleNow();
  assert.equal(h0.snapshot().cache, undefined, 'cache off: no series');

  const m = { hits: 0, misses: 0 };
  const qc = {
    poolCacheRow: () => [], deleteQuery: async () => {}, invalidateAll: async () => {},
    metrics: () => ({
      method: 'shmem', hits: m.hits, misses: m.misses, selects: m.hits + m.misses, stores: 0, notStored: 0, evictions: 0,
      memcachedErrors: 0, memcachedUp: true, bytes: 0, entries: 0, invalidations: new Map<string, number>(),
    }),
  };
  const ctx = { ...t.ctx, queryCache: () => qc };
  const h = new HistorySampler(ctx, { intervalMs: 100 });
  await h.sampleNow();
  m.hits += 90;
  m.misses += 10;
  await new Promise((r) => setTimeout(r, 150));
  await h.sampleNow();
  await new Promise((r) => setTimeout(r, 20));
  await h.sampleNow(); // nothing looked up: no ratio
  const s = h.snapshot();
  assert.ok(s.cache !== undefined);
  assert.deepEqual(s.cache.hitRatio, [null, 90, null]);
  const dt = s.t[1]! - s.t[0]!;
  assert.ok(Math.abs(s.cache.hits[1]! * dt - 90) < 1, `hits/s ${s.cache.hits[1]}`);
  assert.ok(Math.abs(s.cache.misses[1]! * dt - 10) < 0.5);
  assert.equal(s.cache.hits[2], 0);
  assert.match(STATUS_PAGE_HTML, /id="c-cache"/);
});
