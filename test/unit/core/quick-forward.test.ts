/**
 * The quick forward path (SessionCore.quickForward, issue 17 item 9): a read that is one simple
 * Query of the same shape and verdict as the session's last request, when nothing that request's
 * plan read has changed, is sent on that plan without being framed, queued or planned. These show
 * what it still does (every side effect of the full path), and that each condition listed in
 * SessionCore.quickRefusal sends the request down the full path: each test asserts the condition's
 * own refusal, so it fails if that condition is removed.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeCore, FakeConn, type CoreFixture, type CoreOptions } from './core-harness';
import { cstr, i16, i32, msg, u8 } from '../../fixtures/bytes';
import { NodeRole, NodeStatus } from '../../../src/cluster/cluster';
import { noteTermination } from '../../../src/core/identity-check';
import { buildRoutingContext } from '../../../src/core/routing-context';
import type { SessionCore } from '../../../src/core/session-core';

const Q = (sql: string): Buffer => msg('Q', cstr(sql));
const P = (name: string, sql: string): Buffer => msg('P', cstr(name), cstr(sql), i16(0));
const B = (portal: string, stmt: string): Buffer => msg('B', cstr(portal), cstr(stmt), i16(0), i16(0), i16(0));
const E = (): Buffer => msg('E', cstr(''), i32(0));
const S = msg('S');
const Z = (s = 'I'): Buffer => msg('Z', u8(s));
const C = (tag: string): Buffer => msg('C', cstr(tag));
const D = (v: string): Buffer => msg('D', i16(1), i32(v.length), Buffer.from(v));
const rows = (v = '1', s = 'I'): Buffer => Buffer.concat([msg('T', i16(0)), D(v), C('SELECT 1'), Z(s)]);
const FATAL = (code: string): Buffer => msg('E', u8('S'), cstr('FATAL'), u8('V'), cstr('FATAL'), u8('C'), cstr(code), u8('M'), cstr('terminating'), u8(0));
const read = (aid: number): Buffer => Q(`SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};`);
const MAX = 1 << 30;

type Poke = { -readonly [K in keyof SessionCore]: SessionCore[K] } & Record<string, unknown>;
const poke = (f: CoreFixture): Poke => f.core as unknown as Poke;
const mutableHost = (f: CoreFixture): Record<string, unknown> => f.host as unknown as Record<string, unknown>;

/** A session whose last request (aid 1) was sent on the full path and answered: the next read like it may be quick. */
async function primed(o: CoreOptions = {}): Promise<CoreFixture> {
  const f = await makeCore({ weights: [1, 0, 0], ...o });
  const node = (o.weights ?? [1, 0, 0])[0] === 1 ? 0 : 1;
  f.send(read(1));
  await f.settle(); // (a standby's connection is opened first)
  assert.equal(f.core.quickForwards, 0);
  f.answer(node, rows());
  f.received();
  f.conns.get(node)?.take();
  return f;
}

/** The refusal for the next read like the template, and that sending it takes the full path all the same. */
function refused(f: CoreFixture, why: string, next = read(2)): void {
  assert.equal(f.core.quickRefusal(next, MAX), why);
  const before = f.core.quickForwards;
  f.send(next);
  assert.equal(f.core.quickForwards, before, 'sent on the quick path');
}

