/**
 * The corpus against (1) the expected values, (2) an independent parse-tree oracle, and
 * (3) fuzzed variants: classify() must never call read-only what the oracle calls a write.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createClassifier, initClassifier } from '../../../src/classify';
import { CORPUS, CORPUS_OPTIONS } from '../../fixtures/classify/corpus';
import { loadOracle, oracle } from './oracle';

before(async () => {
  await initClassifier();
  await loadOracle();
});

test('corpus has at least 300 statements', () => {
  assert.ok(CORPUS.length >= 300, `corpus size ${CORPUS.length}`);
});

test('every expected readOnly agrees with the independent oracle', () => {
  for (const e of CORPUS) {
    const o = oracle(e.sql);
    if (e.invalid) {
      assert.equal(o, 'invalid', `expected the grammar to reject: ${e.sql}`);
      assert.equal(e.readOnly, false, e.sql);
      continue;
    }
    assert.notEqual(o, 'invalid', `grammar rejects corpus entry: ${e.sql}`);
    if (e.readOnly) assert.equal(o, true, `expected read-only but the oracle says write: ${e.sql}`);
    else if (o === true) assert.ok(e.primaryBy, `oracle says read-only; explain with primaryBy: ${e.sql}`);
  }
});

test('classify() gives the expected kind and readOnly for every entry', () => {
  const c = createClassifier(CORPUS_OPTIONS);
  const failures: string[] = [];
  for (const e of CORPUS) {
    const r = c.classify(e.sql);
    if (r.kind !== e.kind || r.readOnly !== e.readOnly) {
      failures.push(`${JSON.stringify(e.sql)}: got ${r.kind}/${r.readOnly} (${r.flags.parsedBy}), want ${e.kind}/${e.readOnly}`);
    }
  }
  assert.deepEqual(failures, []);
});

test('classify() agrees when served from the cache', () => {
  const c = createClassifier(CORPUS_OPTIONS);
  for (const e of CORPUS) c.classify(e.sql);
  for (const e of CORPUS) {
    const r = c.classify(e.sql);
    assert.equal(r.readOnly, e.readOnly, e.sql);
    assert.equal(r.kind, e.kind, e.sql);
  }
  assert.ok(c.stats().hits > 0);
});

/** Deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FILLERS = [' /* c */ ', '\n', ' -- note\n', '\t', ' /* a /* nested */ b */ ', '  '];

/** Random case flips, comments or white space at existing white space, leading junk, trailing ';'. */
function variant(sql: string, rand: () => number): string {
  let out = '';
  for (const ch of sql) {
    if (/\s/.test(ch) && rand() < 0.3) out += FILLERS[Math.floor(rand() * FILLERS.length)];
    else if (/[a-z]/i.test(ch) && rand() < 0.3) out += rand() < 0.5 ? ch.toUpperCase() : ch.toLowerCase();
    else out += ch;
  }
  const r = rand();
  if (r < 0.15) out = '/* lead */ ' + out;
  else if (r < 0.3) out = '\n  ' + out;
  else if (r < 0.4) out = '-- lead\n' + out;
  if (rand() < 0.3) out += ';';
  return out;
}

function fuzz(label: string, classifier: ReturnType<typeof createClassifier>): void {
  const rand = rng(20240611);
  let checked = 0;
  const bad: string[] = [];
  for (const e of CORPUS) {
    const variants = [e.sql];
    for (let i = 0; i < 25; i++) variants.push(variant(e.sql, rand));
    for (const v of variants) {
      const o = oracle(v);
      if (o === 'invalid') continue;
      checked++;
      if (classifier.classify(v).readOnly && o !== true) bad.push(v);
    }
  }
  assert.deepEqual(bad, [], `${label}: read-only where the oracle says write`);
  assert.ok(checked > 5000, `${label}: only ${checked} valid variants`);
}

test('fuzzed variants: never read-only where the oracle says write (parser available)', () => {
  fuzz('parser', createClassifier({ allowSqlComments: true }));
});

test('fuzzed variants: never read-only where the oracle says write (lexer only)', () => {
  fuzz('lexer-only', createClassifier({ allowSqlComments: true, maxParseLength: 0 }));
});

test('fuzzed variants keep their verdict when the parser is available', () => {
  // A read in the corpus stays a read under case changes and inserted comments/white space.
  const c = createClassifier({ allowSqlComments: true });
  const rand = rng(7);
  for (const e of CORPUS) {
    if (e.invalid || e.primaryBy === 'NO LOAD BALANCE comment') continue;
    for (let i = 0; i < 5; i++) {
      const v = variant(e.sql, rand);
      if (oracle(v) === 'invalid') continue;
      const r = c.classify(v);
      assert.equal(r.readOnly, e.readOnly, `${JSON.stringify(v)} (from ${JSON.stringify(e.sql)})`);
    }
  }
});
