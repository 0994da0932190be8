/**
 * Micro benchmark: does the session core's CPU per request grow with the number of sessions?
 * (issue 17, item 9). N session cores with fake ports, each with its own framer, served round
 * robin — request i goes to session i mod N — as a proxy serves N pgbench clients. CPU time
 * (process.cpuUsage, so a preempted moment does not count), pgbench -S simple and extended,
 * session and transaction pooling (20 connections shared by the N sessions), weights 1,0,0.
 *
 * With one session everything a request touches stays in the first-level caches; with many,
 * each request finds its session's objects colder. What grows here and not in the pipe is
 * pgmaitre's own per-session footprint (or per-session work). Plain script:
 * `npx tsc -p . && node dist/bench/micro/session-scaling.js [N...]` (env POOLING=session,transaction,
 * MODES=simple,extended, REQUESTS=100000 measured per figure). Under
 * QUICK=0 keeps every request on the full path (no SessionCore.quickForward). Under
 * `valgrind --tool=cachegrind --cache-sim=yes` (REQUESTS small, two counts subtracted) it gives
 * the cache misses per request, which do not depend on how busy the machine is.
 */
import { ServerStatements } from '../../src/protocol/server-statements';
import pino from 'pino';
import * as v8 from 'node:v8';
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

function newSpaceUsed(): number {
  return v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_used_size;
}

/** Bytes allocated in the young generation per request by `fn` (one round), least of a few tries without a collection in between. */
function allocated(fn: () => void): number {
  let best = Infinity;
  for (let k = 0; k < 20; k++) {
    const before = newSpaceUsed();
    fn();
    const after = newSpaceUsed();
    if (after >= before) best = Math.min(best, after - before);
  }
  return best;
}