describe('quick forward path: what it does', () => {
  test('a read like the last one is sent as it came, answered through the full path, counted, and kept as the last statement', async () => {
    const f = await primed();
    const conn = f.conns.get(0)!;
    const counters = f.cluster.node(0)!.counters;
    const selects = counters.select_cnt;
    let latencies = 0;
    mutableHost(f).observeLatency = () => { latencies++; };
    assert.equal(f.core.quickRefusal(read(2), MAX), '');
    f.send(read(2));
    assert.equal(f.core.quickForwards, 1);
    assert.deepEqual(conn.take(), read(2));
    assert.equal(conn.lastStatement, 'SELECT abalance FROM pgbench_accounts WHERE aid = 2;');
    assert.equal(counters.select_cnt, selects + 1);
    assert.equal(f.core.busy, true);
    f.answer(0, rows('22'));
    assert.deepEqual(f.received(), rows('22'));
    assert.equal(latencies, 1);
    assert.equal(f.core.busy, false);
    // And again: the quick path leaves its template in place.
    for (let aid = 3; aid < 10; aid++) {
      f.send(read(aid));
      assert.deepEqual(conn.take(), read(aid));
      f.answer(0, rows(String(aid)));
      assert.deepEqual(f.received(), rows(String(aid)));
    }
    assert.equal(f.core.quickForwards, 8);
    assert.equal(counters.select_cnt, selects + 8);
  });

  test('an answer split across chunks, with an error, or with a ParameterStatus goes through the link scanner as on the full path', async () => {
    const f = await primed();
    const conn = f.conns.get(0)!;
    f.send(read(2));
    const ans = rows('x');
    f.answer(0, ans.subarray(0, 3), ans.subarray(3, 11), ans.subarray(11));
    assert.deepEqual(f.received(), ans);
    const err = Buffer.concat([msg('E', u8('S'), cstr('ERROR'), u8('C'), cstr('57014'), u8('M'), cstr('canceled'), u8(0)), Z()]);
    f.send(read(3));
    f.answer(0, err);
    assert.deepEqual(f.received(), err);
    const ps = Buffer.concat([msg('S', cstr('application_name'), cstr('x')), rows()]);
    f.send(read(4));
    f.answer(0, ps);
    assert.deepEqual(f.received(), ps);
    assert.equal(conn.params.get('application_name'), 'x');
    assert.equal(f.core.quickForwards, 3);
  });

  test('a read balanced to a standby that goes away before answering runs again elsewhere (retryable, as planned)', async () => {
    const f = await primed({ weights: [0, 1, 0] });
    f.send(read(2));
    assert.equal(f.core.quickForwards, 1);
    assert.deepEqual(f.conns.get(1)!.take(), read(2));
    f.answer(1, FATAL('57P01'));
    f.core.onBackendClosed(1, 'server closed the connection');
    await f.settle();
    const other = [0, 2].find((n) => f.conns.get(n)?.written.length);
    assert.notEqual(other, undefined, 'the read ran again on another node');
    assert.deepEqual(f.conns.get(other!)!.take(), read(2));
    f.answer(other!, rows('2'));
    assert.deepEqual(f.received(), rows('2'));
  });

  test('the full path forgets the template: a write, a BEGIN, a SET, an extended request', async () => {
    for (const between of [Q('UPDATE t SET a = 1'), Q('BEGIN'), Q('SET work_mem = 1024'), Buffer.concat([P('', 'SELECT 1'), B('', ''), E(), S])]) {
      const f = await primed();
      f.send(between);
      assert.equal(f.core.quickForwards, 0);
      refused(f, 'no template');
    }
  });
});

