/**
 * A session's first request takes the code paths its later ones take (issue 21 item 5). A server
 * that has met only clients that connect per request (one request per session: `pgbench -C`,
 * PHP) has its request path optimized for that; when the first client that sends a second
 * request took paths the first requests never took, V8 threw the optimized code away (a
 * deoptimization "for insufficient type feedback") and ran those functions unoptimized for
 * thousands of connections until they were hot again. The paths that differed: the session's
 * link to its node (made at the first lease: `link?.conn` met a link only from the second request
 * on), the classifier's shape hint (empty at a session's first text; classifyLike is inlined into
 * Planner.make), and whether the connection's settings were already this session's (its owner
 * never matched at a first lease).
 *
 * Checked with V8's own test hooks in a child process (--allow-natives-syntax): the functions are
 * optimized on one-request sessions, then a session sends two requests, and each must still be
 * optimized. No timing: the compiler runs on demand (%OptimizeFunctionOnNextCall).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import pino from 'pino';
import { loadConfigText } from '../../../src/config/load';
import { Cluster, NodeRole, NodeStatus } from '../../../src/cluster/cluster';
import { buildRoutingContext } from '../../../src/core/routing-context';
import { SessionCore } from '../../../src/core/session-core';
import { Planner } from '../../../src/core/planner';
import { SessionState } from '../../../src/core/session-state';
import type { CoreHost } from '../../../src/core/core-host';
import type { BackendPort } from '../../../src/core/ports';
import { Framer } from '../../../src/protocol/framer';
import { encodeQuery } from '../../../src/protocol/frontend';
import { encodeReadyForQuery } from '../../../src/protocol/backend';
import { ServerStatements } from '../../../src/protocol/server-statements';
import { initClassifier } from '../../../src/classify';

function frame(code: string, body: Buffer): Buffer {
  const b = Buffer.alloc(5 + body.length);
  b[0] = code.charCodeAt(0);
  b.writeInt32BE(body.length + 4, 1);
  body.copy(b, 5);
  return b;
}

/** V8's OptimizationStatus bit "optimized" (src/runtime/runtime-test.cc). */
const OPTIMIZED = 1 << 4;

/** Runs in the child: prints a JSON object {function: optimized after the two-request session}. */
async function child(): Promise<void> {
  const natives = {
    status: new Function('f', 'return %GetOptimizationStatus(f);') as (f: unknown) => number,
    prepare: new Function('f', '%PrepareFunctionForOptimization(f);') as (f: unknown) => void,
    optimize: new Function('f', '%OptimizeFunctionOnNextCall(f);') as (f: unknown) => void,
  };
  await initClassifier();
  const config = loadConfigText("backend_hostname0 = 'a'\nbackend_weight0 = 1\nbackend_hostname1 = 'b'\nbackend_port1 = 5433\nbackend_weight1 = 0\n", '/x/pgpool.conf').config;
  const cluster = new Cluster(config.backends.map((b) => ({ id: b.id, host: b.hostname, port: b.port, weight: b.weight, flags: b.flags, dataDirectory: '', applicationName: '' })));
  cluster.setRole(0, NodeRole.Primary, 't');
  cluster.setRole(1, NodeRole.Standby, 't');
  cluster.setStatus(0, NodeStatus.Up, 't');
  cluster.setStatus(1, NodeStatus.Up, 't');
  const routing = buildRoutingContext(config, { get: () => 's', lookup: async () => {}, clear: () => {} });
  let pid = 100;
  const conn = (nodeId: number): BackendPort => ({
    nodeId, backendPid: pid++, backendSecret: 1, txStatus: 73, params: new Map(), applied: new Map(), appliedVersion: -1, appliedOwner: null,
    statements: new ServerStatements(), lastStatement: '', write: () => true, pause: () => {}, resume: () => {}, onceDrained: () => {},
  });
  const idle: BackendPort[] = [conn(0), conn(0)];
  const log = pino({ level: 'silent' });
  const logFlags = { statement: false, perNodeStatement: false, clientMessages: false, connections: false, disconnections: false, backendMessages: 'none' } as const;
  const host: CoreHost = {
    pid: 1, user: 'u', database: 'd', applicationName: '', cluster, routing, config, lsn: null, adminEnabled: true,
    log, logFlags, noticePerNode: false, classifier: routing.classifier,
    lbCandidates: (primaryId, excluded) => cluster.nodes.map((n) => ({ id: n.id, weight: n.weight, usable: !excluded(n.id), isPrimary: n.id === primaryId, lagging: false, delay: 0, backup: false })),
    openLink: async (node) => idle.pop() ?? conn(node), closeLink: (p) => { idle.push(p); }, runAdmin: async () => Buffer.alloc(0), nodeAccepting: async () => true,
    backendError: () => {}, cancelBackend: async () => {}, pauseClient: () => {}, resumeClient: () => {}, end: () => {}, observeLatency: () => {},
    pooling: 'transaction', leaseNow: () => idle.pop() ?? null, pinned: () => {}, statementCache: () => {}, knownStatement: () => false,
  };
  const answer = Buffer.concat([
    frame('T', Buffer.from([0, 1, 0x61, 0, 0, 0, 0, 0x40, 0, 3, 0, 0, 0, 0x17, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0])),
    frame('D', Buffer.from([0, 1, 0, 0, 0, 1, 0x30])), frame('C', Buffer.from('SELECT 1\0')), encodeReadyForQuery(73),
  ]);
  let aid = 1;
  /** A client that logs in (transaction pooling: no connection), sends `n` requests and leaves. */
  const life = (n: number): void => {
    const core = new SessionCore(host, { write: () => true });
    core.loginNode(0);
    if (routing.router.loadBalanceMode) core.pickReadNode(); // as frontend/session.ts's enterReady
    const framer = new Framer(1 << 30);
    for (let i = 0; i < n; i++) {
      framer.push(encodeQuery(`SELECT abalance FROM pgbench_accounts WHERE aid = ${aid++};`), core);
      core.endOfInput();
      core.onBackendData(0, answer);
    }
    if (!core.leave(() => {})) core.close();
  };
  const fns: Record<string, unknown> = {
    'SessionCore.step': (SessionCore.prototype as unknown as Record<string, unknown>).step,
    'Planner.make': Planner.prototype.make,
    'SessionState.replayFor': SessionState.prototype.replayFor,
  };
  for (let i = 0; i < 50; i++) life(1);
  for (const f of Object.values(fns)) natives.prepare(f);
  for (let i = 0; i < 5; i++) life(1);
  for (const f of Object.values(fns)) natives.optimize(f);
  life(1);
  const before: Record<string, boolean> = {};
  for (const [k, f] of Object.entries(fns)) before[k] = (natives.status(f) & OPTIMIZED) !== 0;
  life(2);
  const after: Record<string, boolean> = {};
  for (const [k, f] of Object.entries(fns)) after[k] = (natives.status(f) & OPTIMIZED) !== 0;
  process.stdout.write(JSON.stringify({ before, after }));
}

if (process.argv[2] === 'child') {
  void child();
} else {
  test('a session\'s second request runs the code optimized on sessions of one request (no deoptimization)', () => {
    const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--no-concurrent-recompilation', __filename, 'child'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const { before, after } = JSON.parse(r.stdout) as { before: Record<string, boolean>; after: Record<string, boolean> };
    for (const [k, v] of Object.entries(before)) assert.ok(v, `${k} was optimized on one-request sessions (the check itself works)`);
    for (const [k, v] of Object.entries(after)) assert.ok(v, `${k} is still optimized after a session's second request`);
  });
}
