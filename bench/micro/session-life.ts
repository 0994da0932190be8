/**
 * Micro benchmark of a connection per request, after its login, with no socket (issue 21 item 5):
 * a session core is made, gets one pgbench -S request, its answer, and ends (the client's
 * Terminate: leave, close) — what `pgbench -C -S` costs pgmaitre between the login's ReadyForQuery
 * and the socket's close, its own code only. Beside it, the same request in a long session: the
 * difference is what a fresh session pays for being new (objects made, first-use paths).
 *
 * Then the shapes: after many one-request sessions (the code compiled for them), a session that
 * sends two requests, and one that sends another text (pgbench's own first connection asks for
 * `select count(*) from pgbench_branches` and the partitions of pgbench_accounts): with
 * `SHAPES=1` and `--trace-deopt`, what such a session deoptimizes shows as bailouts after "-- shapes".
 *
 * Plain script: `npx tsc -p . && node dist/bench/micro/session-life.js` (env POOLING=session,transaction,
 * SESSIONS=100000 measured per figure; ALLOC=1 also prints young-generation bytes per session life).
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
import { encodeQuery } from '../../src/protocol/frontend';
import { encodeReadyForQuery } from '../../src/protocol/backend';
import { initClassifier } from '../../src/classify';
import { frame } from './frame';

function newSpaceUsed(): number {
  return v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_used_size;
}

/** Young-generation bytes `fn` allocates, least of a few tries without a collection in between. */
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
  const logFlags = { statement: false, perNodeStatement: false, clientMessages: false, connections: false, disconnections: false, backendMessages: 'none' } as const;
  const client = { write: (b: Buffer): boolean => { sink += b.length; return true; } };
  const makeHost = (pooling: 'session' | 'transaction'): CoreHost => ({
    pid: 1, user: 'u', database: 'd', applicationName: '', cluster, routing, config, lsn: null, adminEnabled: true,
    log, logFlags, noticePerNode: false, classifier: routing.classifier,
    lbCandidates: (primaryId, excluded) => cluster.nodes.map((n) => ({ id: n.id, weight: n.weight, usable: !excluded(n.id), isPrimary: n.id === primaryId, lagging: false, delay: 0, backup: false })),
    openLink: async (node) => idle.pop() ?? conn(node), closeLink: (p) => { idle.push(p); }, runAdmin: async () => Buffer.alloc(0), nodeAccepting: async () => true,
    backendError: () => {}, cancelBackend: async () => {}, pauseClient: () => {}, resumeClient: () => {}, end: () => {}, observeLatency: () => {},
    pooling, leaseNow: () => idle.pop() ?? null, pinned: () => {}, statementCache: () => {}, knownStatement: () => false,
  });
  const answer = Buffer.concat([
    frame('T', Buffer.from([0, 1, 0x61, 0x62, 0x61, 0x6c, 0x61, 0x6e, 0x63, 0x65, 0, 0, 0, 0x40, 0, 0, 3, 0, 0, 0, 0x17, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0])),
    frame('D', Buffer.from([0, 1, 0, 0, 0, 1, 0x30])), frame('C', Buffer.from('SELECT 1\0')), encodeReadyForQuery(73),
  ]);
  const reqs = Array.from({ length: 1000 }, (_, i) => encodeQuery(`SELECT abalance FROM pgbench_accounts WHERE aid = ${1 + ((i * 7919) % 100000)};`));
  const other = [encodeQuery('select count(*) from pgbench_branches'),
    encodeQuery("select o.n, p.partstrat, pg_catalog.count(i.inhparent) from pg_catalog.pg_class as c join pg_catalog.pg_namespace as n on (n.oid = c.relnamespace) "
      + 'cross join lateral (select pg_catalog.array_position(pg_catalog.current_schemas(true), n.nspname)) as o(n) left join pg_catalog.pg_partitioned_table as p on (p.partrelid = c.oid) '
      + "left join pg_catalog.pg_inherits as i on (c.oid = i.inhparent) where c.relname = 'pgbench_accounts' and o.n is not null group by 1, 2 order by 1 asc limit 1")];
  const poolings = (process.env.POOLING ?? 'transaction,session').split(',') as ('session' | 'transaction')[];
  const total = Number(process.env.SESSIONS ?? 100_000);

  /** One session's life: made as enterReady makes it, `n` requests (texts from `texts` from `k`), Terminate. */
  const life = (pooling: 'session' | 'transaction', texts: Buffer[], k: number, n: number): void => {
    const core = new SessionCore(makeHost(pooling), client);
    if (pooling === 'session') core.attachLogin(0, idle.pop() ?? conn(0));
    else core.loginNode(0);
    if (routing.router.loadBalanceMode) core.pickReadNode(); // as frontend/session.ts's enterReady
    const framer = new Framer(1 << 30);
    for (let i = 0; i < n; i++) {
      framer.push(texts[(k + i) % texts.length]!, core);
      core.endOfInput();
      core.onBackendData(0, answer);
    }
    if (!core.leave(() => {})) core.close();
  };

  for (const pooling of poolings) {
    idle.length = 0;
    for (let i = 0; i < 20; i++) idle.push(conn(0));
    for (let k = 0; k < total / 4; k++) life(pooling, reqs, k, 1); // warm-up
    let t0 = process.cpuUsage();
    for (let k = 0; k < total; k++) life(pooling, reqs, k, 1);
    let cu = process.cpuUsage(t0);
    const perLife = (cu.user + cu.system) / total;
    if (process.env.SHAPES !== undefined) {
      // The shapes (see the file header), before anything else ran: run with --trace-deopt.
      console.log(`-- shapes (${pooling}): a session with two requests`);
      life(pooling, reqs, 0, 2);
      console.log(`-- shapes (${pooling}): a session with other texts`);
      life(pooling, other, 0, 2);
      console.log(`-- shapes (${pooling}): one request again`);
      life(pooling, reqs, 1, 1);
      console.log('-- end');
      continue;
    }
    // The same request in a long session.
    const core = new SessionCore(makeHost(pooling), client);
    if (pooling === 'session') core.attachLogin(0, idle.pop() ?? conn(0));
    else core.loginNode(0);
    const framer = new Framer(1 << 30);
    const one = (k: number): void => {
      framer.push(reqs[k % 1000]!, core);
      core.endOfInput();
      core.onBackendData(0, answer);
    };
    for (let k = 0; k < total / 4; k++) one(k);
    t0 = process.cpuUsage();
    for (let k = 0; k < total; k++) one(k);
    cu = process.cpuUsage(t0);
    const perRequest = (cu.user + cu.system) / total;
    core.close();
    let line = `${pooling.padEnd(12)} session life (made, one request, Terminate) ${perLife.toFixed(2)} µs; the request in a long session ${perRequest.toFixed(2)} µs`;
    if (process.env.ALLOC !== undefined) {
      line += `; ${allocated(() => { for (let k = 0; k < 100; k++) life(pooling, reqs, k, 1); }) / 100} B per life, `
        + `${allocated(() => { for (let k = 0; k < 100; k++) one(k); }) / 100} B per request`;
    }
    console.log(line);
  }
  if (sink === 0) throw new Error('nothing went through');
}

void main();
