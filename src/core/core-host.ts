/**
 * What a session core needs from its surroundings: read-only views (cluster, routing, config),
 * the session's effective settings, and the few actions that leave the core (open or give back a
 * backend connection, run an admin command, look something up, end the session). The client
 * session (frontend/session.ts) implements it over real sockets and pools; unit tests implement
 * it with recorders.
 */
import type { Classifier } from '../classify/types';
import type { LogFlags, Logger } from '../log/logger';
import type { NodeCounters } from '../cluster/stats';
import type { BackendPort } from './ports';
import type { RoutingContext } from './routing-context';
import type { LsnSource } from './read-your-writes';
import type { LbCandidate } from '../router/lb-select';
import type { CachePort } from './cache-port';

/** One node as the core reads it. */
export interface NodeView {
  readonly id: number;
  readonly weight: number;
  readonly status: string;
  readonly role: string;
  readonly counters: NodeCounters;
}

/** The cluster as the core reads it (cluster/cluster.ts's Cluster satisfies it). */
export interface ClusterView {
  primaryId(): number;
  node(id: number): NodeView | undefined;
  readonly nodes: readonly NodeView[];
}

/** Settings the core reads (a subset of the live config). */
export interface CoreConfig {
  readonly read_your_writes: boolean;
  readonly failover_on_backend_shutdown: boolean;
  /** Transaction pooling: server-side prepared statements kept per connection (0 = no limit). */
  readonly max_prepared_statements: number;
}

import type { PoolMode } from '../config/pool-mode';

/** See the file header. */
export interface CoreHost {
  /** session: links keep their connection; transaction/statement: a connection is leased per transaction. */
  readonly pooling: PoolMode;
  /** The pid the client was given (BackendKeyData). */
  readonly pid: number;
  readonly user: string;
  readonly database: string;
  readonly applicationName: string;
  readonly cluster: ClusterView;
  readonly routing: RoutingContext;
  readonly config: CoreConfig;
  readonly lsn: LsnSource | null;
  /** True when admin commands (SHOW POOL_*...) are answered locally. */
  readonly adminEnabled: boolean;
  // The session's effective settings (PGPOOL SET overrides, else the live config).
  readonly log: Logger;
  readonly logFlags: LogFlags;
  readonly noticePerNode: boolean;
  readonly classifier: Classifier;
  /** The query cache's hook for this session (cache-port.ts); null/absent when memory_cache_enabled = off. */
  readonly cache?: CachePort | null;

  /**
   * The inputs of load-balance selection for every node (up, weight, lag, BACKUP, and what the
   * configured algorithm needs: sessions per node, recent latency); `excluded` marks nodes to avoid.
   */
  lbCandidates(primaryId: number, excluded: (id: number) => boolean): LbCandidate[];
  /** Opens (or borrows from the pool) a connection to `node` for this session; null when impossible. */
  openLink(node: number): Promise<BackendPort | null>;
  /** Transaction pooling: an idle connection of `node` for this session's key, at once, or null. */
  leaseNow(node: number): BackendPort | null;
  /**
   * Transaction pooling: openLink() for a session that waits in line, without a promise per wait.
   * `done` is called once, later (never from inside this call), with the connection attached, or
   * null (the node cannot be reached), or `refused` (query_wait_timeout). It may be called from
   * inside another session's closeLink() that freed the connection (the pool's hand-off): the
   * core then sends its parked request at once; it never runs a third session's code from there.
   * Optional: without it the core uses openLink().
   */
  leaseLater?(node: number, done: (conn: BackendPort | null, refused: LinkRefused | null) => void): void;
  /**
   * Gives a connection back: reused when `reusable` (leased ones idle at once; with `reset`, after
   * DISCARD ALL, its statement registry and applied state cleared), else closed with `why`.
   * The core decides which (tx-pooling.ts leaseFate).
   */
  closeLink(conn: BackendPort, reusable: boolean, why: string, reset?: boolean): void;
  /** Transaction pooling: the session now keeps its connections (state that cannot be replayed elsewhere); '' = not any more. */
  pinned(reason: string): void;
  /** Transaction pooling: a Bind found its statement on the leased connection (hit) or had it parsed there (miss). */
  statementCache(hit: boolean): void;
  /**
   * Transaction pooling: statement definitions a backend has accepted for this session's
   * (user, database) under `context` (its search_path): a Parse of one of them can be answered
   * without a connection. `add` records one; without it, asks.
   */
  knownStatement(context: string, server: string, add?: boolean): boolean;
  /** Runs an admin command; resolves with its whole answer, ReadyForQuery included (status given). */
  runAdmin(sql: string, txStatus: number): Promise<Buffer>;
  /** Whether `node` still accepts new connections (false: shutting down or unreachable). */
  nodeAccepting(node: number): Promise<boolean>;
  /** A backend connection failed (failover_on_backend_error). */
  backendError(node: number, reason: string): void;
  /** Sends a CancelRequest for the query a backend is running; resolves once the server took it. */
  cancelBackend(node: number, pid: number, secret: number): Promise<void>;
  /** Stops/starts reading the client. */
  pauseClient(): void;
  resumeClient(): void;
  /** The core decided the session ends (it already wrote what the client must see). */
  end(reason: string): void;
  /** One request's latency on a node (from writing it to its last answer); `now`: performance.now() at its end. */
  observeLatency(node: number, seconds: number, now?: number): void;
}

/** openLink() failed in a way the waiting request must hear about (a pool wait timed out). */
export class LinkRefused extends Error {
  override name = 'LinkRefused';
  constructor(readonly code: string, message: string, readonly hint?: string) {
    super(message);
  }
}
