/**
 * A SessionCore with recorders for ports and host: three nodes (0 primary, 1 and 2 standbys),
 * backend connections that record what is written to them, a client that records what it
 * receives. No socket, no cluster: tests drive the core with byte streams and read the records.
 */
import pino from 'pino';
import { loadConfigText, type Config } from '../../../src/config/load';
import { Cluster, NodeRole, NodeStatus } from '../../../src/cluster/cluster';
import { buildRoutingContext, type VolatilityLookup } from '../../../src/core/routing-context';
import { SessionCore } from '../../../src/core/session-core';
import { LinkRefused, type CoreHost } from '../../../src/core/core-host';
import type { BackendPort, ClientPort } from '../../../src/core/ports';
import { Framer } from '../../../src/protocol/framer';
import { TxStatus } from '../../../src/protocol/codes';
import { initClassifier } from '../../../src/classify';
import { ServerStatements } from '../../../src/protocol/server-statements';

/** A backend connection that records what the core writes to it. */
export class FakeConn implements BackendPort {
  lastStatement = '';
  txStatus: number = TxStatus.Idle;
  readonly params = new Map<string, string>([['server_version', '15.0']]);
  applied: Map<string, string> | null = new Map();
  appliedVersion = -1;
  appliedOwner: unknown = null;
  readonly written: Buffer[] = [];
  readonly statements = new ServerStatements();
  paused = false;
  /** DISCARD ALL runs of the pool's reset (closeLink with reset). */
  discards = 0;
  /** What write() returns (false: above the high-water mark). */
  accept = true;
  private drainers: (() => void)[] = [];
  constructor(readonly nodeId: number, readonly backendPid: number, readonly backendSecret = 42) {}
  write(buf: Buffer): boolean {
    this.written.push(Buffer.from(buf));
    return this.accept;
  }
  pause(): void { this.paused = true; }
  resume(): void { this.paused = false; }
  onceDrained(cb: () => void): void { this.drainers.push(cb); }
  /** The socket drained. */
  drain(): void {
    this.accept = true;
    const d = this.drainers;
    this.drainers = [];
    for (const cb of d) cb();
  }
  /** Everything written so far, and forget it. */
  take(): Buffer {
    const b = Buffer.concat(this.written);
    this.written.length = 0;
    return b;
  }
}

/** Options of makeCore. */
export interface CoreOptions {
  /** Extra pgpool.conf lines. */
  readonly conf?: string;
  /** pool_mode of the session (default session). */
  readonly pooling?: 'session' | 'transaction' | 'statement';
  /** Node weights (default 0,1,1: reads on the standbys). */
  readonly weights?: readonly number[];
  /**
   * The idle connections of the (user, database) key, shared by several cores (transaction
   * pooling: two clients on one pool). Connections given back go there.
   */
  readonly idle?: FakeConn[];
  /** Attach a login connection (default true). */
  readonly login?: boolean;
  /** cancelBackend resolves when this does (default: at once). */
  readonly cancelTaken?: Promise<void>;
  /**
   * The host offers leaseLater (frontend/session.ts does: the core's transaction-pooling waits go
   * through it, not openLink). Default true; false keeps the openLink path.
   */
  readonly leaseLater?: boolean;
  /**
   * send() offers each chunk to the quick forward path first, as frontend/session.ts does with
   * each read (SessionCore.quickForward). Default true.
   */
  readonly quick?: boolean;
}

/** The core under test and its recorders. */
export interface CoreFixture {
  readonly core: SessionCore;
  readonly conns: Map<number, FakeConn>;
  readonly client: Buffer[];
  readonly host: CoreHost & { paused: boolean; ended: string | null; closed: { node: number; reusable: boolean; why: string; reset: boolean }[]; cancels: string[]; accepting: boolean; idle: FakeConn[]; pins: string[] };
  readonly cluster: Cluster;
  readonly config: Config;
  /** The client's socket is above its high-water mark: its write() returns false. */
  clientFull: boolean;
  /** Frames client bytes and hands them to the core, then ends the chunk. */
  send(...chunks: Buffer[]): void;
  /** A backend chunk from `node`. */
  answer(node: number, ...chunks: Buffer[]): void;
  /** Everything the client received so far, and forget it. */
  received(): Buffer;
  /** Lets pending promises (connects, lookups) settle. */
  settle(): Promise<void>;
}

let pid = 1000;

