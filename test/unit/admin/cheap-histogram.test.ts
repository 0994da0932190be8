import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram, Registry, type Metric } from 'prom-client';
import { CheapHistogram } from '../../../src/admin/latency';

// The hot-path histogram must export what prom-client's Histogram exports for the same
// observations: /metrics, the workers' merge and /history read it the same way.
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const VALUES = [0.0001, 0.0005, 0.0006, 0.003, 0.003, 0.2, 1, 7, 10, 11, 42.5];

test('CheapHistogram with a label gives what prom-client gives (get() and the text format)', async () => {
  const ref = new Histogram({ name: 'x_seconds', help: 'h', labelNames: ['node'] as const, buckets: BUCKETS, registers: [] });
  const ours = new CheapHistogram('x_seconds', 'h', BUCKETS, 'node');
  for (const [i, v] of VALUES.entries()) {
    ref.labels(String(i % 3)).observe(v);
    ours.labels(String(i % 3)).observe(v);
  }
  assert.deepEqual(await ours.get(), await ref.get());
  const r1 = new Registry();
  r1.registerMetric(ref);
  const r2 = new Registry();
  r2.registerMetric(ours as unknown as Metric);
  assert.equal(await r2.metrics(), await r1.metrics());
});

test('CheapHistogram without labels gives what prom-client gives, zeros before any observation, and resets', async () => {
  const b = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 120];
  const ref = new Histogram({ name: 'w_seconds', help: 'w', buckets: b, registers: [] });
  const ours = new CheapHistogram('w_seconds', 'w', b);
  assert.deepEqual(await ours.get(), await ref.get());
  for (const v of VALUES) {
    ref.observe(v);
    ours.observe(v);
  }
  assert.deepEqual(await ours.get(), await ref.get());
  ref.reset();
  ours.reset();
  assert.deepEqual(await ours.get(), await ref.get());
});
