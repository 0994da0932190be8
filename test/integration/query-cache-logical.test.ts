/**
 * memqcache_logical_invalidation = on against a real primary with wal_level = logical: writes that
 * never pass through pgmaitre (a direct connection to the primary) invalidate the cached answers,
 * through the primary's own change stream (a temporary pgoutput slot pgmaitre owns):
 * - max_lag = 0: a direct write, then at once the same cached SELECT through pgmaitre: the new
 *   value (a plain write, a trigger's side effect, a row routed to a partition, TRUNCATE);
 * - concurrent direct writes: no read older than what had committed before it was sent;
 * - the stream broken (its backend terminated): no stale hit meanwhile, and hits come back;
 * - max_lag > 0: hits served without waiting, a direct write seen within the lag;
 * - memcached: one instance's stream invalidates what another instance (without one) serves;
 * - the slot is temporary: gone once pgmaitre stops.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'pg';
import { withCluster } from '../harness/cluster';
import { backendLines, eventually, startInProcess, type InProcess } from '../harness/in-process';
import { nodeStatements } from '../harness/pgproto';
import { memcachedBinary, startMemcached } from '../harness/memcached';

describe('query cache: invalidation by the primary\'s change stream', { timeout: 240_000 }, () => {
  const fx = withCluster({ standbys: 0, settings: { wal_level: 'logical' } });
  let px: InProcess;
  let c: Client;
  let direct: Client;

  const ran = (text: string): number => nodeStatements(px.logs()).filter((s) => s.statement.includes(text)).length;
  const q = async (sql: string): Promise<unknown[]> => (await c.query({ text: sql, rowMode: 'array' })).rows;
  /** Answers `sql` through pgmaitre until it is a hit (the cache holds it), returning the answer. */
  const cached = async (sql: string): Promise<unknown[]> => {
    let rows: unknown[] = [];
    await eventually(async () => {
      const before = ran(sql);
      rows = await q(sql);
      return ran(sql) === before;
    }, `a hit for ${sql}`, 20_000);
    return rows;
  };
  const slots = async (): Promise<string[]> =>
    (await direct.query<{ slot_name: string }>("SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pgmaitre_qc_%'")).rows.map((r) => r.slot_name);

  before(async () => {
    await fx.cluster.psql(fx.cluster.primary.id, `
      CREATE TABLE lc_t (id int PRIMARY KEY, v text);
      INSERT INTO lc_t SELECT g, 'v' || g FROM generate_series(1, 10) g;
      CREATE TABLE lc_src (id int); CREATE TABLE lc_audit (n int); INSERT INTO lc_audit VALUES (0);
      CREATE FUNCTION lc_audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE lc_audit SET n = n + 1; RETURN NEW; END $$;
      CREATE TRIGGER lc_audit_tr AFTER INSERT ON lc_src FOR EACH ROW EXECUTE FUNCTION lc_audit_fn();
      CREATE TABLE lc_part (id int, k int) PARTITION BY RANGE (k);
      CREATE TABLE lc_part_a PARTITION OF lc_part FOR VALUES FROM (0) TO (100);
      INSERT INTO lc_part VALUES (1, 1);
      CREATE TABLE "Lc Odd" (id int); INSERT INTO "Lc Odd" VALUES (1);
    `);
    px = await startInProcess([
      backendLines(fx.cluster), "sr_check_user = 'postgres'", 'enable_pool_hba = off', 'log_per_node_statement = on',
      'memory_cache_enabled = on', "memqcache_method = 'shmem'", 'memqcache_logical_invalidation = on',
    ].join('\n'));
    c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres' });
    await c.connect();
    direct = new Client({ host: fx.cluster.primary.host, port: fx.cluster.primary.port, user: 'postgres', password: 'postgres', database: 'postgres' });
    direct.on('error', () => undefined); // the cluster may stop before this client ends (hook order)
    await direct.connect();
  });
  after(async () => {
    await c?.end();
    await direct?.end();
    await px?.stop();
  });

  test('a write made on a direct connection is never served stale (max_lag = 0)', async () => {
    const sql = 'SELECT v FROM lc_t WHERE id = 1';
    assert.deepEqual(await cached(sql), [['v1']]);
    assert.equal((await slots()).length, 1, 'one temporary slot for the database');
    for (let i = 0; i < 5; i++) {
      await direct.query('UPDATE lc_t SET v = $1 WHERE id = 1', [`d${i}`]);
      assert.deepEqual(await q(sql), [[`d${i}`]], `round ${i}: the direct write is seen at once`);
      assert.deepEqual(await cached(sql), [[`d${i}`]]);
    }
    const m = px.app.ctx.queryCache!.stats.invalidations;
    assert.ok((m.get('change_stream') ?? 0) >= 5, JSON.stringify([...m]));
  });

  test("a trigger's side effect, a partition written through its parent, TRUNCATE, an odd quoted name (all written directly)", async () => {
    const audit = 'SELECT n FROM lc_audit';
    assert.deepEqual(await cached(audit), [[0]]);
    await direct.query('INSERT INTO lc_src VALUES (1)');
    assert.deepEqual(await q(audit), [[1]]);

    const part = 'SELECT count(*)::int FROM lc_part_a';
    assert.deepEqual(await cached(part), [[1]]);
    await direct.query('INSERT INTO lc_part VALUES (2, 2)');
    assert.deepEqual(await q(part), [[2]]);
    const parent = 'SELECT count(*)::int FROM lc_part';
    assert.deepEqual(await cached(parent), [[2]]);
    await direct.query('INSERT INTO lc_part_a VALUES (3, 3)');
    assert.deepEqual(await q(parent), [[3]]);

    await direct.query('TRUNCATE lc_part');
    assert.deepEqual(await q(parent), [[0]]);
    assert.deepEqual(await q(part), [[0]]);

    const odd = 'SELECT count(*)::int FROM "Lc Odd"';
    assert.deepEqual(await cached(odd), [[1]]);
    await direct.query('INSERT INTO "Lc Odd" VALUES (2)');
    assert.deepEqual(await q(odd), [[2]], 'a quoted name (test_decoding quotes it)');
  });

  test('concurrent direct writes: every read through pgmaitre sees at least what had committed before it was sent', async () => {
    await direct.query("UPDATE lc_t SET v = '0' WHERE id = 5");
    const sql = 'SELECT v::int FROM lc_t WHERE id = 5';
    let committed = 0;
    let stop = false;
    const writer = (async () => {
      for (let n = 1; !stop; n++) {
        await direct.query('UPDATE lc_t SET v = $1 WHERE id = 5', [String(n)]);
        committed = n;
        await new Promise((r) => setTimeout(r, 40));
      }
    })();
    const hitsBefore = px.app.ctx.queryCache!.stats.hits;
    let reads = 0;
    try {
      const until = Date.now() + 4000;
      while (Date.now() < until) {
        const floor = committed;
        const v = (await c.query({ text: sql, rowMode: 'array' })).rows[0]![0] as number;
        assert.ok(v >= floor, `read ${v} after ${floor} had committed`);
        reads++;
      }
    } finally {
      stop = true;
      await writer;
    }
    const hits = px.app.ctx.queryCache!.stats.hits - hitsBefore;
    assert.ok(hits > 0, `some reads were hits (${hits} of ${reads})`);
  });

  test('the stream broken: no stale hit while it is down, hits again once it is back', async () => {
    const sql = 'SELECT v FROM lc_t WHERE id = 2';
    assert.deepEqual(await cached(sql), [['v2']]);
    const before = await slots();
    await direct.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgmaitre query cache stream'");
    await direct.query("UPDATE lc_t SET v = 'x2' WHERE id = 2");
    assert.deepEqual(await q(sql), [['x2']], 'the write made while the stream was down is seen');
    assert.deepEqual(await cached(sql), [['x2']], 'hits come back');
    const now = await slots();
    assert.equal(now.length, 1);
    assert.notDeepEqual(now, before, 'a new temporary slot (the old one went with its connection)');
    assert.ok((px.app.ctx.queryCache!.stats.invalidations.get('change_stream_start') ?? 0) >= 2);
  });

  test('max_lag > 0: hits without waiting for a round, and a direct write is seen within the lag', async () => {
    const px2 = await startInProcess([
      backendLines(fx.cluster), "sr_check_user = 'postgres'", 'enable_pool_hba = off', 'log_per_node_statement = on',
      'memory_cache_enabled = on', "memqcache_method = 'shmem'", 'memqcache_logical_invalidation = on', 'memqcache_logical_max_lag = 300',
    ].join('\n'));
    const c2 = new Client({ host: '127.0.0.1', port: px2.port, user: 'postgres', database: 'postgres' });
    await c2.connect();
    try {
      const sql = 'SELECT v FROM lc_t WHERE id = 3';
      const ran2 = (): number => nodeStatements(px2.logs()).filter((x) => x.statement.includes(sql)).length;
      await eventually(async () => {
        const before = ran2();
        await c2.query(sql);
        return ran2() === before;
      }, 'a hit with max_lag = 300', 20_000);
      await direct.query("UPDATE lc_t SET v = 'lag3' WHERE id = 3");
      // Seen within the lag (plus a round): never the old value for long.
      await eventually(async () => (await c2.query(sql)).rows[0]?.v === 'lag3', 'the direct write seen through pgmaitre', 5000);
    } finally {
      await c2.end();
      await px2.stop();
    }
  });

  test('memcached: the change stream of one instance invalidates what another serves', { skip: memcachedBinary() === null ? 'memcached is not installed' : false }, async () => {
    const mc = await startMemcached();
    const conf = (logical: boolean): string => [
      backendLines(fx.cluster), "sr_check_user = 'postgres'", 'enable_pool_hba = off', 'log_per_node_statement = on',
      'memory_cache_enabled = on', "memqcache_method = 'memcached'", "memqcache_memcached_host = '127.0.0.1'",
      `memqcache_memcached_port = ${mc.port}`, `memqcache_logical_invalidation = ${logical ? 'on' : 'off'}`,
    ].join('\n');
    // A reads the stream; B does not, and shares A's generations through memcached.
    const a = await startInProcess(conf(true));
    const b = await startInProcess(conf(false));
    const ca = new Client({ host: '127.0.0.1', port: a.port, user: 'postgres', database: 'postgres' });
    const cb = new Client({ host: '127.0.0.1', port: b.port, user: 'postgres', database: 'postgres' });
    try {
      await ca.connect();
      await cb.connect();
      const sql = 'SELECT v FROM lc_t WHERE id = 4';
      const ranB = (): number => nodeStatements(b.logs()).filter((x) => x.statement.includes(sql)).length;
      await eventually(async () => {
        await ca.query(sql); // starts A's stream
        const before = ranB();
        await cb.query(sql);
        return ranB() === before && a.app.ctx.queryCache!.streams!.status().some((x) => x.up);
      }, 'a hit through B, A\'s stream up', 20_000);
      await direct.query("UPDATE lc_t SET v = 'mc4' WHERE id = 4");
      // B has no stream: A's next round (within a second) moves the shared generation on.
      await eventually(async () => (await cb.query(sql)).rows[0]?.v === 'mc4', 'B serves the direct write', 5000);
    } finally {
      await ca.end().catch(() => undefined);
      await cb.end().catch(() => undefined);
      await a.stop();
      await b.stop();
      await mc.stop();
    }
  });

  test('the slot is temporary: gone once pgmaitre stops', async () => {
    await c.end();
    await px.stop();
    await eventually(async () => (await slots()).length === 0, 'no pgmaitre slot left', 10_000);
    px = undefined as unknown as InProcess;
    c = undefined as unknown as Client;
  });
});
