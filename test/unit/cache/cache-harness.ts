/**
 * A SessionCore with the shmem query cache and no socket, no server (test/unit/cache/): requests
 * framed as a client sends them, misses answered by a fake primary, hits answered by the cache.
 * Several sessions (other users, databases) can share one QueryCache, as in one process.
 */
import pino from 'pino';
import { loadConfigText } from '../../../src/config/load';
import { Cluster, NodeRole, NodeStatus } from '../../../src/cluster/cluster';
import { buildRoutingContext } from '../../../src/core/routing-context';
import { SessionCore } from '../../../src/core/session-core';
import type { CoreHost } from '../../../src/core/core-host';
import type { BackendPort } from '../../../src/core/ports';
import { Framer } from '../../../src/protocol/framer';
import { encodeReadyForQuery } from '../../../src/protocol/backend';
import { initClassifier } from '../../../src/classify';
import { QueryCache } from '../../../src/cache/query-cache';
import { SessionCache } from '../../../src/cache/session-cache';
import { ServerStatements } from '../../../src/protocol/server-statements';

export const SQL = 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;';

export function frame(code: string, body: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h.write(code, 0, 'latin1');
  h.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([h, body]);
}
export const ROW_DESC = frame('T', Buffer.from([0, 1, 0x61, 0x62, 0x61, 0x6c, 0x61, 0x6e, 0x63, 0x65, 0, 0, 0, 0x40, 0, 0, 3, 0, 0, 0, 0x17, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0]));
/** The rows of aid = i: one DataRow whose value is i's text (so that answers differ by key). */
export function rows(i: number): Buffer {
  const v = Buffer.from(String(i));
  const body = Buffer.alloc(6 + v.length);
  body.writeInt16BE(1, 0);
  body.writeInt32BE(v.length, 2);
  v.copy(body, 6);
  return Buffer.concat([ROW_DESC, frame('D', body), frame('C', Buffer.from('SELECT 1\0'))]);
}
export const PARSED = frame('1', Buffer.alloc(0));
export const BOUND = frame('2', Buffer.alloc(0));
export const RFQ = (s: string): Buffer => encodeReadyForQuery(s.charCodeAt(0));

export interface CacheFixture {
  send(b: Buffer): void; answer(b: Buffer): void; client: Buffer[]; backend: Buffer[]; qc: QueryCache; classified: string[]; core: SessionCore; cache: SessionCache;
}

/** What sessions of one process share: the configuration, the routing context, the cache. */
export interface CacheWorld {
  readonly config: ReturnType<typeof loadConfigText>['config'];
  readonly routing: ReturnType<typeof buildRoutingContext>;
  readonly cluster: Cluster;
  readonly qc: QueryCache;
  /** The classifier every session reads through (counting into `classified`). */
  readonly classifier: ReturnType<typeof buildRoutingContext>['classifier'];
  /** The texts classified (by the planner or the cache). */
  readonly classified: string[];
}

export async function world(conf = ''): Promise<CacheWorld> {
  await initClassifier();
  const config = loadConfigText("backend_hostname0 = 'a'\nbackend_weight0 = 1\nbackend_hostname1 = 'b'\nbackend_port1 = 5433\nbackend_weight1 = 0\n"
    + "memory_cache_enabled = on\nmemqcache_method = 'shmem'\nmemqcache_total_size = 8388608\n" + conf, '/x/pgpool.conf').config;
  const cluster = new Cluster(config.backends.map((b) => ({ id: b.id, host: b.hostname, port: b.port, weight: b.weight, flags: b.flags, dataDirectory: '', applicationName: '' })));
  cluster.setRole(0, NodeRole.Primary, 't');
  cluster.setRole(1, NodeRole.Standby, 't');
  cluster.setStatus(0, NodeStatus.Up, 't');
  cluster.setStatus(1, NodeStatus.Up, 't');
  const routing = buildRoutingContext(config, VOLATILITY);
  const qc = new QueryCache(config, () => null, pino({ level: 'silent' }));
  qc.catalog.known = () => ({ oid: 16398, kind: 'r', persistence: 'p', system: false, rowSecurity: false });
  qc.catalog.expiresAt = () => Infinity;
  // What a write to it invalidates: itself only (no trigger, cascade, partition, view).
  qc.catalog.knownWriteSet = (_db, oids) => ({ all: false, oids: [...oids] });
  const classified: string[] = [];
  const base = routing.classifier;
  const classifier = Object.assign(Object.create(base) as typeof base, { classify: (sql: string) => { classified.push(sql); return base.classify(sql); } });
  return { config, routing, cluster, qc, classifier, classified };
}

