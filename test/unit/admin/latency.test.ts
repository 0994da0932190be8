import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram, Registry, type Metric } from 'prom-client';
import { CheapHistogram, nodeLatency, recentLatency } from '../../../src/admin/latency';
import { performance } from 'node:perf_hooks';

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

test('the query latency histogram (CheapHistogram by node): /metrics text and get() as a prom-client Histogram gives them for the same observations', async () => {
  const ours = new CheapHistogram('x_seconds', 'Some help.', BUCKETS, 'node');
  const theirs = new Histogram({ name: 'x_seconds', help: 'Some help.', labelNames: ['node'] as const, buckets: BUCKETS, registers: [] });
  const samples: [string, number][] = [['0', 0.0001], ['1', 0.003], ['0', 0.0005], ['1', 0.2], ['2', 42], ['0', 10], ['1', 0.0025]];
  const child = ours.labels('0');
  for (const [node, v] of samples) {
    if (node === '0') child.observe(v);
    else ours.labels(node).observe(v);
    theirs.observe({ node }, v);
  }
  const text = async (m: unknown): Promise<string> => {
    const r = new Registry();
    r.registerMetric(m as Metric);
    return r.metrics();
  };
  assert.equal(await text(ours), await text(theirs));
  // The same data (prom-client adds `exemplar: null` to its buckets, exemplars being off).
  const plain = (d: unknown): unknown => JSON.parse(JSON.stringify(d, (k, v: unknown) => (k === 'exemplar' ? undefined : v)));
  assert.deepEqual(plain(await ours.get()), plain(await theirs.get()));
  child.observe(Number.NaN); // ignored, not counted
  assert.deepEqual(plain(await ours.get()), plain(await theirs.get()));
  ours.reset();
  assert.deepEqual((await ours.get()).values, []);
});

test('a node\'s running mean takes the caller\'s clock reading when given (one clock read per answer)', () => {
  const id = 9001;
  const rec = nodeLatency(id);
  rec.observe(0.002, performance.now() - 20_000); // observed "20 s ago": older than RECENT_MS
  assert.equal(recentLatency(id), undefined, 'the given time was used');
  rec.observe(0.004, performance.now());
  assert.ok(recentLatency(id) !== undefined);
  rec.observe(0.006); // no time given: read here
  assert.ok(recentLatency(id) !== undefined);
});
