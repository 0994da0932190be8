/**
 * The query cache (memory_cache_enabled = on, memqcache_method = shmem) against a real primary and
 * two standbys, with node-postgres clients. What ran on a backend is read from pgmaitre's
 * log_per_node_statement lines (a hit runs nowhere) and from SHOW POOL_CACHE:
 * - pgpool-II's cases: what is cached (a plain SELECT, simple and extended protocol, parameters
 *   in the key) and what is not (volatile/stable functions, SQL value functions, FOR UPDATE,
 *   temporary tables, system catalogs, views and unlogged tables outside the safe list, row
 *   security, the unsafe list, /*NO QUERY CACHE*\/, partial fetches);
 * - transactions: stored at COMMIT, dropped at ROLLBACK, no hit after a write in the transaction
 *   nor in REPEATABLE READ;
 * - never stale, one test per path: the table written, a trigger, a foreign-key cascade, a
 *   partition through its parent and the parent through a partition, a view (safe-listed) over a
 *   written table, a DDL, PGPOOL SET CACHE DELETE.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'pg';
import { withCluster } from '../harness/cluster';
import { backendLines, startInProcess, type InProcess } from '../harness/in-process';
import { nodeStatements } from '../harness/pgproto';

describe('query cache (shmem)', { timeout: 240_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  let px: InProcess;
  let c: Client;

  /** How many times a statement containing `text` ran on a backend so far. */
  const ran = (text: string): number => nodeStatements(px.logs()).filter((s) => s.statement.includes(text)).length;
  const q = async (sql: string, params?: unknown[]): Promise<unknown[]> => (await c.query({ text: sql, values: params, rowMode: 'array' })).rows;
  /** Runs `sql` twice; returns how many of the two ran on a backend. */
  const twice = async (sql: string, params?: unknown[], same = true): Promise<number> => {
    const before = ran(sql);
    const a = await q(sql, params);
    const b = await q(sql, params);
    if (same) assert.deepEqual(b, a, `same answer for ${sql}`);
    return ran(sql) - before;
  };
  const poolCache = async (): Promise<Record<string, string>> => (await c.query<Record<string, string>>('SHOW POOL_CACHE')).rows[0]!;

  before(async () => {
    await fx.cluster.psql(fx.cluster.primary.id, `
      CREATE TABLE qc_t (id int PRIMARY KEY, v text);
      CREATE TABLE "Qc Mixed" (id int); INSERT INTO "Qc Mixed" VALUES (1);
      INSERT INTO qc_t SELECT g, 'v' || g FROM generate_series(1, 100) g;
      CREATE UNLOGGED TABLE qc_unlogged (id int);
      CREATE TABLE qc_rls (id int); ALTER TABLE qc_rls ENABLE ROW LEVEL SECURITY;
      CREATE TABLE qc_unsafe (id int);
      CREATE VIEW qc_view AS SELECT id, v FROM qc_t WHERE id <= 10;
      CREATE VIEW qc_view_unlisted AS SELECT id FROM qc_t;
      CREATE TABLE qc_src (id int); CREATE TABLE qc_audit (n int);
      INSERT INTO qc_audit VALUES (0);
      CREATE FUNCTION qc_audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE qc_audit SET n = n + 1; RETURN NEW; END $$;
      CREATE TRIGGER qc_audit_tr AFTER INSERT ON qc_src FOR EACH ROW EXECUTE FUNCTION qc_audit_fn();
      CREATE TABLE qc_parent (id int PRIMARY KEY);
      CREATE TABLE qc_child (id int, parent int REFERENCES qc_parent ON DELETE CASCADE);
      INSERT INTO qc_parent VALUES (1), (2); INSERT INTO qc_child VALUES (1, 1), (2, 1), (3, 2);
      CREATE TABLE qc_part (id int, k int) PARTITION BY RANGE (k);
      CREATE TABLE qc_part_a PARTITION OF qc_part FOR VALUES FROM (0) TO (100);
      CREATE TABLE qc_part_b PARTITION OF qc_part FOR VALUES FROM (100) TO (200);
      INSERT INTO qc_part VALUES (1, 1), (2, 150);
      CREATE FUNCTION qc_immutable(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 2';
      CREATE FUNCTION qc_volatile_write() RETURNS int VOLATILE LANGUAGE sql AS 'UPDATE qc_t SET v = ''w'' WHERE id = 100 RETURNING 1';
    `);
    await fx.cluster.waitForReplay();
    px = await startInProcess([
      backendLines(fx.cluster), "sr_check_user = 'postgres'", 'enable_pool_hba = off', 'log_per_node_statement = on',
      'memory_cache_enabled = on', "memqcache_method = 'shmem'", "cache_safe_memqcache_table_list = 'qc_view,qc_unlogged'",
      "cache_unsafe_memqcache_table_list = 'qc_unsafe'",
    ].join('\n'));
    c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres' });
    await c.connect();
  });
  after(async () => {
    await c?.end();
    await px?.stop();
  });

  test('a plain SELECT is answered from the cache the second time (simple and extended protocol, parameters in the key)', async () => {
    assert.equal(await twice('SELECT v FROM qc_t WHERE id = 1'), 1);
    assert.equal(await twice('SELECT v FROM qc_t WHERE id = $1', [2]), 1);
    // Other parameters: another answer.
    assert.deepEqual(await q('SELECT v FROM qc_t WHERE id = $1', [3]), [['v3']]);
    assert.deepEqual(await q('SELECT v FROM qc_t WHERE id = $1', [2]), [['v2']]);
    assert.equal(await twice('SELECT qc_immutable(id) FROM qc_t WHERE id = 4'), 1, 'immutable functions are cacheable');
    assert.equal(await twice('SELECT 1 + 1'), 1, 'no table at all');
    const pc = await poolCache();
    assert.deepEqual(Object.keys(pc), ['num_cache_hits', 'num_selects', 'cache_hit_ratio', 'num_hash_entries', 'used_hash_entries',
      'num_cache_entries', 'used_cache_entries_size', 'free_cache_entries_size', 'fragment_cache_entries_size']);
    assert.ok(Number(pc.num_cache_hits) >= 5, JSON.stringify(pc));
    assert.ok(Number(pc.num_cache_entries) >= 5, JSON.stringify(pc));
  });

  test('what pgpool-II does not cache runs every time', async () => {
    for (const sql of [
      'SELECT now()', 'SELECT random() > 2', 'SELECT current_user', 'SELECT CURRENT_TIMESTAMP > now()',
      'SELECT id FROM qc_t WHERE id = 5 FOR UPDATE', 'SELECT count(*) FROM pg_class WHERE relname = \'qc_t\'',
      'SELECT count(*) FROM qc_view_unlisted', 'SELECT count(*) FROM qc_rls', 'SELECT count(*) FROM qc_unsafe',
      '/*NO QUERY CACHE*/ SELECT v FROM qc_t WHERE id = 6', "SELECT '2024-01-01'::timestamptz", 'SELECT qc_volatile_write()',
    ]) {
      assert.equal(await twice(sql, undefined, false), 2, sql);
    }
    // (Another session: a temporary table keeps a session on its primary connection.)
    const t = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres' });
    await t.connect();
    try {
      await t.query('CREATE TEMP TABLE qc_temp (id int)');
      const before = ran('FROM qc_temp');
      await t.query('SELECT count(*) FROM qc_temp');
      await t.query('SELECT count(*) FROM qc_temp');
      assert.equal(ran('FROM qc_temp') - before, 2, 'temporary table');
    } finally {
      await t.end();
    }
  });

  test('views and unlogged tables are cached when the safe list names them', async () => {
    assert.equal(await twice('SELECT count(*) FROM qc_view'), 1);
    assert.equal(await twice('SELECT count(*) FROM qc_unlogged'), 1);
  });

  test('a write invalidates the table it wrote', async () => {
    assert.equal(await twice('SELECT v FROM qc_t WHERE id = 10'), 1);
    await q("UPDATE qc_t SET v = 'changed' WHERE id = 10");
    assert.deepEqual(await q('SELECT v FROM qc_t WHERE id = 10'), [['changed']]);
    // Through a view (safe-listed) over the written table.
    assert.deepEqual(await q('SELECT v FROM qc_view WHERE id = 10'), [['changed']]);
  });

  test('a quoted mixed-case table is cached, and a write to it invalidates it', async () => {
    const sql = 'SELECT count(*)::int FROM "Qc Mixed"';
    assert.equal(await twice(sql), 1);
    await q('INSERT INTO "Qc Mixed" VALUES (2)');
    assert.deepEqual(await q(sql), [[2]]);
  });

  test('a SELECT calling a function that writes invalidates (fail closed)', async () => {
    assert.equal(await twice('SELECT v FROM qc_t WHERE id = 100'), 1);
    await q('SELECT qc_volatile_write()');
    assert.deepEqual(await q('SELECT v FROM qc_t WHERE id = 100'), [['w']]);
  });

  test('a trigger: the table it writes is not served stale', async () => {
    assert.deepEqual(await q('SELECT n FROM qc_audit'), [[0]]);
    assert.deepEqual(await q('SELECT n FROM qc_audit'), [[0]]);
    await q('INSERT INTO qc_src VALUES (1)');
    assert.deepEqual(await q('SELECT n FROM qc_audit'), [[1]]);
  });

  test('a foreign-key cascade: the referencing table is invalidated', async () => {
    assert.equal(await twice('SELECT count(*) FROM qc_child'), 1);
    await q('DELETE FROM qc_parent WHERE id = 1');
    assert.deepEqual(await q('SELECT count(*) FROM qc_child'), [['1']]);
  });

  test('partitions: a write through the parent invalidates the partition, and the reverse', async () => {
    assert.equal(await twice('SELECT count(*) FROM qc_part_a'), 1);
    assert.equal(await twice('SELECT count(*) FROM qc_part'), 1);
    await q('INSERT INTO qc_part VALUES (3, 2)');
    assert.deepEqual(await q('SELECT count(*) FROM qc_part_a'), [['2']]);
    assert.deepEqual(await q('SELECT count(*) FROM qc_part'), [['3']]);
    await q('INSERT INTO qc_part_b VALUES (4, 160)');
    assert.deepEqual(await q('SELECT count(*) FROM qc_part'), [['4']]);
  });

  test('transactions: stored at COMMIT, dropped at ROLLBACK, no hit after a write or in REPEATABLE READ', async () => {
    const sql = 'SELECT v FROM qc_t WHERE id = 20';
    await q('BEGIN');
    await q(sql);
    await q('ROLLBACK');
    assert.equal(await twice(sql), 1, 'rolled back: not stored, so the first of these ran');
    const sql2 = 'SELECT v FROM qc_t WHERE id = 21';
    await q('BEGIN');
    await q(sql2);
    await q('COMMIT');
    assert.equal(await twice(sql2), 0, 'stored at commit');
    await q('BEGIN');
    assert.equal(await twice(sql2), 0, 'hits inside a transaction that did not write');
    await q("UPDATE qc_t SET v = 'tx' WHERE id = 22");
    assert.equal(await twice(sql2), 2, 'no hit once the transaction wrote');
    await q('COMMIT');
    await q('BEGIN ISOLATION LEVEL REPEATABLE READ');
    assert.equal(await twice(sql2), 2, 'no hit in REPEATABLE READ');
    await q('COMMIT');
    assert.equal(await twice(sql2), 1, 'the UPDATE committed above invalidated qc_t');
  });

  test('a DDL invalidates; PGPOOL SET CACHE DELETE drops a query', async () => {
    const sql = 'SELECT count(*) FROM qc_t WHERE id < 50';
    assert.equal(await twice(sql), 1);
    await q('ALTER TABLE qc_t ADD COLUMN extra int');
    assert.equal(await twice(sql), 1);
    await q(`PGPOOL SET CACHE DELETE '${sql}'`);
    assert.equal(await twice(sql), 1);
    await assert.rejects(c.query('PGPOOL SET CACHE DELETE nonsense'), /syntax error/);
  });
});
