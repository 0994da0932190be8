/**
 * The classifier keeps the lexer's verdicts by shape (the text with its numbers as 0): texts that
 * differ only by numeric literals (pgbench -S, ORMs without bind parameters) are lexed once
 * (issue 17, item 9). The verdict served by shape must be the one the text itself would get.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createClassifier, initClassifier, type ShapeHint } from '../../../src/classify';
import { sameShape, sameShapeFrom, shapeHash, shapePrefixLength } from '../../../src/classify/lexer';
import { CORPUS, CORPUS_OPTIONS } from '../../fixtures/classify/corpus';

before(async () => {
  await initClassifier();
});

/** Both texts have a shape, the same one (hash and comparison agree). */
function same(a: string, b: string): boolean {
  assert.ok(shapeHash(a) >= 0 && shapeHash(b) >= 0, `${a} / ${b} have a shape`);
  const eq = sameShape(a, b);
  assert.equal(sameShape(b, a), eq);
  if (eq) assert.equal(shapeHash(a), shapeHash(b), `${a} / ${b}: same shape, same hash`);
  return eq;
}

test('shapes: numbers of any value and length match; words, exponents and anything else do not; risky texts have none', () => {
  assert.ok(same('SELECT abalance FROM pgbench_accounts WHERE aid = 81234;', 'SELECT abalance FROM pgbench_accounts WHERE aid = 7;'));
  assert.ok(same('SELECT 1.25, 3e10, .5 FROM t1 LIMIT 10', 'SELECT 0.2, 7e10, .55 FROM t1 LIMIT 1'));
  assert.ok(!same('SELECT 1 FROM t1', 'SELECT 1 FROM t2'), 'digits of a word');
  assert.ok(!same('SELECT 3e10', 'SELECT 3e11'), 'digits of an exponent');
  assert.ok(!same('SELECT 1 FROM t', 'SELECT 1 FROM u'));
  assert.ok(!same('SELECT 1 FROM t', 'SELECT 1 FROM t '));
  assert.ok(!same('SELECT 1, 2', 'SELECT 12'));
  assert.ok(!same('SELECT 1', 'SELECT a'));
  for (const risky of ["SELECT '12'", 'SELECT "c1" FROM t', 'SELECT $1', 'SELECT $$1$$', 'SELECT 1 -- 2', 'SELECT /* 3 */ 1', "SELECT E'\\1'", 'SELECT 1 \\g']) {
    assert.equal(shapeHash(risky), -1, risky);
  }
});

test('pgbench -S texts are lexed once, and get the same verdict as a fresh classifier gives', () => {
  const c = createClassifier();
  const first = c.classify('SELECT abalance FROM pgbench_accounts WHERE aid = 1;');
  for (let aid = 2; aid < 200; aid++) {
    const sql = `SELECT abalance FROM pgbench_accounts WHERE aid = ${aid * 7919};`;
    const r = c.classify(sql);
    assert.equal(r, first, 'the same verdict object: served by shape');
    assert.deepEqual(r, createClassifier().classify(sql));
  }
  assert.equal(c.stats().lexerDecided, 1, 'one lexer pass for 199 texts');
  assert.equal(c.stats().hits, 198);
  assert.ok(Object.isFrozen(first) && Object.isFrozen(first.relations), 'shared verdicts are frozen');
});

test('every corpus text served by the shape of another text with other numbers gets its own verdict', () => {
  let served = 0;
  for (const e of CORPUS) {
    if (shapeHash(e.sql) < 0 || !/\d/.test(e.sql)) continue;
    // A text of the same shape, other digits: classified first, so e.sql is served by its shape.
    const other = e.sql.replace(/(^|[^A-Za-z0-9_$\u0080-\uffff])(\d+)/g, (_m, p: string, d: string) => p + String((Number(d.slice(0, 6)) + 3) % 1000));
    if (!sameShape(other, e.sql)) continue;
    const c = createClassifier(CORPUS_OPTIONS);
    c.classify(other);
    const before = c.stats().hits;
    const r = c.classify(e.sql);
    if (c.stats().hits > before) served++;
    assert.deepEqual(r, createClassifier(CORPUS_OPTIONS).classify(e.sql), e.sql);
  }
  assert.ok(served >= 20, `texts served by shape: ${served}`);
});

