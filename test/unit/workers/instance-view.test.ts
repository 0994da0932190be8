/**
 * The instance view admins see with worker_processes > 1: sessions of every worker listed once
 * with the instance's slot numbers, pool counts and statement counters summed, node state from
 * the brain; the session registry's pids partitioned between workers and cancels that miss
 * handed on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collectWorker, instanceContext, mergePooling } from '../../../src/workers/instance-view';
import type { AdminContext, SessionInfo } from '../../../src/admin/types';
import type { InstanceSnapshot } from '../../../src/workers/messages';
import { Cluster } from '../../../src/cluster/cluster';
import { loadConfigText } from '../../../src/config/load';
import { SessionRegistry } from '../../../src/frontend/registry';
import { slotTable } from '../../../src/admin/format';
import { workerConfig } from '../../../src/workers/shares';

const BACKEND = "backend_hostname0 = 'localhost'\nbackend_port0 = 5432\n";
const full = loadConfigText(BACKEND + 'num_init_children = 5\nmax_client_conn = 10\npool_mode = transaction\n', '/tmp/pgpool.conf').config;

function session(pid: number, slot: number): SessionInfo {
  return { pid, slot, connectedAt: new Date(0), user: 'u', database: 'd', applicationName: '', address: '127.0.0.1', port: 1, status: 'Idle', loadBalanceNode: 0, backends: [] };
}

function localCtx(index: number, sessions: SessionInfo[], selects: number): AdminContext {
  const cluster = new Cluster([{ id: 0, host: 'h', port: 1, weight: 1, flags: [], dataDirectory: '', applicationName: '' }]);
  (cluster.nodes[0]!.counters as { select_cnt: number }).select_cnt = selects;
  const c = workerConfig(full, index, 2);
  return {
    config: () => c, nodes: () => cluster.nodes, primaryId: () => 0,
    poolCounts: () => ({ idle: 1, active: 2, resetting: 0, connecting: 0, total: 3, waiting: index }),
    sessions: () => sessions, slots: () => ({ capacity: c.num_init_children, inUse: sessions.length, waiting: 0 }),
    startedAt: new Date(0), version: 'x',
    actions: {} as AdminContext['actions'],
    pooling: () => ({ mode: 'transaction', defaultPoolSize: 1, clients: sessions.length, maxClientConn: c.max_client_conn, nodes: [{ node: 0, idle: 1, leased: 1, waiting: 0, leases: 10, waitedLeases: 1 }], pinnedNow: 0, pinnedTotal: 1, cacheHits: 2, cacheMisses: 3 }),
    classifierStats: () => ({ hits: 1, misses: 1, size: 1 }),
  };
}

test('sessions of both workers are listed once, numbered in the instance\'s slots', () => {
  // worker 0 holds slots 0..2 (3 of 5) and pooled slots 3..7 (5 of 10); worker 1 slots 0..1 and 2..6.
  const w0 = collectWorker(localCtx(0, [session(100, 0), session(102, 2), session(104, 3)], 4), 0, 2, { nic: 5, mcc: 10 });
  const w1 = collectWorker(localCtx(1, [session(101, 0), session(103, 1), session(105, 2)], 6), 1, 2, { nic: 5, mcc: 10 });
  const cluster = new Cluster([{ id: 0, host: 'h', port: 1, weight: 1, flags: [], dataDirectory: '', applicationName: '' }]);
  const snap: InstanceSnapshot = { nodes: cluster.nodes, primaryId: 0, startedAt: new Date(1), events: [], eventCounts: new Map(), lease: null, recovery: null, workers: [w1, w0] };
  const base = { ...localCtx(0, [], 0), config: () => full };
  const ctx = instanceContext(base, snap);
  const slots = ctx.sessions().map((s) => [s.pid, s.slot]);
  assert.deepEqual(slots, [[100, 0], [102, 2], [104, 5], [101, 3], [103, 4], [105, 5 + 5]]);
  assert.equal(new Set(ctx.sessions().map((s) => s.slot)).size, 6);
  assert.deepEqual(ctx.slots(), { capacity: 5, inUse: 6, waiting: 0 });
  // SHOW POOL_PROCESSES's table: 5 instance slots, then the pooled sessions, each once.
  assert.deepEqual(slotTable(ctx).map((r) => r.pid), [100, 2_000_000_001, 102, 101, 103, 104, 105]);
  assert.equal(ctx.nodes()[0]!.counters.select_cnt, 10, 'statement counters summed');
  assert.deepEqual(ctx.poolCounts(0), { idle: 2, active: 4, resetting: 0, connecting: 0, total: 6, waiting: 1 });
  assert.deepEqual(ctx.classifierStats!(), { hits: 2, misses: 2, size: 2 });
  const p = ctx.pooling!();
  assert.equal(p.clients, 6);
  assert.equal(p.maxClientConn, 10, 'the instance\'s max_client_conn');
  assert.deepEqual(p.nodes, [{ node: 0, idle: 2, leased: 2, waiting: 0, leases: 20, waitedLeases: 2 }]);
  assert.equal(ctx.startedAt.getTime(), 1, 'the brain\'s start');
  assert.equal(mergePooling([null, null], full), null);
});

test('the registry issues pids no other worker issues, and hands on cancels it cannot match', () => {
  const seen = new Set<number>();
  for (let k = 0; k < 3; k++) {
    const r = new SessionRegistry();
    r.partitionPids(k, 3);
    for (let i = 0; i < 200; i++) {
      const pid = r.issuePid();
      assert.equal(pid % 3, k);
      assert.ok(!seen.has(pid));
      seen.add(pid);
    }
  }
  const r = new SessionRegistry();
  const missed: [number, number][] = [];
  r.onMiss = (pid, secret) => missed.push([pid, secret]);
  let cancelled = 0;
  r.add({ pid: 7, secret: 9, cancel: () => { cancelled++; }, terminate: () => {} });
  assert.equal(r.cancel(7, 9), true);
  assert.equal(r.cancel(7, 8), false);
  assert.equal(r.cancelLocal(8, 9), false);
  assert.equal(cancelled, 1);
  assert.deepEqual(missed, [[7, 8]], 'a miss goes on (cancelLocal never does)');
});
