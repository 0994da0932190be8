/**
 * Issue 4 end to end, through pgmaitre, on real clusters: a standby stopped under pgbench load
 * (0 failed transactions thanks to the read retry; marked down within the bound; back with
 * auto_failback), the primary stopped (writes fail fast, reads go on) then a standby promoted
 * with pg_promote() (writes work again without a restart), a lagging standby skipped, and
 * read-your-writes (0 stale reads in 1000 write-then-read rounds). Nothing leaks.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'pg';
import { withCluster } from '../harness/cluster';
import { backendLines, eventually, startInProcess, type InProcess } from '../harness/in-process';
import { runCommand } from '../../src/demo/pg-exec';

const HEALTH = "sr_check_user = 'postgres'\nhealth_check_user = 'postgres'\nhealth_check_period = 1\nhealth_check_timeout = 2\nhealth_check_max_retries = 1\nhealth_check_retry_delay = 1\nsr_check_period = 1\nsearch_primary_node_timeout = 3\n";

async function client(px: InProcess, extra: Record<string, unknown> = {}): Promise<Client> {
  const c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres', ...extra });
  c.on('error', () => {});
  await c.connect();
  return c;
}

function settled(px: InProcess): Promise<void> {
  return eventually(() => [...px.app.ctx.pools.values()].every((p) => {
    const c = p.counts();
    return c.active === 0 && c.resetting === 0 && c.connecting === 0;
  }) && px.app.ctx.slots.inUse === 0, 'pools and slots back to idle', 10_000);
}

describe('standby failure under load', { timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 2, pgbench: 1 });
  let px: InProcess;
  before(async () => {
    px = await startInProcess(`${backendLines(fx.cluster, [0, 1, 1])}\n${HEALTH}enable_pool_hba = off\nauto_failback = on\nauto_failback_interval = 1\nnum_init_children = 16\n`);
  });
  after(async () => { await px?.stop(); });

  test('stopping a standby during pgbench -S -c 8: 0 failed transactions, node down in time, back after start', async () => {
    const bench = runCommand(fx.cluster.pg.bin('pgbench'), ['-n', '-S', '-c', '8', '-j', '2', '-T', '8', '-h', '127.0.0.1', '-p', String(px.port), '-U', 'postgres', 'postgres']);
    await new Promise((r) => setTimeout(r, 2000));
    const stoppedAt = Date.now();
    await fx.cluster.stopNode('standby1', 'immediate');
    // Bound: health_check_period × (max_retries + 1) plus the retry delay and the probe timeout.
    await eventually(() => px.app.ctx.cluster.node(1)?.status === 'down', 'node 1 marked down', 1 * (1 + 1) * 1000 + 1000 + 2000 + 1000);
    const downAfter = Date.now() - stoppedAt;
    const out = await bench;
    const text = `${out.stdout}\n${out.stderr}`;
    assert.match(text, /number of failed transactions: 0 /, text);
    assert.doesNotMatch(text, /aborted|error/i, text);
    assert.ok(downAfter < 5000, `marked down after ${downAfter} ms`);
    await fx.cluster.startNode('standby1');
    await eventually(() => px.app.ctx.cluster.node(1)?.status === 'up', 'node 1 back up (auto_failback)', 20_000);
    const before1 = px.app.ctx.cluster.node(1)!.counters.select_cnt;
    for (let i = 0; i < 20; i++) {
      const c = await client(px);
      await c.query('SELECT 1');
      await c.end();
    }
    assert.ok(px.app.ctx.cluster.node(1)!.counters.select_cnt > before1, 'node 1 receives reads again');
    await settled(px);
  });
});

describe('primary failure and promotion', { timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  let px: InProcess;
  before(async () => {
    await fx.cluster.psql('primary', 'CREATE TABLE fo (i int)');
    await fx.cluster.waitForReplay();
    px = await startInProcess(`${backendLines(fx.cluster, [0, 1, 1])}\n${HEALTH}enable_pool_hba = off\nnum_init_children = 16\n`);
  });
  after(async () => { await px?.stop(); });

  test('writes fail fast with an ErrorResponse, reads go on; after pg_promote() writes work again', async () => {
    const s = await client(px); // a session that lives through the whole failover
    await s.query('INSERT INTO fo VALUES (1)');
    await fx.cluster.stopNode('primary', 'immediate');
    await eventually(() => px.app.ctx.cluster.primaryId() === -1, 'primary gone', 10_000);

    const t0 = Date.now();
    await assert.rejects(s.query('INSERT INTO fo VALUES (2)'), (e: { code?: string }) => e.code === '57P03');
    assert.ok(Date.now() - t0 < 2000, 'the write failed fast');
    assert.equal((await s.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true, 'the same session still reads');
    const fresh = await client(px);
    assert.equal((await fresh.query('SELECT count(*)::int AS n FROM fo')).rows[0].n, 1, 'a new session reads too');
    await assert.rejects(fresh.query('INSERT INTO fo VALUES (3)'), (e: { code?: string }) => e.code === '57P03');

    await fx.cluster.promote('standby1');
    const promotedAt = Date.now();
    await eventually(async () => {
      try {
        await s.query('INSERT INTO fo VALUES (4)');
        return true;
      } catch {
        return false;
      }
    }, 'writes accepted after promotion', 20_000);
    const bound = Date.now() - promotedAt;
    assert.equal(px.app.ctx.cluster.primaryId(), 1);
    await fresh.query('INSERT INTO fo VALUES (5)');
    assert.ok(bound < 15_000, `writes back after ${bound} ms`);
    await s.end();
    await fresh.end();
    await settled(px);
  });
});

describe('lag and read-your-writes', { timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  before(async () => {
    await fx.cluster.psql('primary', 'CREATE TABLE ryw (i int PRIMARY KEY, filler text)');
    await fx.cluster.waitForReplay();
  });

  test('a standby lagging beyond delay_threshold gets no reads until it catches up', async () => {
    const px = await startInProcess(`${backendLines(fx.cluster, [0, 1, 0])}\n${HEALTH}enable_pool_hba = off\ndelay_threshold = 100000\n`);
    try {
      await fx.cluster.psql('standby1', 'SELECT pg_wal_replay_pause()');
      await fx.cluster.psql('primary', "INSERT INTO ryw SELECT g, repeat('x', 500) FROM generate_series(1, 5000) g");
      await eventually(() => (px.app.ctx.cluster.node(1)?.replication.delayBytes ?? 0) > 100000, 'lag measured', 10_000);
      for (let i = 0; i < 5; i++) {
        const c = await client(px);
        assert.equal((await c.query('SELECT inet_server_port() AS p')).rows[0].p, fx.cluster.primary.port, 'lagging standby skipped');
        await c.end();
      }
      await fx.cluster.psql('standby1', 'SELECT pg_wal_replay_resume()');
      await eventually(() => (px.app.ctx.cluster.node(1)?.replication.delayBytes ?? 1) === 0, 'caught up', 15_000);
      const c = await client(px);
      assert.equal((await c.query('SELECT inet_server_port() AS p')).rows[0].p, fx.cluster.standbys[0]!.port, 'reads back on the standby');
      await c.end();
    } finally {
      await fx.cluster.psql('standby1', 'SELECT pg_wal_replay_resume()').catch(() => {});
      await px.stop();
    }
  });

  for (const ryw of [true, false]) {
    test(`read_your_writes = ${ryw ? 'on' : 'off'}: write then read back, 1000 rounds`, async () => {
      const px = await startInProcess(`${backendLines(fx.cluster, [0, 1, 1])}\n${HEALTH}enable_pool_hba = off\nread_your_writes = ${ryw ? 'on' : 'off'}\n`);
      try {
        const base = ryw ? 100_000 : 200_000;
        const c = await client(px);
        let stale = 0;
        let onStandby = 0;
        for (let i = 0; i < 1000; i++) {
          await c.query('INSERT INTO ryw VALUES ($1)', [base + i]);
          const r = await c.query<{ n: number; r: boolean }>('SELECT count(*)::int AS n, pg_is_in_recovery() AS r FROM ryw WHERE i = $1', [base + i]);
          if (r.rows[0]!.n !== 1) stale++;
          if (r.rows[0]!.r) onStandby++;
        }
        await c.end();
        if (ryw) {
          assert.equal(stale, 0, 'no stale read of our own write');
          process.stdout.write(`# read_your_writes on: 0 stale of 1000, ${onStandby} reads served by standbys\n`);
        } else {
          // Without it, some reads see the standby before it replayed the write (the problem).
          process.stdout.write(`# read_your_writes off: ${stale} stale reads of 1000\n`);
        }
        await settled(px);
      } finally {
        await px.stop();
      }
    });
  }
});
