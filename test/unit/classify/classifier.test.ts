/** Options, cache, admin commands, flags, long statements. */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { classify, classifierStats, createClassifier, initClassifier } from '../../../src/classify';

before(() => initClassifier());

test('write_function_list: regex on whole name, case-insensitive, qualified or bare', () => {
  const c = createClassifier({ writeFunctions: ['my_.*', 'audit\\.log_it'] });
  assert.equal(c.classify('SELECT my_writer(1)').readOnly, false);
  assert.equal(c.classify('SELECT app.my_writer(1)').readOnly, false);
  assert.equal(c.classify('SELECT audit.log_it()').readOnly, false);
  assert.equal(c.classify('SELECT xmy_writer(1)').readOnly, true); // anchored: ^(?:my_.*)$
  assert.equal(c.classify('SELECT other(1)').flags.needsVolatilityCheck, undefined);
  assert.match(c.classify('SELECT my_writer(1)').flags.primaryReason ?? '', /write_function_list/);
});

test('read_only_function_list: anything not listed goes to the primary', () => {
  const c = createClassifier({ readOnlyFunctions: ['safe_.*'] });
  assert.equal(c.classify('SELECT safe_one(1)').readOnly, true);
  assert.equal(c.classify('SELECT other(1)').readOnly, false);
  assert.equal(c.classify('SELECT count(*) FROM t').readOnly, true); // built-in allowlist
  assert.equal(c.classify("SELECT nextval('s')").readOnly, false); // built-in writers always
});

test('no function lists: unknown functions need a volatility check', () => {
  const r = createClassifier().classify('SELECT f(1), count(*) FROM t');
  assert.equal(r.readOnly, true);
  assert.equal(r.flags.needsVolatilityCheck, true);
  assert.deepEqual([...r.functions].sort(), ['count', 'f']);
  assert.equal(createClassifier().classify('SELECT count(*) FROM t').flags.needsVolatilityCheck, undefined);
});

test('primary_routing_query_pattern_list matches the whole query', () => {
  const c = createClassifier({ primaryRoutingPatterns: ['select .* from accounts.*', 'SELECT 42'] });
  assert.equal(c.classify('SELECT * FROM accounts WHERE id = 1').readOnly, false);
  assert.equal(c.classify('SELECT 42;').readOnly, false);
  assert.equal(c.classify('SELECT 421').readOnly, true);
  assert.equal(c.classify('SELECT * FROM users').readOnly, true);
  assert.throws(() => createClassifier({ primaryRoutingPatterns: ['(' ] }), /invalid regular expression/);
});

test('POSIX bracket classes are translated', () => {
  const c = createClassifier({ writeFunctions: ['w[[:digit:]]+'] });
  assert.equal(c.classify('SELECT w12()').readOnly, false);
  assert.equal(c.classify('SELECT wx()').readOnly, true);
});

test('allow_sql_comments (default off) and NO LOAD BALANCE', () => {
  const off = createClassifier();
  const on = createClassifier({ allowSqlComments: true });
  assert.equal(off.classify('/* app */ SELECT 1').readOnly, false);
  assert.equal(off.classify('-- app\nSELECT 1').readOnly, false);
  assert.equal(off.classify('SELECT 1 /* trailing comments are fine */').readOnly, true);
  assert.equal(on.classify('/* app */ SELECT 1').readOnly, true);
  assert.equal(on.classify('/*NO LOAD BALANCE*/ SELECT 1').readOnly, false);
  assert.equal(on.classify('/* no load balance */ SELECT 1').flags.primaryReason, 'NO LOAD BALANCE comment');
});

test('ignore_leading_white_space (default on)', () => {
  assert.equal(createClassifier().classify('  SELECT 1').readOnly, true);
  assert.equal(createClassifier({ ignoreLeadingWhiteSpace: false }).classify('  SELECT 1').readOnly, false);
  assert.equal(createClassifier({ ignoreLeadingWhiteSpace: false }).classify('SELECT 1').readOnly, true);
});

test('standard_conforming_strings off: backslashes in literals fail closed', () => {
  const sql = "SELECT 'a\\', 'b' FROM t";
  assert.equal(createClassifier().classify(sql).readOnly, true);
  assert.equal(createClassifier({ standardConformingStrings: false }).classify(sql).readOnly, false);
});

test('cache: hits on the parser path, stats, frozen results', () => {
  const c = createClassifier({ cacheSize: 2 });
  const sql = 'WITH x AS (SELECT 1) SELECT * FROM x';
  const a = c.classify(sql);
  assert.equal(a.flags.parsedBy, 'parser');
  const b = c.classify(sql);
  assert.equal(b, a);
  assert.equal(c.stats().hits, 1);
  assert.equal(c.stats().misses, 1);
  assert.ok(Object.isFrozen(b) && Object.isFrozen(b.flags));
  c.classify('WITH y AS (SELECT 2) SELECT * FROM y');
  c.classify('WITH z AS (SELECT 3) SELECT * FROM z');
  assert.equal(c.stats().size, 2); // LRU bound
  c.classify(sql);
  assert.equal(c.stats().hits, 1); // evicted
  assert.equal(c.classify('SELECT 1').flags.parsedBy, 'lexer'); // fast path bypasses the cache
});

