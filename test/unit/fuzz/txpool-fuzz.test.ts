/**
 * The pure parts of the differential transaction-pooling fuzzer (test/fuzz/txpool/): a seed always
 * gives the same scenario, excluded classes and features stay out, names are bound per side and
 * normalised back, and known divergences match on the first differing message only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateScenario, describeStep, type Scenario } from '../../fuzz/txpool/grammar';
import { bindNames, normalise } from '../../fuzz/txpool/runner';
import { firstDifference, knownAs, parseClasses, type Divergence } from '../../fuzz/txpool/differential';
import { encodeErrorResponse, encodeNotification, encodeReadyForQuery } from '../../../src/protocol/backend';

const opts = { clients: 6, generations: 3, steps: 12 };
const steps = (s: Scenario): string[] => s.slots.flatMap((x) => x.generations.flatMap((g) => g.steps.map(describeStep)));

test('a seed always gives the same scenario; another seed another one', () => {
  assert.deepEqual(generateScenario(42, opts), generateScenario(42, opts));
  assert.notDeepEqual(steps(generateScenario(42, opts)), steps(generateScenario(43, opts)));
  const s = generateScenario(42, opts);
  assert.ok(s.poolSize >= 1 && s.poolSize <= 3);
});

test('excluded classes never appear; without "redefine" every named Parse follows a Close of that name', () => {
  const exclude = parseClasses('cancel,copy,redefine');
  for (let seed = 1; seed < 40; seed++) {
    const s = generateScenario(seed, { ...opts, exclude });
    for (const slot of s.slots) for (const g of slot.generations) for (const st of g.steps) {
      assert.ok(!exclude.has(st.cls), `seed ${seed}: ${st.cls} excluded`);
      st.msgs.forEach((m, i) => {
        if (m.k !== 'P' || m.name === '' || st.cls === 'error' || st.mode !== 'normal') return;
        const prev = st.msgs[i - 1];
        assert.ok(prev?.k === 'C' && prev.kind === 'S' && prev.name === m.name, `seed ${seed}: ${describeStep(st)}`);
      });
    }
  }
  assert.throws(() => parseClasses('nope'), /unknown fuzz step class 'nope'/);
});

test('names are bound per side and slot, and normalised back to one text', () => {
  const d = bindNames('INSERT INTO {t} VALUES (1); LISTEN {ch}; SELECT pg_advisory_lock({k}), pg_advisory_lock({k2})', 'd', 3);
  const p = bindNames('INSERT INTO {t} VALUES (1); LISTEN {ch}; SELECT pg_advisory_lock({k}), pg_advisory_lock({k2})', 'p', 3);
  assert.equal(d, 'INSERT INTO fzd3_t VALUES (1); LISTEN fzd3_ch; SELECT pg_advisory_lock(100006), pg_advisory_lock(100007)');
  assert.equal(p, 'INSERT INTO fzp3_t VALUES (1); LISTEN fzp3_ch; SELECT pg_advisory_lock(200006), pg_advisory_lock(200007)');
  const msg = (frame: Buffer): string => normalise({ type: String.fromCharCode(frame[0]!), frame });
  assert.equal(msg(encodeNotification(1234, 'fzp3_ch', 'hi')), msg(encodeNotification(99, 'fzd3_ch', 'hi')));
  assert.equal(msg(encodeErrorResponse({ severity: 'ERROR', code: '26000', message: 'prepared statement "pgm_abc" does not exist' })),
    'E ERROR 26000 prepared statement "<name>" does not exist');
  assert.equal(msg(encodeReadyForQuery('E')), 'Z E');
});

test('a known divergence matches on the first differing message of each side', () => {
  const d: Divergence = { slot: 0, generation: 0, step: 1, sequence: [], expected: ['1', 'E ERROR 42P05 x', 'Z I'], got: ['1', '1', 'Z I'] };
  assert.deepEqual(firstDifference(d), { expected: 'E ERROR 42P05 x', got: '1' });
  assert.equal(knownAs(d, [{ finding: 'F13', expected: /^E ERROR 42P05 /, got: /./ }])?.finding, 'F13');
  assert.equal(knownAs(d, [{ finding: 'F10', expected: /^Z E$/, got: /^Z T$/ }]), undefined);
});
