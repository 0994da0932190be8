/**
 * Pure failover policies: pgpool's main node, detach_false_primary's judgement, auto_failback
 * candidates, walreceiver upstream matching; and LSN arithmetic of the replication checker.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { autoFailbackCandidates, judgePrimaries, mainNodeId, upstreamIs, type PolicyNode } from '../../../src/failover/policy';
import { formatLsn, parseLsn } from '../../../src/health/replication-checker';

const node = (id: number, status: PolicyNode['status'] = 'up', app = `s${id}`): PolicyNode =>
  ({ id, host: '127.0.0.1', port: 5000 + id, status, flags: [], applicationName: app });

test('main node: smallest live id', () => {
  assert.equal(mainNodeId([node(0, 'down'), node(1), node(2)]), 1);
  assert.equal(mainNodeId([node(0, 'waiting'), node(1)]), 0);
  assert.equal(mainNodeId([node(0, 'down'), node(1, 'quarantine')]), -1);
});

test('false primary: the primary every standby streams from is the true one', () => {
  const nodes = [node(0), node(1), node(2)];
  const v = judgePrimaries([
    { id: 0, inRecovery: false, upstream: null },
    { id: 1, inRecovery: true, upstream: { host: 'localhost', port: 5000 } },
    { id: 2, inRecovery: false, upstream: null },
  ], nodes);
  assert.deepEqual(v, { truePrimary: 0, falsePrimaries: [2] });
});

test('false primary: without standbys the smallest id is kept', () => {
  const v = judgePrimaries([{ id: 2, inRecovery: false, upstream: null }, { id: 1, inRecovery: false, upstream: null }], [node(1), node(2)]);
  assert.deepEqual(v, { truePrimary: 1, falsePrimaries: [2] });
});

test('false primary: nothing decided when no primary has every standby', () => {
  const nodes = [node(0), node(1), node(2), node(3)];
  const v = judgePrimaries([
    { id: 0, inRecovery: false, upstream: null },
    { id: 1, inRecovery: false, upstream: null },
    { id: 2, inRecovery: true, upstream: { host: '127.0.0.1', port: 5000 } },
    { id: 3, inRecovery: true, upstream: { host: '127.0.0.1', port: 5001 } },
  ], nodes);
  assert.deepEqual(v, { truePrimary: -1, falsePrimaries: [] });
  assert.deepEqual(judgePrimaries([{ id: 0, inRecovery: false, upstream: null }], nodes), { truePrimary: 0, falsePrimaries: [] });
});

test('upstream matching: same port, loopback spellings and socket dirs are equal', () => {
  const n = { host: '127.0.0.1', port: 5432 };
  assert.ok(upstreamIs({ host: 'localhost', port: 5432 }, n));
  assert.ok(upstreamIs({ host: '/tmp', port: 5432 }, n));
  assert.ok(!upstreamIs({ host: '127.0.0.1', port: 5433 }, n));
  assert.ok(!upstreamIs({ host: '10.0.0.1', port: 5432 }, n));
});

test('auto_failback: down + streaming + interval elapsed', () => {
  const nodes = [node(0), node(1, 'down'), node(2, 'down'), node(3, 'down', '')];
  const streaming = [{ applicationName: 's1', state: 'streaming' }, { applicationName: 's2', state: 'catchup' }, { applicationName: '', state: 'streaming' }];
  assert.deepEqual(autoFailbackCandidates(nodes, streaming, new Map(), 10_000, 60_000), [1]);
  assert.deepEqual(autoFailbackCandidates(nodes, streaming, new Map([[1, 5_000]]), 10_000, 60_000), []);
  assert.deepEqual(autoFailbackCandidates(nodes, streaming, new Map([[1, 5_000]]), 70_000, 60_000), [1]);
});

test('LSN parse/format and byte difference', () => {
  assert.equal(parseLsn('0/0'), 0n);
  assert.equal(parseLsn('16/B374D848'), (0x16n << 32n) | 0xb374d848n);
  assert.equal(formatLsn(parseLsn('16/B374D848')!), '16/B374D848');
  assert.equal(parseLsn('1/0')! - parseLsn('0/FFFFFFFF')!, 1n);
  assert.equal(parseLsn(null), null);
  assert.equal(parseLsn('nonsense'), null);
});
