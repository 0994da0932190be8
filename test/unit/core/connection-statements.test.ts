/** connection-statements.ts: a session's statements under server names on its connections, with no core and no socket. */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { duplicateParses, evict, hasStatement, names, serverNameOf, unnamedDropped, type NamingSession } from '../../../src/core/connection-statements';
import { Statements } from '../../../src/core/statements';
import { Link } from '../../../src/core/link';
import { RequestInfo } from '../../../src/core/request';
import { encodeBind, encodeExecute, encodeParse, encodeSync } from '../../../src/protocol/frontend';
import { initClassifier } from '../../../src/classify';
import { TxStatus } from '../../../src/protocol/codes';
import type { QueryClass } from '../../../src/classify/types';
import { FakeConn, makeCore } from './core-harness';

before(async () => { await initClassifier(); });

const read: QueryClass = { kind: 'read', readOnly: true, statements: 1, functions: [], relations: [], flags: { parsedBy: 'lexer' } } as unknown as QueryClass;

function session() {
  const links = [new Link(0), new Link(1)];
  links[0]!.conn = new FakeConn(0, 100);
  links[1]!.conn = new FakeConn(1, 101);
  const sent: { node: number; buf: Buffer }[] = [];
  const s: NamingSession = {
    statements: new Statements(),
    links,
    dupParses: null,
    dupRefused: new Set(),
    send: (l, buf) => { sent.push({ node: l.node, buf }); },
  };
  return { s, links, sent };
}

/** The client parsed `name` as `sql` (on node 0). */
function define(s: NamingSession, name: string, sql: string): void {
  s.statements.parsed(name, encodeParse(name, sql), sql, read, 0);
}

