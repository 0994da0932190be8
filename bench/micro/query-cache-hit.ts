/**
 * Micro benchmark of a query cache hit (memqcache_method = shmem), with no socket: a client chunk
 * offered whole to the session core (quickRead: a request whose bytes hit before, answered before
 * framing), else framed and handed to it, planned, looked up in the cache and answered to a (fake)
 * client port — for the hot-key request (bench/query-cache.sh: 1,000 keys) in each protocol mode.
 * What it measures is pgmaitre's own work per hit (the two system calls, one read and one write,
 * are not in it). Plain script: `npx tsc -p . && node dist/bench/micro/query-cache-hit.js`.
 */
import { ServerStatements } from '../../src/protocol/server-statements';
import pino from 'pino';
import { loadConfigText } from '../../src/config/load';
import { Cluster, NodeRole, NodeStatus } from '../../src/cluster/cluster';
import { buildRoutingContext } from '../../src/core/routing-context';
import { SessionCore } from '../../src/core/session-core';
import type { CoreHost } from '../../src/core/core-host';
import type { BackendPort } from '../../src/core/ports';
import { Framer } from '../../src/protocol/framer';
import { encodeBind, encodeDescribe, encodeExecute, encodeParse, encodeQuery, encodeSync } from '../../src/protocol/frontend';
import { encodeReadyForQuery } from '../../src/protocol/backend';
import { initClassifier } from '../../src/classify';
import { QueryCache } from '../../src/cache/query-cache';
import { SessionCache } from '../../src/cache/session-cache';
import { frame } from './frame';

