/**
 * Hits recognised from a request's exact bytes (SessionCache.quick → hotHit): a lone Query, a
 * Parse/Bind/Describe/Execute/Sync of the unnamed statement, a Bind of a prepared statement —
 * answered before anything is decoded, in any session of the process with the same user,
 * database and settings. Each test that it serves what it must, and never what it must not:
 * inside a transaction that wrote or failed, in a REPEATABLE READ transaction, after an invalidation, for
 * another user or database or settings, after expiry or eviction, once the statement changed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as v8 from 'node:v8';
import { encodeBind, encodeDescribe, encodeExecute, encodeParse, encodeQuery, encodeSync } from '../../../src/protocol/frontend';
import { QueryCache } from '../../../src/cache/query-cache';
import { BOUND, PARSED, RFQ, SQL, frame, rows, setup, world, type CacheFixture } from './cache-harness';

const TEXT = (i: number): string => `SELECT abalance FROM pgbench_accounts WHERE aid = ${i};`;
const simple = (i: number): Buffer => encodeQuery(TEXT(i));
const extended = (i: number): Buffer => Buffer.concat([encodeParse('', SQL), encodeBind('', '', [String(i)]), encodeDescribe('P', ''), encodeExecute('', 0), encodeSync()]);
const prepared = (i: number): Buffer => Buffer.concat([encodeBind('', 'P0_1', [String(i)]), encodeDescribe('P', ''), encodeExecute('', 0), encodeSync()]);
const COMPLETE = (tag: string): Buffer => frame('C', Buffer.from(`${tag}\0`));

type Mode = 'simple' | 'extended' | 'prepared';
const request = (mode: Mode, i: number): Buffer => (mode === 'simple' ? simple(i) : mode === 'extended' ? extended(i) : prepared(i));
/** The backend's answer to request(mode, i), without its ReadyForQuery. */
const answerOf = (mode: Mode, i: number): Buffer => (mode === 'simple' ? rows(i) : mode === 'extended' ? Buffer.concat([PARSED, BOUND, rows(i)]) : Buffer.concat([BOUND, rows(i)]));

/** Counts the cache's answers by path: early() (after decoding) and quick() (from the bytes). */
function count(s: CacheFixture): { early: number; quick: number } {
  const calls = { early: 0, quick: 0 };
  const early = s.cache.early.bind(s.cache);
  const quick = s.cache.quick.bind(s.cache);
  s.cache.early = (...a) => { const r = early(...a); if (r) calls.early++; return r; };
  s.cache.quick = (...a) => { const r = quick(...a); if (r) calls.quick++; return r; };
  return calls;
}

/** A session (on `w` if given) that prepared P0_1 when `mode` is prepared. */
async function session(mode: Mode, opts: Parameters<typeof setup>[0] = {}): Promise<CacheFixture> {
  const s = await setup(opts);
  if (mode === 'prepared') {
    s.send(Buffer.concat([encodeParse('P0_1', SQL), encodeSync()]));
    s.answer(Buffer.concat([PARSED, RFQ('I')]));
  }
  s.client.length = 0;
  s.backend.length = 0;
  return s;
}

/** Sends request i; answers it from the fake primary if it was sent; returns whether it was a hit. */
function ask(s: CacheFixture, mode: Mode, i: number, status = 'I'): boolean {
  s.client.length = 0;
  s.backend.length = 0;
  s.send(request(mode, i));
  if (s.backend.length > 0) {
    s.answer(Buffer.concat([answerOf(mode, i), RFQ(status)]));
    assert.deepEqual(Buffer.concat(s.client), Buffer.concat([answerOf(mode, i), RFQ(status)]));
    return false;
  }
  assert.deepEqual(Buffer.concat(s.client), Buffer.concat([answerOf(mode, i), RFQ(status)]), 'a hit answers as the backend did');
  return true;
}

/** Runs `sql` (answered by the primary with `tag`, then ReadyForQuery `status`). */
function run(s: CacheFixture, sql: string, tag: string, status: string): void {
  s.send(encodeQuery(sql));
  s.answer(Buffer.concat([COMPLETE(tag), RFQ(status)]));
  s.client.length = 0;
  s.backend.length = 0;
}