describe('quick forward path: each condition sends the request down the full path', () => {
  test('1. no template: the first request', async () => {
    const f = await makeCore({ weights: [1, 0, 0] });
    refused(f, 'no template');
  });

  test('1. no template: the last request was a write', async () => {
    const f = await makeCore({ weights: [1, 0, 0] });
    f.send(Q('INSERT INTO t VALUES (1)'));
    f.answer(0, Buffer.concat([C('INSERT 0 1'), Z()]));
    refused(f, 'no template', Q('INSERT INTO t VALUES (2)'));
  });

  test('2. not one whole Query: two in a read, a partial one, another message', async () => {
    const f = await primed();
    assert.equal(f.core.quickRefusal(Buffer.concat([read(2), read(3)]), MAX), 'not one Query');
    assert.equal(f.core.quickRefusal(read(2).subarray(0, 10), MAX), 'not one Query');
    assert.equal(f.core.quickRefusal(Buffer.concat([P('', 'SELECT 1'), S]), MAX), 'not one Query');
    assert.equal(f.core.quickRefusal(read(2), read(2).length - 2), 'not one Query', 'beyond max_message_size');
    const inner = Buffer.from(read(2));
    inner[12] = 0;
    assert.equal(f.core.quickRefusal(inner, MAX), 'not one Query', 'a NUL inside its text');
    refused(f, 'not one Query', Buffer.concat([read(2), read(3)]));
  });

  test('3. not at rest: the client socket is full', async () => {
    const f = await primed();
    poke(f).clientFull = true;
    refused(f, 'not at rest');
  });

  test('3. not at rest: a request is queued', async () => {
    const f = await primed();
    const q = (f.core as unknown as { queue: unknown[] }).queue;
    q.push({ data: read(9), term: 2 });
    assert.equal(f.core.quickRefusal(read(2), MAX), 'not at rest');
    q.length = 0;
  });

  // Every field of condition 3, one at a time (each assertion fails if its field's test is removed).
  const atRest: [string, unknown][] = [
    ['closed', true], ['leaving', () => {}], ['rCount', 1], ['driving', 1], ['blocked', 1], ['parked', {}], ['refused', {}],
    ['skipToSync', true], ['leaseWaiting', true], ['leaseAbandoned', true], ['answering', 1], ['copyTarget', {}], ['held', []], ['clientFull', true], ['clientPaused', true], ['backendFull', 1], ['stickyNode', 0],
  ];
  for (const [field, value] of atRest) {
    test(`3. not at rest: ${field}`, async () => {
      const f = await primed();
      const core = f.core as unknown as Record<string, unknown>;
      const was = core[field];
      core[field] = value;
      assert.equal(f.core.quickRefusal(read(2), MAX), 'not at rest');
      core[field] = was;
      assert.equal(f.core.quickRefusal(read(2), MAX), '');
    });
  }

  test('3. not at rest: a cancel on its way', async () => {
    const f = await primed();
    f.core.cancelling.set(f.core.link(0)!, Promise.resolve());
    assert.equal(f.core.quickRefusal(read(2), MAX), 'not at rest');
  });

  // Every field of condition 4, on the link the read goes to.
  const linkAtRest: [string, (l: Record<string, unknown>) => void][] = [
    ['half a message scanned', (l) => { l.left = 3; }], ['a header half read', (l) => { l.hdrPos = 2; }], ['COPY IN', (l) => { l.copyIn = true; }],
    ['an open sequence', (l) => { l.unsynced = true; }], ['output batched', (l) => { (l.out as Buffer[]).push(Buffer.alloc(1)); }],
    ['cleanup to send', (l) => { (l.cleanup as unknown[]).push({}); }], ['socket full', (l) => { l.full = true; }],
    ['a goodbye', (l) => { l.goodbye = { code: '57P01', frame: null, forwarded: false }; }], ['failed transaction', (l) => { l.txStatus = 'E'.charCodeAt(0); }],
  ];
  for (const [what, set] of linkAtRest) {
    test(`4. link not at rest: ${what}`, async () => {
      const f = await primed();
      set(f.core.link(0) as unknown as Record<string, unknown>);
      assert.equal(f.core.quickRefusal(read(2), MAX), 'link busy');
    });
  }

  test('4. a link owes an answer', async () => {
    const f = await primed();
    f.send(read(2)); // (quick) unanswered
    refused(f, 'link busy', read(3));
    f.answer(0, rows(), rows());
    assert.deepEqual(f.received(), Buffer.concat([rows(), rows()]));
  });

  test('4. a link is inside a transaction', async () => {
    const f = await primed();
    f.core.link(0)!.txStatus = 'T'.charCodeAt(0);
    assert.equal(f.core.quickRefusal(read(2), MAX), 'link busy');
  });

  test('5. the query cache is on', async () => {
    const f = await primed();
    poke(f).cache = {} as never;
    assert.equal(f.core.quickRefusal(read(2), MAX), 'query cache');
  });

  for (const flag of ['statement', 'clientMessages', 'perNodeStatement'] as const) {
    test(`5. logging: ${flag}`, async () => {
      const f = await primed();
      mutableHost(f).logFlags = { ...f.host.logFlags, [flag]: true };
      refused(f, 'logging');
    });
  }

  test('5. logging: notice_per_node_statement', async () => {
    const f = await primed();
    mutableHost(f).noticePerNode = true;
    assert.equal(f.core.quickRefusal(read(2), MAX), 'logging');
  });

  test('6. transaction: inside one, deferred BEGIN, failed, SET staged', async () => {
    for (const [field, value] of [['deferredBegin', 'BEGIN'], ['txFailed', true], ['stagedNode', 0]] as const) {
      const f = await primed();
      (f.core as unknown as Record<string, unknown>)[field] = value;
      assert.equal(f.core.quickRefusal(read(2), MAX), 'transaction', field);
    }
    const f = await primed();
    f.core.route.inTransaction = true;
    assert.equal(f.core.quickRefusal(read(2), MAX), 'transaction');
  });

  test('6. routing state: the session wrote, or made a temporary table', async () => {
    const f = await primed();
    f.core.route.wroteInSession = true;
    assert.equal(f.core.quickRefusal(read(2), MAX), 'routing state');
    f.core.route.wroteInSession = false;
    f.core.route.tempTables.add('x');
    refused(f, 'routing state');
  });

  test('7. settings: a reload (routing, config, classifier), statement-level balancing', async () => {
    let f = await primed();
    mutableHost(f).routing = buildRoutingContext(f.config, f.host.routing.volatility);
    refused(f, 'settings');
    f = await primed();
    mutableHost(f).config = { ...f.config };
    assert.equal(f.core.quickRefusal(read(2), MAX), 'settings');
    f = await primed();
    mutableHost(f).classifier = { ...f.host.classifier };
    assert.equal(f.core.quickRefusal(read(2), MAX), 'settings');
    f = await primed({ conf: 'statement_level_load_balance = on\n' });
    assert.equal(f.core.quickRefusal(read(2), MAX), 'settings');

  });

  test('7. read_your_writes: the session wrote (its reads may have to wait for a standby)', async () => {
    const f = await primed({ weights: [0, 1, 0], conf: 'read_your_writes = on\n' });
    assert.equal(f.core.quickRefusal(read(2), MAX), '', 'nothing written yet');
    f.core.ryw.noteWrite();
    refused(f, 'read-your-writes');
  });

  test('7. session settings changed (a SET committed)', async () => {
    const f = await primed();
    f.core.state.version++;
    refused(f, 'session settings');
  });

  test('7. cluster: the node goes down, a new primary, the standby lags', async () => {
    let f = await primed({ weights: [0, 1, 0] });
    f.cluster.setStatus(1, NodeStatus.Down, 'test');
    assert.equal(f.core.quickRefusal(read(2), MAX), 'cluster');
    f = await primed({ weights: [0, 1, 0] });
    f.cluster.setRole(0, NodeRole.Standby, 'test');
    f.cluster.setRole(2, NodeRole.Primary, 'test');
    assert.equal(f.core.quickRefusal(read(2), MAX), 'cluster');
    f = await primed({ weights: [0, 1, 0] });
    f.host.routing.lag = () => ({ lagging: true, delay: 100 });
    refused(f, 'cluster');
  });

  test('7. load balance: another node chosen, a node failed recently', async () => {
    const f = await primed();
    f.core.lbNode = 2;
    assert.equal(f.core.quickRefusal(read(2), MAX), 'load balance');
    f.core.lbNode = 0;
    f.core.planner.failedAt.set(1, { at: Date.now(), primary: 0 });
    assert.equal(f.core.quickRefusal(read(2), MAX), 'load balance');
  });

  test('8. session pooling: another connection', async () => {
    const f = await primed();
    f.core.attach(0, new FakeConn(0, 4242));
    refused(f, 'connection');
  });

  test('8. session pooling: the client\'s own backend is to be checked first (pg_terminate_backend sent)', async () => {
    const f = await primed({ weights: [0, 1, 0] });
    noteTermination();
    refused(f, 'identity check');
  });

  test('8. transaction pooling: pinned, or holding a connection', async () => {
    const idle: FakeConn[] = [];
    const f = await primed({ pooling: 'transaction', idle });
    assert.equal(f.core.quickRefusal(read(2), MAX), '');
    f.core.pins.forced = 'test';
    assert.equal(f.core.quickRefusal(read(2), MAX), 'pinned');
    f.core.pins.forced = '';
    f.core.attach(0, idle.pop()!);
    refused(f, 'connection');
  });

  test('9. another statement: another shape, another verdict', async () => {
    const f = await primed();
    assert.equal(f.core.quickRefusal(Q('SELECT abalance FROM pgbench_branches WHERE bid = 1;'), MAX), 'other statement');
    refused(f, 'other statement', Q('SELECT pg_backend_pid()'));
  });
});

