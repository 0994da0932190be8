/**
 * The query cache's session side on a SessionCore (no socket, no server): requests framed as a
 * client sends them, misses answered by a fake primary, hits answered by the cache. Pipelines
 * (pgbench's \startpipeline, a driver's batch) and the prepared-statement hit path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { loadConfigText } from '../../../src/config/load';
import { Cluster, NodeRole, NodeStatus } from '../../../src/cluster/cluster';
import { buildRoutingContext } from '../../../src/core/routing-context';
import { SessionCore } from '../../../src/core/session-core';
import type { CoreHost } from '../../../src/core/core-host';
import type { BackendPort } from '../../../src/core/ports';
import { Framer } from '../../../src/protocol/framer';
import { encodeBind, encodeDescribe, encodeExecute, encodeParse, encodeQuery, encodeSync } from '../../../src/protocol/frontend';
import { encodeReadyForQuery } from '../../../src/protocol/backend';
import { initClassifier } from '../../../src/classify';
import { QueryCache } from '../../../src/cache/query-cache';
import { SessionCache } from '../../../src/cache/session-cache';
import { ServerStatements } from '../../../src/protocol/server-statements';

const SQL = 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;';

function frame(code: string, body: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h.write(code, 0, 'latin1');
  h.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([h, body]);
}
const ROW_DESC = frame('T', Buffer.from([0, 1, 0x61, 0x62, 0x61, 0x6c, 0x61, 0x6e, 0x63, 0x65, 0, 0, 0, 0x40, 0, 0, 3, 0, 0, 0, 0x17, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0]));
/** The rows of aid = i: one DataRow whose value is i's text (so that answers differ by key). */
function rows(i: number): Buffer {
  const v = Buffer.from(String(i));
  const body = Buffer.alloc(6 + v.length);
  body.writeInt16BE(1, 0);
  body.writeInt32BE(v.length, 2);
  v.copy(body, 6);
  return Buffer.concat([ROW_DESC, frame('D', body), frame('C', Buffer.from('SELECT 1\0'))]);
}
const PARSED = frame('1', Buffer.alloc(0));
const BOUND = frame('2', Buffer.alloc(0));
const RFQ = (s: string): Buffer => encodeReadyForQuery(s.charCodeAt(0));

async function setup(): Promise<{
  send(b: Buffer): void; answer(b: Buffer): void; client: Buffer[]; backend: Buffer[]; qc: QueryCache; classified: string[]; core: SessionCore; cache: SessionCache;
}> {
  await initClassifier();
  const config = loadConfigText("backend_hostname0 = 'a'\nbackend_weight0 = 1\nbackend_hostname1 = 'b'\nbackend_port1 = 5433\nbackend_weight1 = 0\n"
    + "memory_cache_enabled = on\nmemqcache_method = 'shmem'\nmemqcache_total_size = 8388608\n", '/x/pgpool.conf').config;
  const cluster = new Cluster(config.backends.map((b) => ({ id: b.id, host: b.hostname, port: b.port, weight: b.weight, flags: b.flags, dataDirectory: '', applicationName: '' })));
  cluster.setRole(0, NodeRole.Primary, 't');
  cluster.setRole(1, NodeRole.Standby, 't');
  cluster.setStatus(0, NodeStatus.Up, 't');
  cluster.setStatus(1, NodeStatus.Up, 't');
  const volatility = { get: () => 's' as const, lookup: async () => {}, clear: () => {} };
  const routing = buildRoutingContext(config, volatility);
  const log = pino({ level: 'silent' });
  const qc = new QueryCache(config, () => null, log);
  qc.catalog.known = () => ({ oid: 16398, kind: 'r', persistence: 'p', system: false, rowSecurity: false });
  qc.catalog.expiresAt = () => Infinity;
  const backend: Buffer[] = [];
  const client: Buffer[] = [];
  const classified: string[] = [];
  const classifier = routing.classifier;
  const counting = { ...classifier, classify: (sql: string) => { classified.push(sql); return classifier.classify(sql); } } as typeof classifier;
  const conn = (nodeId: number): BackendPort => ({
    nodeId, backendPid: 100 + nodeId, backendSecret: 1, txStatus: 73, params: new Map(), applied: new Map(), appliedVersion: -1, appliedOwner: null,
    statements: new ServerStatements(), lastStatement: '',
    write: (b) => { backend.push(Buffer.from(b)); return true; }, pause: () => {}, resume: () => {}, onceDrained: () => {},
  });
  const host: CoreHost = {
    pid: 1, user: 'u', database: 'd', applicationName: '', cluster, routing, config, lsn: null, adminEnabled: true,
    log, logFlags: { statement: false, perNodeStatement: false, clientMessages: false, connections: false, disconnections: false, backendMessages: 'none' },
    noticePerNode: false, classifier: counting,
    lbCandidates: (primaryId, excluded) => cluster.nodes.map((n) => ({ id: n.id, weight: n.weight, usable: !excluded(n.id), isPrimary: n.id === primaryId, lagging: false, delay: 0, backup: false })),
    openLink: async () => conn(1), closeLink: () => {}, runAdmin: async () => Buffer.alloc(0), nodeAccepting: async () => true,
    backendError: () => {}, cancelBackend: async () => {}, pauseClient: () => {}, resumeClient: () => {}, end: () => {}, observeLatency: () => {},
    pooling: 'session', leaseNow: () => null, pinned: () => {}, statementCache: () => {}, knownStatement: () => false,
    cache: new SessionCache(qc, { user: 'u', database: 'd', startupParams: { user: 'u', database: 'd' } }, () => counting, () => volatility),
  };
  const cache = host.cache as SessionCache;
  const core = new SessionCore(host, { write: (b) => { client.push(b); return true; } });
  core.attachLogin(0, conn(0));
  const framer = new Framer(1 << 30);
  return {
    send: (b) => { framer.push(b, core); core.endOfInput(); },
    answer: (b) => core.onBackendData(0, b),
    client, backend, qc, classified, core, cache,
  };
}

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