describe('server names', () => {
  test('serverNameOf: one name per definition, computed once', () => {
    const { s } = session();
    define(s, 'a', 'SELECT 1');
    define(s, 'b', 'SELECT 1');
    define(s, 'c', 'SELECT 2');
    const a = serverNameOf(s, 'a')!;
    assert.match(a, /^pgm_/);
    assert.equal(serverNameOf(s, 'b'), a);
    assert.notEqual(serverNameOf(s, 'c'), a);
    assert.equal(s.statements.protocol.get('a')!.server, a);
    assert.equal(serverNameOf(s, 'nope'), undefined);
  });
  test('names(): a new Parse is tentative on the connection; one it has already is answered in place', () => {
    const { s, links } = session();
    const reg = links[0]!.conn!.statements;
    const def = encodeParse('', 'SELECT 1').subarray(6); // (the definition after the name)
    const first = names(s, links[0]!).parsed('x', def);
    assert.equal(first.had, false);
    assert.equal(reg.pending(first.server), true);
    reg.confirm(first.server);
    const again = names(s, links[0]!).parsed('y', def);
    assert.deepEqual(again, { server: first.server, had: true });
  });
  test('names(): a name the client still has is sent under its server name, for the server to refuse (42P05)', () => {
    const { s, links } = session();
    define(s, 'x', 'SELECT 1');
    const info = new RequestInfo().read(Buffer.concat([encodeParse('x', 'SELECT 2'), encodeSync()]));
    s.dupParses = duplicateParses(s, info);
    assert.deepEqual([...s.dupParses!], ['x']);
    const m = names(s, links[0]!);
    assert.equal(m.parsed('x', encodeParse('', 'SELECT 2').subarray(6)).server, serverNameOf(s, 'x'));
    assert.ok(s.dupRefused.has('x'));
    // Closed earlier in the same request: the Parse defines it anew.
    s.dupRefused.clear();
    const m2 = names(s, links[0]!);
    m2.closing!('x');
    assert.notEqual(m2.parsed('x', encodeParse('', 'SELECT 2').subarray(6)).server, serverNameOf(s, 'x'));
    assert.equal(s.dupRefused.size, 0);
  });
  test('names(): inside an open Flush sequence behind an unanswered Sync in a transaction (maybe aborted), a statement the connection has is closed and parsed again, not answered in place (seed 173401)', () => {
    const { s, links, sent } = session();
    const l = links[0]!;
    const reg = l.conn!.statements;
    const def = encodeParse('', "SET work_mem = '4MB'").subarray(6);
    const server = names(s, l).parsed('a', def).server;
    reg.confirm(server);
    (s as { route?: { inTransaction: boolean } }).route = { inTransaction: true };
    l.txStatus = TxStatus.Failed; // (the last ReadyForQuery; a Sync is still owed after it)
    l.syncOwed = 1;
    l.unsynced = true; // (an earlier part of this sequence, e.g. a Close, ended with Flush)
    reg.nextRequest();
    sent.length = 0;
    const again = names(s, l).parsed('b', def);
    assert.deepEqual(again, { server, had: false }, 'sent to the server: PostgreSQL refuses it (25P02) if the transaction is aborted');
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.buf[0], 0x43, 'closed first (the server answers right either way)');
    assert.equal(reg.pending(server), true);
    // The same with no Sync owed (nothing can have aborted it unseen) and outside a transaction: answered in place.
    l.txStatus = TxStatus.Idle;
    (s as { route?: { inTransaction: boolean } }).route = { inTransaction: false };
    reg.confirm(server);
    reg.nextRequest();
    sent.length = 0;
    assert.deepEqual(names(s, l).parsed('c', def), { server, had: true });
    assert.equal(sent.length, 0);
  });
  test('names(): maybe aborted, the same SQL parsed by an earlier request not answered yet is closed and parsed again (that Parse may be refused, 25P02, and this one with it; seed 173407); by this request: answered in place', () => {
    const { s, links, sent } = session();
    const l = links[0]!;
    const reg = l.conn!.statements;
    const def = encodeParse('', 'SELECT 10 / $1::int AS q').subarray(6);
    (s as { abortedTx?: string }).abortedTx = 'maybe';
    reg.nextRequest();
    const first = names(s, l);
    const server = first.parsed('a', def).server;
    assert.equal(reg.pending(server), true);
    assert.deepEqual(first.parsed('b', def), { server, had: true }, 'in the same request: in place (skipped with the first if it fails)');
    assert.equal(sent.length, 0);
    reg.nextRequest();
    assert.deepEqual(names(s, l).parsed('c', def), { server, had: false }, 'the next request: sent to the server');
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.buf[0], 0x43, 'closed first');
  });
  test('names(): known aborted, a Parse of a statement the connection has is closed first and sent (refused, 25P02): a Bind of that name in a later batch then gets 26000 from the server, as directly (seed 173404); not when a message ahead of it in the request names the statement', () => {
    const { s, links, sent } = session();
    const l = links[0]!;
    const reg = l.conn!.statements;
    define(s, 'a', "SET work_mem = '4MB'");
    const server = serverNameOf(s, 'a')!;
    reg.begin(server);
    reg.confirm(server);
    (s as { abortedTx?: string }).abortedTx = 'known';
    const def = encodeParse('', "SET work_mem = '4MB'").subarray(6);
    reg.nextRequest();
    assert.deepEqual(names(s, l).parsed('b', def), { server, had: false });
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.buf[0], 0x43, 'closed first: the server has it no more');
    assert.equal(reg.pending(server), true, 'tentative: gone when the request fails');
    reg.failed(server, true);
    assert.equal(reg.unsure.has(server), true, 'skipped (the Close with it): it may still be there, closed before the next use');
    reg.unsure.clear();
    reg.begin(server);
    reg.confirm(server);
    sent.length = 0;
    reg.nextRequest();
    const m = names(s, l);
    assert.equal(m.serverName('a'), server); // (a Bind a ahead of the Parse: refused 25P02 by the server, which must have it)
    assert.deepEqual(m.parsed('c', def), { server, had: false });
    assert.equal(sent.length, 0, 'no Close ahead of the request');
  });
  test('duplicateParses: the unnamed statement and new names are not duplicates', () => {
    const { s } = session();
    define(s, '', 'SELECT 1');
    const info = new RequestInfo().read(Buffer.concat([encodeParse('', 'SELECT 2'), encodeParse('n', 'SELECT 3'), encodeSync()]));
    assert.equal(duplicateParses(s, info), null);
  });
});

describe('connections', () => {
  test('evict closes what goes beyond max_prepared_statements, least recently used first, in a swallowed request', () => {
    const { s, links, sent } = session();
    const l = links[0]!;
    const reg = l.conn!.statements;
    reg.cap = 1;
    for (const n of ['pgm_a', 'pgm_b']) { reg.begin(n); reg.confirm(n); }
    reg.nextRequest();
    evict(s, l);
    assert.equal(sent.length, 1);
    const out = sent[0]!.buf.toString('latin1');
    assert.ok(out.startsWith('C') && out.includes('pgm_a') && !out.includes('pgm_b'));
    assert.equal(sent[0]!.buf[sent[0]!.buf.length - 5], 0x53, 'ends with Sync');
    assert.equal(l.owed, 1);
    assert.equal(l.head!.swallow, true);
    assert.deepEqual(reg.list(), ['pgm_b']);
    sent.length = 0;
    evict(s, l);
    assert.equal(sent.length, 0, 'nothing beyond the cap: nothing sent');
  });
  test('hasStatement: by node in session pooling, by server name on a leased connection', () => {
    const { s, links } = session();
    define(s, 'a', 'SELECT 1');
    const st = s.statements.protocol.get('a')!;
    assert.equal(hasStatement(links[0]!, st, null), true);
    assert.equal(hasStatement(links[1]!, st, null), false);
    assert.equal(hasStatement(links[0]!, st, 'pgm_zz'), false);
  });
  test('unnamedDropped: the client has no unnamed statement; only the link the Query went to is known to have none', () => {
    const { s, links } = session();
    define(s, '', 'SELECT 1');
    links[1]!.unnamedOwn = true;
    unnamedDropped(s, links[0]!);
    assert.equal(s.statements.protocol.has(''), false);
    assert.equal(links[0]!.unnamedOwn, true);
    assert.equal(links[1]!.unnamedOwn, false);
  });
});

