/**
 * The messages between the supervisor (the brain: health checks, failover, PCP, HTTP) and the
 * worker processes (clients), over Node's IPC channel with `serialization: 'advanced'`
 * (structured clone: Dates and Maps arrive as such). Requests that want an answer carry an `id`
 * the answer repeats.
 */
import type { NodeRole, NodeStatus } from '../cluster/cluster';
import type { ReplicationInfo } from '../cluster/stats';
import type { AdminEvent, ClassifierStats, HistogramData, PoolingView, QueryCacheMetrics, SessionInfo, SlotHistory } from '../admin/types';
import type { BackendNode } from '../cluster/cluster';
import type { NodeCounters } from '../cluster/stats';
import type { PoolCounts } from '../pool/node-pool';

/** A node as the brain sees it, pushed to every worker on each change. */
export interface NodeState {
  readonly id: number;
  readonly status: NodeStatus;
  readonly role: NodeRole;
  readonly reason: string;
  readonly pgStatus: 'up' | 'down' | 'unknown';
  readonly pgRole: NodeRole;
  readonly replication: ReplicationInfo;
  /** Beyond delay_threshold / delay_threshold_by_time (reads avoid it). */
  readonly lagging: boolean;
}

/** What one worker holds (its share of the instance), collected for admin answers. */
export interface WorkerSnapshot {
  readonly index: number;
  readonly pid: number;
  readonly sessions: readonly SessionInfo[];
  readonly pools: readonly { readonly node: number; readonly counts: PoolCounts }[];
  readonly counters: readonly { readonly node: number; readonly counters: NodeCounters }[];
  readonly slots: { readonly capacity: number; readonly inUse: number; readonly waiting: number };
  readonly pooling: PoolingView | null;
  readonly classifier: ClassifierStats | null;
  readonly slotHistory: readonly (readonly [number, SlotHistory])[];
  /** Its query cache's SHOW POOL_CACHE row and counters (null: the cache is off). */
  readonly cache: { readonly row: readonly string[]; readonly metrics: QueryCacheMetrics } | null;
  /** Its latency histograms (summed over the workers by the instance view). */
  readonly histograms: readonly HistogramData[];
  /** Its share of num_init_children and max_client_conn (to number its slots in the instance). */
  readonly shares: { readonly nic: number; readonly nicOffset: number; readonly mcc: number; readonly mccOffset: number };
}

/** The whole instance: the brain's view plus every worker's snapshot. */
export interface InstanceSnapshot {
  readonly nodes: readonly BackendNode[];
  readonly primaryId: number;
  readonly startedAt: Date;
  readonly events: readonly AdminEvent[];
  readonly eventCounts: ReadonlyMap<string, number>;
  readonly lease: { readonly instance: string; readonly leading: boolean } | null;
  /** The online recovery running now (the supervisor's), or null. */
  readonly recovery: { readonly nodeId: number; readonly stage: string; readonly startedAt: Date } | null;
  readonly workers: readonly WorkerSnapshot[];
}

/** Actions a worker asks of the brain (SQL admin commands run in workers). */
export type ActionRequest =
  | { readonly action: 'attach'; readonly node: number }
  | { readonly action: 'detach'; readonly node: number; readonly opts?: { gracefully?: boolean; switchover?: boolean } }
  | { readonly action: 'promote'; readonly node: number; readonly opts?: { switchover?: boolean } }
  | { readonly action: 'recover'; readonly node: number }
  | { readonly action: 'reload' }
  | { readonly action: 'log-rotate' }
  | { readonly action: 'stop'; readonly mode: 'smart' | 'fast' | 'immediate' };

/** Supervisor → worker. */
export type ToWorker =
  | { readonly t: 'nodes'; readonly nodes: readonly NodeState[] }
  | { readonly t: 'cancel'; readonly pid: number; readonly secret: number }
  | { readonly t: 'collect'; readonly id: number }
  | { readonly t: 'instance'; readonly id: number; readonly snapshot: InstanceSnapshot }
  | { readonly t: 'action-done'; readonly id: number; readonly ok: boolean; readonly message: string }
  | { readonly t: 'reload' }
  | { readonly t: 'log-rotate' }
  | { readonly t: 'stop' }
  /** A standby's replay position the supervisor learned (null: the query failed), pushed to every worker. */
  | { readonly t: 'replay'; readonly node: number; readonly lsn: bigint | null }
  /** The primary's current WAL position asked by 'current?' (or why there is none). */
  | { readonly t: 'current'; readonly id: number; readonly lsn: bigint | null; readonly error: string }
  /** Query cache (shmem): another worker's generation bumps, to apply then acknowledge ('cache-bumped'). */
  | { readonly t: 'cache-bump'; readonly id: number; readonly names: readonly string[]; readonly forget: boolean }
  /** Query cache: every other worker applied this worker's bumps `id`. */
  | { readonly t: 'cache-shared'; readonly id: number }
  /**
   * Load balancing on the instance's figures (instance-lb.ts): the merged latency means
   * [node, mean s, age ms] and the sessions the other workers hold [node, count].
   */
  | { readonly t: 'lb'; readonly latency: readonly (readonly [number, number, number])[]; readonly othersActive: readonly (readonly [number, number])[] };

/** Worker → supervisor. */
export type FromWorker =
  | { readonly t: 'ready' }
  | { readonly t: 'cancel'; readonly pid: number; readonly secret: number }
  | { readonly t: 'backend-error'; readonly node: number; readonly reason: string }
  | { readonly t: 'collected'; readonly id: number; readonly snapshot: WorkerSnapshot }
  | { readonly t: 'instance?'; readonly id: number }
  | { readonly t: 'action'; readonly id: number; readonly request: ActionRequest }
  /** read_your_writes: refresh a standby's replay position (answered by a 'replay' push to all). */
  | { readonly t: 'replay?'; readonly node: number }
  /** read_your_writes: pg_current_wal_lsn() of `node` from a query sent at or after `after` (ms). */
  | { readonly t: 'current?'; readonly id: number; readonly node: number; readonly after: number }
  /** Query cache: this worker's generation bumps, for every other worker (answered by 'cache-shared'). */
  | { readonly t: 'cache-bump'; readonly id: number; readonly names: readonly string[]; readonly forget: boolean }
  /** Query cache: bumps `id` of another worker applied here. */
  | { readonly t: 'cache-bumped'; readonly id: number }
  /** Load balancing: latencies observed since the last report [node, sum s, count], sessions held [node, count] (null: unchanged). */
  | { readonly t: 'lb'; readonly latency: readonly (readonly [number, number, number])[]; readonly active: readonly (readonly [number, number])[] | null };
