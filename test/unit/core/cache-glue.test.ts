/** cache-glue.ts: the session's side of the query cache, with a recording cache and no core, no socket. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cacheSettled, consultCache, endsTransaction, makeCacheView, releaseHeld, type CacheSession } from '../../../src/core/cache-glue';
import { CacheStep, type CachePort } from '../../../src/core/cache-port';
import { Statements } from '../../../src/core/statements';
import { SessionState } from '../../../src/core/session-state';
import { ExpectKind, Link, Term } from '../../../src/core/link';
import { newRequest, RequestInfo } from '../../../src/core/request';
import { Plan } from '../../../src/core/planner';
import { encodeBind, encodeDescribe, encodeExecute, encodeParse, encodeQuery, encodeSync } from '../../../src/protocol/frontend';
import { TxStatus } from '../../../src/protocol/codes';
import { FakeConn } from './core-harness';

function cache(step: CacheStep, o: { collecting?: boolean; synced?: Promise<unknown> | null } = {}) {
  const log: string[] = [];
  const c: CachePort = {
    consult: () => step,
    early: () => false,
    quick: () => false,
    hitClass: null,
    waitFor: Promise.resolve(),
    holdAnswers: false,
    collecting: o.collecting ?? false,
    hitAnswer: (status: number) => Buffer.concat([Buffer.from('HIT'), Buffer.from([0x5a, 0, 0, 0, 5, status])]),
    sent: () => { log.push('sent'); },
    collect: () => { log.push('collect'); },
    collected: (status, ok) => { log.push(`collected ${status} ${ok}`); },
    synced: () => o.synced ?? null,
  };
  return { c, log };
}

function session(port: CachePort) {
  const links = [new Link(0), new Link(1)];
  links[0]!.conn = new FakeConn(0, 100);
  links[1]!.conn = new FakeConn(1, 101);
  const client: Buffer[] = [];
  const blocked: string[] = [];
  let accept = true;
  const s: CacheSession = {
    host: { cluster: { primaryId: () => 0 }, classifier: { classify: () => ({}) } } as unknown as CacheSession['host'],
    cache: port,
    cacheView: null,
    collectNode: -1,
    held: null,
    clientFull: false,
    closed: false,
    stickyNode: -1,
    beginSql: 'BEGIN',
    links,
    client: { write: (b) => { client.push(Buffer.from(b)); return accept; } },
    statements: new Statements(),
    state: new SessionState(),
    planner: { recentlyFailed: () => false },
    connected: function* () { for (const l of links) if (l.conn !== null) yield l; },
    allAnswered: () => true,
    txStatus: () => TxStatus.Idle,
    flush: () => {},
    block: (_p, what) => { blocked.push(what); },
  };
  (s as { cacheView: CacheSession['cacheView'] }).cacheView = makeCacheView(s);
  return { s, links, client, blocked, full: () => { accept = false; } };
}

function query(sql: string) {
  const req = newRequest();
  req.data = encodeQuery(sql);
  req.term = Term.Query;
  return { req, info: new RequestInfo().read(req.data) };
}

describe('consultCache', () => {
  test('a hit is answered here with the session\'s ReadyForQuery', () => {
    const { c } = cache(CacheStep.Hit);
    const { s, client } = session(c);
    const { req, info } = query('SELECT 1');
    assert.equal(consultCache(s, req, info, new Plan()), true);
    const out = Buffer.concat(client);
    assert.equal(out.subarray(0, 3).toString(), 'HIT');
    assert.deepEqual([...out.subarray(3)], [0x5a, 0, 0, 0, 5, TxStatus.Idle]);
  });
  test('an extended hit: the planner\'s classes reach the cache, the statement is recorded without classifying again', () => {
    const seen: (readonly unknown[])[] = [];
    const { c } = cache(CacheStep.Hit);
    c.consult = (_d, _i, _v, classes) => { seen.push(classes); return CacheStep.Hit; };
    const { s } = session(c);
    let classified = 0;
    (s.host as { classifier: unknown }).classifier = { classify: () => { classified++; return {}; } };
    const sql = 'SELECT abalance FROM pgbench_accounts WHERE aid = $1';
    const plan = new Plan();
    const cls = { kind: 'read' } as unknown as (typeof plan.classes)[number];
    plan.classes.push(cls);
    for (let i = 0; i < 2; i++) {
      const req = newRequest();
      req.data = Buffer.concat([encodeParse('', sql), encodeBind('', '', ['7']), encodeDescribe('P', ''), encodeExecute(), encodeSync()]);
      req.term = Term.Sync;
      assert.equal(consultCache(s, req, new RequestInfo().read(req.data), plan), true);
    }
    assert.equal(seen.length, 2);
    assert.equal(seen[0]![0], cls);
    assert.equal(classified, 0, 'the text is not classified again');
    const st = s.statements.protocol.get('');
    assert.equal(st?.sql, sql);
    assert.equal(st?.cls, cls);
    assert.equal(st?.nodes.size, 0, 'no node has it: a later Bind re-parses it where it runs');
  });
  test('a hit\'s Parse: the same unnamed statement leaves every backend, a named one of the same text stays where it is, another text replaces it with a copy', () => {
    const { c } = cache(CacheStep.Hit);
    const { s } = session(c);
    const sql = 'SELECT abalance FROM pgbench_accounts WHERE aid = $1';
    const plan = new Plan();
    plan.classes.push({ kind: 'read' } as unknown as (typeof plan.classes)[number]);
    const hit = (name: string, text: string, params = ['7']): Buffer => {
      const req = newRequest();
      req.data = Buffer.concat([encodeParse(name, text), encodeBind('', name, params), encodeDescribe('P', ''), encodeExecute(), encodeSync()]);
      req.term = Term.Sync;
      assert.equal(consultCache(s, req, new RequestInfo().read(req.data), plan), true);
      return req.data;
    };
    // The unnamed statement as a miss left it: parsed on node 1.
    s.statements.parsed('', Buffer.from(encodeParse('', sql)), sql, plan.classes[0]!, 1);
    hit('', sql);
    assert.equal(s.statements.protocol.get('')?.nodes.size, 0, 'a later Bind re-parses it where it runs');
    hit('', sql);
    assert.equal(s.statements.protocol.get('')?.nodes.size, 0);
    // A named statement of the same text on node 0: a hit's Parse of it changes nothing.
    s.statements.parsed('s1', encodeParse('s1', sql), sql, plan.classes[0]!, 0);
    hit('s1', sql);
    assert.deepEqual([...s.statements.protocol.get('s1')!.nodes], [0]);
    // Another text in the unnamed statement: recorded, on no backend, its frame a copy of the request's.
    const other = 'SELECT bid FROM pgbench_accounts WHERE aid = $1';
    const data = hit('', other);
    const st = s.statements.protocol.get('')!;
    assert.equal(st.sql, other);
    assert.equal(st.nodes.size, 0);
    assert.notEqual(st.frame.buffer, data.buffer, 'not a view of the request');
    assert.deepEqual(st.frame, encodeParse('', other));
  });
  test('a lookup blocks the queue; a pass goes on', () => {
    const w = session(cache(CacheStep.Wait).c);
    const q = query('SELECT 1');
    assert.equal(consultCache(w.s, q.req, q.info, new Plan()), false);
    assert.deepEqual(w.blocked, ['query cache lookup']);
    const p = session(cache(CacheStep.Pass).c);
    assert.equal(consultCache(p.s, q.req, q.info, new Plan()), null);
    assert.equal(p.s.collectNode, -1);
  });
  test('a miss to be stored is sent to the primary (filled from the primary only) and collected', () => {
    const { s } = session(cache(CacheStep.Pass, { collecting: true }).c);
    const { req, info } = query('SELECT 1');
    const plan = new Plan();
    plan.node = 1;
    plan.retryable = true;
    assert.equal(consultCache(s, req, info, plan), null);
    assert.equal(plan.node, 0);
    assert.equal(plan.retryable, false);
    assert.equal(s.collectNode, 0);
  });
});

describe('answers held for an invalidation', () => {
  test('a ReadyForQuery idle completed on a link ends a transaction', () => {
    const { s, links } = session(cache(CacheStep.Pass).c);
    assert.equal(endsTransaction(s, 0), false);
    const e = links[0]!.expect(ExpectKind.Client, false, 0, Term.Query);
    e.status = TxStatus.Idle;
    links[0]!.done.push(e);
    assert.equal(endsTransaction(s, 0), true);
    assert.equal(endsTransaction(s, -1), false);
  });
  test('held answers are written in one piece; a full client socket pauses the backends', () => {
    const { s, client, links, full } = session(cache(CacheStep.Pass).c);
    s.held = [Buffer.from('a'), Buffer.from('b')];
    full();
    releaseHeld(s);
    assert.equal(Buffer.concat(client).toString(), 'ab');
    assert.equal(s.held, null);
    assert.equal(s.clientFull, true);
    assert.ok(links.every((l) => (l.conn as FakeConn).paused));
  });
  test('the collected answer ends with its request; an invalidation to wait for blocks the queue', () => {
    const { c, log } = cache(CacheStep.Pass, { synced: new Promise(() => {}) });
    const { s, links, blocked } = session(c);
    s.collectNode = 0;
    const e = links[0]!.expect(ExpectKind.Client, false, 0, Term.Query);
    e.status = TxStatus.Idle;
    e.sync = true;
    cacheSettled(s, links[0]!, e);
    assert.deepEqual(log, [`collected ${TxStatus.Idle} true`]);
    assert.equal(s.collectNode, -1);
    assert.deepEqual(blocked, ['query cache invalidation']);
  });
});