for (const mode of ['simple', 'extended', 'prepared'] as const) {
  test(`-M ${mode}: after one hit through early(), the same bytes hit from the index (nothing decoded, nothing classified, the stored buffer written as it is)`, async () => {
    const s = await session(mode);
    assert.equal(ask(s, mode, 1), false, 'a miss first');
    const calls = count(s);
    assert.equal(ask(s, mode, 1), true);
    assert.deepEqual(calls, { early: 1, quick: 0 });
    s.classified.length = 0;
    const written: Buffer[] = [];
    for (let k = 0; k < 3; k++) {
      assert.equal(ask(s, mode, 1), true);
      written.push(s.client[0]!);
    }
    assert.deepEqual(calls, { early: 1, quick: 3 });
    assert.equal(written[0], written[2], 'the same stored buffer each time');
    assert.deepEqual(s.classified, []);
    assert.equal(s.qc.stats.hits, 4);
  });

  test(`-M ${mode}: another session of the same user, database and settings hits from the index at once; another user's or database's does not`, async () => {
    const w = await world();
    const a = await session(mode, { world: w });
    ask(a, mode, 2);
    ask(a, mode, 2); // indexed
    const b = await session(mode, { world: w });
    const calls = count(b);
    assert.equal(ask(b, mode, 2), true);
    // (-M extended: once the session has that unnamed statement, which its first hit records.)
    assert.deepEqual(calls, mode === 'extended' ? { early: 1, quick: 0 } : { early: 0, quick: 1 });
    assert.equal(ask(b, mode, 2), true);
    assert.deepEqual(calls, mode === 'extended' ? { early: 1, quick: 1 } : { early: 0, quick: 2 });
    for (const other of [{ user: 'v' }, { database: 'e' }]) {
      const c = await session(mode, { world: w, ...other });
      assert.equal(ask(c, mode, 2), false, `${JSON.stringify(other)}: not another login's answer`);
    }
  });

  test(`-M ${mode}: not served inside a transaction that wrote; served again once it ended, with the table's new generation`, async () => {
    const s = await session(mode);
    ask(s, mode, 3);
    ask(s, mode, 3);
    assert.equal(ask(s, mode, 3), true);
    run(s, 'BEGIN', 'BEGIN', 'T');
    assert.equal(ask(s, mode, 3, 'T'), true, 'a read-only transaction still reads the cache');
    run(s, 'UPDATE pgbench_accounts SET abalance = 1 WHERE aid = 3', 'UPDATE 1', 'T');
    assert.equal(ask(s, mode, 3, 'T'), false, 'after its write');
    assert.equal(ask(s, mode, 3, 'T'), false, 'nor stored');
    run(s, 'COMMIT', 'COMMIT', 'I');
    assert.equal(ask(s, mode, 3), false, 'the commit invalidated it');
    assert.equal(ask(s, mode, 3), true);
  });

  test(`-M ${mode}: not served in a failed transaction (the server's error is the answer)`, async () => {
    const s = await session(mode);
    ask(s, mode, 15);
    ask(s, mode, 15);
    run(s, 'BEGIN', 'BEGIN', 'T');
    s.send(encodeQuery('SELECT 1/0'));
    s.answer(Buffer.concat([frame('E', Buffer.from('SERROR\0C22012\0Mdivision by zero\0\0')), RFQ('E')]));
    s.client.length = 0;
    s.backend.length = 0;
    s.send(request(mode, 15));
    assert.equal(s.backend.length, 1, 'sent to the server');
    assert.equal(s.client.length, 0);
    const aborted = frame('E', Buffer.from('SERROR\0C25P02\0Mcurrent transaction is aborted\0\0'));
    s.answer(Buffer.concat([aborted, RFQ('E')]));
    run(s, 'ROLLBACK', 'ROLLBACK', 'I');
    assert.equal(ask(s, mode, 15), true);
  });

  test(`-M ${mode}: not served in a REPEATABLE READ transaction (its own snapshot)`, async () => {
    const s = await session(mode);
    ask(s, mode, 4);
    ask(s, mode, 4);
    run(s, 'BEGIN ISOLATION LEVEL REPEATABLE READ', 'BEGIN', 'T');
    assert.equal(ask(s, mode, 4, 'T'), false);
    run(s, 'COMMIT', 'COMMIT', 'I');
    assert.equal(ask(s, mode, 4), true);
  });

  test(`-M ${mode}: after an invalidation (another session's write, everything) the indexed request is a miss`, async () => {
    const s = await session(mode);
    ask(s, mode, 5);
    ask(s, mode, 5);
    assert.equal(ask(s, mode, 5), true);
    s.qc.bump(QueryCache.genNames('d', [16398]).slice(2), 'write');
    assert.equal(ask(s, mode, 5), false, 'table generation moved on');
    ask(s, mode, 5);
    assert.equal(ask(s, mode, 5), true);
    s.qc.invalidateAll('admin');
    assert.equal(ask(s, mode, 5), false, 'everything invalidated');
    assert.equal(s.qc.shmem!.entries, 1, 'stored again');
  });

  test(`-M ${mode}: a SET changes the key; an answer expired or evicted is not served`, async () => {
    const w = await world('memqcache_expire = 60\n');
    let now = 1_000_000;
    (w.qc.shmem as unknown as { now: () => number }).now = () => now;
    const s = await session(mode, { world: w });
    ask(s, mode, 6);
    ask(s, mode, 6);
    assert.equal(ask(s, mode, 6), true);
    run(s, "SET application_name = 'x'", 'SET', 'I');
    assert.equal(ask(s, mode, 6), false, 'other settings, another key');
    ask(s, mode, 6);
    assert.equal(ask(s, mode, 6), true);
    now += 61_000;
    assert.equal(ask(s, mode, 6), false, 'expired');
    ask(s, mode, 6);
    assert.equal(ask(s, mode, 6), true);
    w.qc.shmem!.clear();
    assert.equal(ask(s, mode, 6), false, 'gone from the store');
  });
}