test('key length cap: long statements are never parsed nor cached', () => {
  const c = createClassifier({ maxParseLength: 64 });
  const long = 'WITH x AS (SELECT 1) SELECT * FROM x WHERE ' + 'a = 1 AND '.repeat(20) + 'true';
  const r = c.classify(long);
  assert.equal(r.readOnly, false);
  assert.equal(r.flags.parsedBy, 'lexer');
  assert.equal(c.stats().size, 0);
  assert.equal(c.stats().failedClosed, 1);
  // but the lexer is still certain about plain statements
  assert.equal(c.classify('SELECT a FROM t WHERE ' + 'a = 1 AND '.repeat(20) + 'true').readOnly, true);
});

test('200 KB statements are classified by the lexer alone and fail closed when uncertain', () => {
  const c = createClassifier();
  const big = 'SELECT f(' + Array.from({ length: 20000 }, (_, i) => String(i)).join(',') + ') FROM t';
  assert.ok(big.length > 100_000);
  const r = c.classify(big);
  assert.equal(r.readOnly, false);
  // The point is that the parser never runs on it (libpg-query on 200 KB takes seconds): the
  // lexer decides alone. Its speed is measured in bench/, not timed here (a loaded machine took 1 s).
  assert.equal(r.flags.parsedBy, 'lexer');
  const plain = 'SELECT a FROM t WHERE a IN (' + Array.from({ length: 30000 }, (_, i) => String(i)).join(',') + ')';
  assert.equal(c.classify(plain).readOnly, true);
  const write = 'INSERT INTO t VALUES ' + Array.from({ length: 20000 }, (_, i) => `(${i})`).join(',');
  const w = c.classify(write);
  assert.equal(w.kind, 'write');
  assert.equal(w.readOnly, false);
});

test('admin commands', () => {
  const c = createClassifier();
  assert.deepEqual(c.classify('show pool_nodes;').admin, { command: 'SHOW POOL_NODES', args: '' });
  assert.deepEqual(c.classify('SHOW POOL_HEALTH_CHECK_STATS').admin, { command: 'SHOW POOL_HEALTH_CHECK_STATS', args: '' });
  assert.deepEqual(c.classify('PGPOOL SET client_idle_limit = 350;').admin, { command: 'PGPOOL SET', args: 'client_idle_limit = 350' });
  assert.deepEqual(c.classify('pgpool show ALL').admin, { command: 'PGPOOL SHOW', args: 'ALL' });
  assert.deepEqual(c.classify('PGPOOL RESET client_idle_limit').admin, { command: 'PGPOOL RESET', args: 'client_idle_limit' });
  assert.equal(c.classify('SHOW search_path').admin, undefined);
  assert.equal(c.classify('SHOW pool_nodes').kind, 'admin');
  assert.equal(c.classify('SHOW pool_nodes').readOnly, false);
});

test('flags and names', () => {
  const c = createClassifier();
  const b = c.classify('BEGIN ISOLATION LEVEL SERIALIZABLE READ WRITE');
  assert.equal(b.flags.isolationSerializable, true);
  assert.equal(b.flags.readWrite, true);
  assert.equal(c.classify('START TRANSACTION READ ONLY').flags.readOnlyTx, true);
  assert.equal(c.classify('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE').flags.isolationSerializable, true);
  const t = c.classify('CREATE TEMP TABLE tmp1 (a int)');
  assert.equal(t.flags.createsTemp, true);
  assert.deepEqual(t.relations, ['tmp1']);
  const si = c.classify('SELECT * INTO TEMP tmp2 FROM src');
  assert.equal(si.flags.createsTemp, true);
  assert.ok(si.relations.includes('tmp2'));
  assert.equal(c.classify('WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x').flags.writableCte, true);
  assert.equal(c.classify('SELECT * FROM t FOR UPDATE').flags.forUpdate, true);
  assert.deepEqual(c.classify('UPDATE app.accounts SET a = 1').relations, ['app.accounts']);
  assert.deepEqual([...c.classify('SELECT * FROM a JOIN s.b ON true, c WHERE x IN (SELECT y FROM d)').relations].sort(), ['a', 'c', 'd', 's.b']);
  const m = c.classify('SELECT 1; INSERT INTO t VALUES (1); ');
  assert.equal(m.statements, 2);
  assert.equal(m.kind, 'read');
  assert.equal(m.readOnly, false);
  assert.equal(c.classify('').kind, 'empty');
  assert.equal(c.classify('CREATE TABLE t (a int) ; ').statements, 1);
  const e = c.classify('SELEC 1');
  assert.equal(e.kind, 'unknown');
  assert.ok(e.flags.parseError);
  assert.deepEqual(c.classify("SELECT pg_catalog.nextval('s')").functions, ['pg_catalog.nextval']);
});

test('module-level classify() and stats', () => {
  assert.equal(classify('SELECT 1').readOnly, true);
  const opts = { writeFunctions: ['f'] };
  assert.equal(classify('SELECT f()', opts).readOnly, false);
  assert.equal(classify('SELECT f()', opts).readOnly, false);
  assert.ok(classifierStats().lexerDecided >= 1);
});
