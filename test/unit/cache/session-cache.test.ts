/**
 * The query cache's session side on a SessionCore (no socket, no server): requests framed as a
 * client sends them, misses answered by a fake primary, hits answered by the cache. Pipelines
 * (pgbench's \startpipeline, a driver's batch) and the prepared-statement hit path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeBind, encodeDescribe, encodeExecute, encodeParse, encodeQuery, encodeSync } from '../../../src/protocol/frontend';
import { QueryCache } from '../../../src/cache/query-cache';
import { BOUND, PARSED, RFQ, ROW_DESC, SQL, frame, rows, setup } from './cache-harness';

const bindOf = (stmt: string, i: number): Buffer => encodeBind('', stmt, [String(i)]);
const prepared = (i: number): Buffer => Buffer.concat([bindOf('P0_1', i), encodeDescribe('P', ''), encodeExecute('', 0)]);
const extended = (i: number): Buffer => Buffer.concat([encodeParse('', SQL), bindOf('', i), encodeDescribe('P', ''), encodeExecute('', 0)]);

/** A session with statement P0_1 prepared and aid 1..3 stored by lone requests in `mode`. */
async function filled(mode: 'prepared' | 'extended') {
  const s = await setup();
  s.send(Buffer.concat([encodeParse('P0_1', SQL), encodeSync()]));
  s.answer(Buffer.concat([PARSED, RFQ('I')]));
  for (const i of [1, 2, 3]) {
    s.send(Buffer.concat([mode === 'prepared' ? prepared(i) : extended(i), encodeSync()]));
    s.answer(Buffer.concat([mode === 'prepared' ? Buffer.alloc(0) : PARSED, BOUND, rows(i), RFQ('I')]));
  }
  assert.equal(s.qc.shmem!.entries, 3);
  s.client.length = 0;
  s.backend.length = 0;
  return s;
}

for (const mode of ['prepared', 'extended'] as const) {
  test(`a pipeline (-M ${mode}) of statements the cache holds is answered from it: every answer in order, one ReadyForQuery`, async () => {
    const s = await filled(mode);
    const seg = mode === 'prepared' ? prepared : extended;
    const head = mode === 'prepared' ? BOUND : Buffer.concat([PARSED, BOUND]);
    const hits0 = s.qc.stats.hits;
    s.send(Buffer.concat([seg(3), seg(1), seg(2), seg(1), encodeSync()]));
    assert.equal(s.backend.length, 0, 'nothing sent to a backend');
    assert.deepEqual(Buffer.concat(s.client), Buffer.concat([head, rows(3), head, rows(1), head, rows(2), head, rows(1), RFQ('I')]));
    assert.equal(s.qc.stats.hits - hits0, 4);
    // The same statements alone still hit (the keys are shared).
    s.client.length = 0;
    s.send(Buffer.concat([seg(2), encodeSync()]));
    assert.deepEqual(Buffer.concat(s.client), Buffer.concat([head, rows(2), RFQ('I')]));
    assert.equal(s.backend.length, 0);
  });
}

test('a pipeline with one statement the cache does not hold is sent whole to the backend, and its answer passed on', async () => {
  const s = await filled('prepared');
  const hits0 = s.qc.stats.hits;
  const req = Buffer.concat([prepared(1), prepared(9), encodeSync()]);
  s.send(req);
  assert.equal(s.client.length, 0);
  assert.equal(s.qc.stats.hits, hits0, 'no hit counted');
  assert.deepEqual(Buffer.concat(s.backend), req);
  const answer = Buffer.concat([BOUND, rows(1), BOUND, rows(9), RFQ('I')]);
  s.answer(answer);
  assert.deepEqual(Buffer.concat(s.client), answer);
});

test('a pipeline inside a transaction ends with the transaction\'s status; one with a row limit or a write goes the full way', async () => {
  const s = await filled('prepared');
  s.send(encodeQuery('BEGIN'));
  s.answer(Buffer.concat([frame('C', Buffer.from('BEGIN\0')), RFQ('T')]));
  s.client.length = 0;
  s.backend.length = 0;
  s.send(Buffer.concat([prepared(1), prepared(2), encodeSync()]));
  assert.equal(s.backend.length, 0);
  assert.deepEqual(Buffer.concat(s.client), Buffer.concat([BOUND, rows(1), BOUND, rows(2), RFQ('T')]));
  // A row limit (a partial fetch) is never served.
  const limited = Buffer.concat([bindOf('P0_1', 1), encodeDescribe('P', ''), encodeExecute('', 1), prepared(2), encodeSync()]);
  s.send(limited);
  assert.deepEqual(Buffer.concat(s.backend), limited);
});

