/**
 * Contracts of the admin layer: commands pgmaitre answers itself (SHOW POOL_*, PGPOOL SHOW/SET/
 * RESET) over read-only views, and the actions (attach/detach/promote/reload/stop) that the SQL,
 * PCP and HTTP faces share. Commands return plain rows; the frontend serializes them.
 */
import type { MetricObjectWithValues, MetricValueWithName } from 'prom-client';
import type { Config } from '../config/load';
import type { BackendNode } from '../cluster/cluster';
import type { PoolCounts } from '../pool/node-pool';

/** A result to send as RowDescription (text columns, type OID 0 like pgpool) + DataRows + CommandComplete. */
export interface ResultSet {
  readonly columns: readonly string[];
  readonly rows: readonly (readonly (string | null)[])[];
  /** CommandComplete tag; default `SELECT <rows>`. */
  readonly tag?: string;
}

/** An error an admin command reports to the client (ERROR, the session lives). */
export interface AdminError {
  readonly error: { readonly code: string; readonly message: string; readonly detail?: string; readonly hint?: string };
}

/** One backend connection held by a session, as admin commands see it. */
export interface SessionBackendInfo {
  readonly nodeId: number;
  readonly backendPid: number;
  readonly connectedAt: Date;
  readonly useCount: number;
  /** Last statement sent on this connection ('' if none), untruncated (SHOW POOL_POOLS clips it). */
  readonly statement?: string;
}

/** A client session as admin commands see it. */
export interface SessionInfo {
  readonly pid: number;
  readonly slot: number;
  readonly connectedAt: Date;
  readonly user: string;
  readonly database: string;
  readonly applicationName: string;
  readonly address: string;
  readonly port: number;
  /** 'Idle', 'Idle in transaction', 'Execute command', 'Wait for connection' (pgpool's wording). */
  readonly status: string;
  readonly loadBalanceNode: number;
  readonly backends: readonly SessionBackendInfo[];
}

/** The asking session: its identity and its session-scoped PGPOOL SET parameters. */
export interface AdminSession {
  readonly pid: number;
  readonly user: string;
  readonly database: string;
  /** The node this session's reads go to (load_balance_node column), or -1. */
  readonly loadBalanceNode: number;
  /**
   * This session's PGPOOL SET override of a parameter, or undefined (callers fall back to the
   * admin context's configuration: the instance's, unsplit, when worker_processes > 1).
   */
  getParam(name: string): unknown;
  /** Sets a session-scoped override (already validated). */
  setParam(name: string, value: unknown): void;
  /** Drops an override (or all with '*'). */
  resetParam(name: string): void;
}

/** Cluster-changing actions shared by SQL, PCP and HTTP. Each resolves with a message or throws. */
export interface AdminActions {
  attachNode(id: number): Promise<string>;
  detachNode(id: number, opts?: { gracefully?: boolean; switchover?: boolean }): Promise<string>;
  promoteNode(id: number, opts?: { switchover?: boolean }): Promise<string>;
  reloadConfig(): Promise<string>;
  /** pcp_log_rotate: begin a new log file (logging_collector); resolves with what was done. */
  logRotate(): Promise<string>;
  stop(mode: 'smart' | 'fast' | 'immediate'): Promise<string>;
  /**
   * Online recovery of a detached node (pcp_recovery_node); resolves once it is attached. Rejects
   * with an Error carrying `detail` and `severity` ('ERROR' | 'FATAL') as pgpool-II words them.
   */
  recoverNode?(id: number): Promise<string>;
}

/** Something that happened to the cluster, for the status page (newest last). */
export interface AdminEvent {
  readonly at: Date;
  /** node_down, node_up, failback, failover (a new primary), role_change, or any other kind an emitter adds. */
  readonly kind: string;
  readonly nodeId: number;
  readonly message: string;
}

/** Statement-classifier cache counters (for /metrics). */
export interface ClassifierStats {
  readonly hits: number;
  readonly misses: number;
  readonly size: number;
}

/** History of one client slot (pgpool's per-process counters). */
export interface SlotHistory {
  /** Clients this slot has served since start. */
  readonly connections: number;
  /** When its last client left, or null. */
  readonly lastDisconnectedAt: Date | null;
}

