/** request-effects.ts: what a request does to the session, recorded when sent and applied when answered; no core, no socket. */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { afterSync, bookkeeping, completed, stateFailed, type EffectsSession, type Token } from '../../../src/core/request-effects';
import { Statements } from '../../../src/core/statements';
import { SessionState } from '../../../src/core/session-state';
import { ReadYourWrites } from '../../../src/core/read-your-writes';
import { Pins } from '../../../src/core/tx-pooling';
import { ExpectKind, Link, Term } from '../../../src/core/link';
import { newRequest, RequestInfo } from '../../../src/core/request';
import { Plan } from '../../../src/core/planner';
import { newRouteState } from '../../../src/router/router';
import { buildRoutingContext, type RoutingContext } from '../../../src/core/routing-context';
import { loadConfigText } from '../../../src/config/load';
import { initClassifier } from '../../../src/classify';
import { sessionEffects } from '../../../src/classify/session-effects';
import { encodeBind, encodeClose, encodeParse, encodeQuery, encodeSync } from '../../../src/protocol/frontend';
import { TxStatus } from '../../../src/protocol/codes';
import { FakeConn } from './core-harness';

let routing: RoutingContext;
before(async () => {
  await initClassifier();
  const config = loadConfigText("backend_hostname0 = 'db0'\nbackend_port0 = 5432\n", '/etc/pgpool/pgpool.conf').config;
  routing = buildRoutingContext(config, { get: () => 's', lookup: async () => {}, clear: () => {} });
});

function session(pooling: 'session' | 'transaction' = 'session') {
  const link = new Link(0);
  link.conn = new FakeConn(0, 100);
  const failed: string[] = [];
  const s: EffectsSession = {
    host: {
      pooling, routing, classifier: routing.classifier, pid: 7, log: pino({ level: 'silent' }),
      cluster: { node: () => undefined, primaryId: () => 0 }, knownStatement: () => false,
    } as unknown as EffectsSession['host'],
    statements: new Statements(),
    links: [link],
    dupParses: null,
    dupRefused: new Set(),
    route: newRouteState(),
    state: new SessionState(),
    ryw: new ReadYourWrites(() => null),
    pins: new Pins(),
    txFailed: false,
    stagedNode: -1,
    beginSql: 'BEGIN',
    stateLost: new Set(),
    connected: function* () { yield link; },
    send: () => {},
    fail: (f) => { failed.push(String(f.code)); },
  };
  return { s, link, failed };
}

const info = new RequestInfo();
/** Sends `data` (planned for node 0) through bookkeeping; returns its token and the client expect. */
function sent(s: EffectsSession, link: Link, data: Buffer, term: Term = Term.Query) {
  const req = newRequest();
  req.data = data;
  req.term = term;
  const i = info.read(data);
  const plan = new Plan();
  plan.node = 0;
  for (const q of i.queries) plan.classes.push(routing.classifier.classify(q));
  for (const p of i.parses) plan.classes.push(routing.classifier.classify(p.sql));
  const effects = i.queries.length === 1 ? sessionEffects(i.queries[0]!) : null;
  if (effects !== null && effects.length > 0) plan.effects = effects as typeof plan.effects;
  const token = bookkeeping(s, req, i, plan, 0);
  const e = link.expect(ExpectKind.Client, false, req.completions, term);
  return { token, e };
}

