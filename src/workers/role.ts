/**
 * What app.ts asks of a process when worker_processes > 1 (src/workers/): the hooks by which
 * the supervisor (the brain) and a worker (clients) differ from the single process. With
 * worker_processes = 1 no role is given and app.ts runs exactly as before.
 */
import type { Config } from '../config/load';
import type { Logger } from '../log/logger';
import type { Cluster } from '../cluster/cluster';
import type { HealthSystem } from '../failover/index';
import type { AdminActions, AdminContext } from '../admin/types';
import type { LsnSource } from '../core/read-your-writes';

/**
 * The query cache's face to the other workers (cache/query-cache.ts implements it): with shmem
 * storage each worker keeps its own generations, so a write's invalidation is shared, and awaited
 * (acknowledged by every other worker) before the writing session's ReadyForQuery goes out.
 */
export interface SharedQueryCache {
  /** Set by a worker: sends generation bumps to every other worker; resolves once all applied them. */
  share: ((names: readonly string[], forget: boolean) => Promise<void>) | null;
  /** Applies another worker's bumps (`forget`: its catalog lookups may be stale too: DDL, everything). */
  applyShared(names: readonly string[], forget: boolean): void;
}

/** A process's part in a multi-process instance. */
export interface ProcessRole {
  /** 'supervisor': health checks, failover, PCP and HTTP, no client listener; 'worker': clients. */
  readonly kind: 'supervisor' | 'worker';
  /** Worker: the health system's stand-in (node states pushed by the supervisor). */
  readonly health?: (cluster: Cluster, config: Config, log: Logger) => HealthSystem;
  /** Worker: its share of the instance's limits, applied at start and at every reload. */
  readonly shareConfig?: (config: Config) => Config;
  /** The admin context SQL admin commands read: the whole instance (asks the supervisor). */
  readonly instanceView?: (local: AdminContext) => Promise<AdminContext>;
  /** Worker: read_your_writes' WAL positions, the supervisor's (workers/remote-lsn.ts). */
  readonly lsn?: () => LsnSource & { close(): Promise<void> };
  /** Worker: the query cache was built (memory_cache_enabled = on): its invalidations are shared. */
  readonly queryCache?: (cache: SharedQueryCache) => void;
  /** Supervisor: the context PCP and HTTP read (the whole instance, refreshed per request). */
  readonly facesContext?: (local: AdminContext) => AdminContext;
  /** Supervisor: actions that reach every worker (reload) or stop them all (stop); worker: asks the supervisor. */
  readonly actions?: (local: AdminActions) => AdminActions;
}