test('a prepared hit: a short key without the SQL, nothing classified, the stored answer written as it is (no copy)', async () => {
  const s = await filled('prepared');
  const store = s.qc.shmem! as unknown as { map: Map<string, unknown> };
  for (const k of store.map.keys()) {
    assert.ok(k.length < 40, `key of ${k.length} characters`);
    assert.ok(!k.includes('pgbench_accounts'));
  }
  s.classified.length = 0;
  // After one hit through early(), the statement's next hits are known from their bytes (quick()):
  // no request decoded, early() not asked.
  const calls = { early: 0, quick: 0 };
  const early = s.cache.early.bind(s.cache);
  const quick = s.cache.quick.bind(s.cache);
  s.cache.early = (...a) => { calls.early++; return early(...a); };
  s.cache.quick = (...a) => { const r = quick(...a); if (r) calls.quick++; return r; };
  s.send(Buffer.concat([prepared(1), encodeSync()]));
  s.client.length = 0;
  s.send(Buffer.concat([prepared(2), encodeSync()]));
  s.send(Buffer.concat([prepared(2), encodeSync()]));
  assert.equal(s.client.length, 2);
  assert.deepEqual(calls, { early: 1, quick: 2 });
  assert.equal(s.client[0], s.client[1], 'the same stored buffer both times');
  assert.deepEqual(s.client[0], Buffer.concat([BOUND, rows(2), RFQ('I')]));
  assert.deepEqual(s.classified, []);
  assert.equal(s.backend.length, 0);
});

test('a prepared hit\'s key follows the generations (a write to the table makes it a miss) and the statement (another text, another key)', async () => {
  const s = await filled('prepared');
  s.qc.bump(QueryCache.genNames('d', [16398]).slice(2), 'write');
  s.send(Buffer.concat([prepared(2), encodeSync()]));
  assert.equal(s.client.length, 0, 'not answered from the cache');
  assert.equal(s.backend.length, 1, 'sent');
  s.answer(Buffer.concat([BOUND, rows(2), RFQ('I')]));
  s.client.length = 0;
  s.backend.length = 0;
  s.send(Buffer.concat([prepared(2), encodeSync()]));
  assert.equal(s.backend.length, 0, 'stored again under the new generation, then a hit');
  // Another statement with the same parameters does not share its answers.
  s.send(Buffer.concat([encodeParse('P0_2', 'SELECT abalance FROM pgbench_accounts WHERE aid = $1 + 0;'), encodeSync()]));
  s.answer(Buffer.concat([PARSED, RFQ('I')]));
  s.backend.length = 0;
  s.send(Buffer.concat([bindOf('P0_2', 2), encodeDescribe('P', ''), encodeExecute('', 0), encodeSync()]));
  assert.equal(s.backend.length, 1, 'P0_2 is a miss');
});

test('a prepared statement closed and parsed again under its name with another text: no answer of the old text', async () => {
  const s = await filled('prepared');
  // A hit first (the quick path now knows P0_1).
  s.send(Buffer.concat([prepared(2), encodeSync()]));
  assert.equal(s.backend.length, 0);
  s.client.length = 0;
  const close = Buffer.from([0x43, 0, 0, 0, 10, 0x53, 0x50, 0x30, 0x5f, 0x31, 0]); // Close S 'P0_1'
  s.send(Buffer.concat([close, encodeParse('P0_1', 'SELECT abalance + 1 FROM pgbench_accounts WHERE aid = $1;'), encodeSync()]));
  s.answer(Buffer.concat([frame('3', Buffer.alloc(0)), PARSED, RFQ('I')]));
  s.client.length = 0;
  s.backend.length = 0;
  s.send(Buffer.concat([prepared(2), encodeSync()]));
  assert.equal(s.client.length, 0, 'not answered from the cache');
  assert.equal(s.backend.length, 1, 'sent to the backend');
});

test('quick prepared hits in every shape pgbench and drivers send (with and without Describe), other names and odd bytes go the full way', async () => {
  const s = await filled('prepared');
  const hits0 = s.qc.stats.hits;
  // Bind/Execute/Sync without Describe: stored separately (another shape), then hit.
  const bes = Buffer.concat([bindOf('P0_1', 3), encodeExecute('', 0), encodeSync()]);
  s.send(bes);
  assert.equal(s.backend.length, 1);
  s.answer(Buffer.concat([BOUND, rows(3).subarray(ROW_DESC.length), RFQ('I')]));
  s.backend.length = 0;
  s.client.length = 0;
  s.send(bes);
  s.send(Buffer.concat([prepared(3), encodeSync()]));
  assert.equal(s.backend.length, 0);
  assert.deepEqual(Buffer.concat(s.client), Buffer.concat([BOUND, rows(3).subarray(ROW_DESC.length), RFQ('I'), BOUND, rows(3), RFQ('I')]));
  assert.equal(s.qc.stats.hits - hits0, 2);
  // A row limit: sent.
  s.send(Buffer.concat([bindOf('P0_1', 3), encodeDescribe('P', ''), encodeExecute('', 1), encodeSync()]));
  assert.equal(s.backend.length, 1);
});
