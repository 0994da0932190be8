/** side-requests.ts: what a link needs before the client's request, driven with no core and no socket. */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { broadcast, prepareLink, reparsed, type SideSession } from '../../../src/core/side-requests';
import { Statements } from '../../../src/core/statements';
import { SessionState } from '../../../src/core/session-state';
import { Pins } from '../../../src/core/tx-pooling';
import { ExpectKind, Link, Term } from '../../../src/core/link';
import { newRequest, RequestInfo } from '../../../src/core/request';
import { Plan } from '../../../src/core/planner';
import { newRouteState } from '../../../src/router/router';
import { sessionEffects } from '../../../src/classify/session-effects';
import { encodeBind, encodeClose, encodeDescribe, encodeExecute, encodeParse, encodeQuery, encodeSync } from '../../../src/protocol/frontend';
import { TxStatus } from '../../../src/protocol/codes';
import type { QueryClass } from '../../../src/classify/types';
import { FakeConn } from './core-harness';
import { initClassifier } from '../../../src/classify';

before(async () => { await initClassifier(); });

const read = { kind: 'read', readOnly: true, statements: 1, functions: [], relations: [], flags: { parsedBy: 'lexer' } } as unknown as QueryClass;

function session(o: { pooling?: 'session' | 'transaction'; lbInTx?: boolean } = {}) {
  const links = [new Link(0), new Link(1)];
  links[0]!.conn = new FakeConn(0, 100);
  links[1]!.conn = new FakeConn(1, 101);
  const sent: { node: number; text: string }[] = [];
  const s: SideSession & { stickyNode: number; beginSql: string } = {
    host: {
      pooling: o.pooling ?? 'session',
      routing: { router: { loadBalanceInTransaction: o.lbInTx ?? false } },
      statementCache: () => {},
      knownStatement: () => false,
    } as unknown as SideSession['host'],
    statements: new Statements(),
    links,
    dupParses: null,
    dupRefused: new Set(),
    state: new SessionState(),
    route: newRouteState(),
    pins: new Pins(),
    stickyNode: -1,
    beginSql: 'BEGIN ISOLATION LEVEL REPEATABLE READ',
    connected: function* () { for (const l of links) if (l.conn !== null) yield l; },
    send: (l, b) => { sent.push({ node: l.node, text: b.toString('latin1') }); },
  };
  return { s, links, sent };
}

const info = new RequestInfo();
function prepare(s: SideSession, link: Link, data: Buffer, notPrimary = false): void {
  prepareLink(s, link, info.read(data), new Plan(), notPrimary);
}
const BIND_A = Buffer.concat([encodeBind('', 'a', []), encodeExecute(), encodeSync()]);

