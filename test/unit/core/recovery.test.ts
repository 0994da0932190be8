/** recovery.ts: what a session does after losing a backend connection (the policy, and the session's side of it). */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectionLost, lossVerdict, retryable } from '../../../src/core/recovery';
import { makeCore } from './core-harness';
import { cstr, msg } from '../../fixtures/bytes';
import { ExpectKind, Link, Term } from '../../../src/core/link';
import { newRequest } from '../../../src/core/request';
import type { Plan } from '../../../src/core/planner';

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

describe('connectionLost', () => {
  const Q = (sql: string): Buffer => msg('Q', cstr(sql));
  test('a read not answered yet runs again on another node; the lost connection is closed, not given back', async () => {
    const f = await makeCore();
    f.send(Q('SELECT 1'));
    await f.settle();
    const first = [1, 2].find((n) => (f.conns.get(n)?.written.length ?? 0) > 0)!;
    assert.ok(first !== undefined, 'the read went to a standby');
    connectionLost(f.core, first, 'test: gone');
    assert.deepEqual(f.host.closed, [{ node: first, reusable: false, why: 'test: gone', reset: false }]);
    await f.settle();
    const other = [0, 1, 2].filter((n) => n !== first).find((n) => f.conns.get(n)?.written.some((b) => b.includes('SELECT 1')) === true);
    assert.ok(other !== undefined, 'the read was sent again elsewhere');
    assert.equal(f.host.ended, null);
    assert.equal(f.core.link(first)?.conn, null);
  });
  test('a write in flight on the primary: the session ends with FATAL 08006', async () => {
    const f = await makeCore();
    f.send(Q('INSERT INTO t VALUES (1)'));
    assert.ok((f.conns.get(0)?.written.length ?? 0) > 0);
    connectionLost(f.core, 0, 'test: gone');
    assert.match(f.received().toString('latin1'), /^E[^]*SFATAL\0[^]*C08006\0/);
    assert.match(f.host.ended ?? '', /backend node 0 lost/);
  });
  test('a connection the session no longer has: nothing happens', async () => {
    const f = await makeCore();
    connectionLost(f.core, 2, 'test');
    assert.deepEqual(f.host.closed, []);
    assert.equal(f.host.ended, null);
  });
});

describe('retryable', () => {
  const plan = (statements: number[]): Plan => ({ classes: statements.map((n) => ({ statements: n })) }) as unknown as Plan;
  const expect = (): ReturnType<Link['expect']> => new Link(0).expect(ExpectKind.Client, false, 1, Term.Query);
  test('keeps the request with its expect; its answer is whole at ReadyForQuery after a Sync', () => {
    const req = newRequest();
    req.term = Term.Sync;
    const e = expect();
    retryable(e, req, plan([1]));
    assert.equal(e.retry, req);
    assert.equal(e.queryLeft, 0);
  });
  test('a simple Query: counted only when it holds one statement', () => {
    const req = newRequest();
    req.term = Term.Query;
    const one = expect();
    retryable(one, req, plan([1]));
    assert.equal(one.queryLeft, 1);
    const two = expect();
    retryable(two, req, plan([2]));
    assert.equal(two.queryLeft, -1);
    const many = expect();
    retryable(many, req, plan([1, 1]));
    assert.equal(many.queryLeft, -1);
  });
});
