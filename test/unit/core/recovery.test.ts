/** recovery.ts: what a session does after losing a backend connection. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { lossVerdict } from '../../../src/core/recovery';

const read = { retry: {}, started: false };
const started = { retry: {}, started: true };
const write = { retry: null, started: false };
const base = { unsynced: false, isPrimary: false, holdsSession: false, code: '' };

describe('lossVerdict', () => {
  test('reads not yet answered are re-run elsewhere', () => {
    assert.deepEqual(lossVerdict({ ...base, owed: [read, read] }), { verdict: 'go on', retry: true });
  });
  test('an answer begun, a write, or an open extended sequence ends the session', () => {
    assert.equal(lossVerdict({ ...base, owed: [read, started] }).verdict, 'end');
    assert.equal(lossVerdict({ ...base, owed: [write] }).verdict, 'end');
    assert.equal(lossVerdict({ ...base, owed: [read], unsynced: true }).verdict, 'end');
  });
  test('the primary lost inside a transaction or with session state ends the session', () => {
    assert.equal(lossVerdict({ ...base, owed: [], isPrimary: true, holdsSession: true }).verdict, 'end');
    assert.equal(lossVerdict({ ...base, owed: [], isPrimary: false, holdsSession: true }).verdict, 'go on');
  });
  test('57P01 on an idle primary connection: ask whether the node is shutting down', () => {
    assert.equal(lossVerdict({ ...base, owed: [], isPrimary: true, code: '57P01' }).verdict, 'ask');
    assert.equal(lossVerdict({ ...base, owed: [], isPrimary: false, code: '57P01' }).verdict, 'go on');
  });
});