describe('prepareLink', () => {
  test('nothing needed: nothing sent', () => {
    const { s, links, sent } = session();
    prepare(s, links[0]!, encodeQuery('SELECT 1'));
    assert.equal(sent.length, 0);
  });
  test('cleanup queued elsewhere goes first, swallowed; statements a failed request may have left are closed', () => {
    const { s, links, sent } = session({ pooling: 'transaction' });
    const l = links[0]!;
    l.cleanup.push({ buf: encodeQuery('DISCARD ALL'), completions: 0, term: Term.Query, clears: 'all' });
    l.conn!.statements.unsure.add('pgm_gone');
    prepare(s, l, encodeQuery('SELECT 1'));
    assert.equal(sent.length, 2);
    assert.match(sent[0]!.text, /DISCARD ALL/);
    assert.match(sent[1]!.text, /^C.*pgm_gone/s);
    assert.equal(l.cleanup.length, 0);
    assert.equal(l.conn!.statements.unsure.size, 0);
    assert.equal(l.owed, 2);
    assert.equal(l.head!.kind, ExpectKind.Cleanup);
    assert.deepEqual(l.head!.token, { clears: 'all' });
  });
  test('the session\'s settings are replayed where they differ, once', () => {
    const { s, links, sent } = session();
    s.state.stage(sessionEffects("SET work_mem = '8MB'")!);
    s.state.commit(null, s);
    prepare(s, links[1]!, encodeQuery('SELECT 1'));
    assert.equal(sent.length, 1);
    assert.match(sent[0]!.text, /SET work_mem = '8MB'/);
    assert.equal(links[1]!.head!.kind, ExpectKind.State);
  });
  test('a standby follows the primary\'s transaction: BEGIN (same text) when balanced inside it, ROLLBACK once it ended', () => {
    const a = session({ lbInTx: true });
    a.s.route.inTransaction = true;
    prepare(a.s, a.links[1]!, encodeQuery('SELECT 1'), true);
    assert.match(a.sent[0]!.text, /BEGIN ISOLATION LEVEL REPEATABLE READ/);
    assert.equal(a.links[1]!.txStatus, TxStatus.InTransaction);
    const b = session();
    b.links[1]!.txStatus = TxStatus.InTransaction;
    prepare(b.s, b.links[1]!, encodeQuery('SELECT 1'), true);
    assert.match(b.sent[0]!.text, /ROLLBACK/);
    assert.equal(b.links[1]!.txStatus, TxStatus.Idle);
  });
  test('session pooling: a statement bound on a node that lacks it is parsed there first, in its own Sync', () => {
    const { s, links, sent } = session();
    s.statements.parsed('a', encodeParse('a', 'SELECT 1'), 'SELECT 1', read, 0);
    prepare(s, links[0]!, BIND_A);
    assert.equal(sent.length, 0, 'node 0 has it');
    prepare(s, links[1]!, BIND_A);
    assert.equal(sent.length, 1);
    assert.ok(sent[0]!.text.startsWith('P') && sent[0]!.text.endsWith('S\0\0\0\x04'));
    const e = links[1]!.head!;
    assert.equal(e.kind, ExpectKind.Reparse);
    assert.ok(s.statements.protocol.get('a')!.nodes.has(1));
    e.errored = true;
    reparsed(s, links[1]!, e);
    assert.ok(!s.statements.protocol.get('a')!.nodes.has(1), 'a failed re-parse leaves it missing there');
  });
  test('transaction pooling: re-parsed under its server name, inline (no Sync), tentative until answered', () => {
    const { s, links, sent } = session({ pooling: 'transaction' });
    s.statements.parsed('a', encodeParse('a', 'SELECT 1'), 'SELECT 1', read, 0);
    const l = links[0]!;
    prepare(s, l, BIND_A);
    assert.equal(sent.length, 1);
    const server = s.statements.protocol.get('a')!.server!;
    assert.match(server, /^pgm_/);
    assert.ok(sent[0]!.text.startsWith('P') && sent[0]!.text.includes(server) && !sent[0]!.text.includes('S\0\0\0\x04'));
    assert.equal(l.conn!.statements.pending(server), true);
    reparsed(s, l, l.head!);
    assert.equal(l.conn!.statements.pending(server), false);
    assert.equal(l.conn!.statements.has(server), true);
  });
  test('transaction pooling: a statement only closed is not re-parsed first (F23 shape); one described is', () => {
    const { s, links, sent } = session({ pooling: 'transaction' });
    s.statements.parsed('a', encodeParse('a', 'SELECT 1'), 'SELECT 1', read, 0);
    const l = links[0]!;
    prepare(s, l, Buffer.concat([encodeClose('S', 'a'), encodeParse('b', 'SELECT 2'), encodeSync()]));
    assert.equal(sent.length, 0, 'a Close needs nothing on the connection');
    prepare(s, l, Buffer.concat([encodeDescribe('S', 'a'), encodeClose('S', 'a'), encodeSync()]));
    assert.equal(sent.length, 1, 'a Describe does');
    assert.ok(sent[0]!.text.startsWith('P'));
  });
});

describe('broadcast', () => {
  test('transaction control reaches every other node inside the transaction', () => {
    const { s, links, sent } = session();
    links[1]!.txStatus = TxStatus.InTransaction;
    const req = newRequest();
    req.data = encodeQuery('SAVEPOINT a');
    req.term = Term.Query;
    broadcast(s, req, links[0]!);
    assert.deepEqual(sent.map((x) => x.node), [1]);
    assert.equal(links[1]!.head!.swallow, true);
  });
});

describe('SessionCore: leading Closes in a known aborted transaction (seed 40114)', () => {
  test('go out first, before any re-parse of a statement the connection lacks, so their CloseCompletes come before the 25P02', async () => {
    const { makeCore } = await import('./core-harness');
    const { msg, cstr, u8 } = await import('../../fixtures/bytes');
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction' });
    f.send(encodeParse('s1', 'SELECT 41'), encodeSync());
    const conn = f.conns.get(0)!;
    conn.take();
    f.answer(0, Buffer.concat([msg('1'), msg('Z', u8('I'))]));
    conn.statements.clear(); // the connection lost it (another client's session ended with DISCARD ALL)
    f.send(encodeQuery('BEGIN')); // (answered here, sent in front of the next statement)
    f.send(encodeQuery('SELECT 1/0'));
    await f.settle();
    f.answer(0, Buffer.concat([msg('C', cstr('BEGIN')), msg('Z', u8('T')), msg('E', u8('S'), cstr('ERROR'), u8('C'), cstr('22012'), u8(0)), msg('Z', u8('E'))]));
    conn.take();
    f.received();
    f.send(encodeClose('S', 's2'), encodeBind('p1', 's1', []), encodeExecute('p1'), encodeSync());
    const w = conn.take();
    assert.equal(String.fromCharCode(w[0]!), 'C', 'the Close first');
    // (then the rest; since wt-fuzzb's abortedSure, a Bind sure to be refused needs no re-parse at all)
  });
});
