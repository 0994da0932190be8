/**
 * What the query cache may keep and what a statement invalidates (src/cache/cacheable.ts), over
 * the real classifier: pgpool-II's rules (SELECT only; not SELECT INTO, FOR UPDATE, TABLESAMPLE,
 * SQL value functions, timestamptz; the safe and unsafe lists; the comments), and the catalog
 * facts' verdicts (temporary, system, row security, views, unlogged).
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { classify, initClassifier } from '../../../src/classify';
import { compileTableLists, invalidationOf, relationVerdict, textVerdict } from '../../../src/cache/cacheable';

before(() => initClassifier());

const lists = compileTableLists(['v_safe', 'public\\.u_.*'], ['t_unsafe']);
const ok = (sql: string): boolean => textVerdict(sql, classify(sql), lists).ok;

describe('textVerdict', () => {
  test('plain SELECTs and WITH ... SELECT are candidates; their tables and functions are reported', () => {
    assert.equal(ok('SELECT a FROM t WHERE id = 1'), true);
    assert.equal(ok('WITH x AS (SELECT 1) SELECT * FROM x'), true);
    const v = textVerdict('SELECT lower(a) FROM s.t JOIN u ON true', classify('SELECT lower(a) FROM s.t JOIN u ON true'), lists);
    assert.ok(v.ok);
    assert.deepEqual([...v.relations].sort(), ['s.t', 'u']);
    assert.deepEqual(v.functions, ['lower']);
  });
  test("what pgpool-II never caches", () => {
    for (const sql of [
      'INSERT INTO t VALUES (1)', 'SELECT * INTO n FROM t', 'SELECT * FROM t FOR UPDATE', 'SELECT * FROM t FOR SHARE',
      'SELECT * FROM t TABLESAMPLE SYSTEM (10)', 'SELECT current_user', 'SELECT CURRENT_TIMESTAMP', 'SELECT localtime',
      "SELECT '2020-01-01'::timestamptz", 'SELECT now()::time with time zone', 'SELECT nextval(\'s\')',
      'WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d', 'SELECT 1; SELECT 2', '/*NO QUERY CACHE*/ SELECT 1',
      'SELECT * FROM t_unsafe',
    ]) assert.equal(ok(sql), false, sql);
  });
  test('/*FORCE QUERY CACHE*/ caches a SELECT whatever its functions, never a write; the unsafe list still wins', () => {
    const v = textVerdict('/*FORCE QUERY CACHE*/ SELECT now()', classify('/*FORCE QUERY CACHE*/ SELECT now()'), lists);
    assert.ok(v.ok && v.force);
    assert.equal(ok('/*FORCE QUERY CACHE*/ DELETE FROM t'), false);
    assert.equal(ok('/*FORCE QUERY CACHE*/ SELECT * FROM t_unsafe'), false);
  });
});

describe('relationVerdict', () => {
  const facts = (kind: string, persistence = 'p', more: { system?: boolean; rowSecurity?: boolean } = {}) =>
    ({ kind, persistence, system: more.system ?? false, rowSecurity: more.rowSecurity ?? false });
  test('ordinary and partitioned tables are cacheable', () => {
    assert.equal(relationVerdict('t', facts('r'), lists), null);
    assert.equal(relationVerdict('t', facts('p'), lists), null);
  });
  test('temporary, system, row security, unknown: never', () => {
    assert.match(relationVerdict('t', facts('r', 't'), lists)!, /temporary/);
    assert.match(relationVerdict('pg_class', facts('r', 'p', { system: true }), lists)!, /system catalog/);
    assert.match(relationVerdict('t', facts('r', 'p', { rowSecurity: true }), lists)!, /row level security/);
    assert.match(relationVerdict('t', null, lists)!, /not a table/);
    assert.match(relationVerdict('f', facts('f'), lists)!, /another kind/);
  });
  test('views, materialized views and unlogged tables only in the safe list (regexps, qualified or not)', () => {
    assert.match(relationVerdict('v', facts('v'), lists)!, /view/);
    assert.equal(relationVerdict('v_safe', facts('v'), lists), null);
    assert.match(relationVerdict('u_x', facts('r', 'u'), lists)!, /unlogged/);
    assert.equal(relationVerdict('public.u_x', facts('r', 'u'), lists), null);
  });
});

describe('invalidationOf', () => {
  const none = (): undefined => undefined;
  test('reads and transaction control invalidate nothing', () => {
    for (const sql of ['SELECT * FROM t', 'BEGIN', 'COMMIT', 'SET x = 1', 'SHOW x', 'VACUUM t']) {
      assert.equal(invalidationOf(classify(sql), none).kind, 'none', sql);
    }
  });
  test('writes invalidate their tables; DDL too, flagged', () => {
    assert.deepEqual(invalidationOf(classify('UPDATE t SET a = 1'), none), { kind: 'tables', relations: ['t'], ddl: false });
    assert.deepEqual(invalidationOf(classify('TRUNCATE t'), none).kind, 'tables');
    const d = invalidationOf(classify('DROP TABLE t'), none);
    assert.ok(d.kind === 'all' || (d.kind === 'tables' && d.ddl), JSON.stringify(d));
    assert.notEqual(invalidationOf(classify('ALTER TABLE t ADD COLUMN b int'), none).kind, 'none');
  });
  test('fail closed: a function that may write, CALL, DO, ALTER ROLE, REVOKE invalidate everything', () => {
    assert.equal(invalidationOf(classify('SELECT my_func()'), none).kind, 'all');
    assert.equal(invalidationOf(classify('SELECT my_func()'), () => 's').kind, 'none');
    for (const sql of ['CALL p()', "DO 'BEGIN END'", 'ALTER ROLE r SET x = 1', 'REVOKE ALL ON t FROM r']) {
      assert.equal(invalidationOf(classify(sql), none).kind, 'all', sql);
    }
  });
});