async function main(): Promise<void> {
  await initClassifier();
  const config = loadConfigText("backend_hostname0 = 'a'\nbackend_weight0 = 1\nbackend_hostname1 = 'b'\nbackend_port1 = 5433\nbackend_weight1 = 0\n"
    + "memory_cache_enabled = on\nmemqcache_method = 'shmem'\nmemqcache_total_size = 8388608\n", '/x/pgpool.conf').config;
  const cluster = new Cluster(config.backends.map((b) => ({ id: b.id, host: b.hostname, port: b.port, weight: b.weight, flags: b.flags, dataDirectory: '', applicationName: '' })));
  cluster.setRole(0, NodeRole.Primary, 'bench');
  cluster.setRole(1, NodeRole.Standby, 'bench');
  cluster.setStatus(0, NodeStatus.Up, 'bench');
  cluster.setStatus(1, NodeStatus.Up, 'bench');
  const volatility = { get: () => 's' as const, lookup: async () => {}, clear: () => {} };
  const routing = buildRoutingContext(config, volatility);
  const log = pino({ level: 'silent' });
  const qc = new QueryCache(config, () => null, log);
  // The catalog's answer for pgbench_accounts (no primary here to ask).
  qc.catalog.known = () => ({ oid: 16398, kind: 'r', persistence: 'p', system: false, rowSecurity: false });
  qc.catalog.expiresAt = () => Infinity;
  let backendBytes = 0;
  let clientBytes = 0;
  const conn = (nodeId: number): BackendPort => ({
    nodeId, backendPid: 100 + nodeId, backendSecret: 1, txStatus: 73, params: new Map(), applied: new Map(), appliedVersion: -1, appliedOwner: null,
    statements: new ServerStatements(), lastStatement: '',
    write: (b) => { backendBytes += b.length; return true; }, pause: () => {}, resume: () => {}, onceDrained: () => {},
  });
  const primary = conn(0);
  const host: CoreHost = {
    pid: 1, user: 'u', database: 'd', applicationName: '', cluster, routing, config, lsn: null, adminEnabled: true,
    log, logFlags: { statement: false, perNodeStatement: false, clientMessages: false, connections: false, disconnections: false, backendMessages: 'none' },
    noticePerNode: false, classifier: routing.classifier,
    lbCandidates: (primaryId, excluded) => cluster.nodes.map((n) => ({ id: n.id, weight: n.weight, usable: !excluded(n.id), isPrimary: n.id === primaryId, lagging: false, delay: 0, backup: false })),
    openLink: async () => conn(1), closeLink: () => {}, runAdmin: async () => Buffer.alloc(0), nodeAccepting: async () => true,
    backendError: () => {}, cancelBackend: async () => {}, pauseClient: () => {}, resumeClient: () => {}, end: () => {}, observeLatency: () => {},
    pooling: 'session', leaseNow: () => null, pinned: () => {}, statementCache: () => {}, knownStatement: () => false,
    cache: new SessionCache(qc, { user: 'u', database: 'd', startupParams: { user: 'u', database: 'd' } }, () => routing.classifier, () => volatility),
  };
  const core = new SessionCore(host, { write: (b) => { clientBytes += b.length; return true; } });
  core.attachLogin(0, primary);
  const framer = new Framer(1 << 30);
  const answerRows = Buffer.concat([
    frame('T', Buffer.from([0, 1, 0x61, 0x62, 0x61, 0x6c, 0x61, 0x6e, 0x63, 0x65, 0, 0, 0, 0x40, 0, 0, 3, 0, 0, 0, 0x17, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0])),
    frame('D', Buffer.from([0, 1, 0, 0, 0, 1, 0x30])), frame('C', Buffer.from('SELECT 1\0')), encodeReadyForQuery(73),
  ]);
  const answerExt = Buffer.concat([frame('1', Buffer.alloc(0)), frame('2', Buffer.alloc(0)), answerRows]);
  const answerPrep = Buffer.concat([frame('2', Buffer.alloc(0)), answerRows]);
  // -M prepared: the statement is parsed once.
  framer.push(Buffer.concat([encodeParse('P0_1', 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;'), encodeSync()]), core);
  core.endOfInput();
  core.onBackendData(0, Buffer.concat([frame('1', Buffer.alloc(0)), encodeReadyForQuery(73)]));

  const modes: [string, (i: number) => Buffer, Buffer][] = [
    ['simple', (i) => encodeQuery(`SELECT abalance FROM pgbench_accounts WHERE aid = ${1 + i};`), answerRows],
    ['extended', (i) => Buffer.concat([encodeParse('', 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;'), encodeBind('', '', [String(1 + i)]), encodeDescribe('P', ''), encodeExecute('', 0), encodeSync()]), answerExt],
    ['prepared', (i) => Buffer.concat([encodeBind('', 'P0_1', [String(1 + i)]), encodeDescribe('P', ''), encodeExecute('', 0), encodeSync()]), answerPrep],
  ];
  // Pipelines of PIPELINE statements (bench/workers.sh's hot-key-cache-pipe), every one stored by
  // the lone requests of its mode above: µs per statement.
  const PIPELINE = 20;
  const segment = (mode: string, i: number): Buffer => mode === 'prepared'
    ? Buffer.concat([encodeBind('', 'P0_1', [String(1 + (i % 1000))]), encodeDescribe('P', ''), encodeExecute('', 0)])
    : Buffer.concat([encodeParse('', 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;'), encodeBind('', '', [String(1 + (i % 1000))]), encodeDescribe('P', ''), encodeExecute('', 0)]);
  const pipelines = (mode: string): Buffer[] => Array.from({ length: 1000 }, (_, k) => Buffer.concat([...Array.from({ length: PIPELINE }, (_, j) => segment(mode, k * 7 + j * 131)), encodeSync()]));
  const only = process.env['MODES']?.split(/[ ,]+/);
  for (const [mode, request, answer] of modes) {
    if (only !== undefined && !only.includes(mode)) continue;
    const reqs = Array.from({ length: 1000 }, (_, i) => request(i));
    // Fill the cache: every key once (misses, answered by the fake primary).
    for (const r of reqs) {
      framer.push(r, core);
      core.endOfInput();
      core.onBackendData(0, answer);
    }
    if (qc.shmem!.entries < 1000) throw new Error(`${mode}: ${qc.shmem!.entries} answers stored of 1000 (${JSON.stringify({ ...qc.stats, invalidations: undefined })})`);
    const hits0 = qc.stats.hits;
    const before = backendBytes;
    // As frontend/session.ts reads: offered whole to the cache (quickRead), else framed.
    const run = (n: number): void => {
      for (let i = 0; i < n; i++) {
        const r = reqs[i % 1000]!;
        if (framer.atBoundary && core.quickRead(r)) continue;
        framer.push(r, core);
        core.endOfInput();
      }
    };
    run(50_000); // warm-up
    // CPU time, not wall time: the machine is shared.
    const n = 300_000;
    const t0 = process.cpuUsage();
    run(n);
    const t = process.cpuUsage(t0);
    const ns = ((t.user + t.system) * 1000) / n;
    if (qc.stats.hits - hits0 !== n + 50_000 || backendBytes !== before) throw new Error(`${mode}: not every request was a hit (${qc.stats.hits - hits0})`);
    console.log(`${`query cache hit, hot key ${mode}: client frames → plan → lookup → client write`.padEnd(80)} ${(ns / 1000).toFixed(3)} µs/hit`);
    if (mode === 'simple') continue;
    const pipes = pipelines(mode);
    const h0 = qc.stats.hits;
    const runPipes = (n: number): void => {
      for (let i = 0; i < n; i++) {
        framer.push(pipes[i % 1000]!, core);
        core.endOfInput();
      }
    };
    runPipes(5_000);
    const np = 30_000;
    const tp0 = process.cpuUsage();
    runPipes(np);
    const tp = process.cpuUsage(tp0);
    if (qc.stats.hits - h0 !== (np + 5_000) * PIPELINE || backendBytes !== before) throw new Error(`${mode} pipeline: not every statement was a hit (${qc.stats.hits - h0})`);
    const nsp = ((tp.user + tp.system) * 1000) / (np * PIPELINE);
    console.log(`${`query cache hit, hot key ${mode}, pipelines of ${PIPELINE}: per statement`.padEnd(80)} ${(nsp / 1000).toFixed(3)} µs/hit`);
  }
  if (clientBytes === 0) throw new Error('nothing went through');
}

void main();
