/**
 * The quick forward path (SessionCore.quickForward, issue 17 item 9) through real sockets and a
 * real primary: reads of the same shape as the session's last are sent on its plan, and what the
 * full path records still is (SHOW POOL_NODES' select_cnt, the connection's last statement); with
 * transaction pooling and ONE connection shared by two clients, neither ever gets the other's
 * answer or settings. test/unit/core/quick-forward.test.ts shows each condition byte by byte.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'pg';
import { withCluster } from '../harness/cluster';
import { backendLines, startInProcess, type InProcess } from '../harness/in-process';
import { SessionCore } from '../../src/core/session-core';

/** Counts the requests sent on the quick path (all sessions of this process). */
let quick = 0;
const quickForward = SessionCore.prototype.quickForward;
SessionCore.prototype.quickForward = function (this: SessionCore, view: Buffer, max: number): boolean {
  const r = quickForward.call(this, view, max);
  if (r) quick++;
  return r;
};

describe('quick forward path', { timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 0 });
  let session: InProcess;
  let pooled: InProcess;

  before(async () => {
    const common = `${backendLines(fx.cluster, [1])}\nenable_pool_hba = off\nsr_check_user = 'postgres'\nhealth_check_period = 0\n`;
    session = await startInProcess(common);
    pooled = await startInProcess(`${common}pool_mode = transaction\ndefault_pool_size = 1\nreserve_pool_size = 0\nquery_wait_timeout = 20\n`);
    const c = new Client({ host: '127.0.0.1', port: session.port, user: 'postgres', database: 'postgres' });
    await c.connect();
    await c.query('DROP TABLE IF EXISTS qf_t; CREATE TABLE qf_t (id int PRIMARY KEY, v text); INSERT INTO qf_t SELECT i, \'v\' || i FROM generate_series(1, 1000) i');
    await c.end();
  });
  after(async () => {
    await session?.stop();
    await pooled?.stop();
  });

  function client(px: InProcess): Client {
    const c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres' });
    c.on('error', () => {});
    return c;
  }

  test('session pooling: each read answers its own row, is counted in select_cnt, and is the connection\'s last statement', async () => {
    const c = client(session);
    await c.connect();
    const counters = session.app.ctx.cluster.node(0)!.counters;
    const selects = counters.select_cnt;
    const quick0 = quick;
    for (let i = 1; i <= 200; i++) {
      const r = await c.query(`SELECT v FROM qf_t WHERE id = ${i}`);
      assert.equal(r.rows[0].v, `v${i}`);
    }
    assert.ok(quick - quick0 >= 190, `quick: ${quick - quick0}`);
    assert.equal(counters.select_cnt - selects, 200);
    const pools = await c.query('SHOW POOL_POOLS');
    assert.ok(pools.rows.some((row: Record<string, string>) => row.statement === 'SELECT v FROM qf_t WHERE id = 200'), 'SHOW POOL_POOLS shows the last statement');
    // A write, an error and a transaction between reads: each goes the full path, and the reads after them are right.
    await c.query('UPDATE qf_t SET v = \'w1\' WHERE id = 1');
    assert.equal((await c.query('SELECT v FROM qf_t WHERE id = 1')).rows[0].v, 'w1');
    await assert.rejects(c.query('SELECT v FROM qf_t WHERE id = 1/0'), /division by zero/);
    assert.equal((await c.query('SELECT v FROM qf_t WHERE id = 2')).rows[0].v, 'v2');
    await c.query('BEGIN');
    assert.equal((await c.query('SELECT v FROM qf_t WHERE id = 3')).rows[0].v, 'v3');
    await c.query('UPDATE qf_t SET v = \'w3\' WHERE id = 3');
    assert.equal((await c.query('SELECT v FROM qf_t WHERE id = 3')).rows[0].v, 'w3');
    await c.query('ROLLBACK');
    assert.equal((await c.query('SELECT v FROM qf_t WHERE id = 3')).rows[0].v, 'v3');
    assert.equal((await c.query('SELECT v FROM qf_t WHERE id = 4')).rows[0].v, 'v4');
    await c.query('UPDATE qf_t SET v = \'v1\' WHERE id = 1');
    await c.end();
  });

  test('transaction pooling, two clients on ONE connection: each gets its own answers and its own settings', async () => {
    const a = client(pooled);
    const b = client(pooled);
    await a.connect();
    await b.connect();
    await a.query('SET application_name = \'qf_a\'');
    await b.query('SET application_name = \'qf_b\'');
    const quick0 = quick;
    const run = async (c: Client, name: string, offset: number): Promise<void> => {
      for (let i = 1; i <= 150; i++) {
        const id = offset + i;
        const r = await c.query(`SELECT v FROM qf_t WHERE id = ${id}`);
        assert.equal(r.rows[0].v, `v${id}`, `${name} got another answer`);
        if (i % 50 === 0) {
          // (A function call: the full path; the shared connection has this client's setting.)
          assert.equal((await c.query('SELECT current_setting(\'application_name\') AS n')).rows[0].n, name);
        }
      }
    };
    await Promise.all([run(a, 'qf_a', 0), run(b, 'qf_b', 500)]);
    assert.ok(quick > quick0, 'some reads took the quick path');
    assert.equal(pooled.app.ctx.pools.get(0)!.counts().total, 1, 'one connection');
    await a.end();
    await b.end();
  });
});