test('-M simple: /*NO QUERY CACHE*/ is part of the bytes and of the verdict: never served', async () => {
  const s = await session('simple', { world: await world('allow_sql_comments = on\n') });
  const no = encodeQuery(`/*NO QUERY CACHE*/ ${TEXT(7)}`);
  ask(s, 'simple', 7);
  ask(s, 'simple', 7);
  const calls = count(s);
  assert.equal(ask(s, 'simple', 7), true, 'the text without it is served');
  assert.deepEqual(calls, { early: 0, quick: 1 });
  for (let k = 0; k < 3; k++) {
    s.backend.length = 0;
    s.send(no);
    assert.equal(s.backend.length, 1, 'sent every time');
    s.answer(Buffer.concat([rows(7), RFQ('I')]));
  }
  assert.equal(s.qc.stats.hits, 2);
});

test('-M simple: a hit from the index drops the unnamed statement, as the Query would', async () => {
  const s = await session('simple');
  ask(s, 'simple', 8);
  ask(s, 'simple', 8);
  s.send(Buffer.concat([encodeParse('', SQL), encodeSync()]));
  s.answer(Buffer.concat([PARSED, RFQ('I')]));
  assert.ok(s.core.statements.protocol.has(''));
  const calls = count(s);
  assert.equal(ask(s, 'simple', 8), true);
  assert.deepEqual(calls, { early: 0, quick: 1 });
  assert.equal(s.core.statements.protocol.has(''), false);
});

test('-M extended: after a hit from the index the unnamed statement is on no backend: a later Bind of it is sent with its Parse', async () => {
  const s = await session('extended');
  ask(s, 'extended', 9);
  ask(s, 'extended', 9);
  const calls = count(s);
  assert.equal(ask(s, 'extended', 9), true);
  assert.deepEqual(calls, { early: 0, quick: 1 });
  s.backend.length = 0;
  s.send(Buffer.concat([encodeBind('', '', ['10']), encodeExecute('', 0), encodeSync()]));
  const sent = Buffer.concat(s.backend);
  assert.equal(sent[0], 0x50, 'a Parse first');
  assert.ok(sent.includes(Buffer.from(SQL)));
});

test('-M extended: the index is not used while the session\'s unnamed statement is another one', async () => {
  const s = await session('extended');
  ask(s, 'extended', 11);
  ask(s, 'extended', 11);
  // Another unnamed statement parsed (and answered) in between.
  s.send(Buffer.concat([encodeParse('', 'SELECT 1'), encodeSync()]));
  s.answer(Buffer.concat([PARSED, RFQ('I')]));
  const calls = count(s);
  assert.equal(ask(s, 'extended', 11), true);
  assert.deepEqual(calls, { early: 1, quick: 0 }, 'early() answers it and records the statement');
  assert.equal(s.core.statements.protocol.get('')!.sql, SQL);
  assert.equal(ask(s, 'extended', 11), true);
  assert.deepEqual(calls, { early: 1, quick: 1 });
});

