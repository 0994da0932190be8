/**
 * Micro benchmark: what a transaction costs the session core and the pool when clients outnumber
 * default_pool_size and nearly every transaction waits for its lease (issue 17, item 9).
 *
 * N session cores share P connections of one NodePool (src/pool/node-pool.ts, the real one), and
 * the host does what frontend/session.ts does for them (leaseNow → tryLease, openLink → lease,
 * closeLink → giveBack). Events arrive as under `pgbench -S`: each client has one transaction in
 * flight; a server answers, the answer goes to its client, the lease ends and the connection
 * goes to the next waiter; the client's next request arrives in a later turn of the event loop.
 * Session pooling (each session keeps its own connection) runs the same loop: the difference is
 * what the lease costs. CPU time per request (process.cpuUsage), and with ALLOC=1 the bytes
 * allocated per request. `npx tsc -p . && node dist/bench/micro/lease-wait.js [N...]`
 * (env POOL=20, POOLING=session,transaction, MODES=simple,extended, REQUESTS=100000).
 */
import pino from 'pino';
import * as v8 from 'node:v8';
import { ServerStatements } from '../../src/protocol/server-statements';
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
import { NodePool, type LeaseLimit, type Poolable } from '../../src/pool/node-pool';
import { frame } from './frame';

/** A connection: the pool's Poolable and the core's BackendPort; a write puts it in flight. */
interface Conn extends Poolable, BackendPort {
  owner: Session | null;
}

