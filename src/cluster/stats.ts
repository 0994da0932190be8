/**
 * Per-node counters that SHOW POOL_NODES / POOL_BACKEND_STATS / POOL_HEALTH_CHECK_STATS and the
 * metrics read. Writers: the session (statement counts, errors), the health checker (health
 * stats), the replication checker (replication fields). Plain mutable records: incrementing a
 * number on the hot path costs nothing, and readers take snapshots.
 */

/** Statement and error counts of one node (pgpool's SHOW POOL_BACKEND_STATS columns). */
export interface NodeCounters {
  select_cnt: number;
  insert_cnt: number;
  update_cnt: number;
  delete_cnt: number;
  ddl_cnt: number;
  other_cnt: number;
  panic_cnt: number;
  fatal_cnt: number;
  error_cnt: number;
}

/** Health check statistics of one node (pgpool's SHOW POOL_HEALTH_CHECK_STATS). Times in ms / Date. */
export interface HealthCheckStats {
  total_count: number;
  success_count: number;
  fail_count: number;
  skip_count: number;
  retry_count: number;
  max_retry_count: number;
  max_duration: number;
  min_duration: number;
  total_duration: number;
  last_health_check: Date | null;
  last_successful_health_check: Date | null;
  last_skip_health_check: Date | null;
  last_failed_health_check: Date | null;
}

/** What the streaming-replication check last saw for a node. */
export interface ReplicationInfo {
  /** Replay lag behind the primary in bytes (0 for the primary). */
  delayBytes: number;
  /** Replay lag in seconds when measured by time (delay_threshold_by_time), else null. */
  delaySeconds: number | null;
  /** pg_stat_replication.state ('streaming', 'catchup', ...) or '' when unknown. */
  state: string;
  /** pg_stat_replication.sync_state ('async', 'sync', 'potential', 'quorum') or ''. */
  syncState: string;
  /** When this was measured. */
  measuredAt: Date | null;
}

/** Fresh zeroed counters. */
export function newNodeCounters(): NodeCounters {
  return { select_cnt: 0, insert_cnt: 0, update_cnt: 0, delete_cnt: 0, ddl_cnt: 0, other_cnt: 0, panic_cnt: 0, fatal_cnt: 0, error_cnt: 0 };
}

/** Fresh health stats. */
export function newHealthCheckStats(): HealthCheckStats {
  return {
    total_count: 0, success_count: 0, fail_count: 0, skip_count: 0, retry_count: 0, max_retry_count: 0,
    max_duration: 0, min_duration: 0, total_duration: 0,
    last_health_check: null, last_successful_health_check: null, last_skip_health_check: null, last_failed_health_check: null,
  };
}

/** Fresh replication info. */
export function newReplicationInfo(): ReplicationInfo {
  return { delayBytes: 0, delaySeconds: null, state: '', syncState: '', measuredAt: null };
}
