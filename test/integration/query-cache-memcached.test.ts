/**
 * The query cache with memqcache_method = memcached: a real memcached (Debian's, started by the
 * harness on a free loopback port) shared by two in-process pgmaitre instances in front of one
 * real cluster.
 * - an answer stored through one instance is a hit through the other;
 * - a write through one instance invalidates for the other (per-table generations in memcached);
 * - memcached stopped: queries bypass the cache (no client error, the error metric counts), and
 *   the cache comes back by itself once memcached is restarted;
 * - pgbench (hot-key reads and some writes) while memcached is stopped and restarted: 0 failed
 *   transactions.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';
import { withCluster } from '../harness/cluster';
import { backendLines, eventually, startInProcess, type InProcess } from '../harness/in-process';
import { nodeStatements } from '../harness/pgproto';
import { memcachedBinary, startMemcached, type TestMemcached } from '../harness/memcached';
import { describeResult, exec } from '../harness/exec';

const SKIP = memcachedBinary() === null ? 'memcached is not installed (Debian package memcached)' : false;

describe('query cache (memcached, two pgmaitre instances)', { skip: SKIP, timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 1, pgbench: 1 });
  let mc: TestMemcached;
  let a: InProcess;
  let b: InProcess;
  let ca: Client;
  let cb: Client;

  const ran = (px: InProcess, text: string): number => nodeStatements(px.logs()).filter((s) => s.statement.includes(text)).length;
  const one = async (c: Client, sql: string): Promise<unknown> => (await c.query({ text: sql, rowMode: 'array' })).rows[0]?.[0];
  const poolCache = async (c: Client): Promise<Record<string, string>> => (await c.query<Record<string, string>>('SHOW POOL_CACHE')).rows[0]!;

  before(async () => {
    await fx.cluster.psql(fx.cluster.primary.id, "CREATE TABLE qm_t (id int PRIMARY KEY, v text); INSERT INTO qm_t VALUES (1, 'one'), (2, 'two')");
    await fx.cluster.waitForReplay();
    mc = await startMemcached();
    const conf = [
      backendLines(fx.cluster), "sr_check_user = 'postgres'", 'enable_pool_hba = off', 'log_per_node_statement = on',
      'memory_cache_enabled = on', "memqcache_method = 'memcached'", "memqcache_memcached_host = '127.0.0.1'",
      `memqcache_memcached_port = ${mc.port}`,
    ].join('\n');
    a = await startInProcess(conf);
    b = await startInProcess(conf);
    ca = new Client({ host: '127.0.0.1', port: a.port, user: 'postgres', database: 'postgres' });
    cb = new Client({ host: '127.0.0.1', port: b.port, user: 'postgres', database: 'postgres' });
    await ca.connect();
    await cb.connect();
    // The cache opens once each instance's first bump of the global generation went through.
    await eventually(async () => {
      await one(ca, 'SELECT 1');
      await one(cb, 'SELECT 1');
      return a.app.ctx.queryCache!.isUp && b.app.ctx.queryCache!.isUp;
    }, 'both instances reach memcached', 10_000);
  });
  after(async () => {
    await ca?.end();
    await cb?.end();
    await a?.stop();
    await b?.stop();
    await mc?.stop();
  });

  test('an answer stored through one instance is a hit through the other', async () => {
    const sql = 'SELECT v FROM qm_t WHERE id = 1';
    assert.equal(await one(ca, sql), 'one');
    assert.equal(await one(ca, sql), 'one');
    assert.equal(ran(a, sql), 1, 'the second through A was a hit');
    assert.equal(await one(cb, sql), 'one');
    assert.equal(ran(b, sql), 0, 'B never ran it: A stored it in memcached');
    assert.ok(Number((await poolCache(cb)).num_cache_hits) >= 1);
  });

  test('a write through one instance invalidates for the other', async () => {
    const sql = 'SELECT v FROM qm_t WHERE id = 2';
    assert.equal(await one(ca, sql), 'two');
    assert.equal(await one(cb, sql), 'two');
    await cb.query("UPDATE qm_t SET v = 'deux' WHERE id = 2");
    assert.equal(await one(ca, sql), 'deux', 'A does not serve the answer B invalidated');
    assert.equal(await one(cb, sql), 'deux');
  });

  test('memcached down: queries bypass the cache without an error, and it comes back by itself', async () => {
    const sql = 'SELECT v FROM qm_t WHERE id = 1';
    const errorsBefore = a.app.ctx.queryCache!.stats.memcachedErrors;
    await mc.stop();
    for (let i = 0; i < 5; i++) assert.equal(await one(ca, sql), 'one');
    assert.ok(a.app.ctx.queryCache!.stats.memcachedErrors > errorsBefore, 'the error is counted');
    assert.match(a.logs(), /memcached at 127\.0\.0\.1:\d+ is unreachable/);
    // A write while it is down (its invalidation cannot reach memcached).
    await ca.query("UPDATE qm_t SET v = 'uno' WHERE id = 1");
    await mc.restart();
    await eventually(async () => {
      await one(ca, sql);
      return a.app.ctx.queryCache!.isUp;
    }, 'the cache is used again', 10_000);
    const before = ran(a, sql);
    const hits = a.app.ctx.queryCache!.stats.hits;
    assert.equal(await one(ca, sql), 'uno', 'not the answer cached before the outage');
    assert.equal(await one(ca, sql), 'uno');
    // (The polling above may have stored it already: then both of these are hits.)
    assert.ok(ran(a, sql) - before <= 1, 'hits again after the restart');
    assert.ok(a.app.ctx.queryCache!.stats.hits > hits, 'hits again after the restart');
  });

  test('pgbench while memcached is stopped and restarted: 0 failed transactions', async () => {
    const dir = fs.mkdtempSync(path.join(a.dir, 'bench-'));
    const script = path.join(dir, 'hot.sql');
    fs.writeFileSync(script, [
      '\\set aid random(1, 100)',
      'SELECT abalance FROM pgbench_accounts WHERE aid = :aid;',
      '\\set w random(1, 20)',
      '\\if :w = 1',
      'UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;',
      '\\endif',
    ].join('\n'));
    const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'], LC_ALL: 'C', PGCONNECT_TIMEOUT: '10' };
    const run = exec(fx.cluster.pg.bin('pgbench'),
      ['-h', '127.0.0.1', '-p', String(a.port), '-U', 'postgres', '-n', '-f', script, '-M', 'extended', '-c', '4', '-T', '8', 'postgres'],
      { env, timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 2000));
    await mc.stop();
    await new Promise((r) => setTimeout(r, 2000));
    await mc.restart();
    const r = await run;
    assert.equal(r.code, 0, describeResult(r));
    assert.match(r.stdout, /number of failed transactions: 0 \(0\.000%\)/, describeResult(r));
    assert.doesNotMatch(r.stderr, /error|abort/i, describeResult(r));
  });
});
