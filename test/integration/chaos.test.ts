/**
 * Real failures while several real clients share pgmaitre, mostly in transaction pooling: the
 * primary stopped (immediate) under 16 writing node-postgres clients, failover_command promoting
 * a standby and follow_primary_command re-pointing the other (one process and worker_processes =
 * 2; session pooling too); with two workers under pgbench: a standby stopped and started, SIGHUP
 * reloads, memcached (the query cache) stopped and restarted, CancelRequests, a worker SIGKILLed;
 * a storm of pg_terminate_backend() over every pooled server connection under load, transaction
 * and session pooling (the primary stays attached, clients see only what a direct connection
 * would: 57P01 when their backend was killed, nothing between transactions); the pool exhausted
 * by long transactions (53300, admin commands still answered); clients that vanish mid-COPY,
 * mid-transaction and mid-pipeline while others share their connections. What is checked is what an operator
 * expects: nothing hangs, every client error carries a SQLSTATE, clients that reconnect are
 * served, and nothing is left on PostgreSQL (locks, sessions idle in a transaction).
 * No assertion depends on how fast the machine is: bounds are generous and progress is
 * checked by counts, not by durations.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as net from 'node:net';
import { Client } from 'pg';
import { freePort, startPgmaitre, withCluster, type PgmaitreProcess } from '../harness/cluster';
import { describeResult, exec, type ExecResult } from '../harness/exec';
import { RawClient } from '../harness/raw-client';
import { startMemcached } from '../harness/memcached';
import { encodeBind, encodeCopyData, encodeExecute, encodeFlush, encodeParse, encodeQuery } from '../../src/protocol/frontend';
import { backendLines, eventually, startInProcess, type InProcess } from '../harness/in-process';

const HEALTH = [
  "sr_check_user = 'postgres'", "health_check_user = 'postgres'", 'health_check_period = 1', 'health_check_timeout = 2',
  'health_check_max_retries = 1', 'health_check_retry_delay = 1', 'sr_check_period = 1', 'connect_timeout = 2000',
].join('\n');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** An error as a client sees it: its SQLSTATE when it has one, else its message. */
function describeError(e: unknown): string {
  const x = e as { code?: string; message?: string };
  return x.code !== undefined && /^[0-9A-Z]{5}$/.test(x.code) ? x.code : `no SQLSTATE: ${x.message ?? String(e)}`;
}

