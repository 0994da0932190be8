/**
 * Issue 17, items 8 and 10, against a real primary and standby:
 *  - session pooling: pg_terminate_backend() of a client's backend (the pid it was given) ends
 *    that client with the backend's FATAL at once, even while it is idle, as PostgreSQL does —
 *    psycopg2's own test_external_close_sync/_async and node-postgres, reads on the standby;
 *  - transaction pooling on a small pool: sessions idle in a transaction (psycopg2's default
 *    mode) or pinned (LISTEN) never keep other clients from logging in, running admin commands,
 *    or (pinned) getting a connection; a query that waits too long gets ERROR 53300.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Client } from 'pg';
import { REPO_ROOT, withCluster } from '../harness/cluster';
import { backendLines, startInProcess, type InProcess } from '../harness/in-process';
import { RawClient } from '../harness/raw-client';
import { exec, isExecutable } from '../harness/exec';

const PYTHON = process.env['PGMAITRE_TEST_PYTHON'] ?? '/usr/bin/python3';
const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'clients');
const ENV: NodeJS.ProcessEnv = { PATH: process.env['PATH'], LC_ALL: 'C.UTF-8', PYTHONDONTWRITEBYTECODE: '1' };

async function python(script: string, args: string[]): Promise<Record<string, unknown> | null> {
  if (!isExecutable(PYTHON) || (await exec(PYTHON, ['-c', 'import psycopg2'])).code !== 0) return null;
  const r = await exec(PYTHON, [path.join(FIXTURES, script), ...args], { env: ENV, timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

describe('session truth and fair pools', { timeout: 400_000 }, () => {
  const fx = withCluster({ standbys: 1 });
  let px: InProcess;
  let pxTx: InProcess;
  const common = "sr_check_user = 'postgres'\nenable_pool_hba = off\nhealth_check_period = 0\n";

  before(async () => {
    // Reads go to the standby: the terminated backend is the primary's, the next SELECT would not touch it.
    await fx.cluster.psql('primary', 'CREATE TABLE starve_t (v int)');
    px = await startInProcess(`${backendLines(fx.cluster, [0, 1])}\n${common}`);
    pxTx = await startInProcess(`${backendLines(fx.cluster, [0, 1])}\n${common}pool_mode = transaction\ndefault_pool_size = 2\nquery_wait_timeout = 5\n`);
  });
  after(async () => {
    await px?.stop();
    await pxTx?.stop();
  });

  const dsn = (p: InProcess): string => `host=127.0.0.1 port=${p.port} user=postgres dbname=postgres sslmode=disable`;
  const client = (p: InProcess): Client => {
    const c = new Client({ host: '127.0.0.1', port: p.port, user: 'postgres', database: 'postgres' });
    c.on('error', () => {});
    return c;
  };

  test('psycopg2 test_external_close_sync/_async: the next query after pg_terminate_backend raises, through pgmaitre as directly (item 8)', async (t) => {
    const direct = `host=${fx.cluster.nodes[0]!.host} port=${fx.cluster.nodes[0]!.port} user=postgres dbname=postgres sslmode=disable`;
    const want = await python('external_close.py', [direct]);
    if (want === null) {
      t.skip('psycopg2 is not importable');
      return;
    }
    const ok = Array.from({ length: 10 }, () => 'ok');
    assert.deepEqual(want, { sync: ok, async: ok });
    assert.deepEqual(await python('external_close.py', [dsn(px)]), want);
  });

  test('node-postgres: terminated while idle, the client gets 57P01 at once and its next query fails (item 8)', async () => {
    const admin = client(px);
    await admin.connect();
    for (let i = 0; i < 10; i++) {
      const c = client(px);
      let event = '';
      c.on('error', (e: Error & { code?: string }) => { event ||= e.code ?? e.message; });
      await c.connect();
      await c.query('SELECT 1');
      await admin.query('SELECT pg_terminate_backend($1)', [(c as unknown as { processID: number }).processID]);
      await assert.rejects(c.query('SELECT 1'));
      await c.end().catch(() => {});
    }
    // Idle, sending nothing: the FATAL arrives and the connection closes.
    const raw = await RawClient.connect(px.port, { user: 'postgres', database: 'postgres' });
    await admin.query('SELECT pg_terminate_backend($1)', [raw.pid]);
    const msgs = await raw.waitClosed();
    assert.deepEqual(msgs.map((m) => `${m.type}${m.error ? ` ${m.error.severity} ${m.error.code}` : ''}`), ['E FATAL 57P01']);
    await admin.end();
  });

  test('psycopg2 default mode on default_pool_size = 2: sessions idle in a transaction hold both connections, yet logins and SHOW POOL_NODES succeed; a query waits query_wait_timeout, then 53300 (item 10)', async (t) => {
    const r = await python('many_idle_in_tx.py', [dsn(pxTx), '2', '20']);
    if (r === null) {
      t.skip('psycopg2 is not importable');
      return;
    }
    assert.equal(r['holders'], 2);
    assert.deepEqual(r['login_errors'], []);
    assert.equal(r['logins'], 20, 'every login completed without a backend connection');
    assert.equal(r['pool_nodes'], 2, 'SHOW POOL_NODES answered');
    assert.match(String(r['waiter']), /^53300 .*query_wait_timeout/);
  });

  test('node-postgres: pinned clients (LISTEN) on default_pool_size = 2 do not starve a third client (item 10)', async () => {
    const pinned = [client(pxTx), client(pxTx)];
    await Promise.all(pinned.map((c) => c.connect()));
    await Promise.all(pinned.map((c, i) => c.query(`LISTEN starve_${i}`)));
    await Promise.all(pinned.map((c) => c.query('SELECT 1')));
    const third = client(pxTx);
    await third.connect();
    // A write: it needs one of the primary's connections, which both pinned sessions hold.
    for (let i = 0; i < 5; i++) assert.equal((await third.query('INSERT INTO starve_t VALUES (1)')).rowCount, 1);
    assert.equal(pxTx.app.ctx.pools.get(0)!.pinnedCount('postgres\u0000postgres\u0000'), 2);
    await Promise.all([...pinned, third].map((c) => c.end()));
  });
});
