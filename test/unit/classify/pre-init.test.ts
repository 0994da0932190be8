/**
 * Before initClassifier(): the lexer alone decides, and everything it is not certain about
 * fails closed. (This file runs in its own process, so the WASM grammar is never loaded here.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClassifier } from '../../../src/classify';
import { CORPUS, CORPUS_OPTIONS } from '../../fixtures/classify/corpus';

test('before init: never read-only unless the corpus says so; certain reads still balance', () => {
  const c = createClassifier(CORPUS_OPTIONS);
  let reads = 0;
  for (const e of CORPUS) {
    const r = c.classify(e.sql);
    if (r.readOnly) {
      assert.equal(e.readOnly, true, e.sql);
      reads++;
    }
    assert.notEqual(r.flags.parsedBy, 'parser');
  }
  assert.ok(reads > 100, `only ${reads} reads decided by the lexer`);
  assert.equal(c.classify('WITH x AS (SELECT 1) SELECT * FROM x').readOnly, false);
  assert.equal(c.classify('SELECT f(1)').readOnly, false);
  assert.equal(c.classify('SELECT abalance FROM pgbench_accounts WHERE aid = $1').readOnly, true);
  assert.ok(c.stats().failedClosed > 0);
});