/** Resolves `p`, or rejects after `ms` (a hang is a failure of its own, not a slow answer). */
function noHang<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`HANG: ${what} did not finish in ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(timer));
}

/** Sessions of the node still idle in a transaction, and locks held by other sessions than the asker. */
async function leftovers(port: number): Promise<{ idleInTx: number; locks: number }> {
  const c = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  await c.connect();
  try {
    const a = await c.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()");
    const l = await c.query("SELECT count(*)::int AS n FROM pg_locks WHERE pid <> pg_backend_pid() AND locktype IN ('relation', 'advisory', 'transactionid', 'tuple')");
    return { idleInTx: a.rows[0].n, locks: l.rows[0].n };
  } finally {
    await c.end();
  }
}

function settled(px: InProcess): Promise<void> {
  return eventually(() => [...px.app.ctx.pools.values()].every((p) => {
    const c = p.counts();
    return c.active === 0 && c.resetting === 0 && c.connecting === 0;
  }), 'every pool back to idle', 20_000);
}

/** SHOW POOL_NODES through pgmaitre: each node's status and role. */
async function poolNodes(port: number): Promise<{ status: string; role: string }[]> {
  const c = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 30_000, query_timeout: 30_000 });
  c.on('error', () => {});
  await c.connect();
  try {
    const r = await c.query('SHOW POOL_NODES');
    return r.rows.map((x) => ({ status: String(x.status), role: String(x.role) }));
  } finally {
    await c.end().catch(() => {});
  }
}

for (const [workers, mode] of [[1, 'transaction'], [2, 'transaction'], [2, 'session']] as const) describe(`${mode} pooling${workers > 1 ? ', worker_processes = 2' : ''}: the primary stops under 16 writing clients, failover and follow_primary`, { timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  let px: { port: number; stop(): Promise<unknown> };
  let inProcess: InProcess | null = null;
  let dir: string;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-chaos-'));
    fs.chmodSync(dir, 0o755);
    const c = fx.cluster;
    await c.psql('primary', 'CREATE TABLE chaos_w (id bigserial PRIMARY KEY, client int NOT NULL, n int NOT NULL)');
    await c.waitForReplay();
    // failover_command: promote the new main node; follow_primary_command: point the other standby at it.
    const failover = path.join(dir, 'failover.sh');
    fs.writeFileSync(failover, '#!/bin/sh\n# %d %h %p %H %r\nexec psql -X -q -h "$4" -p "$5" -U postgres -d postgres -c "SELECT pg_promote()" >> "$(dirname "$0")/failover.log" 2>&1\n', { mode: 0o755 });
    const follow = path.join(dir, 'follow.sh');
    fs.writeFileSync(follow, [
      '#!/bin/sh', '# %d %h %p %H %r',
      `psql -X -q -h "$2" -p "$3" -U postgres -d postgres -c "ALTER SYSTEM SET primary_conninfo = 'host=$4 port=$5 user=postgres application_name=standby2 connect_timeout=5'" -c "SELECT pg_reload_conf()" >> "$(dirname "$0")/follow.log" 2>&1`,
      '',
    ].join('\n'), { mode: 0o755 });
    const conf = [
      backendLines(c, [0, 1, 1]), HEALTH, 'search_primary_node_timeout = 30', 'enable_pool_hba = off',
      'auto_failback = on', 'auto_failback_interval = 1',
      `failover_command = '${failover} %d %h %p %H %r'`, `follow_primary_command = '${follow} %d %h %p %H %r'`,
      `pool_mode = '${mode}'`, 'default_pool_size = 4', 'max_client_conn = 100', 'query_wait_timeout = 30', 'num_init_children = 40',
    ].join('\n');
    if (workers === 1) {
      px = inProcess = await startInProcess(conf);
    } else {
      const port = await freePort();
      const p = await startPgmaitre({ config: `listen_addresses = '127.0.0.1'\nport = ${port}\nunix_socket_directories = ''\nworker_processes = ${workers}\n${conf}\n`, timeoutMs: 60_000 });
      await p.waitForLog(/"event":"workers_ready"/, 60_000);
      px = { port, stop: () => p.stop() };
    }
  });
  after(async () => {
    await px?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('no client hangs, every error carries a SQLSTATE, every client is served again after the promotion', async (t) => {
    const primaryIs = async (id: number): Promise<boolean> => {
      if (inProcess !== null) return inProcess.app.ctx.cluster.primaryId() === id;
      return (await poolNodes(px.port))[id]?.role === 'primary';
    };
    const nodeUp = async (id: number): Promise<boolean> => {
      if (inProcess !== null) return inProcess.app.ctx.cluster.node(id)?.status === 'up';
      return (await poolNodes(px.port))[id]?.status === 'up';
    };
    const opts = { host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 60_000, query_timeout: 60_000 };
    // A session idle through the whole failover (in transaction pooling it holds no connection;
    // in session pooling it loses its primary's connection, and writes on the new one).
    const idle = new Client(opts);
    idle.on('error', () => {});
    await idle.connect();
    await idle.query('INSERT INTO chaos_w (client, n) VALUES (-1, 0)');

    const errors = new Map<string, number>();
    const okAfterPromotion = new Array<number>(16).fill(0);
    const hangs: string[] = [];
    let committed = 0;
    let promoted = false;
    let running = true;
    const loops = Array.from({ length: 16 }, async (_, i) => {
      let c: Client | null = null;
      let n = 0;
      let async: unknown = null; // a FATAL between two statements (see workload below)
      while (running) {
        try {
          if (c === null) {
            const fresh = new Client(opts);
            async = null;
            fresh.on('error', (e) => { async ??= e; });
            c = fresh;
            await noHang(fresh.connect(), 90_000, `client ${i} connect`);
          }
          const cc = c;
          await noHang((async () => {
            await cc.query('BEGIN');
            await cc.query('INSERT INTO chaos_w (client, n) VALUES ($1, $2)', [i, ++n]);
            await cc.query('SELECT count(*) FROM chaos_w WHERE client = $1', [i]);
            await cc.query('COMMIT');
          })(), 90_000, `client ${i} transaction`);
          committed++;
          if (promoted) okAfterPromotion[i]!++;
        } catch (e) {
          const d = describeError(/not queryable/.test((e as Error).message) && async !== null ? async : e);
          if (d.startsWith('no SQLSTATE: HANG')) hangs.push(d);
          errors.set(d, (errors.get(d) ?? 0) + 1);
          // A client whose connection ended reconnects; one whose transaction failed rolls back.
          const old = c;
          c = null;
          await old?.end().catch(() => {});
          await sleep(200);
        }
      }
      await c?.end().catch(() => {});
    });

    await eventually(() => committed >= 32, 'the clients commit', 60_000);
    await fx.cluster.stopNode('primary', 'immediate');
    await eventually(() => primaryIs(1), 'standby1 promoted by failover_command and adopted', 90_000);
    promoted = true;
    await eventually(() => okAfterPromotion.every((k) => k >= 3), `every client commits again after the promotion (${okAfterPromotion})`, 90_000);
    running = false;
    await Promise.all(loops);

    const tally = [...errors.entries()].map(([k, v]) => `${k} ×${v}`).join(', ');
    t.diagnostic(`client errors during the failover: ${tally || 'none'}`);
    assert.deepEqual(hangs, [], tally);
    const unclear = [...errors.keys()].filter((k) => k.startsWith('no SQLSTATE'));
    assert.deepEqual(unclear, [], `errors without a SQLSTATE: ${tally}`);
    // The idle session went through the failover without an error: it had no connection to lose.
    await idle.query('INSERT INTO chaos_w (client, n) VALUES (-1, 1)');
    assert.equal((await idle.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, false);
    await idle.end();
    // follow_primary: standby2 streams from the new primary and is attached back (auto_failback).
    await eventually(() => nodeUp(2), 'standby2 attached back after following node 1', 90_000);
    if (inProcess !== null) await settled(inProcess);
    const left = await leftovers(fx.cluster.nodes[1]!.port);
    assert.equal(left.idleInTx, 0, 'no session left idle in a transaction');
  });
});

/** pgbench's verdict: the failed transactions line and any aborted client, from its output. */
function benchVerdict(r: ExecResult): { failed: string; aborted: string[] } {
  const text = `${r.stdout}\n${r.stderr}`;
  return {
    failed: /number of failed transactions: (\d+)/.exec(text)?.[1] ?? `no summary (${describeResult(r)})`,
    aborted: text.split('\n').filter((l) => /aborted|error/i.test(l)),
  };
}

describe('worker_processes = 2, transaction pooling, under pgbench', { timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 2, pgbench: 1 });
  let px: PgmaitreProcess;
  let port: number;
  let conf: string;

  const bench = (args: readonly string[], seconds: number): Promise<ExecResult> => exec(fx.cluster.pg.bin('pgbench'),
    ['-n', '-c', '8', '-j', '2', '-T', String(seconds), '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', ...args, 'postgres'],
    { env: { PATH: process.env['PATH'], LC_ALL: 'C', PGCONNECT_TIMEOUT: '30' }, timeoutMs: (seconds + 120) * 1000 });

  /** What SHOW POOL_NODES says of node `id`'s status, through pgmaitre. */
  async function nodeStatus(id: number): Promise<string> {
    const c = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    c.on('error', () => {});
    await c.connect();
    try {
      const r = await c.query('SHOW POOL_NODES');
      return String(r.rows.find((x) => String(x.node_id) === String(id))?.status ?? '?');
    } finally {
      await c.end().catch(() => {});
    }
  }

  before(async () => {
    port = await freePort();
    const lines = [
      `listen_addresses = '127.0.0.1'`, `port = ${port}`, "unix_socket_directories = ''",
      backendLines(fx.cluster, [0, 1, 1]), HEALTH, 'enable_pool_hba = off', 'auto_failback = on', 'auto_failback_interval = 1',
      'worker_processes = 2', "pool_mode = 'transaction'", 'default_pool_size = 4', 'max_client_conn = 200', 'log_min_messages = info', '',
    ];
    px = await startPgmaitre({ config: lines.join('\n'), timeoutMs: 60_000 });
    conf = path.join(px.dir, 'pgpool.conf');
    await px.waitForLog(/"event":"workers_ready"/, 60_000);
  }, { timeout: 120_000 });
  after(async () => { await px?.stop(); });

  test('a standby stopped (immediate) and started again under pgbench -S -c 8: 0 failed transactions, no client aborted', async () => {
    const run = bench(['-S'], 12);
    await sleep(3000);
    await fx.cluster.stopNode('standby1', 'immediate');
    await px.waitForLog(/"event":"node_down","node_id":1/, 30_000);
    await fx.cluster.startNode('standby1');
    const v = benchVerdict(await run);
    assert.equal(v.failed, '0', v.aborted.join('\n'));
    assert.deepEqual(v.aborted, []);
    await eventually(async () => (await nodeStatus(1)) === 'up', 'standby1 attached again (auto_failback)', 60_000);
  });

  test('SIGHUP reloads (a reloadable key changed each time) under pgbench -S -c 8: 0 failed transactions, no client aborted', async () => {
    const run = bench(['-S'], 10);
    await sleep(2000);
    for (let k = 0; k < 4; k++) {
      fs.appendFileSync(conf, `\nclient_idle_limit = ${600 + k}\n`);
      process.kill(px.pid, 'SIGHUP');
      await sleep(1000);
    }
    const v = benchVerdict(await run);
    assert.equal(v.failed, '0', v.aborted.join('\n'));
    assert.deepEqual(v.aborted, []);
  });

  test('the query cache on memcached, memcached stopped and restarted under pgbench (reads and writes, -M extended, -c 8): 0 failed transactions', async () => {
    const mc = await startMemcached();
    const cachePort = await freePort();
    let cached: PgmaitreProcess | null = null;
    try {
      cached = await startPgmaitre({
        config: [
          `listen_addresses = '127.0.0.1'`, `port = ${cachePort}`, "unix_socket_directories = ''",
          backendLines(fx.cluster, [0, 1, 1]), HEALTH, 'enable_pool_hba = off', 'worker_processes = 2', "pool_mode = 'transaction'",
          'default_pool_size = 4', 'memory_cache_enabled = on', "memqcache_method = 'memcached'", "memqcache_memcached_host = '127.0.0.1'",
          `memqcache_memcached_port = ${mc.port}`, 'log_min_messages = info', '',
        ].join('\n'),
        timeoutMs: 60_000,
      });
      await cached.waitForLog(/"event":"workers_ready"/, 60_000);
      const script = path.join(cached.dir, 'hot.sql');
      fs.writeFileSync(script, [
        '\\set aid random(1, 100)', 'SELECT abalance FROM pgbench_accounts WHERE aid = :aid;',
        '\\set w random(1, 10)', '\\if :w = 1', 'UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;', '\\endif', '',
      ].join('\n'));
      const run = exec(fx.cluster.pg.bin('pgbench'),
        ['-n', '-f', script, '-M', 'extended', '-c', '8', '-j', '2', '-T', '10', '-h', '127.0.0.1', '-p', String(cachePort), '-U', 'postgres', 'postgres'],
        { env: { PATH: process.env['PATH'], LC_ALL: 'C', PGCONNECT_TIMEOUT: '30' }, timeoutMs: 130_000 });
      await sleep(2500);
      await mc.stop();
      await sleep(2500);
      await mc.restart();
      const v = benchVerdict(await run);
      assert.equal(v.failed, '0', v.aborted.join('\n'));
      assert.deepEqual(v.aborted, []);
    } finally {
      await cached?.stop();
      await mc.stop();
    }
  });

  test('CancelRequests under pgbench load land on either worker and cancel only their own client\'s query on a shared connection', async () => {
    const run = bench(['-S'], 8);
    try {
      await sleep(1500);
      for (let k = 0; k < 4; k++) {
        const c = await RawClient.connect(port, { user: 'postgres', database: 'postgres' });
        try {
          c.send(encodeQuery('SELECT pg_sleep(60)'));
          await sleep(500);
          // Each CancelRequest is a new connection, dealt to either worker.
          await new Promise<void>((resolve, reject) => {
            const s = net.connect(port, '127.0.0.1', () => {
              const b = Buffer.alloc(16);
              b.writeInt32BE(16, 0); b.writeInt32BE(80877102, 4); b.writeInt32BE(c.pid, 8); b.writeInt32BE(c.secret, 12);
              s.end(b);
            });
            s.on('close', () => resolve());
            s.on('error', reject);
          });
          const answer = await c.untilReady(30_000);
          assert.equal(answer.find((m) => m.type === 'E')?.error?.code, '57014', `cancel ${k}: ${answer.map((m) => m.type).join('')}`);
          c.send(encodeQuery('SELECT 1'));
          assert.equal((await c.untilReady(30_000)).map((m) => m.type).join(''), 'TDCZ', 'the session goes on');
        } finally {
          c.close();
        }
      }
    } finally {
      const v = benchVerdict(await run);
      assert.equal(v.failed, '0', v.aborted.join('\n'));
      assert.deepEqual(v.aborted, [], 'no pgbench client was cancelled');
    }
  });

  test('a worker killed (SIGKILL) under pgbench -S -c 8: only its clients abort, the others fail nothing; it is restarted and serves', async () => {
    const pids = /"event":"workers_ready".*?"pids":\[([\d,]+)\]/.exec(px.logs())![1]!.split(',').map(Number);
    const run = bench(['-S'], 8);
    await sleep(2500);
    process.kill(pids[0]!, 'SIGKILL');
    const r = await run;
    const v = benchVerdict(r);
    const aborted = [...r.stderr.matchAll(/client (\d+) aborted/g)].length;
    assert.ok(aborted >= 1, `only the killed worker's clients abort: ${r.stderr}`);
    assert.equal(v.failed, '0', r.stderr);
    await px.waitForLog(/"event":"worker_ready","worker":0/, 60_000);
    const again = await bench(['-S'], 3);
    assert.deepEqual(benchVerdict(again), { failed: '0', aborted: [] });
  });
});

