/**
 * What one simple-protocol read costs pgmaitre's core in objects (issue 17, item 9): the work
 * per request is what the Node pipe does not do, and at 64 clients it runs with cold caches, so
 * each object made per request costs more than its allocation. These lock in the ones removed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as v8 from 'node:v8';
import { makeCore } from './core-harness';
import { encodeQuery } from '../../../src/protocol/frontend';
import { encodeReadyForQuery } from '../../../src/protocol/backend';
import { TxStatus } from '../../../src/protocol/codes';
import { routeStatement, type RouteState } from '../../../src/router/router';
import { Classifier } from '../../../src/classify';
import { maybeNodeLocal, Planner } from '../../../src/core/planner';
import { RequestInfo } from '../../../src/core/request';
import { SessionCore } from '../../../src/core/session-core';
import { prepareLink } from '../../../src/core/side-requests';
import { ClientSession } from '../../../src/frontend/session';
import { performance } from 'node:perf_hooks';

function frame(code: string, body: Buffer): Buffer {
  const b = Buffer.alloc(5 + body.length);
  b[0] = code.charCodeAt(0);
  b.writeInt32BE(body.length + 4, 1);
  body.copy(b, 5);
  return b;
}

const ROWS = Buffer.concat([
  frame('T', Buffer.from([0, 1, 0x61, 0, 0, 0, 0, 0x40, 0, 3, 0, 0, 0, 0x17, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0])),
  frame('D', Buffer.from([0, 1, 0, 0, 0, 1, 0x30])), frame('C', Buffer.from('SELECT 1\0')), encodeReadyForQuery(TxStatus.Idle),
]);

function newSpaceUsed(): number {
  return v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_used_size;
}

test('a read routed to any node shares one route object (none made per statement)', async () => {
  const f = await makeCore({ weights: [1, 0, 0] });
  const cls = (f.host.classifier as Classifier).classify('SELECT abalance FROM pgbench_accounts WHERE aid = 1');
  const route = (f.core as unknown as { route: RouteState }).route;
  const a = routeStatement(cls, route, f.host.routing.router);
  const b = routeStatement(cls, route, f.host.routing.router);
  assert.equal(a.to, 'balance');
  assert.equal(a, b, 'a route object per read');
  assert.ok(Object.isFrozen(a));
});

test('a pgbench -S request allocates no closure in the planner (bytes per request through the core)', async () => {
  const f = await makeCore({ weights: [1, 0, 0] });
  const reqs = Array.from({ length: 64 }, (_, i) => encodeQuery(`SELECT abalance FROM pgbench_accounts WHERE aid = ${1 + i};`));
  const conn = (): { written: Buffer[] } => f.conns.get(0)! as unknown as { written: Buffer[] };
  const one = (i: number): void => {
    f.send(reqs[i % 64]!);
    f.answer(0, ROWS);
    f.client.length = 0;
    conn().written.length = 0;
  };
  for (let i = 0; i < 20_000; i++) one(i); // V8 compiles the path
  let best = Infinity;
  for (let k = 0; k < 30; k++) {
    const before = newSpaceUsed();
    for (let i = 0; i < 64; i++) one(i);
    const after = newSpaceUsed();
    if (after >= before) best = Math.min(best, (after - before) / 64);
  }
  if (process.env.SHOW_BYTES) console.log(`bytes per request: ${best.toFixed(0)}`);
  // Through this harness (its fake ports record what they are sent, ~500 B of it): 1,338 B before,
  // 1,042 after the planner's consider() closure and its context, the EXECUTE callback and the
  // route object of a read were removed (bench/micro/session-scaling.ts, ALLOC=1, 64 sessions:
  // 886 -> 726 B); ~630 after bookkeeping()'s token closure, the iterators of for...of over a
  // class's frozen arrays (planner, dispatched) and the request's view of the framer's buffer
  // went (session-scaling, 64 sessions: 590 -> 134 B against the c24f397 build; what is left is the
  // query's text and the clock's numbers).
  assert.ok(best < 800, `${best.toFixed(0)} bytes per request`);
});

test('maybeNodeLocal is /pg_/i without a regular expression', () => {
  const re = /pg_/i;
  const names = ['pgbench_accounts', 'pg_stat_activity', 'PG_LOCKS', 'public.pg_cursors', '"Pg_x"', 'p_g', 'pg', 'pgpg_', 'apg_b', 'xpG_',
    '_pg', 'p_', 'g_', 'pg__', 'ṗg_', 'P\u0067_', 'schema."PG_stat"', 'accounts', '', '_', '__', 'pgg_', 'ppg_'];
  for (let i = 0; i < 2000; i++) {
    let n = '';
    const len = i % 7;
    for (let k = 0; k < len; k++) n += 'pPgG_a.'[(i * 31 + k * 17 + (i >> 3)) % 7];
    names.push(n);
  }
  for (const n of names) assert.equal(maybeNodeLocal(n), re.test(n), n);
});

test('one clock read fewer per answer: the latency\'s end time is the running mean\'s', async () => {
  const f = await makeCore({ weights: [1, 0, 0] });
  const seen: { seconds: number; now: number | undefined }[] = [];
  (f.host as unknown as { observeLatency: (n: number, s: number, now?: number) => void }).observeLatency = (_n, seconds, now) => seen.push({ seconds, now });
  const real = performance.now;
  let reads = 0;
  performance.now = function now(this: typeof performance): number {
    reads++;
    return real.call(this);
  };
  try {
    f.send(encodeQuery('SELECT abalance FROM pgbench_accounts WHERE aid = 1;'));
    f.answer(0, ROWS);
  } finally {
    performance.now = real;
  }
  assert.equal(seen.length, 1);
  assert.equal(typeof seen[0]!.now, 'number', 'the end time is passed on');
  assert.equal(reads, 2, 'one read when the request is sent, one when its answer is complete');
});

test('the request scratch is emptied once per request, not again after its answer', async () => {
  const f = await makeCore({ weights: [1, 0, 0] });
  const proto = RequestInfo.prototype as unknown as { forget: () => void };
  const real = proto.forget;
  let forgets = 0;
  proto.forget = function forget(this: RequestInfo): void {
    forgets++;
    real.call(this);
  };
  try {
    for (let i = 0; i < 10; i++) {
      f.send(encodeQuery(`SELECT abalance FROM pgbench_accounts WHERE aid = ${i + 1};`));
      f.answer(0, ROWS);
    }
  } finally {
    proto.forget = real;
  }
  assert.equal(f.client.filter((b) => b.includes(Buffer.from('SELECT 1'))).length, 10, 'every answer reached the client');
  assert.equal(forgets, 10, 'one per request (the drive() after each answer found nothing read since)');
});

test('the planner\'s per-request functions make no closures (a function with captured variables allocates its context on every call)', () => {
  // readNode()'s fast path runs for every balanced read: its closures (the slow path's
  // lbCandidates/find callbacks, capturing `this` and `lb`) made it allocate a context per call
  // (~50 B per request in bench/micro/lease-wait.ts); make() had one over `info`. Both moved out.
  // The same for the session core's write and lease wait (writeTo's drain callback over `link`,
  // waitLease's callback over `this`) and the client session's lease wait (over nodeId, done, this).
  const checks: [string, object, string[]][] = [
    ['Planner', Planner.prototype, ['readNode', 'make']],
    ['SessionCore', SessionCore.prototype, ['writeTo', 'waitLease', 'drive', 'step', 'executePart', 'onBackendData', 'forward', 'onFrame', 'flush']],
    ['ClientSession', ClientSession.prototype, ['leaseLater', 'onView', 'onFrame', 'write', 'onServerData']],
    ['side-requests', { prepareLink }, ['prepareLink']],
  ];
  for (const [cls, proto, names] of checks) {
    for (const name of names) {
      const src = (proto as Record<string, (...a: unknown[]) => unknown>)[name]!.toString();
      assert.ok(!src.includes('=>') && !/\bfunction\s*\w*\s*\(/.test(src.slice(src.indexOf('{'))), `${cls}.${name} makes a closure`);
    }
  }
});
