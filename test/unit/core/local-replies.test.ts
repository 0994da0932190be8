/** local-replies.ts: answers written by pgmaitre itself, in order, driven with no socket and no core. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { localError, localReply, runAdmin, type AdminReplySession, type ReplySession } from '../../../src/core/local-replies';
import { ExpectKind, Link, Term } from '../../../src/core/link';
import { newRequest } from '../../../src/core/request';
import { TxStatus } from '../../../src/protocol/codes';
import { encodeErrorResponse, encodeReadyForQuery } from '../../../src/protocol/backend';
import { FakeConn } from './core-harness';

/** A session of one link (node 0, the primary) that records what reaches the client and the link. */
function session(pooling: 'session' | 'transaction') {
  const link = new Link(0);
  const conn = new FakeConn(0, 100);
  link.conn = conn;
  const client: Buffer[] = [];
  const sent: Buffer[] = [];
  const s: ReplySession = {
    host: { pooling, cluster: { primaryId: () => 0 } } as unknown as ReplySession['host'],
    links: [link],
    client: { write: (b) => { client.push(Buffer.from(b)); return true; } },
    allAnswered: () => link.clientOwed === 0,
    txStatus: () => link.txStatus,
    send: (_l, b) => { sent.push(b); },
    flush: () => {},
    forward: (buf, start, end) => { client.push(Buffer.from(buf.subarray(start, end))); },
  };
  return { s, link, client, sent };
}

function query(): ReturnType<typeof newRequest> {
  const r = newRequest();
  r.term = Term.Query;
  return r;
}

describe('localReply', () => {
  test('waits while a node owes the client an answer, then answers the tag and ReadyForQuery', () => {
    const { s, link, client } = session('session');
    link.expect(ExpectKind.Client, false, 0, Term.Query);
    assert.equal(localReply(s, query(), 'DEALLOCATE', null), false);
    assert.equal(client.length, 0);
    link.drain();
    assert.equal(localReply(s, query(), 'DEALLOCATE', null), true);
    const out = Buffer.concat(client);
    assert.equal(out[0], 0x43); // CommandComplete
    assert.ok(out.toString('latin1').includes('DEALLOCATE\0'));
    assert.equal(out[out.length - 6], 0x5a); // ReadyForQuery 'I'
    assert.equal(out[out.length - 1], TxStatus.Idle);
  });
  test('an error without a Sync has no ReadyForQuery', () => {
    const { s, client } = session('session');
    const r = newRequest();
    r.term = Term.None;
    assert.equal(localReply(s, r, null, ['26000', 'prepared statement "x" does not exist']), true);
    const out = Buffer.concat(client);
    assert.equal(out[0], 0x45);
    assert.equal(out.indexOf(0x5a, out.readInt32BE(1) + 1), -1);
  });
});

describe('localError', () => {
  test('session pooling: the error goes to the client at once', () => {
    const { s, link, client, sent } = session('session');
    link.txStatus = TxStatus.InTransaction;
    localError(s, query(), '42P05', 'exists', undefined);
    assert.equal(sent.length, 0);
    const out = Buffer.concat(client);
    assert.equal(out[0], 0x45);
    assert.equal(out[out.length - 1], TxStatus.InTransaction);
  });
  test('inside a shared connection\'s transaction the server\'s transaction is failed too, and the reply follows its answer', () => {
    const { s, link, client, sent } = session('transaction');
    link.txStatus = TxStatus.InTransaction;
    localError(s, query(), '42P05', 'exists', undefined);
    assert.equal(sent.length, 1);
    assert.match(sent[0]!.toString('latin1'), /RAISE EXCEPTION/);
    assert.equal(link.txStatus, TxStatus.Failed);
    assert.equal(client.length, 0, 'nothing before the server answered');
    link.feed(Buffer.concat([encodeErrorResponse({ severity: 'ERROR', code: 'P0001', message: 'x' }), encodeReadyForQuery(TxStatus.Failed)]), s);
    const out = Buffer.concat(client);
    assert.equal(out[0], 0x45);
    assert.ok(out.toString('latin1').includes('42P05'), 'the client sees its own error, not the swallowed one');
    assert.ok(!out.toString('latin1').includes('P0001'));
    assert.equal(out[out.length - 1], TxStatus.Failed);
  });
  test('a setting the aborted transaction takes back is reported to the client before its ReadyForQuery (seed 102108)', () => {
    // START TRANSACTION; SET application_name = 'fz_app'; -- c\nDEALLOCATE fz_p (answered here, 26000):
    // PostgreSQL reports application_name's old value at the error, before ReadyForQuery 'E'.
    const { s, link, client } = session('transaction');
    link.txStatus = TxStatus.InTransaction;
    localError(s, query(), '26000', 'prepared statement "fz_p" does not exist', undefined);
    const status = Buffer.concat([Buffer.from('S'), Buffer.alloc(4), Buffer.from('application_name\0\0')]);
    status.writeInt32BE(status.length - 1, 1);
    link.feed(Buffer.concat([encodeErrorResponse({ severity: 'ERROR', code: 'P0001', message: 'x' }), status, encodeReadyForQuery(TxStatus.Failed)]), s);
    const out = Buffer.concat(client);
    const codes: string[] = [];
    for (let at = 0; at < out.length; at += 1 + out.readInt32BE(at + 1)) codes.push(String.fromCharCode(out[at]!));
    assert.deepEqual(codes, ['E', 'S', 'Z']);
    assert.ok(out.toString('latin1').includes('26000'));
    assert.ok(out.includes(status), 'the server\'s ParameterStatus, as it is');
  });
});

describe('runAdmin', () => {
  function adminSession(closed: boolean) {
    const { s, link, client } = session('session');
    const blocked: string[] = [];
    const waits: Promise<unknown>[] = [];
    const ran: { sql: string; status: number }[] = [];
    const a: AdminReplySession = {
      ...s,
      host: { ...s.host, runAdmin: async (sql: string, status: number) => { ran.push({ sql, status }); return Buffer.from('rows'); } } as unknown as AdminReplySession['host'],
      closed,
      block: (p, what) => { blocked.push(what); waits.push(p); },
    };
    return { a, link, client, blocked, waits, ran };
  }
  test("blocks the queue while the command runs, with the session's transaction status, then writes its answer", async () => {
    const { a, link, client, blocked, waits, ran } = adminSession(false);
    link.txStatus = TxStatus.InTransaction;
    runAdmin(a, 'SHOW POOL_NODES');
    assert.deepEqual(blocked, ['admin command']);
    await Promise.all(waits);
    assert.deepEqual(ran, [{ sql: 'SHOW POOL_NODES', status: TxStatus.InTransaction }]);
    assert.equal(Buffer.concat(client).toString(), 'rows');
  });
  test('a session that ended meanwhile writes nothing', async () => {
    const { a, client, waits } = adminSession(true);
    runAdmin(a, 'SHOW POOL_NODES');
    await Promise.all(waits);
    assert.equal(client.length, 0);
  });
});