describe('transaction pooling: server connections terminated, clients vanishing, while others share the pool', { timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  let px: InProcess;
  const opts = () => ({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 60_000, query_timeout: 60_000 });

  before(async () => {
    await fx.cluster.psql('primary', 'CREATE TABLE chaos_t (id int PRIMARY KEY, v int NOT NULL); INSERT INTO chaos_t SELECT g, 0 FROM generate_series(1, 100) g; CREATE TABLE chaos_copy (a int, b text); CREATE TABLE chaos_lock (i int)');
    await fx.cluster.waitForReplay();
    px = await startInProcess([
      backendLines(fx.cluster, [1, 0, 0]), HEALTH, 'enable_pool_hba = off',
      "pool_mode = 'transaction'", 'default_pool_size = 3', 'max_client_conn = 100', 'query_wait_timeout = 60', 'log_min_messages = debug1',
    ].join('\n'));
  });
  after(async () => { await px?.stop(); });

  /**
   * `n` clients looping autocommit reads and short write transactions until stop(); errors tallied
   * by SQLSTATE. `o`: another pgmaitre's port, the rows written (first id, count), the pause after
   * an error, a label for the hang messages.
   */
  function workload(n: number, o: { port?: number; firstId?: number; ids?: number; pause?: number; label?: string } = {}) {
    const { firstId = 1, ids = 50, pause = 100, label = 'client' } = o;
    const errors = new Map<string, number>();
    /** The first message of each error, by SQLSTATE. */
    const messages = new Map<string, string>();
    const ok = new Array<number>(n).fill(0);
    let running = true;
    const loops = Array.from({ length: n }, async (_, i) => {
      let c: Client | null = null;
      let k = 0;
      // A FATAL that arrives between two statements is an 'error' event; the next query then only
      // says "not queryable": the event's error is the one the client got.
      let async: unknown = null;
      while (running) {
        try {
          if (c === null) {
            const fresh = new Client(o.port === undefined ? opts() : { ...opts(), port: o.port });
            async = null;
            fresh.on('error', (e) => { async ??= e; });
            c = fresh;
            await noHang(fresh.connect(), 90_000, `${label} ${i} connect`);
          }
          const cc = c;
          await noHang((async () => {
            if (++k % 2 === 0) {
              await cc.query('SELECT count(*) FROM chaos_t WHERE v >= $1', [0]);
            } else {
              await cc.query('BEGIN');
              await cc.query('UPDATE chaos_t SET v = v + 1 WHERE id = $1', [firstId + ((i * 7 + k) % ids)]);
              await cc.query('COMMIT');
            }
          })(), 90_000, `${label} ${i} statement`);
          ok[i]!++;
        } catch (e) {
          const d = describeError(/not queryable/.test((e as Error).message) && async !== null ? async : e);
          errors.set(d, (errors.get(d) ?? 0) + 1);
          if (!messages.has(d)) messages.set(d, `${d}: ${(/not queryable/.test((e as Error).message) && async !== null ? async as Error : e as Error).message}`);
          const old = c;
          c = null;
          await old?.end().catch(() => {});
          await sleep(pause);
        }
      }
      await c?.end().catch(() => {});
    });
    return {
      ok, errors, messages,
      tally: () => [...errors.entries()].map(([key, v]) => `${key} ×${v}`).join(', ') || 'none',
      stop: async () => { running = false; await Promise.all(loops); }, // (idempotent)
    };
  }

  test('pool exhausted by long transactions: a waiting client gets 53300 after query_wait_timeout (inside its BEGIN too), admin commands answer meanwhile, all go on after', async () => {
    const small = await startInProcess([
      backendLines(fx.cluster, [1, 0, 0]), HEALTH, 'enable_pool_hba = off',
      "pool_mode = 'transaction'", 'default_pool_size = 1', 'reserve_pool_size = 0', 'query_wait_timeout = 2',
    ].join('\n'));
    const cs: Client[] = [];
    const connect = async (): Promise<Client> => {
      const c = new Client({ host: '127.0.0.1', port: small.port, user: 'postgres', database: 'postgres', query_timeout: 60_000 });
      c.on('error', () => {});
      await c.connect();
      cs.push(c);
      return c;
    };
    try {
      const holder = await connect();
      const waiter = await connect();
      const plain = await connect();
      const admin = await connect();
      await waiter.query('SELECT 1'); // its greeting is known: the next logins need no connection
      await holder.query('BEGIN');
      await holder.query('UPDATE chaos_t SET v = v + 1 WHERE id = 77');
      // An autocommit statement: refused after query_wait_timeout, the session goes on.
      await assert.rejects(plain.query('SELECT 1'), (e: { code?: string }) => e.code === '53300');
      // Inside a BEGIN answered by pgmaitre (psycopg2, node-postgres): the transaction fails with it.
      await waiter.query('BEGIN');
      await assert.rejects(waiter.query('SELECT 2'), (e: { code?: string }) => e.code === '53300');
      await assert.rejects(waiter.query('SELECT 3'), (e: { code?: string }) => e.code === '25P02');
      // Admin commands need no connection: answered while the pool is exhausted.
      const nodes = await admin.query('SHOW POOL_NODES');
      assert.equal(nodes.rows.length, 3);
      await waiter.query('ROLLBACK');
      await holder.query('COMMIT');
      assert.equal((await waiter.query('SELECT 4 AS n')).rows[0].n, 4);
      assert.equal((await plain.query('SELECT 5 AS n')).rows[0].n, 5);
    } finally {
      await Promise.all(cs.map((c) => c.end().catch(() => {})));
      await small.stop();
    }
  });

  test('clients vanishing mid-COPY, mid-transaction (holding a lock) and mid-pipeline while others share the connections: nothing left on PostgreSQL', async (t) => {
    const w = workload(6);
    t.after(() => w.stop());
    await eventually(() => w.ok.every((k) => k >= 2), 'the workload runs', 60_000);
    const params = { user: 'postgres', database: 'postgres' };
    for (let round = 0; round < 3; round++) {
      // Mid-COPY: COPY FROM STDIN started, some rows sent, then the socket is gone.
      const copy = await RawClient.connect(px.port, params);
      copy.send(encodeQuery('COPY chaos_copy FROM STDIN'));
      assert.equal((await copy.next(30_000)).type, 'G');
      copy.send(encodeCopyData('1\tx\n2\ty\n'));
      // Mid-transaction, holding a row lock and a table lock.
      const tx = await RawClient.connect(px.port, params);
      tx.send(encodeQuery('BEGIN; UPDATE chaos_t SET v = v + 1 WHERE id = 100; LOCK TABLE chaos_lock IN SHARE MODE'));
      const txAnswer = await tx.untilReady(30_000);
      assert.equal(txAnswer[txAnswer.length - 1]!.frame[5], 'T'.charCodeAt(0), 'in a transaction');
      // Mid-pipeline: an extended-protocol write sent without its Sync (the server holds the transaction open).
      const pipe = await RawClient.connect(px.port, params);
      pipe.send(encodeParse('', 'UPDATE chaos_t SET v = v + 1 WHERE id = 99'), encodeBind('', ''), encodeExecute(), encodeFlush());
      for (;;) if ((await pipe.next(30_000)).type === 'C') break;
      copy.close();
      tx.close();
      pipe.close();
      await sleep(200);
    }
    // The locks are gone: a conflicting lock and the rows are free at once.
    const check = new Client({ host: '127.0.0.1', port: fx.cluster.primary.port, user: 'postgres', database: 'postgres' });
    await check.connect();
    await eventually(async () => {
      try {
        await check.query('BEGIN');
        await check.query("SET LOCAL lock_timeout = '1s'");
        await check.query('LOCK TABLE chaos_copy, chaos_lock IN EXCLUSIVE MODE');
        await check.query('UPDATE chaos_t SET v = v WHERE id IN (99, 100)');
        await check.query('ROLLBACK');
        return true;
      } catch {
        await check.query('ROLLBACK').catch(() => {});
        return false;
      }
    }, 'the vanished clients\' locks are released', 30_000);
    await check.end();
    const mark = w.ok.slice();
    await eventually(() => w.ok.every((k, i) => k >= mark[i]! + 2), `the other clients go on (${w.ok})`, 60_000);
    await w.stop();
    t.diagnostic(`errors of the sharing clients: ${w.tally()}`);
    assert.deepEqual(w.errors.size, 0, `the clients sharing the pool saw no error: ${w.tally()}`);
    await settled(px);
    assert.deepEqual(await leftovers(fx.cluster.primary.port), { idleInTx: 0, locks: 0 });
    const c = new Client({ host: '127.0.0.1', port: fx.cluster.primary.port, user: 'postgres', database: 'postgres' });
    await c.connect();
    assert.equal((await c.query('SELECT count(*)::int AS n FROM chaos_copy')).rows[0].n, 0, 'no COPY row of a vanished client was committed');
    await c.end();
  });
  /**
   * The storm: every pooled data-path backend of the primary (pgmaitre's side connections, named
   * 'pgmaitre ...', are left alone) terminated again and again for `ms`. Resolves with the number
   * of backends terminated.
   */
  async function storm(ms: number): Promise<number> {
    const killer = new Client({ host: '127.0.0.1', port: fx.cluster.primary.port, user: 'postgres', database: 'postgres', application_name: 'chaos_killer' });
    await killer.connect();
    let killed = 0;
    try {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        const r = await killer.query("SELECT count(*)::int AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'client backend' AND datname = 'postgres' AND pid <> pg_backend_pid() AND application_name <> 'chaos_killer' AND application_name NOT LIKE 'pgmaitre %') x");
        killed += r.rows[0].n;
        await sleep(20);
      }
    } finally {
      await killer.end();
    }
    return killed;
  }

  /** The last backend connections lost without the server's word, from `on`'s log. */
  function lossLines(on: InProcess): string {
    return on.logs().split('\n').filter((l) => (/"event":"backend_error"/.test(l) && !/"goodbye"/.test(l)) || /"level":"(error|fatal)"|"level":[56]0|no (primary|standby) node|node_down|session_crash|"event":"backend_connect"/.test(l)).slice(-12).join('\n');
  }

  /** Watches `px`'s node 0 (the primary) until stop(): what it was seen as, other than up. */
  function watchPrimary(on: InProcess) {
    const seen = new Set<string>();
    let running = true;
    const loop = (async () => {
      while (running) {
        const n = on.app.ctx.cluster.node(0);
        if (n?.status !== 'up') seen.add(String(n?.status));
        if (on.app.ctx.cluster.primaryId() !== 0) seen.add(`primary ${on.app.ctx.cluster.primaryId()}`);
        await sleep(10);
      }
    })();
    return { seen, stop: async () => { running = false; await loop; } };
  }

  // A backend killed by pg_terminate_backend() says FATAL 57P01 and closes. Under load a write to
  // the connection could fail (EPIPE/ECONNRESET) before that FATAL was read; the connection was
  // then lost "without a word" and failover_on_backend_error (on) detached the healthy primary:
  // clients got 57P03 ever after. Now a write error keeps reading to the end first, and a loss
  // without a goodbye detaches a node only when a fresh connection to it fails too.
  test('a pg_terminate_backend() storm over the pooled connections under load: the primary stays attached, only clients inside a transaction see 57P01, idle clients are not hurt, all served after', async (t) => {
    // Clients that are connected but idle during the storm hold no connection: they must not notice it.
    const idle: Client[] = [];
    for (let i = 0; i < 4; i++) {
      const c = new Client(opts());
      c.on('error', () => {});
      await c.connect();
      await c.query('SELECT 1');
      idle.push(c);
    }
    const w = workload(16);
    t.after(() => w.stop());
    await eventually(() => w.ok.every((k) => k >= 2), 'the workload runs', 60_000);
    const watch = watchPrimary(px);
    let killed = 0;
    try {
      killed = await storm(10_000);
    } finally {
      await watch.stop();
    }
    const mark = w.ok.slice();
    await eventually(() => w.ok.every((k, i) => k >= mark[i]! + 3), `every client is served after the storm (${w.ok})`, 90_000).catch((e: Error) => {
      const pools = [...px.app.ctx.pools.entries()].map(([n, p]) => `node ${n}: ${JSON.stringify(p.counts())} leased: ${p.leasedConnections().map((c) => `${c.backendPid}${c.usable ? '' : ' unusable'} ${c.lastStatement}`).join('; ')}`);
      throw new Error(`${e.message}\n${pools.join('\n')}\nerrors: ${w.tally()}\n${px.logs().split('\n').filter((l) => /"level":"(warn|error)"|"level":4|"level":5/.test(l)).slice(-30).join('\n')}`);
    });
    await w.stop();
    t.diagnostic(`${killed} backends terminated; client errors: ${w.tally()}`);
    assert.ok(killed >= 20, `the storm terminated ${killed} backends`);
    const detached = px.logs().split('\n').filter((l) => /"event":"node_down"/.test(l));
    assert.deepEqual([...watch.seen], [], `the primary stayed attached: ${detached.join('\n')}`);
    assert.deepEqual(detached, []);
    // What a direct connection would see: its backend terminated inside a transaction or a query.
    const unexpected = [...w.errors.keys()].filter((k) => k !== '57P01');
    assert.deepEqual(unexpected, [], `the clients saw only 57P01: ${w.tally()} ${[...w.messages.values()].join('; ')}\n${lossLines(px)}`);
    for (const c of idle) assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, 'an idle client goes on as if nothing happened');
    await Promise.all(idle.map((c) => c.end()));
    await settled(px);
    assert.deepEqual(px.app.ctx.pools.get(0)?.leasedConnections().length ?? 0, 0, 'no lease left once every client left');
    assert.deepEqual(await leftovers(fx.cluster.primary.port), { idleInTx: 0, locks: 0 });
  });

  test('the same storm over session-mode clients: each client whose backend was killed gets its 57P01 FATAL (as directly), the primary stays attached', async (t) => {
    const session = await startInProcess([
      backendLines(fx.cluster, [1, 0, 0]), HEALTH, 'enable_pool_hba = off', "pool_mode = 'session'", 'num_init_children = 40', 'log_min_messages = debug1',
    ].join('\n'));
    const { ok, errors, messages, tally, stop } = workload(10, { port: session.port, firstId: 51, ids: 40, pause: 50, label: 'session client' });
    try {
      await eventually(() => ok.every((n) => n >= 2), 'the session clients run', 60_000);
      const watch = watchPrimary(session);
      let killed = 0;
      try {
        killed = await storm(6_000);
      } finally {
        await watch.stop();
      }
      const mark = ok.slice();
      await eventually(() => ok.every((n, i) => n >= mark[i]! + 3), `every session client is served after the storm (${ok}; ${tally()})`, 90_000);
      await stop();
      t.diagnostic(`${killed} backends terminated; session client errors: ${tally()}`);
      assert.ok(killed >= 10, `the storm terminated ${killed} backends`);
      const detached = session.logs().split('\n').filter((l) => /"event":"node_down"/.test(l));
      assert.deepEqual([...watch.seen], [], `the primary stayed attached: ${detached.join('\n')}`);
      assert.deepEqual([...errors.keys()].filter((k) => k !== '57P01'), [], `each client saw its backend's 57P01 only: ${tally()} ${[...messages.values()].join('; ')}\n${lossLines(session)}`);
      assert.ok((errors.get('57P01') ?? 0) >= 1, `the killed sessions saw 57P01: ${tally()}`);
    } finally {
      await stop();
      await session.stop();
    }
  });
});
