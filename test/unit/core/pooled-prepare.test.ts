/** pooled-prepare.ts: SQL PREPARE/EXECUTE/DEALLOCATE and transaction blocks before a shared connection, with no core and no socket. */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Local, pooledLocal, type PooledSession } from '../../../src/core/pooled-prepare';
import { Statements } from '../../../src/core/statements';
import { SessionState } from '../../../src/core/session-state';
import { Pins } from '../../../src/core/tx-pooling';
import { Link } from '../../../src/core/link';
import { newRequest, RequestInfo, type Request } from '../../../src/core/request';
import { newRouteState } from '../../../src/router/router';
import { buildRoutingContext } from '../../../src/core/routing-context';
import { loadConfigText } from '../../../src/config/load';
import { initClassifier } from '../../../src/classify';
import { encodeQuery } from '../../../src/protocol/frontend';
import { TxStatus } from '../../../src/protocol/codes';
import { Term } from '../../../src/core/link';

let classifier: PooledSession['host']['classifier'];
before(async () => {
  await initClassifier();
  const config = loadConfigText("backend_hostname0 = 'db0'\nbackend_port0 = 5432\n", '/etc/pgpool/pgpool.conf').config;
  classifier = buildRoutingContext(config, { get: () => 's', lookup: async () => {}, clear: () => {} }).classifier;
});

function session(pooling: 'transaction' | 'statement' = 'transaction') {
  const link = new Link(0);
  const client: Buffer[] = [];
  const s: PooledSession = {
    host: { pooling, classifier, cluster: { primaryId: () => 0 }, knownStatement: () => false } as unknown as PooledSession['host'],
    links: [link],
    client: { write: (b) => { client.push(Buffer.from(b)); return true; } },
    statements: new Statements(),
    state: new SessionState(),
    route: newRouteState(),
    pins: new Pins(),
    pinReason: () => '',
    allAnswered: () => true,
    txStatus: () => TxStatus.Idle,
    send: () => {},
    flush: () => {},
    forward: () => {},
  };
  return { s, client, text: () => Buffer.concat(client).toString('latin1') };
}

const info = new RequestInfo();
function run(s: PooledSession, sql: string): { local: Local; req: Request } {
  const req = newRequest();
  req.data = encodeQuery(sql);
  req.term = Term.Query;
  return { local: pooledLocal(s, req, info.read(req.data)), req };
}

describe('pooledLocal', () => {
  test('an ordinary statement goes on untouched', () => {
    const { s } = session();
    const { local, req } = run(s, 'SELECT 1');
    assert.equal(local, Local.No);
    assert.equal(req.pooledData, null);
  });
  test('PREPARE is renamed to its server name, even behind a comment', () => {
    const { s } = session();
    const { local, req } = run(s, '/* app */ PREPARE p AS SELECT 1');
    assert.equal(local, Local.No);
    assert.match(req.pooledPrepare ?? '', /^pgmq_/);
    assert.ok(req.pooledData!.toString('latin1').includes(req.pooledPrepare!));
    assert.ok(!/PREPARE p\b/.test(req.pooledData!.toString('latin1')));
  });
  test('a duplicate PREPARE is answered 42P05 here', () => {
    const { s, text } = session();
    s.statements.prepared('p', 'PREPARE p AS SELECT 1', classifier.classify('SELECT 1'), 0, 'pgmq_x');
    assert.equal(run(s, 'PREPARE p AS SELECT 2').local, Local.Answered);
    assert.match(text(), /42P05/);
  });
  test('EXECUTE of a known statement is renamed; of an unknown one it goes on as written', () => {
    const { s } = session();
    s.statements.prepared('p', 'PREPARE p AS SELECT 1', classifier.classify('SELECT 1'), 0, 'pgmq_x');
    assert.match(run(s, 'EXECUTE p').req.pooledData!.toString('latin1'), /EXECUTE pgmq_x/);
    assert.equal(run(s, 'EXECUTE q').req.pooledData, null);
  });
  test('DEALLOCATE is answered for the client alone (26000 when it has no such statement)', () => {
    const { s, text, client } = session();
    s.statements.prepared('p', 'PREPARE p AS SELECT 1', classifier.classify('SELECT 1'), 0, 'pgmq_x');
    assert.equal(run(s, 'DEALLOCATE p').local, Local.Answered);
    assert.match(text(), /DEALLOCATE\0/);
    assert.equal(s.statements.sql.has('p'), false);
    client.length = 0;
    assert.equal(run(s, 'DEALLOCATE p').local, Local.Answered);
    assert.match(text(), /26000/);
  });
  test('DISCARD ALL outside a transaction clears the session\'s own state only', () => {
    const { s, text } = session();
    s.statements.prepared('p', 'PREPARE p AS SELECT 1', classifier.classify('SELECT 1'), 0, 'pgmq_x');
    assert.equal(run(s, 'DISCARD ALL').local, Local.Answered);
    assert.match(text(), /DISCARD ALL\0/);
    assert.equal(s.statements.sql.size, 0);
  });
  test('PREPARE among other statements pins the session (its name cannot be rewritten safely)', () => {
    const { s } = session();
    assert.equal(run(s, 'PREPARE p AS SELECT 1; EXECUTE p').local, Local.No);
    assert.notEqual(s.pins.forced, '');
  });
  test('statement pooling refuses transaction blocks (0A000)', () => {
    const { s, text } = session('statement');
    assert.equal(run(s, 'BEGIN').local, Local.Answered);
    assert.match(text(), /0A000/);
  });
});
