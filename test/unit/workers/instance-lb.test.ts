/**
 * least_latency and least_connections across worker processes (workers/instance-lb.ts): the
 * supervisor's merge of the workers' reports, and a worker's balancing inputs once pushed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InstanceLb } from '../../../src/workers/instance-lb';
import { ALPHA, RECENT_MS, drainLatencyWindows, nodeLatency, recentLatency, setInstanceLatencies } from '../../../src/admin/latency';

test('latency: the merged mean is the running mean one process would keep over all the workers\' observations', () => {
  const lb = new InstanceLb();
  lb.report(0, { latency: [[1, 0.010, 1]], active: null }, 1000);
  assert.deepEqual(lb.latencies(1000), [[1, 0.010, 0]]);
  // Worker 1 saw node 1 slower: 4 observations of 20 ms, folded in as 4 steps of the running mean.
  lb.report(1, { latency: [[1, 0.080, 4]], active: null }, 1100);
  let m = 0.010;
  for (let i = 0; i < 4; i++) m += ALPHA * (0.020 - m);
  const [[node, mean, age]] = lb.latencies(1200) as [[number, number, number]];
  assert.equal(node, 1);
  assert.ok(Math.abs(mean - m) < 1e-12, `${mean} vs ${m}`);
  assert.equal(age, 100);
  // A mean older than RECENT_MS is not pushed, and the next observation starts afresh.
  assert.deepEqual(lb.latencies(1100 + RECENT_MS + 1), []);
  lb.report(0, { latency: [[1, 0.003, 1]], active: null }, 1100 + RECENT_MS + 1);
  assert.deepEqual(lb.latencies(1100 + RECENT_MS + 1), [[1, 0.003, 0]]);
});

test('connections: each worker is pushed the other workers\' sessions per node; a worker gone counts no more', () => {
  const lb = new InstanceLb();
  assert.equal(lb.takeDirty(), false);
  lb.report(0, { latency: [], active: [[1, 3], [2, 0]] }, 0);
  lb.report(1, { latency: [], active: [[1, 1], [2, 2]] }, 0);
  lb.report(2, { latency: [], active: [[2, 5]] }, 0);
  assert.equal(lb.takeDirty(), true);
  assert.equal(lb.takeDirty(), false, 'pushed once per change');
  assert.deepEqual(new Map(lb.othersActive(0)), new Map([[1, 1], [2, 7]]));
  assert.deepEqual(new Map(lb.othersActive(1)), new Map([[1, 3], [2, 5]]));
  // null: unchanged since the last report (the worker sends counts only when they change).
  lb.report(1, { latency: [], active: null }, 0);
  assert.equal(lb.takeDirty(), false);
  assert.deepEqual(new Map(lb.othersActive(0)), new Map([[1, 1], [2, 7]]));
  lb.report(1, { latency: [], active: [[1, 0], [2, 0]] }, 0);
  assert.equal(lb.takeDirty(), true);
  assert.deepEqual(new Map(lb.othersActive(0)), new Map([[2, 5]]));
  lb.forget(2);
  assert.equal(lb.takeDirty(), true);
  assert.deepEqual(lb.othersActive(0), []);
});

test('a worker balances on the instance\'s latency once pushed, on its own before; its observations are drained for the report', () => {
  const rec = nodeLatency(91);
  rec.observe(0.004);
  rec.observe(0.006);
  const drained = drainLatencyWindows().filter(([n]) => n === 91);
  assert.equal(drained.length, 1);
  assert.equal(drained[0]![2], 2);
  assert.ok(Math.abs(drained[0]![1] - 0.010) < 1e-12);
  assert.deepEqual(drainLatencyWindows().filter(([n]) => n === 91), [], 'drained once');
  const own = recentLatency(91)!;
  assert.ok(own > 0.004 && own < 0.006, String(own));
  setInstanceLatencies([[91, 0.5, 10]]);
  assert.equal(recentLatency(91), 0.5, 'the instance\'s mean wins');
  setInstanceLatencies([[91, 0.5, RECENT_MS + 1]]);
  assert.equal(recentLatency(91), own, 'a stale instance mean falls back to this process\'s own');
  setInstanceLatencies([]);
});