async function main(): Promise<void> {
  await initClassifier();
  const config = loadConfigText("backend_hostname0 = 'a'\nbackend_weight0 = 1\nbackend_hostname1 = 'b'\nbackend_port1 = 5433\nbackend_weight1 = 0\n", '/x/pgpool.conf').config;
  const cluster = new Cluster(config.backends.map((b) => ({ id: b.id, host: b.hostname, port: b.port, weight: b.weight, flags: b.flags, dataDirectory: '', applicationName: '' })));
  cluster.setRole(0, NodeRole.Primary, 'bench');
  cluster.setRole(1, NodeRole.Standby, 'bench');
  cluster.setStatus(0, NodeStatus.Up, 'bench');
  cluster.setStatus(1, NodeStatus.Up, 'bench');
  const routing = buildRoutingContext(config, { get: () => 's', lookup: async () => {}, clear: () => {} });
  let sink = 0;
  let nextPid = 100;
  const conn = (nodeId: number): BackendPort => ({
    nodeId, backendPid: nextPid++, backendSecret: 1, txStatus: 73, params: new Map(), applied: new Map(), appliedVersion: -1, appliedOwner: null,
    statements: new ServerStatements(), lastStatement: '',
    write: (b) => { sink += b.length; return true; }, pause: () => {}, resume: () => {}, onceDrained: () => {},
  });
  const log = pino({ level: 'silent' });
  const idle: BackendPort[] = [];
  const makeHost = (pooling: 'session' | 'transaction'): CoreHost => ({
    pid: 1, user: 'u', database: 'd', applicationName: '', cluster, routing, config, lsn: null, adminEnabled: true,
    log, logFlags: { statement: false, perNodeStatement: false, clientMessages: false, connections: false, disconnections: false, backendMessages: 'none' },
    noticePerNode: false, classifier: routing.classifier,
    lbCandidates: (primaryId, excluded) => cluster.nodes.map((n) => ({ id: n.id, weight: n.weight, usable: !excluded(n.id), isPrimary: n.id === primaryId, lagging: false, delay: 0, backup: false })),
    openLink: async (node) => idle.pop() ?? conn(node), closeLink: (p) => { idle.push(p); }, runAdmin: async () => Buffer.alloc(0), nodeAccepting: async () => true,
    backendError: () => {}, cancelBackend: async () => {}, pauseClient: () => {}, resumeClient: () => {}, end: () => {}, observeLatency: () => {},
    pooling, leaseNow: () => idle.pop() ?? null, pinned: () => {}, statementCache: () => {}, knownStatement: () => false,
  });
  const answerRows = Buffer.concat([
    frame('T', Buffer.from([0, 1, 0x61, 0x62, 0x61, 0x6c, 0x61, 0x6e, 0x63, 0x65, 0, 0, 0, 0x40, 0, 0, 3, 0, 0, 0, 0x17, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0])),
    frame('D', Buffer.from([0, 1, 0, 0, 0, 1, 0x30])), frame('C', Buffer.from('SELECT 1\0')), encodeReadyForQuery(73),
  ]);
  const answerExt = Buffer.concat([frame('1', Buffer.alloc(0)), frame('2', Buffer.alloc(0)), answerRows]);
  const modes: [string, (i: number) => Buffer, Buffer][] = [
    ['simple', (i) => encodeQuery(`SELECT abalance FROM pgbench_accounts WHERE aid = ${1 + (i % 100000)};`), answerRows],
    ['extended', (i) => Buffer.concat([encodeParse('', 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;'), encodeBind('', '', [String(1 + (i % 100000))]), encodeDescribe('P', ''), encodeExecute('', 0), encodeSync()]), answerExt],
  ];
  const counts = process.argv.slice(2).map(Number).filter((n) => n > 0);
  const sizes = counts.length > 0 ? counts : [1, 16, 64, 256, 1024];
  const quick = process.env.QUICK !== '0';
  const poolings = (process.env.POOLING ?? 'session,transaction').split(',') as ('session' | 'transaction')[];
  const wanted = (process.env.MODES ?? 'simple,extended').split(',');
  for (const pooling of poolings) {
    for (const [mode, request, answer] of modes.filter((m) => wanted.includes(m[0]))) {
      const line: string[] = [];
      for (const n of sizes) {
        idle.length = 0;
        for (let i = 0; i < 20; i++) idle.push(conn(0));
        const sessions: { core: SessionCore; framer: Framer }[] = [];
        for (let i = 0; i < n; i++) {
          const host = makeHost(pooling);
          const core = new SessionCore(host, { write: (b) => { sink += b.length; return true; } });
          if (pooling === 'session') core.attachLogin(0, conn(0));
          else core.identityNode = 0;
          sessions.push({ core, framer: new Framer(1 << 30) });
        }
        const reqs = Array.from({ length: 1000 }, (_, i) => request(i));
        // Each session in turn sends its request and gets its answer: one request in flight at a
        // time (transaction pooling leases at once), every session touched once per round.
        const round = (k: number): void => {
          for (let i = 0; i < n; i++) {
            const s = sessions[i]!;
            const req = reqs[(k * n + i) % 1000]!;
            // As frontend/session.ts offers each read: the quick forward path first (QUICK=0: never).
            if (!quick || !s.framer.atBoundary || !s.core.quickForward(req, 1 << 30)) {
              s.framer.push(req, s.core);
              s.core.endOfInput();
            }
            s.core.onBackendData(0, answer);
          }
        };
        const total = Number(process.env.REQUESTS ?? 100_000);
        const rounds = Math.max(1, Math.round(total / n));
        for (let k = 0; k < Math.max(2, rounds / 4); k++) round(k); // warm-up
        const t0 = process.cpuUsage();
        for (let k = 0; k < rounds; k++) round(k);
        const cu = process.cpuUsage(t0);
        line.push(`${String(n).padStart(5)}: ${((cu.user + cu.system) / (rounds * n)).toFixed(2).padStart(6)}`);
        if (process.env.ALLOC !== undefined) line.push(`(${(allocated(() => round(0)) / n).toFixed(0)} B)`);
        let quickly = 0;
        for (const s of sessions) quickly += s.core.quickForwards;
        if (process.env.ALLOC !== undefined) line.push(`[${((100 * quickly) / ((rounds + Math.ceil(Math.max(2, rounds / 4)) + 1) * n)).toFixed(0)} % quick]`);
        for (const s of sessions) s.core.close();
      }
      console.log(`${`${pooling} ${mode}`.padEnd(22)} CPU µs/request by sessions  ${line.join('  ')}`);
    }
  }
  if (sink === 0) throw new Error('nothing went through');
}

void main();