test('no shape cache for admin commands, nor when primary_routing_query_pattern_list reads the text', () => {
  const c = createClassifier();
  c.classify('PGPOOL SET statement_timeout = 10');
  const r = c.classify('PGPOOL SET statement_timeout = 20');
  assert.equal(r.admin?.args, 'statement_timeout = 20');
  const p = createClassifier({ primaryRoutingPatterns: ['.*aid = 5.*'] });
  assert.equal(p.classify('SELECT abalance FROM pgbench_accounts WHERE aid = 4').readOnly, true);
  assert.equal(p.classify('SELECT abalance FROM pgbench_accounts WHERE aid = 5').readOnly, false);
  assert.equal(p.classify('SELECT abalance FROM pgbench_accounts WHERE aid = 6').readOnly, true);
});

test('classifyLike: a text of the caller\'s last shape is served after one comparison (no hash, no lookup), with the verdict classify() gives', () => {
  const lexer = require('../../../src/classify/lexer') as { shapeHash: (s: string) => number };
  const c = createClassifier();
  const hint = { sql: '', prefix: '', cls: null, by: null } as ShapeHint;
  const first = c.classifyLike!('SELECT abalance FROM pgbench_accounts WHERE aid = 1;', hint);
  assert.equal(hint.cls, first, 'the hint holds the verdict');
  const texts: string[] = [];
  for (let aid = 2; aid < 200; aid++) texts.push(`SELECT abalance FROM pgbench_accounts WHERE aid = ${aid * 7919};`);
  const expected = texts.map((sql) => createClassifier().classify(sql));
  const otherSql = 'SELECT bbalance FROM pgbench_branches WHERE bid = 3;';
  const otherExpected = createClassifier().classify(otherSql);
  const real = lexer.shapeHash;
  let hashed = 0;
  lexer.shapeHash = (s: string): number => {
    hashed++;
    return real(s);
  };
  try {
    texts.forEach((sql, i) => {
      const r = c.classifyLike!(sql, hint);
      assert.equal(r, first);
      assert.deepEqual(r, expected[i]);
    });
    assert.equal(hashed, 0, 'same-shape texts are not hashed');
    // Another shape: the ordinary path, and the hint follows it.
    const other = c.classifyLike!(otherSql, hint);
    assert.equal(hashed, 1);
    assert.equal(hint.cls, other);
    assert.deepEqual(other, otherExpected);
  } finally {
    lexer.shapeHash = real;
  }
  assert.equal(c.stats().lexerDecided, 2);
});

test('classifyLike: no hint from texts without a shape, admin commands, another classifier, or primary routing patterns', () => {
  const c = createClassifier();
  const hint = { sql: '', prefix: '', cls: null, by: null } as ShapeHint;
  c.classifyLike!("SELECT abalance FROM pgbench_accounts WHERE aid = '1';", hint);
  assert.equal(hint.cls, null, 'a quoted literal has no shape');
  c.classifyLike!('SHOW POOL_NODES', hint);
  assert.equal(hint.cls, null, 'admin commands are never served by shape');
  const read = c.classifyLike!('SELECT 1 FROM t WHERE a = 2', hint);
  assert.equal(hint.cls, read);
  // A hint made by another classifier (a reload: other options) is not used.
  const d = createClassifier();
  const hashedBefore = hint.by;
  const r = d.classifyLike!('SELECT 1 FROM t WHERE a = 3', hint);
  assert.notEqual(hashedBefore, hint.by);
  assert.deepEqual(r, createClassifier().classify('SELECT 1 FROM t WHERE a = 3'));
  // Patterns read the whole text: no shapes, no hint.
  const p = createClassifier({ primaryRoutingPatterns: ['.*a = 4.*'] });
  const h2 = { sql: '', prefix: '', cls: null, by: null } as ShapeHint;
  p.classifyLike!('SELECT 1 FROM t WHERE a = 5', h2);
  assert.equal(h2.cls, null);
});

test('sameShapeFrom after a native prefix comparison answers what sameShape answers', () => {
  const texts: string[] = [];
  for (const e of CORPUS) if (shapeHash(e.sql) >= 0) texts.push(e.sql);
  texts.push('SELECT abalance FROM pgbench_accounts WHERE aid = 81234;', 'SELECT abalance FROM pgbench_accounts WHERE aid = 7;',
    'SELECT abalance FROM pgbench_accounts WHERE aid = 7', 'SELECT 1 FROM t1', 'SELECT 1 FROM t2', 'SELECT 12', 'SELECT 1, 2', 'SELECT', '', 'x1', 'x', '1', '12');
  const variants = texts.flatMap((t) => [t, t.replace(/\d/g, (d) => String((Number(d) + 3) % 10)), t.replace(/(\d+)/, '$1$1'), t.slice(0, -1)]);
  let checked = 0;
  for (const a of variants) {
    if (shapeHash(a) < 0) continue;
    const k = shapePrefixLength(a);
    const prefix = a.slice(0, k);
    for (const b of variants.slice(0, 400)) {
      if (shapeHash(b) < 0) continue;
      assert.equal(b.startsWith(prefix) && sameShapeFrom(a, b, k), sameShape(a, b), `${a} / ${b}`);
      checked++;
    }
  }
  assert.ok(checked > 1000, `${checked} pairs`);
});