/** Builds a core whose login connection (the primary's) is attached. */
export async function makeCore(o: CoreOptions = {}): Promise<CoreFixture> {
  await initClassifier();
  const weights = o.weights ?? [0, 1, 1];
  const text = [0, 1, 2].map((i) => `backend_hostname${i} = 'db${i}'\nbackend_port${i} = ${5432 + i}\nbackend_weight${i} = ${weights[i]}\n`).join('')
    + `read_your_writes = off\n${o.conf ?? ''}`;
  const config = loadConfigText(text, '/etc/pgpool/pgpool.conf').config;
  const cluster = new Cluster(config.backends.map((b) => ({
    id: b.id, host: b.hostname, port: b.port, weight: b.weight, flags: b.flags, dataDirectory: b.dataDirectory, applicationName: b.applicationName,
  })));
  cluster.setRole(0, NodeRole.Primary, 'test');
  for (const i of [0, 1, 2]) {
    if (i > 0) cluster.setRole(i, NodeRole.Standby, 'test');
    cluster.setStatus(i, NodeStatus.Up, 'test');
  }
  const volatility: VolatilityLookup = {
    get: (fn) => (fn.startsWith('vol_') ? 'v' : 's'),
    lookup: async () => {},
    clear: () => {},
  };
  const routing = buildRoutingContext(config, volatility);
  const conns = new Map<number, FakeConn>();
  const client: Buffer[] = [];
  const log = pino({ level: 'silent' });
  const host: CoreFixture['host'] = {
    pid: 7, user: 'u', database: 'd', applicationName: 'app', cluster, routing, config, lsn: null, adminEnabled: true,
    log, logFlags: { statement: false, perNodeStatement: false, clientMessages: false, connections: false, disconnections: false, backendMessages: 'none' },
    noticePerNode: false, classifier: routing.classifier,
    paused: false, ended: null, closed: [], cancels: [], accepting: true, idle: o.idle ?? [], pins: [],
    pooling: o.pooling ?? 'session',
    leaseNow: (node) => {
      const i = host.idle.findIndex((c) => c.nodeId === node);
      if (i < 0) return null;
      const c = host.idle.splice(i, 1)[0]!;
      conns.set(node, c);
      return c;
    },
    pinned: (reason) => { host.pins.push(reason); },
    statementCache: () => {},
    knownStatement: () => false,
    lbCandidates: (primaryId, excluded) => cluster.nodes.map((n) => ({
      id: n.id, weight: n.weight, isPrimary: n.id === primaryId, lagging: false, delay: 0, backup: false,
      usable: n.status === 'up' && (n.id === primaryId || n.role === 'standby') && !excluded(n.id),
    })),
    openLink: async (node) => {
      const c = new FakeConn(node, ++pid);
      conns.set(node, c);
      return c;
    },
    // Through host.openLink (which tests replace to hold a lease back), reported by callback as
    // frontend/session.ts's leaseLater does; a rejection other than LinkRefused (a bug) needs
    // leaseLater: false (the openLink path).
    ...(o.leaseLater === false ? {} : {
      leaseLater: (node: number, done: (conn: BackendPort | null, refused: LinkRefused | null) => void): void => {
        host.openLink(node).then((c) => done(c, null), (e: unknown) => {
          if (e instanceof LinkRefused) done(null, e);
          else throw e;
        });
      },
    }),
    closeLink: (conn, reusable, why, reset = false) => {
      host.closed.push({ node: conn.nodeId, reusable, why, reset });
      if (reusable && reset) {
        // What the pool's DISCARD ALL does (app.ts): nothing of the last lessee is left.
        const c = conn as FakeConn;
        c.discards++;
        c.statements.clear();
        c.applied = null;
        c.appliedOwner = null;
        c.appliedVersion = -1;
      }
      if (host.pooling !== 'session' && reusable) host.idle.push(conn as FakeConn);
    },
    runAdmin: async () => Buffer.from('admin'),
    nodeAccepting: async () => host.accepting,
    backendError: () => {},
    cancelBackend: async (node, p) => {
      host.cancels.push(`${node}:${p}`);
      if (o.cancelTaken !== undefined) await o.cancelTaken;
    },
    pauseClient: () => { host.paused = true; },
    resumeClient: () => { host.paused = false; },
    end: (reason) => { host.ended = reason; core.close(); },
    observeLatency: () => {},
  };
  const port: ClientPort = { write: (b) => { client.push(Buffer.from(b)); return !fixture.clientFull; } };
  const core = new SessionCore(host, port);
  if (o.login !== false) {
    const login = new FakeConn(0, ++pid);
    conns.set(0, login);
    core.attachLogin(0, login);
  }
  const framer = new Framer(1 << 30);
  const fixture: CoreFixture = {
    core, conns, client, host, cluster, config, clientFull: false,
    send: (...chunks) => {
      for (const c of chunks) {
        if (o.quick !== false && framer.atBoundary && core.quickForward(c, 1 << 30)) continue;
        framer.push(c, core);
        core.endOfInput();
      }
    },
    answer: (node, ...chunks) => { for (const c of chunks) core.onBackendData(node, c); },
    received: () => {
      const b = Buffer.concat(client);
      client.length = 0;
      return b;
    },
    settle: async () => { for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r)); },
  };
  return fixture;
}