/** Read-only views and actions given to every command. */
export interface AdminContext {
  readonly config: () => Config;
  readonly nodes: () => readonly BackendNode[];
  readonly primaryId: () => number;
  readonly poolCounts: (nodeId: number) => PoolCounts | undefined;
  readonly sessions: () => readonly SessionInfo[];
  readonly slots: () => { readonly capacity: number; readonly inUse: number; readonly waiting: number };
  readonly startedAt: Date;
  readonly version: string;
  readonly actions: AdminActions;
  /** Recent cluster events, oldest first (see EventLog). Optional: none when absent. */
  readonly recentEvents?: () => readonly AdminEvent[];
  /** Cluster events of each kind since start (see EventLog.counts). Optional. */
  readonly eventCounts?: () => ReadonlyMap<string, number>;
  /** Classifier cache counters, when the classifier exposes them. */
  readonly classifierStats?: () => ClassifierStats;
  /** Per-slot history for client_connection_count / client_disconnection_time. */
  readonly slotHistory?: (slot: number) => SlotHistory | undefined;
  /** Transaction pooling counters (pool_mode = transaction | statement). Optional. */
  readonly pooling?: () => PoolingView;
  /** The query cache (memory_cache_enabled = on), or null. Optional: none when absent. */
  readonly queryCache?: () => QueryCacheAdmin | null;
  /** The online recovery running now (SHOW POOL_NODES shows that node as `recovering`), or null. */
  readonly recovery?: () => { readonly nodeId: number; readonly stage: string; readonly startedAt: Date } | null;
  /** HA pair (etcd_endpoints): this instance's name and whether it holds the command lease. */
  readonly failoverLease?: () => { readonly instance: string; readonly leading: boolean } | null;
  /**
   * worker_processes > 1: the latency histograms (pgmaitre_query_duration_seconds,
   * pgmaitre_pool_wait_seconds) summed over the workers, as prom-client's metric objects; absent
   * for one process, whose own histograms are read directly.
   */
  readonly histograms?: () => readonly HistogramData[];
  /** worker_processes > 1: brings the counted and listed figures up to date (src/workers/); faces await it per request. */
  readonly refresh?: () => Promise<void>;
}

/** A histogram's figures as prom-client's `get()` gives them (plain data: crosses IPC). */
export type HistogramData = MetricObjectWithValues<MetricValueWithName<string>>;

/** The query cache as the admin faces use it (src/cache/query-cache.ts behind it). */
export interface QueryCacheAdmin {
  /** SHOW POOL_CACHE's row. */
  poolCacheRow(): string[];
  /** PGPOOL SET CACHE DELETE: invalidates what `sql` reads (as `user` in `database`). */
  deleteQuery(sql: string, user: string, database: string): Promise<void>;
  /** pcp_invalidate_query_cache: invalidates every cached answer. */
  invalidateAll(): Promise<void>;
  /** Counters for /metrics. */
  metrics(): QueryCacheMetrics;
}

/** Query cache counters and sizes for /metrics. */
export interface QueryCacheMetrics {
  readonly method: string;
  readonly hits: number;
  readonly misses: number;
  readonly selects: number;
  readonly stores: number;
  readonly notStored: number;
  readonly evictions: number;
  readonly memcachedErrors: number;
  readonly memcachedUp: boolean;
  readonly bytes: number;
  readonly entries: number;
  readonly invalidations: ReadonlyMap<string, number>;
  /** memqcache_logical_invalidation: each database's change stream (up, rounds applied). */
  readonly changeStreams?: readonly { readonly database: string; readonly up: boolean; readonly rounds: number }[];
}

/** Transaction pooling as SHOW POOL_LEASES, /metrics and the status page show it. */
export interface PoolingView {
  /** pool_mode (the default; lists may override it per user/database). */
  readonly mode: string;
  readonly defaultPoolSize: number;
  /** Client sessions pooled per transaction/statement now, and max_client_conn. */
  readonly clients: number;
  readonly maxClientConn: number;
  /** Per node: backend connections idle and leased, clients waiting for one, leases granted and how many waited. */
  readonly nodes: readonly { readonly node: number; readonly idle: number; readonly leased: number; readonly waiting: number; readonly leases: number; readonly waitedLeases: number }[];
  /** Sessions that keep their connection (LISTEN, advisory lock, WITH HOLD, temp table): now and since start. */
  readonly pinnedNow: number;
  readonly pinnedTotal: number;
  /** Binds whose statement the leased connection had (hits) or had to be parsed there (misses). */
  readonly cacheHits: number;
  readonly cacheMisses: number;
}

/** One admin command (one file each under src/admin/commands/). */
export interface AdminCommand {
  /** For listings and errors, e.g. 'SHOW POOL_NODES'. */
  readonly name: string;
  /** Returns the argument text when the SQL is this command, else null. */
  match(sql: string): string | null;
  execute(ctx: AdminContext, session: AdminSession, args: string): ResultSet | AdminError | Promise<ResultSet | AdminError>;
}
