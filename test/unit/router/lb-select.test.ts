/** load_balance_algorithm, BACKUP standbys and the read port's choice, over plain candidate records. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  newLbState, pickByAlgorithm, selectLoadBalanceNode, selectReadPortNode, type LbCandidate, type LbPreferences,
} from '../../../src/router/lb-select';

const node = (id: number, extra: Partial<LbCandidate> = {}): LbCandidate => ({
  id, weight: 1, usable: true, isPrimary: id === 0, lagging: false, delay: 0, ...extra,
});
const who = { applicationName: '', user: 'u', database: 'd' };
const prefs = (algorithm: LbPreferences['algorithm']): LbPreferences => ({ appName: [], user: [], database: [], preferLowerDelayStandby: false, algorithm, state: newLbState() });
const tally = (picks: number[]): Record<number, number> => picks.reduce<Record<number, number>>((m, p) => ({ ...m, [p]: (m[p] ?? 0) + 1 }), {});

test('round_robin is smooth and weighted: exactly weight picks per cycle, never twice in a row with 1:1', () => {
  const st = newLbState();
  const cands = [node(1, { weight: 1 }), node(2, { weight: 3 })];
  const picks = Array.from({ length: 8 }, () => pickByAlgorithm(cands, 'round_robin', st, Math.random));
  assert.deepEqual(tally(picks), { 1: 2, 2: 6 });
  assert.ok(picks.slice(0, 4).includes(1), `node 1 gets its turn within one cycle: ${picks}`);
  const st2 = newLbState();
  const even = Array.from({ length: 6 }, () => pickByAlgorithm([node(1), node(2)], 'round_robin', st2, Math.random));
  for (let i = 1; i < even.length; i++) assert.notEqual(even[i], even[i - 1]);
});

test('least_connections: fewest active per unit of weight, ties in turn', () => {
  const st = newLbState();
  assert.equal(pickByAlgorithm([node(1, { active: 3 }), node(2, { active: 1 })], 'least_connections', st, Math.random), 2);
  // weight as ratio: 4 sessions on weight 4 (1 each) beat 2 on weight 1.
  assert.equal(pickByAlgorithm([node(1, { active: 2, weight: 1 }), node(2, { active: 4, weight: 4 })], 'least_connections', st, Math.random), 2);
  const ties = [0, 1, 2, 3].map(() => pickByAlgorithm([node(1, { active: 0 }), node(2, { active: 0 })], 'least_connections', st, Math.random));
  assert.deepEqual(tally(ties), { 1: 2, 2: 2 });
});

test('least_latency: lowest recent latency; an unmeasured node is tried first', () => {
  const st = newLbState();
  assert.equal(pickByAlgorithm([node(1, { latency: 0.02 }), node(2, { latency: 0.001 })], 'least_latency', st, Math.random), 2);
  assert.equal(pickByAlgorithm([node(1, { latency: 0.002 }), node(2, { latency: undefined })], 'least_latency', st, Math.random), 2);
});

test('weighted stays pgpool\'s weighted random', () => {
  let r = 0;
  const seq = [0.1, 0.6, 0.9];
  const picks = seq.map(() => pickByAlgorithm([node(1, { weight: 1 }), node(2, { weight: 3 })], 'weighted', newLbState(), () => seq[r++]!));
  assert.deepEqual(picks, [1, 2, 2]);
});

test('BACKUP standbys take reads only when every other standby is down (smart endpoint)', () => {
  const nodes = [node(0, { weight: 0 }), node(1), node(2, { backup: true })];
  const p = prefs('round_robin');
  const picks = [0, 1, 2, 3].map(() => selectLoadBalanceNode(nodes, who, p, 0));
  assert.deepEqual(picks, [1, 1, 1, 1]);
  const down = [node(0, { weight: 0 }), node(1, { usable: false }), node(2, { backup: true })];
  assert.equal(selectLoadBalanceNode(down, who, p, 0), 2);
});

test('read port: standbys by algorithm, backups after them, the primary as a configurable fallback', () => {
  const st = newLbState();
  const nodes = [node(0), node(1), node(2, { backup: true })];
  assert.deepEqual([0, 1, 2].map(() => selectReadPortNode(nodes, 'round_robin', st, true)), [1, 1, 1]);
  const oneDown = [node(0), node(1, { usable: false }), node(2, { backup: true })];
  assert.equal(selectReadPortNode(oneDown, 'round_robin', st, true), 2);
  const allDown = [node(0), node(1, { usable: false }), node(2, { usable: false })];
  assert.equal(selectReadPortNode(allDown, 'round_robin', st, true), 0);
  assert.equal(selectReadPortNode(allDown, 'round_robin', st, false), -1);
  // A lagging standby is avoided while the primary can take the connection.
  const lagging = [node(0), node(1, { lagging: true })];
  assert.equal(selectReadPortNode(lagging, 'weighted', st, true), 0);
  assert.equal(selectReadPortNode(lagging, 'weighted', st, false), 1);
});