describe('quick forward path: transaction pooling, two clients on one connection (default_pool_size = 1)', () => {
  async function pair(): Promise<{ a: CoreFixture; b: CoreFixture; conn: FakeConn }> {
    const idle: FakeConn[] = [];
    const a = await primed({ pooling: 'transaction', idle });
    const conn = a.conns.get(0)!;
    assert.deepEqual(idle, [conn], 'the lease ended after the answer');
    const b = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', idle, login: false });
    b.send(read(100));
    assert.deepEqual(conn.take(), read(100));
    b.answer(0, rows());
    b.received();
    assert.deepEqual(idle, [conn]);
    return { a, b, conn };
  }

  test('the lease is taken for the quick request and given back after its answer, through the same fate', async () => {
    const { a, conn, b } = await pair();
    const idle = a.host.idle;
    a.send(read(2));
    assert.equal(a.core.quickForwards, 1);
    assert.deepEqual(idle, [], 'leased');
    assert.deepEqual(conn.take(), read(2));
    // The other client: no idle connection, so the full path, waiting in line (the pool's
    // hand-off, as node-pool.ts does it: the connection given back goes to the waiter).
    let lease: ((c: FakeConn) => void) | null = null;
    b.host.openLink = () => new Promise((r) => { lease = r; });
    const closeLink = a.host.closeLink;
    (a.host as { closeLink: typeof closeLink }).closeLink = (c, reusable, why, reset) => {
      closeLink(c, reusable, why, reset);
      if (lease !== null && idle.length > 0) {
        b.conns.set(0, idle[0]!);
        lease(idle.pop()!);
        lease = null;
      }
    };
    assert.equal(b.core.quickRefusal(read(101), MAX), '');
    b.send(read(101));
    assert.equal(b.core.quickForwards, 0);
    assert.equal(conn.written.length, 0, 'never written to a connection mid-answer');
    a.answer(0, rows('a2'));
    assert.deepEqual(a.received(), rows('a2'));
    assert.equal(a.core.link(0)?.conn ?? null, null, 'given back');
    await b.settle();
    assert.deepEqual(conn.take(), read(101), 'the waiting client got it once the answer was over');
    b.answer(0, rows('b101'));
    assert.deepEqual(b.received(), rows('b101'));
    assert.deepEqual(a.received(), Buffer.alloc(0), 'nothing of b reached a');
    assert.deepEqual(b.host.idle, [conn]);
  });

  test('a client\'s settings are replayed on the shared connection before its quick read; the other\'s never leak', async () => {
    const { a, b, conn } = await pair();
    a.send(Q('SET work_mem = 1234'));
    assert.match(conn.take().toString('latin1'), /SET work_mem = 1234/);
    a.answer(0, Buffer.concat([C('SET'), Z()]));
    a.received();
    a.send(read(3)); // full path (after the SET): a new template
    conn.take();
    a.answer(0, rows());
    a.received();
    // b's quick read on the connection a used last: a's setting is taken back first.
    b.send(read(102));
    assert.equal(b.core.quickForwards, 1);
    const sent = conn.take().toString('latin1');
    assert.match(sent, /RESET work_mem|RESET ALL/);
    assert.ok(sent.endsWith(read(102).toString('latin1')));
    b.answer(0, Buffer.concat([C('RESET'), Z()]), rows('b'));
    assert.deepEqual(b.received(), rows('b'), 'the replay\'s answer is swallowed');
    // a's quick read: its setting again.
    a.send(read(4));
    assert.equal(a.core.quickForwards, 1);
    const again = conn.take().toString('latin1');
    assert.match(again, /SET work_mem = 1234/);
    a.answer(0, Buffer.concat([C('SET'), Z()]), rows('a'));
    assert.deepEqual(a.received(), rows('a'));
  });
});