describe('a statement parsed by a request not answered yet (a pipeline of Sync-ended batches)', () => {
  const frame = (code: string, body: string): Buffer => {
    const b = Buffer.from(body, 'latin1');
    const h = Buffer.alloc(5);
    h[0] = code.charCodeAt(0);
    h.writeUInt32BE(4 + b.length, 1);
    return Buffer.concat([h, b]);
  };
  const ERR = frame('E', 'SERROR\0C42P01\0Mrelation "missing" does not exist\0\0');
  const Z = frame('Z', 'I');
  /** The message codes of a byte stream. */
  const codes = (b: Buffer): string => {
    const out: string[] = [];
    for (let p = 0; p + 5 <= b.length; p += 1 + b.readUInt32BE(p + 1)) out.push(String.fromCharCode(b[p]!));
    return out.join('');
  };

  test('the same SQL under another client name in the next batch is parsed by the server, not answered in place: if the first Parse fails, so does this one (seed 173404)', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction' });
    const conn = f.conns.get(0)!;
    const sql = 'SELECT * FROM missing';
    f.send(Buffer.concat([encodeParse('s1', sql), encodeBind('', 's1', []), encodeExecute('', 0), encodeSync(),
      encodeParse('s2', sql), encodeBind('', 's2', []), encodeExecute('', 0), encodeSync()]));
    await f.settle();
    const sent = conn.take();
    assert.equal(codes(sent), 'PBESCPBES', 'the second Parse goes to the server (after a Close of the name, whatever the first one\'s fate)');
    // The server: the first batch fails, then the Close (CloseComplete), then the second fails the same way.
    f.answer(0, Buffer.concat([ERR, Z, frame('3', ''), ERR, Z]));
    assert.equal(codes(f.received()), 'EZEZ', 'as PostgreSQL answers: no ParseComplete for the second Parse');
  });

  test('the first one succeeds: the second batch still works (parsed again under the same server name)', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction' });
    const conn = f.conns.get(0)!;
    const sql = 'SELECT 1';
    f.send(Buffer.concat([encodeParse('s1', sql), encodeBind('', 's1', []), encodeExecute('', 0), encodeSync(),
      encodeParse('s2', sql), encodeBind('', 's2', []), encodeExecute('', 0), encodeSync()]));
    await f.settle();
    assert.equal(codes(conn.take()), 'PBESCPBES');
    const ok = Buffer.concat([frame('1', ''), frame('2', ''), frame('C', 'SELECT 1\0'), Z]);
    f.answer(0, Buffer.concat([ok, frame('3', ''), ok]));
    assert.equal(codes(f.received()), '12CZ12CZ');
    // Later, on that connection, a third name for it is answered in place (the statement is there).
    f.send(Buffer.concat([encodeParse('s3', sql), encodeBind('', 's3', []), encodeExecute('', 0), encodeSync()]));
    await f.settle();
    assert.equal(codes(conn.take()), 'BES');
  });

  test('within one request, a second Parse of the same SQL is still answered in place (the first one is in order before it: a Close would make the server refuse it, 42P05)', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction' });
    const conn = f.conns.get(0)!;
    const sql = 'SELECT 1';
    f.send(Buffer.concat([encodeParse('s1', sql), encodeParse('s2', sql), encodeBind('', 's2', []), encodeExecute('', 0), encodeSync()]));
    await f.settle();
    assert.equal(codes(conn.take()), 'PBES', 'one Parse to the server, the second answered in place');
    f.answer(0, Buffer.concat([frame('1', ''), frame('2', ''), frame('C', 'SELECT 1\0'), Z]));
    assert.equal(codes(f.received()), '112CZ');
  });
});

