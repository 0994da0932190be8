/**
 * Health checks and the streaming-replication check against a REAL cluster (primary + 2
 * standbys), through the in-process pgmaitre: a stopped standby goes down within
 * period × (retries + 1) + retry delays, its stats record it, and auto_failback attaches it
 * again once it streams; failover_on_backend_error detaches at once; a paused standby lags past
 * delay_threshold (isLagging) and stops lagging after resume; replayedAtLeast/waitForReplay.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { withCluster } from '../harness/cluster';
import { backendLines, eventually, startInProcess, type InProcess } from '../harness/in-process';

const PERIOD = 1;
const RETRIES = 2;
const RETRY_DELAY = 1;

describe('health and replication checks', { timeout: 120_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  let px: InProcess;

  before(async () => {
    px = await startInProcess([
      backendLines(fx.cluster),
      "sr_check_user = 'postgres'", 'sr_check_period = 1',
      "health_check_user = 'postgres'", `health_check_period = ${PERIOD}`, `health_check_max_retries = ${RETRIES}`,
      `health_check_retry_delay = ${RETRY_DELAY}`, 'health_check_timeout = 5', 'connect_timeout = 2000',
      'auto_failback = on', 'auto_failback_interval = 1', 'delay_threshold = 1048576',
      'enable_pool_hba = off',
    ].join('\n'));
  });
  after(async () => { await px.stop(); });

  const cl = () => px.app.ctx.cluster;

  test('start: roles and statuses come from pg_is_in_recovery()', () => {
    assert.equal(cl().primaryId(), 0);
    assert.deepEqual(cl().nodes.map((n) => [n.status, n.role]), [['up', 'primary'], ['up', 'standby'], ['up', 'standby']]);
  });

  test('a stopped standby is marked down after the retries; stats updated; auto_failback brings it back', async () => {
    await eventually(() => cl().node(2)!.health.success_count > 0, 'a first successful health check', 5000);
    await fx.cluster.stopNode('standby2');
    const t0 = Date.now();
    const bound = PERIOD * (RETRIES + 1) + RETRY_DELAY * RETRIES + 2; // s, + slack for probe time
    await eventually(() => cl().node(2)!.status === 'down', 'node 2 down', bound * 1000);
    const took = (Date.now() - t0) / 1000;
    const n = cl().node(2)!;
    assert.match(n.statusReason, /^health_check_failed: /);
    assert.ok(n.health.fail_count >= 1, 'fail_count');
    assert.ok(n.health.retry_count >= RETRIES, `retry_count ${n.health.retry_count}`);
    assert.equal(n.health.max_retry_count, RETRIES);
    assert.ok(n.health.last_failed_health_check instanceof Date);
    assert.ok(n.health.total_count >= n.health.success_count + n.health.fail_count);
    assert.equal(cl().primaryId(), 0, 'the primary is untouched');
    console.log(`# standby down after ${took.toFixed(1)} s (bound ${bound} s)`);

    // Down nodes are skipped (pgpool's skip_count).
    await eventually(() => cl().node(2)!.health.skip_count > 0, 'skip_count grows', 3000);

    await fx.cluster.startNode('standby2');
    const t1 = Date.now();
    await eventually(() => cl().node(2)!.status === 'up', 'node 2 back up (auto_failback)', 20_000);
    assert.match(cl().node(2)!.statusReason, /^auto_failback: /);
    assert.equal(cl().node(2)!.role, 'standby');
    console.log(`# auto_failback after ${((Date.now() - t1) / 1000).toFixed(1)} s`);
  });

  test('failover_on_backend_error: a backend socket error detaches the node once a new connection to it fails too; not while it answers', async () => {
    await eventually(() => cl().node(1)!.status === 'up', 'node 1 up');
    // A connection reset (or a backend killed) on a node that answers: not detached.
    px.app.health.reportBackendError(1, 'test: socket reset');
    await eventually(() => /"event":"backend_error_node_alive","node_id":1/.test(px.logs()), 'the probe answered', 10_000);
    assert.equal(cl().node(1)!.status, 'up');
    // The node is gone: the same error detaches it.
    await fx.cluster.stopNode('standby1', 'immediate');
    px.app.health.reportBackendError(1, 'test: socket reset');
    await eventually(() => cl().node(1)!.status === 'down', 'node 1 down', 10_000);
    assert.match(cl().node(1)!.statusReason, /^backend_error: test: socket reset; a new connection failed too: /);
    await fx.cluster.startNode('standby1');
    // It is streaming again, so auto_failback attaches it back.
    await eventually(() => cl().node(1)!.status === 'up', 'node 1 back', 30_000);
  });

  test('replication figures: state, sync_state, delay; isLagging past delay_threshold; resume clears it', async () => {
    const rep = px.app.health.replication;
    await eventually(() => cl().node(1)!.replication.state === 'streaming', 'node 1 streaming', 5000);
    assert.equal(cl().node(1)!.replication.syncState, 'async');
    assert.equal(rep.isLagging(1), false);

    await fx.cluster.psql('standby1', 'SELECT pg_wal_replay_pause()');
    try {
      await fx.cluster.psql('primary', "CREATE TABLE lag_fill AS SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 5000) g");
      const lsn = await fx.cluster.psql('primary', 'SELECT pg_current_wal_lsn()');
      await eventually(() => rep.isLagging(1), 'node 1 lagging', 10_000);
      const d = cl().node(1)!.replication.delayBytes;
      assert.ok(d > 1048576, `delayBytes ${d}`);
      assert.equal(rep.isLagging(2), false, 'node 2 keeps up');
      assert.equal(rep.replayedAtLeast(1, lsn), false);
      assert.equal(await rep.waitForReplay(1, lsn, 300), false, 'paused standby does not replay');
      assert.equal(rep.replayedAtLeast(0, lsn), true, 'the primary has it');
      console.log(`# paused standby: delayBytes = ${d}`);
    } finally {
      await fx.cluster.psql('standby1', 'SELECT pg_wal_replay_resume()');
    }
    const lsn2 = await fx.cluster.psql('primary', 'SELECT pg_current_wal_lsn()');
    assert.equal(await rep.waitForReplay(1, lsn2, 10_000), true, 'replays after resume');
    assert.notEqual(await rep.fetchReplayLsn(1), null);
    await eventually(() => !rep.isLagging(1), 'node 1 caught up', 10_000);
  });
});