test('-M prepared: the statement closed and parsed again with another text: the index does not answer the old text', async () => {
  const s = await session('prepared');
  ask(s, 'prepared', 12);
  ask(s, 'prepared', 12);
  assert.equal(ask(s, 'prepared', 12), true);
  const close = Buffer.from([0x43, 0, 0, 0, 10, 0x53, 0x50, 0x30, 0x5f, 0x31, 0]); // Close S 'P0_1'
  s.send(Buffer.concat([close, encodeParse('P0_1', 'SELECT abalance + 1 FROM pgbench_accounts WHERE aid = $1;'), encodeSync()]));
  s.answer(Buffer.concat([frame('3', Buffer.alloc(0)), PARSED, RFQ('I')]));
  assert.equal(ask(s, 'prepared', 12), false);
});

test('transaction pooling: hits go the usual way (early()), nothing indexed', async () => {
  const s = await session('simple');
  (s.core as unknown as { host: { pooling: string } }).host.pooling = 'transaction';
  const calls = count(s);
  ask(s, 'simple', 13);
  ask(s, 'simple', 13);
  ask(s, 'simple', 13);
  assert.deepEqual(calls, { early: 2, quick: 0 });
});

test('the index holds no answer the store dropped (memqcache_total_size still bounds the answers kept)', async () => {
  const s = await session('simple');
  ask(s, 'simple', 14);
  ask(s, 'simple', 14);
  const store = s.qc.shmem! as unknown as { map: Map<string, { value: Buffer | null }> };
  const entry = [...store.map.values()][0]!;
  assert.ok(entry.value !== null);
  s.qc.invalidateAll('admin');
  assert.equal(entry.value, null, 'dropped with the store\'s clear()');
});

function newSpaceUsed(): number {
  return v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space')!.space_used_size;
}

for (const mode of ['simple', 'extended', 'prepared'] as const) {
  test(`-M ${mode}: a hot hit takes the index and allocates little (bytes per hit through the core)`, async () => {
    const s = await session(mode);
    const reqs = Array.from({ length: 64 }, (_, i) => request(mode, i + 1));
    for (let i = 0; i < 64; i++) ask(s, mode, i + 1);
    for (let i = 0; i < 64; i++) ask(s, mode, i + 1);
    const calls = count(s);
    const one = (i: number): void => {
      s.send(reqs[i % 64]!);
      s.client.length = 0;
    };
    for (let i = 0; i < 20_000; i++) one(i); // V8 compiles the path
    assert.equal(s.backend.length, 0);
    assert.deepEqual(calls, { early: 0, quick: 20_000 }, 'every hit from the index');
    let best = Infinity;
    for (let k = 0; k < 30; k++) {
      const before = newSpaceUsed();
      for (let i = 0; i < 64; i++) one(i);
      const after = newSpaceUsed();
      if (after >= before) best = Math.min(best, (after - before) / 64);
    }
    if (process.env['SHOW_BYTES']) console.log(`${mode}: bytes per hit ${best.toFixed(0)}`);
    // What is left is the framer's copy of the read and the queue's request (outside the cache).
    assert.ok(best < 400, `${best.toFixed(0)} bytes per hit`);
  });
}

test('the index is bounded: long requests fill its byte budget and it is emptied, never above it', async () => {
  const s = await session('simple');
  const pad = 'x'.repeat(1500);
  const text = (i: number): string => `SELECT abalance FROM pgbench_accounts WHERE aid = ${i} AND '${pad}' <> '';`;
  const index = (s.cache as unknown as { hot: { map: Map<number, unknown>; bytes: number } }).hot;
  let most = 0;
  for (let i = 1; i <= 3000; i++) {
    for (let k = 0; k < 2; k++) {
      s.client.length = 0;
      s.backend.length = 0;
      s.send(encodeQuery(text(i)));
      if (s.backend.length > 0) s.answer(Buffer.concat([rows(i), RFQ('I')]));
    }
    most = Math.max(most, index.map.size);
    assert.ok(index.bytes <= 4 * 1024 * 1024, `${index.bytes} bytes counted`);
  }
  assert.ok(most > 1000, `indexed ${most}`);
  assert.ok(index.map.size < 3000, 'emptied once full');
  // Still answered from it afterwards.
  const calls = count(s);
  s.send(encodeQuery(text(3000)));
  assert.deepEqual(calls, { early: 0, quick: 1 });
});