interface Session {
  core: SessionCore;
  framer: Framer;
  /** Requests sent so far (which one comes next). */
  sent: number;
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function main(): Promise<void> {
  await initClassifier();
  const config = loadConfigText("backend_hostname0 = 'a'\nbackend_weight0 = 1\nbackend_hostname1 = 'b'\nbackend_port1 = 5433\nbackend_weight1 = 0\n", '/x/pgpool.conf').config;
  const cluster = new Cluster(config.backends.map((b) => ({ id: b.id, host: b.hostname, port: b.port, weight: b.weight, flags: b.flags, dataDirectory: '', applicationName: '' })));
  cluster.setRole(0, NodeRole.Primary, 'bench');
  cluster.setRole(1, NodeRole.Standby, 'bench');
  cluster.setStatus(0, NodeStatus.Up, 'bench');
  cluster.setStatus(1, NodeStatus.Up, 'bench');
  const routing = buildRoutingContext(config, { get: () => 's', lookup: async () => {}, clear: () => {} });
  const log = pino({ level: 'silent' });
  const poolSize = Number(process.env.POOL ?? 20);
  const limitOnce: LeaseLimit = { size: poolSize, reserve: 0, reserveAfterMs: 0 };
  const limit = (): LeaseLimit => limitOnce; // (as handshake.ts leaseLimit: one object per configuration)

  /** Connections with a request written and no answer yet, in the order they were written. */
  let inflight: Conn[] = [];
  let nextPid = 100;
  const create = async (): Promise<Conn> => makeConn();
  const makeConn = (): Conn => {
    const c: Conn = {
      key: 'u/d', createdAt: Date.now(), lastUsedAt: 0, useCount: 0, usable: true, destroy: () => {},
      nodeId: 0, backendPid: nextPid++, backendSecret: 1, txStatus: 73, params: new Map(), applied: new Map(), appliedVersion: -1, appliedOwner: null,
      statements: new ServerStatements(), lastStatement: '', owner: null,
      write: () => {
        inflight.push(c);
        return true;
      },
      pause: () => {}, resume: () => {}, onceDrained: () => {},
    };
    return c;
  };

  const makeHost = (pooling: 'session' | 'transaction', s: Session, pool: NodePool<Conn>): CoreHost => {
  let leaseDone: ((c: BackendPort | null, refused: null) => void) | null = null;
  const leaseCame = (c: Conn | null): void => {
    if (c === null) return; // (the pool closed at the end of a run)
    c.owner = s;
    leaseDone!(c, null);
  };
  return {
    pid: 1, user: 'u', database: 'd', applicationName: '', cluster, routing, config, lsn: null, adminEnabled: true,
    log, logFlags: { statement: false, perNodeStatement: false, clientMessages: false, connections: false, disconnections: false, backendMessages: 'none' },
    noticePerNode: false, classifier: routing.classifier,
    lbCandidates: (primaryId, excluded) => cluster.nodes.map((n) => ({ id: n.id, weight: n.weight, usable: !excluded(n.id), isPrimary: n.id === primaryId, lagging: false, delay: 0, backup: false })),
    leaseNow: () => {
      const c = pool.tryLease('u/d');
      if (c !== null) c.owner = s;
      return c;
    },
    openLink: async () => {
      const c = await pool.lease('u/d', async () => makeConn(), limit(), 0);
      c.owner = s;
      return c;
    },
    // As frontend/session.ts: the waiting path through the pool's callback (LEASE_PROMISE=1: openLink's promises, the older path).
    ...(process.env.LEASE_PROMISE === '1' ? {} : {
      // (Callbacks made once per session, as frontend/session.ts does: not a closure per wait.)
      leaseLater: (_node: number, done: (c: BackendPort | null, refused: null) => void) => {
        leaseDone = done;
        pool.waitInLine('u/d', create, limit(), 0, leaseCame);
      },
    }),
    closeLink: (p, reusable, why, reset) => {
      const c = p as Conn;
      c.owner = null;
      if (pooling !== 'session') pool.giveBack(c, reusable, why, limit(), reset);
    },
    runAdmin: async () => Buffer.alloc(0), nodeAccepting: async () => true,
    backendError: () => {}, cancelBackend: async () => {}, pauseClient: () => {}, resumeClient: () => {}, end: () => {}, observeLatency: () => {},
    pooling, pinned: () => {}, statementCache: () => {}, knownStatement: () => false,
  };
  };

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
  const sizes = counts.length > 0 ? counts : [16, 64, 256];
  const poolings = (process.env.POOLING ?? 'session,transaction').split(',') as ('session' | 'transaction')[];
  const wanted = (process.env.MODES ?? 'simple,extended').split(',');
  let answered = 0;
  for (const pooling of poolings) {
    for (const [mode, request, answer] of modes.filter((m) => wanted.includes(m[0]))) {
      const line: string[] = [];
      for (const n of sizes) {
        const pool = new NodePool<Conn>(0, { capacity: 10_000, idleTimeoutSec: 0, maxUses: 0, connectionCache: true, reset: async () => true, discard: async () => true });
        inflight = [];
        const reqs = Array.from({ length: 1000 }, (_, i) => request(i));
        const sessions: Session[] = [];
        for (let i = 0; i < n; i++) {
          const s: Session = { core: null as unknown as SessionCore, framer: new Framer(1 << 30), sent: 0 };
          s.core = new SessionCore(makeHost(pooling, s, pool), { write: (b) => { answered += b.length; return true; } });
          if (pooling === 'session') {
            const c = makeConn();
            c.owner = s;
            s.core.attachLogin(0, c);
          } else {
            s.core.identityNode = 0;
          }
          sessions.push(s);
        }
        const send = (s: Session): void => {
          s.framer.push(reqs[s.sent++ % 1000]!, s.core);
          s.core.endOfInput();
        };
        // Every client sends its first request; then, per turn of the event loop, the servers
        // answer what they were sent, and the clients answered send their next one a turn later.
        for (const s of sessions) send(s);
        await turn();
        let done = 0;
        const run = async (count: number): Promise<void> => {
          const target = done + count;
          while (done < target) {
            const batch = inflight;
            inflight = [];
            const next: Session[] = [];
            for (const c of batch) {
              const s = c.owner!;
              s.core.onBackendData(0, answer);
              next.push(s);
              done++;
            }
            await turn(); // leases granted to waiters are resolved: their requests go out
            for (const s of next) send(s);
            await turn();
          }
        };
        const total = Number(process.env.REQUESTS ?? 100_000);
        await run(Math.max(2000, total / 4)); // warm-up
        const t0 = process.cpuUsage();
        const d0 = done;
        await run(total);
        const cu = process.cpuUsage(t0);
        line.push(`${String(n).padStart(5)}: ${((cu.user + cu.system) / (done - d0)).toFixed(2).padStart(6)}`);
        if (process.env.ALLOC !== undefined) {
          let best = Infinity;
          for (let k = 0; k < 10; k++) {
            const before = v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space')!.space_used_size;
            const d1 = done;
            await run(n);
            const after = v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space')!.space_used_size;
            if (after >= before) best = Math.min(best, (after - before) / (done - d1));
          }
          line.push(`(${best.toFixed(0)} B)`);
        }
        for (const s of sessions) s.core.close();
        pool.shutdown();
      }
      console.log(`${`${pooling} ${mode}`.padEnd(22)} CPU µs/request by clients (pool ${poolSize})  ${line.join('  ')}`);
    }
  }
  if (answered === 0) throw new Error('nothing went through');
}

void main();
