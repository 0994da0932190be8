/**
 * worker_processes > 1: the workers' latency histograms summed exactly (bucket counts, _sum,
 * _count, per label set), and a worker's read_your_writes positions as the supervisor pushes them
 * (a replay position only grows; a refresh ends when the push comes, or after its timeout).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram } from 'prom-client';
import { mergeCache, mergeHistograms } from '../../../src/workers/instance-view';
import type { QueryCacheAdmin, QueryCacheMetrics } from '../../../src/admin/types';
import { RemoteLsn } from '../../../src/workers/remote-lsn';

function histogram(): Histogram<'node'> {
  return new Histogram({ name: 'h_seconds', help: 'h', labelNames: ['node'] as const, buckets: [0.1, 1], registers: [] });
}

test('mergeHistograms sums bucket counts, sums and counts of every worker, per node', async () => {
  const a = histogram();
  const b = histogram();
  a.observe({ node: '0' }, 0.05);
  a.observe({ node: '1' }, 0.5);
  b.observe({ node: '0' }, 0.5);
  b.observe({ node: '0' }, 5);
  const [m] = mergeHistograms([[await a.get()], [await b.get()]]);
  const v = (metricName: string, node: string, le?: number | string): number | undefined =>
    m!.values.find((x) => x.metricName === metricName && x.labels['node'] === node && (le === undefined || x.labels['le'] === le))?.value;
  assert.equal(m!.name, 'h_seconds');
  assert.equal(v('h_seconds_count', '0'), 3);
  assert.equal(v('h_seconds_sum', '0'), 5.55);
  assert.equal(v('h_seconds_bucket', '0', 0.1), 1);
  assert.equal(v('h_seconds_bucket', '0', 1), 2);
  assert.equal(v('h_seconds_bucket', '0', '+Inf'), 3);
  assert.equal(v('h_seconds_count', '1'), 1);
  assert.deepEqual(mergeHistograms([]), []);
});

test('RemoteLsn: one refresh asked at a time per node, ended by the push; a replay position never goes back', async () => {
  const asked: number[] = [];
  const lsn = new RemoteLsn((n) => asked.push(n), async () => 42n);
  assert.equal(lsn.replayLsn(1), null);
  const p = lsn.refreshReplay(1);
  void lsn.refreshReplay(1);
  assert.deepEqual(asked, [1], 'a refresh in flight is not asked again');
  lsn.apply(1, 100n);
  await p;
  assert.equal(lsn.replayLsn(1), 100n);
  lsn.apply(1, 90n); // an older answer arriving late
  lsn.apply(1, null); // a failed query
  assert.equal(lsn.replayLsn(1), 100n);
  // A push nobody asked for (another worker's refresh) is learned too.
  lsn.apply(2, 7n);
  assert.equal(lsn.replayLsn(2), 7n);
  void lsn.refreshReplay(1);
  assert.deepEqual(asked, [1, 1]);
  assert.equal(await lsn.currentLsnAfter(0, 0), 42n);
  await lsn.close();
});

test('mergeCache: SHOW POOL_CACHE and the cache counters of every worker summed, the hit ratio recomputed', async () => {
  const metrics = (hits: number, selects: number): QueryCacheMetrics => ({
    method: 'shmem', hits, misses: selects - hits, selects, stores: 1, notStored: 0, evictions: 0, memcachedErrors: 0,
    memcachedUp: true, bytes: 100, entries: 2, invalidations: new Map([['write', 1]]),
  });
  let invalidated = 0;
  const base: QueryCacheAdmin = {
    poolCacheRow: () => [], metrics: () => metrics(0, 0),
    deleteQuery: async () => {}, invalidateAll: async () => { invalidated++; },
  };
  const m = mergeCache(base, [
    { row: ['3', '4', '0.75', '100', '2', '2', '100', '900', '0'], metrics: metrics(3, 4) },
    { row: ['1', '4', '0.25', '100', '1', '1', '50', '950', '0'], metrics: metrics(1, 4) },
  ]);
  assert.deepEqual(m.poolCacheRow(), ['4', '8', '0.50', '200', '3', '3', '150', '1850', '0']);
  assert.equal(m.metrics().hits, 4);
  assert.equal(m.metrics().invalidations.get('write'), 2);
  await m.invalidateAll();
  assert.equal(invalidated, 1, 'invalidation is the base\'s (it reaches every worker itself)');
});