describe('bookkeeping + completed', () => {
  test('a SET is staged only when it succeeded, and committed at ReadyForQuery idle', () => {
    const { s, link } = session();
    const ok = sent(s, link, encodeQuery("SET work_mem = '8MB'"));
    assert.notEqual(ok.token, null);
    completed(s, link, ok.e, ok.token as Token);
    assert.equal(s.state.pending, true);
    assert.equal(s.stagedNode, 0);
    ok.e.status = TxStatus.Idle;
    afterSync(s, link, ok.e, 0);
    assert.equal(s.state.pending, false);
    assert.equal(s.stagedNode, -1);
    assert.equal(s.state.parameters.get('work_mem'), "SET work_mem = '8MB'");
  });
  test('a SET that failed stages nothing', () => {
    const { s, link } = session();
    const bad = sent(s, link, encodeQuery("SET work_mem = 'lots'"));
    bad.e.errored = true;
    completed(s, link, bad.e, bad.token as Token);
    assert.equal(s.state.pending, false);
  });
  test('advisory locks hold until pg_advisory_unlock_all(); savepoints are read from the statement', () => {
    const { s, link } = session();
    assert.equal(sent(s, link, encodeQuery('SELECT pg_advisory_lock(1)')).token, null, 'no token for a plain statement');
    assert.equal(s.state.advisoryHeld, true);
    sent(s, link, encodeQuery('SELECT pg_advisory_unlock(1)'));
    assert.equal(s.state.advisoryHeld, true);
    sent(s, link, encodeQuery('SELECT pg_advisory_unlock_all()'));
    assert.equal(s.state.advisoryHeld, false);
    assert.equal(sent(s, link, encodeQuery('SAVEPOINT "My Point"')).token!.savepoint, 'My Point');
    assert.equal(sent(s, link, encodeQuery('ROLLBACK TO SAVEPOINT Sp')).token!.rollbackTo, 'sp');
  });
  test('transaction pooling: a Parse that failed defines nothing, and its server name is dropped', () => {
    const { s, link } = session('transaction');
    const conn = link.conn!;
    const { token, e } = sent(s, link, Buffer.concat([encodeParse('a', 'SELECT 1'), encodeBind('', 'a', []), encodeSync()]), Term.Sync);
    assert.deepEqual(token!.defined!.map((d) => ({ name: d.name, index: d.index })), [{ name: 'a', index: 0 }]);
    assert.equal(token!.defined![0]!.st, s.statements.protocol.get('a'));
    assert.equal(s.statements.protocol.has('a'), true);
    e.errored = true;
    e.failedAt = 0;
    completed(s, link, e, token!);
    assert.equal(s.statements.protocol.has('a'), false);
    assert.equal(conn.statements.size, 0);
  });
  test('transaction pooling: Close then a failing Parse of a name the client had leaves no name (31146); a failed tentative definition is never restored (31086)', () => {
    const { s, link } = session('transaction');
    const first = sent(s, link, Buffer.concat([encodeParse('a', 'SELECT 1'), encodeSync()]), Term.Sync);
    completed(s, link, first.e, first.token!);
    const r = sent(s, link, Buffer.concat([encodeClose('S', 'a'), encodeParse('a', 'SELECT 2'), encodeSync()]), Term.Sync);
    r.e.errored = true;
    r.e.failedAt = 1; // the Parse failed, the Close ran
    completed(s, link, r.e, r.token!);
    assert.equal(s.statements.protocol.has('a'), false);
    // a failure before the Close: the client keeps its statement
    const again = sent(s, link, Buffer.concat([encodeParse('a', 'SELECT 3'), encodeSync()]), Term.Sync);
    completed(s, link, again.e, again.token!);
    const before = sent(s, link, Buffer.concat([encodeBind('', 'x', []), encodeClose('S', 'a'), encodeParse('a', 'SELECT 4'), encodeSync()]), Term.Sync);
    before.e.errored = true;
    before.e.failedAt = 0;
    completed(s, link, before.e, before.token!);
    assert.equal(s.statements.protocol.get('a')?.sql, 'SELECT 3');
    // pipelined: a tentative definition (b), then Close and Parse of it; b fails, the second request is skipped
    const r1 = sent(s, link, Buffer.concat([encodeParse('b', 'SELECT 5'), encodeSync()]), Term.Sync);
    const r2 = sent(s, link, Buffer.concat([encodeClose('S', 'b'), encodeParse('b', 'SELECT 6'), encodeSync()]), Term.Sync);
    r1.e.errored = true;
    r1.e.failedAt = 0;
    completed(s, link, r1.e, r1.token!);
    assert.equal(s.statements.protocol.get('b')?.sql, 'SELECT 6', 'the later definition is not dropped by the earlier failure');
    r2.e.skipped = true;
    completed(s, link, r2.e, r2.token!);
    assert.equal(s.statements.protocol.has('b'), false);
  });
  test('transaction pooling: DISCARD ALL that succeeded clears the connection and lifts the pins', () => {
    const { s, link } = session('transaction');
    const conn = link.conn!;
    conn.statements.begin('pgm_x');
    conn.statements.confirm('pgm_x');
    s.pins.forced = 'set_config(..., false)';
    const { token, e } = sent(s, link, encodeQuery('DISCARD ALL'));
    assert.equal(token!.clears, 'all');
    completed(s, link, e, token!);
    assert.equal(conn.statements.size, 0);
    assert.equal(conn.applied, null);
    assert.equal(s.pins.forced, '');
  });
});

describe('stateFailed', () => {
  test('the connection\'s applied settings become unknown and the session ends', () => {
    const { s, link, failed } = session('transaction');
    stateFailed(s, link);
    assert.equal(link.conn!.applied, null);
    assert.equal(link.conn!.appliedVersion, -1);
    assert.ok(s.stateLost.has(link));
    assert.equal(failed.length, 1);
  });
});