/** The shared read buffer of the sessions (util/raw-socket.ts' SHARED). */
const READ = Buffer.alloc(64 * 1024);

const VOLATILITY = { get: () => 's' as const, lookup: async () => {}, clear: () => {} };

/** A session (user `u`, database `d` unless told) on `w` (a world of its own unless given). */
export async function setup(opts: { readonly world?: CacheWorld; readonly user?: string; readonly database?: string } = {}): Promise<CacheFixture> {
  const { config, routing, cluster, qc, classifier, classified } = opts.world ?? await world();
  const user = opts.user ?? 'u';
  const database = opts.database ?? 'd';
  const log = pino({ level: 'silent' });
  const backend: Buffer[] = [];
  const client: Buffer[] = [];
  const conn = (nodeId: number): BackendPort => ({
    nodeId, backendPid: 100 + nodeId, backendSecret: 1, txStatus: 73, params: new Map(), applied: new Map(), appliedVersion: -1, appliedOwner: null,
    statements: new ServerStatements(), lastStatement: '',
    write: (b) => { backend.push(Buffer.from(b)); return true; }, pause: () => {}, resume: () => {}, onceDrained: () => {},
  });
  const host: CoreHost = {
    pid: 1, user, database, applicationName: '', cluster, routing, config, lsn: null, adminEnabled: true,
    log, logFlags: { statement: false, perNodeStatement: false, clientMessages: false, connections: false, disconnections: false, backendMessages: 'none' },
    noticePerNode: false, classifier,
    lbCandidates: (primaryId, excluded) => cluster.nodes.map((n) => ({ id: n.id, weight: n.weight, usable: !excluded(n.id), isPrimary: n.id === primaryId, lagging: false, delay: 0, backup: false })),
    openLink: async () => conn(1), closeLink: () => {}, runAdmin: async () => Buffer.alloc(0), nodeAccepting: async () => true,
    backendError: () => {}, cancelBackend: async () => {}, pauseClient: () => {}, resumeClient: () => {}, end: () => {}, observeLatency: () => {},
    pooling: 'session', leaseNow: () => null, pinned: () => {}, statementCache: () => {}, knownStatement: () => false,
    cache: new SessionCache(qc, { user, database, startupParams: { user, database } }, () => classifier, () => VOLATILITY),
  };
  const cache = host.cache as SessionCache;
  const core = new SessionCore(host, { write: (b) => { client.push(b); return true; } });
  core.attachLogin(0, conn(0));
  const framer = new Framer(1 << 30);
  return {
    // As frontend/session.ts reads: into a shared buffer, valid during the call (overwritten
    // after it here, so that whatever kept a view instead of a copy would fail), offered whole
    // to the query cache (SessionCore.quickRead), else framed.
    send: (b) => {
      const view = b.length <= READ.length ? READ.subarray(0, b.length) : Buffer.from(b);
      b.copy(view);
      if (framer.atBoundary && core.quickRead(view)) {
        view.fill(0xee);
        return;
      }
      framer.pushView(view, core, () => {});
      view.fill(0xee);
      core.endOfInput();
    },
    answer: (b) => core.onBackendData(0, b),
    client, backend, qc, classified, core, cache,
  };
}
