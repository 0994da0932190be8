/**
 * Micro benchmark of pgmaitre's own work per request, with no socket: a client chunk framed and
 * handed to the session core, planned and written to a (fake) backend port, the backend's answer
 * scanned and forwarded to a (fake) client port — for pgbench -S's request in each protocol mode.
 * What it measures is everything pgmaitre adds above relaying bytes (the system calls are not in
 * it). Plain script: `npx tsc -p . && node dist/bench/micro/session-core.js` (or `npm run bench:micro`).
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
import { frame } from './frame';

async function main(): Promise<void> {
  await initClassifier();
  const config = loadConfigText("backend_hostname0 = 'a'\nbackend_weight0 = 0\nbackend_hostname1 = 'b'\nbackend_port1 = 5433\nbackend_weight1 = 1\nread_your_writes = on\n", '/x/pgpool.conf').config;
  const cluster = new Cluster(config.backends.map((b) => ({ id: b.id, host: b.hostname, port: b.port, weight: b.weight, flags: b.flags, dataDirectory: '', applicationName: '' })));
  cluster.setRole(0, NodeRole.Primary, 'bench');
  cluster.setRole(1, NodeRole.Standby, 'bench');
  cluster.setStatus(0, NodeStatus.Up, 'bench');
  cluster.setStatus(1, NodeStatus.Up, 'bench');
  const routing = buildRoutingContext(config, { get: () => 's', lookup: async () => {}, clear: () => {} });
  let backendBytes = 0;
  let clientBytes = 0;
  const conn = (nodeId: number): BackendPort => ({
    nodeId, backendPid: 100 + nodeId, backendSecret: 1, txStatus: 73, params: new Map(), applied: new Map(), appliedVersion: -1, appliedOwner: null,
    statements: new ServerStatements(), lastStatement: '',
    write: (b) => { backendBytes += b.length; return true; }, pause: () => {}, resume: () => {}, onceDrained: () => {},
  });
  const standby = conn(1);
  const host: CoreHost = {
    pid: 1, user: 'u', database: 'd', applicationName: '', cluster, routing, config, lsn: null, adminEnabled: true,
    log: pino({ level: 'silent' }), logFlags: { statement: false, perNodeStatement: false, clientMessages: false, connections: false, disconnections: false, backendMessages: 'none' },
    noticePerNode: false, classifier: routing.classifier,
    lbCandidates: (primaryId, excluded) => cluster.nodes.map((n) => ({ id: n.id, weight: n.weight, usable: !excluded(n.id), isPrimary: n.id === primaryId, lagging: false, delay: 0, backup: false })),
    openLink: async () => standby, closeLink: () => {}, runAdmin: async () => Buffer.alloc(0), nodeAccepting: async () => true,
    backendError: () => {}, cancelBackend: async () => {}, pauseClient: () => {}, resumeClient: () => {}, end: () => {}, observeLatency: () => {},
    pooling: 'session', leaseNow: () => null, pinned: () => {}, statementCache: () => {}, knownStatement: () => false,
  };
  const core = new SessionCore(host, { write: (b) => { clientBytes += b.length; return true; } });
  core.attachLogin(0, conn(0));
  const framer = new Framer(1 << 30);
  const answerRows = Buffer.concat([
    frame('T', Buffer.from([0, 1, 0x61, 0x62, 0x61, 0x6c, 0x61, 0x6e, 0x63, 0x65, 0, 0, 0, 0x40, 0, 0, 3, 0, 0, 0, 0x17, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0])),
    frame('D', Buffer.from([0, 1, 0, 0, 0, 1, 0x30])), frame('C', Buffer.from('SELECT 1\0')), encodeReadyForQuery(73),
  ]);
  const answerExt = Buffer.concat([frame('1', Buffer.alloc(0)), frame('2', Buffer.alloc(0)), answerRows]);
  const answerPrep = Buffer.concat([frame('2', Buffer.alloc(0)), answerRows]);
  // Warm the link (connect is asynchronous once).
  framer.push(encodeQuery('SELECT 1'), core);
  core.endOfInput();
  await new Promise((r) => setImmediate(r));
  core.onBackendData(1, answerRows);
  // -M prepared: the statement is parsed once.
  framer.push(Buffer.concat([encodeParse('P0_1', 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;'), encodeSync()]), core);
  core.endOfInput();
  core.onBackendData(1, Buffer.concat([frame('1', Buffer.alloc(0)), encodeReadyForQuery(73)]));

  const modes: [string, (i: number) => Buffer, Buffer][] = [
    ['simple', (i) => encodeQuery(`SELECT abalance FROM pgbench_accounts WHERE aid = ${1 + (i % 100000)};`), answerRows],
    ['extended', (i) => Buffer.concat([encodeParse('', 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;'), encodeBind('', '', [String(1 + (i % 100000))]), encodeDescribe('P', ''), encodeExecute('', 0), encodeSync()]), answerExt],
    ['prepared', (i) => Buffer.concat([encodeBind('', 'P0_1', [String(1 + (i % 100000))]), encodeDescribe('P', ''), encodeExecute('', 0), encodeSync()]), answerPrep],
  ];
  for (const [mode, request, answer] of modes) {
    const reqs = Array.from({ length: 1000 }, (_, i) => request(i));
    const run = (n: number): void => {
      for (let i = 0; i < n; i++) {
        framer.push(reqs[i % 1000]!, core);
        core.endOfInput();
        core.onBackendData(1, answer);
      }
    };
    run(50_000); // warm-up
    const n = 300_000;
    const t0 = process.hrtime.bigint();
    run(n);
    const ns = Number(process.hrtime.bigint() - t0) / n;
    console.log(`${`session core, pgbench -S ${mode}: client frames → plan → backend write → answer scan → client write`.padEnd(96)} ${(ns / 1000).toFixed(3)} µs/request`);
  }
  if (backendBytes === 0 || clientBytes === 0) throw new Error('nothing went through');
}

void main();
