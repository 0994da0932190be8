/**
 * What a client session needs from the rest of pgmaitre, as one object built by app.ts.
 *
 * Sessions see interfaces and read-only views; they never construct modules themselves.
 */
import type { QueryCache } from '../cache/query-cache';
import type * as net from 'node:net';
import type { Config } from '../config/load';
import type { HbaRule } from '../config/hba';
import type { PoolPasswdEntry } from '../config/pool-passwd';
import type { Logger, LogFlags } from '../log/logger';
import type { Cluster } from '../cluster/cluster';
import type { NodePool } from '../pool/node-pool';
import type { ServerConnection } from '../backend/server-connection';
import type { Slots } from './slots';
import type { SessionRegistry } from './registry';
import type { RoutingContext } from '../core/routing-context';
import type { LsnSource } from '../core/read-your-writes';
import type { AdminSession, AdminError, ResultSet } from '../admin/types';
import type { BackendTlsOptions } from '../backend/server-connection';
import type { FrontendTls } from './tls';
import type { AuthGuard } from './rate-limit';
import type { AuthQuery } from './auth-query';
import type { LruCache } from '../util/lru-cache';

/**
 * A client whose StartupMessage asks for replication, handed over by the session that read it
 * (the replication relay takes the socket from there; see ports/replication-relay.ts).
 */
export interface ReplicationHandover {
  /** The client's socket (a TLSSocket after SSLRequest), with no listeners of the session left. */
  readonly socket: net.Socket;
  readonly tlsActive: boolean;
  readonly unixSocket: boolean;
  readonly address: string;
  readonly port: number;
  readonly connectedAt: Date;
  /** The StartupMessage exactly as the client sent it (a copy). */
  readonly packet: Buffer;
  readonly params: Readonly<Record<string, string>>;
  /** Bytes the client sent after the StartupMessage (a copy; normally none). */
  readonly rest: Buffer;
}

/** Shared state and services handed to every session. */
export interface FrontendContext {
  config: Config;
  readonly log: Logger;
  readonly logFlags: LogFlags;
  readonly cluster: Cluster;
  readonly pools: ReadonlyMap<number, NodePool<ServerConnection>>;
  readonly slots: Slots;
  /** Transaction/statement pooling: client sessions served at once (max_client_conn). */
  readonly pooledClients: Slots;
  /** Transaction pooling counters (metrics, SHOW POOL_POOLS). */
  readonly poolStats: PooledStats;
  /** Transaction pooling: statement definitions backends accepted, per (user, database, search_path) (bounded). */
  readonly knownStatements: LruCache<boolean>;
  /**
   * Transaction pooling: the ParameterStatus values a login to (node, user, database) with given
   * startup parameters was answered with (bounded): a later identical login completes from them
   * without a backend connection (handshake.ts).
   */
  readonly greetings: LruCache<ReadonlyMap<string, string>>;
  readonly registry: SessionRegistry;
  /** pool_hba.conf rules when enable_pool_hba = on, else null (backends authenticate clients). */
  hba: readonly HbaRule[] | null;
  poolPasswd: ReadonlyMap<string, PoolPasswdEntry>;
  /**
   * (user, database) pairs the primary let in without a password: pooled logins may be reused.
   * Forgotten when the primary asks a login of the pair for a password, and all on reload.
   */
  readonly trustedLogins: Set<string>;
  /** True once shutdown has begun: new clients are refused. */
  shuttingDown: boolean;
  /** Classifier, router settings and node lag (rebuilt on reload). */
  routing: RoutingContext;
  /** Answers SHOW POOL_* / PGPOOL commands, when the admin layer is wired. */
  admin: AdminHook | null;
  /** The query cache (memory_cache_enabled = on), or null/absent. */
  queryCache?: QueryCache | null;
  /** WAL positions for read_your_writes (null when not wired). */
  lsn: (LsnSource & { close(): Promise<void> }) | null;
  /** Tells the failover layer a backend connection failed (failover_on_backend_error). */
  onBackendError: (nodeId: number, reason: string) => void;
  /** TLS for clients (ssl = on with a certificate and key); null/undefined: SSLRequest gets 'N'. */
  tls?: FrontendTls | null;
  /** TLS to the backends (ssl = on); undefined: plain TCP. */
  backendTls?: BackendTlsOptions;
  /** Failed-login delay and per-address rate limit; undefined: none. */
  authGuard?: AuthGuard;
  /** auth_query lookups and role membership (auth_user); undefined when not configured. */
  authQuery?: AuthQuery;
  /** Dedicated-port relays open on a node (least_connections counts them); undefined without dedicated ports. */
  relayCount?: (nodeId: number) => number;
  /**
   * worker_processes > 1: sessions the instance's other worker processes hold on a node, as they
   * last reported it (least_connections balances on the instance's count, workers/instance-lb.ts).
   */
  otherWorkersActive?: (nodeId: number) => number;
  /** Takes over replication connections (wired by app.ts); undefined: they are refused at login. */
  replication?: (h: ReplicationHandover) => void;
}

/** Transaction pooling counters. */
export interface PooledStats {
  /** Sessions that keep their connections (LISTEN, advisory locks...) now, and since start. */
  pinnedNow: number;
  pinnedTotal: number;
  /** Binds whose statement the leased connection had (hits) or had to be parsed there (misses). */
  cacheHits: number;
  cacheMisses: number;
  /** Lease waits, in seconds (the histogram lives in admin/latency-like metrics). */
  onWait: (seconds: number) => void;
}

/** What the frontend calls for statements the classifier marks as admin commands. */
export interface AdminHook {
  run(sql: string, session: AdminSession): Promise<ResultSet | AdminError>;
}
