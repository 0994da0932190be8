/**
 * deferred-begin.ts alone: deferBegin and deferredStep called directly on a session core with
 * recording ports (transaction pooling), one request at a time.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeCore, FakeConn, type CoreFixture } from './core-harness';
import { cstr, msg, u8 } from '../../fixtures/bytes';
import { deferBegin, deferredStep } from '../../../src/core/deferred-begin';
import { newRequest, RequestInfo, type Request } from '../../../src/core/request';
import { Term } from '../../../src/core/link';
import { TxStatus } from '../../../src/protocol/codes';
import { NodeStatus } from '../../../src/cluster/cluster';

const Q = (sql: string): Buffer => msg('Q', cstr(sql));
const Z = (s: string): Buffer => msg('Z', u8(s));
const C = (tag: string): Buffer => msg('C', cstr(tag));
const hex = (...b: Buffer[]): string => Buffer.concat(b).toString('hex');

function query(sql: string): Request {
  const r = newRequest();
  r.data = Q(sql);
  r.term = Term.Query;
  r.completions = 0;
  r.copyOnly = false;
  return r;
}

/** A transaction-pooling session with no connection, one idle connection to the primary in its pool. */
async function session(): Promise<CoreFixture & { idleConn: FakeConn }> {
  const idleConn = new FakeConn(0, 4242);
  const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', login: false, idle: [idleConn] });
  return Object.assign(f, { idleConn });
}

function begin(f: CoreFixture, sql = 'BEGIN'): boolean {
  return deferBegin(f.core, query(sql), sql, f.host.classifier.classify(sql));
}

function step(f: CoreFixture, sql: string): boolean | null {
  const req = query(sql);
  return deferredStep(f.core, req, new RequestInfo().read(req.data));
}

describe('deferBegin', () => {
  test('a BEGIN with no connection is answered here, nothing leased', async () => {
    const f = await session();
    assert.equal(begin(f, 'BEGIN ISOLATION LEVEL SERIALIZABLE'), true);
    assert.equal(hex(f.received()), hex(C('BEGIN'), Z('T')));
    assert.equal(f.core.deferredBegin, 'BEGIN ISOLATION LEVEL SERIALIZABLE');
    assert.equal(f.core.beginSql, 'BEGIN ISOLATION LEVEL SERIALIZABLE');
    assert.equal(f.core.route.inTransaction, true);
    assert.equal(f.core.txStatus(), TxStatus.InTransaction);
    assert.equal(f.host.idle.length, 1);
  });
  test('not when the session holds a connection, is in a transaction, or the BEGIN is not one PostgreSQL always accepts', async () => {
    const held = await makeCore({ pooling: 'transaction' });
    assert.equal(begin(held), false);
    const f = await session();
    assert.equal(begin(f, 'BEGIN; SELECT 1'), false);
    assert.equal(begin(f), true);
    f.received();
    assert.equal(begin(f), false, 'already inside the deferred transaction');
    assert.equal(f.received().length, 0);
  });
});

describe('deferredStep', () => {
  test('COMMIT or ROLLBACK end the transaction here', async () => {
    const f = await session();
    begin(f);
    f.received();
    assert.equal(step(f, 'COMMIT'), true);
    assert.equal(hex(f.received()), hex(C('COMMIT'), Z('I')));
    assert.equal(f.core.deferredBegin, '');
    assert.equal(f.core.route.inTransaction, false);
    assert.equal(f.host.idle.length, 1);
  });
  test('an admin command is answered inside the transaction (null: it goes on, no lease)', async () => {
    const f = await session();
    begin(f);
    assert.equal(step(f, 'SHOW POOL_NODES'), null);
    assert.equal(f.core.deferredBegin, 'BEGIN', 'still deferred');
    assert.equal(f.host.idle.length, 1);
  });
  test("a statement leases the primary's connection and sends the BEGIN there first", async () => {
    const f = await session();
    begin(f, 'START TRANSACTION');
    assert.equal(step(f, 'INSERT INTO t VALUES (1)'), null, 'the request itself goes on as usual');
    assert.equal(f.core.deferredBegin, '');
    assert.equal(f.core.link(0)?.conn, f.idleConn);
    assert.equal(f.core.link(0)?.txStatus, TxStatus.InTransaction);
    f.core.flush();
    assert.match(f.idleConn.take().toString('latin1'), /Q[^]{4}START TRANSACTION\0$/);
  });
  test('no primary: 57P03 and an aborted transaction (25P02), ended here by ROLLBACK', async () => {
    const f = await session();
    begin(f);
    f.received();
    f.cluster.setStatus(0, NodeStatus.Down, 'test');
    assert.equal(step(f, 'INSERT INTO t VALUES (1)'), true);
    assert.match(f.received().toString('latin1'), /C57P03\0[^]*Z\0\0\0\x05E$/);
    assert.equal(f.core.deferredFailed, true);
    assert.equal(f.core.txStatus(), TxStatus.Failed);
    assert.equal(step(f, 'SELECT 1'), true);
    assert.match(f.received().toString('latin1'), /C25P02\0[^]*Z\0\0\0\x05E$/);
    assert.equal(step(f, 'COMMIT'), true);
    assert.equal(hex(f.received()), hex(C('ROLLBACK'), Z('I')), 'a failed transaction rolls back');
    assert.equal(f.core.deferredFailed, false);
  });
  test('no idle connection: it opens one and waits (false)', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', login: false, idle: [] });
    begin(f);
    assert.equal(step(f, 'INSERT INTO t VALUES (1)'), false);
    assert.equal(f.core.deferredBegin, 'BEGIN');
    await f.settle();
  });
});