test('classifyLike: a caller\'s first text of a shape another caller met is served by that shape (no hash, no lookup, no prefix made)', () => {
  const lexer = require('../../../src/classify/lexer') as { shapeHash: (s: string) => number; shapePrefixLength: (s: string) => number };
  const c = createClassifier();
  const first = c.classifyLike!('SELECT abalance FROM pgbench_accounts WHERE aid = 1;', { sql: '', prefix: '', cls: null, by: null } as ShapeHint);
  const otherExpected = createClassifier().classify('SELECT bbalance FROM pgbench_branches WHERE bid = 4;');
  const real = lexer.shapeHash;
  const realPrefix = lexer.shapePrefixLength;
  let hashed = 0;
  lexer.shapeHash = (s: string): number => { hashed++; return real(s); };
  lexer.shapePrefixLength = (s: string): number => { hashed++; return realPrefix(s); };
  try {
    // A connection per request: each session's hint is new, and its one text has the last shape.
    for (let aid = 2; aid < 50; aid++) {
      const hint = { sql: '', prefix: '', cls: null, by: null } as ShapeHint;
      const sql = `SELECT abalance FROM pgbench_accounts WHERE aid = ${aid * 7919};`;
      assert.equal(c.classifyLike!(sql, hint), first);
      assert.equal(hint.cls, first, 'the session\'s hint takes the shape');
      assert.equal(hint.by, c);
      assert.ok(sql.startsWith(hint.prefix) && hint.prefix.length > 0);
    }
    assert.equal(hashed, 0, 'no hash and no prefix computed for a new session\'s text of a known shape');
    // Another shape: the ordinary path; the next new session is served by it.
    const other = c.classifyLike!('SELECT bbalance FROM pgbench_branches WHERE bid = 3;', { sql: '', prefix: '', cls: null, by: null } as ShapeHint);
    assert.equal(hashed, 2);
    assert.deepEqual(other, otherExpected);
    assert.equal(c.classifyLike!('SELECT bbalance FROM pgbench_branches WHERE bid = 4;', { sql: '', prefix: '', cls: null, by: null } as ShapeHint), other);
    assert.equal(hashed, 2);
    // A session with a shape of its own is served by it, whatever the others met last.
    const own = { sql: '', prefix: '', cls: null, by: null } as ShapeHint;
    assert.equal(c.classifyLike!('SELECT abalance FROM pgbench_accounts WHERE aid = 7;', own), first);
    assert.equal(hashed, 4, 'the last shape met is pgbench_branches\': this one is hashed (and its prefix found)');
    c.classifyLike!('SELECT bbalance FROM pgbench_branches WHERE bid = 5;', { sql: '', prefix: '', cls: null, by: null } as ShapeHint);
    assert.equal(hashed, 6, 'the last shape met was pgbench_accounts\': this one is hashed (and its prefix found)');
    assert.equal(c.classifyLike!('SELECT abalance FROM pgbench_accounts WHERE aid = 8;', own), first);
    assert.equal(hashed, 6, 'served by its own hint');
  } finally {
    lexer.shapeHash = real;
    lexer.shapePrefixLength = realPrefix;
  }
  // Another classifier (a reload) never serves from this one's shapes.
  const d = createClassifier({ primaryRoutingPatterns: ['.*aid = 5.*'] });
  assert.equal(d.classifyLike!('SELECT abalance FROM pgbench_accounts WHERE aid = 5;', { sql: '', prefix: '', cls: null, by: null } as ShapeHint).readOnly, false);
});

test('shapeHash is a small integer (30 bits) for every text that has a shape', () => {
  for (const e of CORPUS) {
    const h = shapeHash(e.sql);
    assert.ok(h === -1 || (Number.isInteger(h) && h >= 0 && h < 2 ** 30), `${e.sql}: ${h}`);
  }
  let big = 0;
  for (let i = 0; i < 2000; i++) {
    const h = shapeHash(`SELECT c${i} FROM t${i} WHERE x = 1`);
    assert.ok(h >= 0 && h < 2 ** 30);
    if (h >= 2 ** 29) big++;
  }
  assert.ok(big > 500, 'the hash still spreads over its range');
});
