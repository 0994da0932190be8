/**
 * Streaming-replication check (pgpool's sr_check_* and delay_threshold* parameters).
 *
 * Every sr_check_period seconds each live node is asked, over one side connection, whether it
 * is in recovery and where its WAL is: pg_current_wal_lsn() on a primary, pg_last_wal_replay_lsn()
 * on a standby (plus its walreceiver's upstream from pg_stat_wal_receiver, which the
 * false-primary check needs). A node that is not in recovery also reports pg_stat_replication;
 * its rows are matched to standbys by backend_application_nameN = application_name, as pgpool
 * does, for replication_state / replication_sync_state and for replay_lag (the time-based delay).
 * Delay in bytes = current primary LSN − standby replay LSN. Results go to cluster.setReplication
 * (SHOW POOL_NODES reads them) and out as a 'checked' snapshot (auto_failback, false primary).
 *
 * pgmaitre needs role detection even when sr_check_period = 0 (pgpool's "off"): the loop then
 * runs every FALLBACK_PERIOD_S seconds for roles only, and delay thresholds are not applied.
 */
import { EventEmitter } from 'node:events';
import type { Config } from '../config/load';
import type { PoolPasswdEntry } from '../config/pool-passwd';
import { logLine, type Logger } from '../log/logger';
import { type Cluster, NodeRole, NodeStatus } from '../cluster/cluster';
import { type Credentials, type Endpoint, type ProbeLimits, errorText, resolvePassword, withProbeClient } from './probe';
import type { ProbeObservation } from './health-checker';

/** Seconds between role-only checks when sr_check_period = 0. */
export const FALLBACK_PERIOD_S = 10;

/** One pg_stat_replication row as the primary reported it. */
export interface StreamingRow {
  readonly applicationName: string;
  readonly state: string;
  readonly syncState: string;
  /** replay_lag in seconds (null when PostgreSQL reports none, i.e. caught up and idle). */
  readonly replayLagSec: number | null;
}

/** What one node answered during a check. */
export type NodeReport =
  | {
    readonly ok: true;
    readonly inRecovery: boolean;
    /** pg_current_wal_lsn() (primary) or pg_last_wal_replay_lsn() (standby). */
    readonly lsn: bigint | null;
    /** Where this standby's walreceiver streams from (pg_stat_wal_receiver), if it does. */
    readonly upstream: Endpoint | null;
    /** pg_stat_replication rows when the node is not in recovery. */
    readonly streaming: readonly StreamingRow[];
  }
  | { readonly ok: false; readonly error: string };

/** The result of one replication check over all live nodes. */
export interface ReplicationSnapshot {
  readonly at: Date;
  /** Per node id, for nodes that were asked (live ones). */
  readonly reports: ReadonlyMap<number, NodeReport>;
  /** The primary the delays were measured against (-1 if none answered as primary). */
  readonly primaryId: number;
}

/** Events of the replication checker. */
export interface ReplicationEvents {
  observed: [ProbeObservation];
  checked: [ReplicationSnapshot];
}

/** The per-node query runner (injectable for tests). */
export type NodeReporter = (ep: Endpoint, cred: Credentials, limits: ProbeLimits, signal?: AbortSignal) => Promise<NodeReport>;

/** Parses an LSN 'X/Y' into a 64-bit integer; null for null/invalid. */
export function parseLsn(lsn: string | null | undefined): bigint | null {
  if (typeof lsn !== 'string') return null;
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn.trim());
  if (!m) return null;
  return (BigInt(`0x${m[1]!}`) << 32n) | BigInt(`0x${m[2]!}`);
}

/** Formats a 64-bit LSN as PostgreSQL does ('16/B374D848'). */
export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** Asks one node for role, LSN, walreceiver upstream and (on a primary) pg_stat_replication. */
export const reportNode: NodeReporter = async (ep, cred, limits, signal) => {
  try {
    return await withProbeClient(ep, cred, limits, async (c) => {
      const r = await c.query<{ r: boolean; lsn: string | null; sender_host: string | null; sender_port: number | null }>(
        `SELECT pg_is_in_recovery() AS r,
                (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn,
                (SELECT sender_host FROM pg_stat_wal_receiver LIMIT 1) AS sender_host,
                (SELECT sender_port FROM pg_stat_wal_receiver LIMIT 1) AS sender_port`);
      const row = r.rows[0];
      const inRecovery = row?.r === true;
      let streaming: StreamingRow[] = [];
      if (!inRecovery) {
        const s = await c.query<{ application_name: string; state: string | null; sync_state: string | null; replay_lag: number | null }>(
          `SELECT application_name, state, sync_state, EXTRACT(EPOCH FROM replay_lag)::float8 AS replay_lag FROM pg_stat_replication`);
        streaming = s.rows.map((x) => ({
          applicationName: x.application_name, state: x.state ?? '', syncState: x.sync_state ?? '',
          replayLagSec: x.replay_lag === null ? null : Number(x.replay_lag),
        }));
      }
      const upstream = row?.sender_host != null && row.sender_port != null ? { host: row.sender_host, port: Number(row.sender_port) } : null;
      return { ok: true as const, inRecovery, lsn: parseLsn(row?.lsn), upstream, streaming };
    }, signal);
  } catch (e) {
    return { ok: false, error: errorText(e) };
  }
};

/** Options of the replication checker. */
export interface ReplicationCheckerOptions {
  readonly config: Config;
  readonly cluster: Cluster;
  readonly log: Logger;
  readonly poolPasswd: ReadonlyMap<string, PoolPasswdEntry>;
  readonly reporter?: NodeReporter;
}

/** Periodic replication-delay and role check; see the file header. */
export class ReplicationChecker extends EventEmitter<ReplicationEvents> {
  private config: Config;
  private readonly cluster: Cluster;
  private readonly log: Logger;
  private readonly poolPasswd: ReadonlyMap<string, PoolPasswdEntry>;
  private readonly reporter: NodeReporter;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<ReplicationSnapshot | null> | null = null;
  private abort = new AbortController();
  private started = false;
  private readonly lsns = new Map<number, bigint>();
  private last: ReplicationSnapshot | null = null;

  constructor(opts: ReplicationCheckerOptions) {
    super();
    this.config = opts.config;
    this.cluster = opts.cluster;
    this.log = opts.log;
    this.poolPasswd = opts.poolPasswd;
    this.reporter = opts.reporter ?? reportNode;
  }

  /** Starts the periodic loop (first check after one period; start-up detection is the caller's). */
  start(): void {
    this.started = true;
    this.schedule();
  }

  /** Stops the loop and aborts queries in flight. */
  async stop(): Promise<void> {
    this.started = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.abort.abort();
    // checkNow() already logs a failed check (sr_check_bug); this only waits for it to end.
    if (this.running) await this.running.catch(() => null);
    this.abort = new AbortController();
  }

  /** Applies a reloaded configuration. */
  reconfigure(config: Config): void {
    this.config = config;
    if (this.started && this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
      this.schedule();
    }
  }

  /** The latest snapshot, if any. */
  get lastSnapshot(): ReplicationSnapshot | null {
    return this.last;
  }

  /** sr_check_* credentials (empty password → pool_passwd). */
  credentials(): Credentials {
    const c = this.config;
    return { user: c.sr_check_user, password: resolvePassword(c.sr_check_user, c.sr_check_password, this.poolPasswd), database: c.sr_check_database };
  }

  /** Limits of sr_check queries: connect_timeout to connect, at most 10 s (or connect_timeout) in all. */
  limits(): ProbeLimits {
    const ct = this.config.connect_timeout;
    return { connectTimeoutMs: ct, totalTimeoutMs: Math.max(ct, 10_000) };
  }

  /** Runs a check now (coalesced with one in progress). */
  checkNow(): Promise<ReplicationSnapshot | null> {
    if (this.running) return this.running;
    const p = this.check().catch((e: unknown) => {
      this.log.error({ event: 'sr_check_bug', err: String(e) }, 'replication check threw');
      return null;
    }).finally(() => {
      this.running = null;
    });
    this.running = p;
    return p;
  }

  /**
   * True when a standby lags more than delay_threshold_by_time (ms; wins when > 0) or
   * delay_threshold (bytes), per the latest measurement. Never true for the primary, for an
   * unmeasured node, or when sr_check_period = 0 (pgpool: delay checking disabled).
   */
  isLagging(nodeId: number): boolean {
    const c = this.config;
    const n = this.cluster.node(nodeId);
    if (n === undefined || n.role === NodeRole.Primary || c.sr_check_period <= 0 || n.replication.measuredAt === null) return false;
    if (c.delay_threshold_by_time > 0) return (n.replication.delaySeconds ?? 0) * 1000 > c.delay_threshold_by_time;
    if (c.delay_threshold > 0) return n.replication.delayBytes > c.delay_threshold;
    return false;
  }

  /** True if the node had replayed (or, on the primary, written) at least `lsn` at the latest measurement. */
  replayedAtLeast(nodeId: number, lsn: string | bigint): boolean {
    const want = typeof lsn === 'bigint' ? lsn : parseLsn(lsn);
    if (want === null) return false;
    if (this.cluster.primaryId() === nodeId) return true;
    const have = this.lsns.get(nodeId);
    return have !== undefined && have >= want;
  }

  /** Asks a node for its replay LSN now (current LSN on a primary); null when it cannot say. */
  async fetchReplayLsn(nodeId: number): Promise<string | null> {
    const n = this.cluster.node(nodeId);
    if (n === undefined) return null;
    try {
      const lsn = await withProbeClient(n, this.credentials(), this.limits(), async (c) => {
        const r = await c.query<{ lsn: string | null }>(
          'SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn');
        return parseLsn(r.rows[0]?.lsn);
      }, this.abort.signal);
      if (lsn === null) return null;
      this.lsns.set(nodeId, lsn);
      return formatLsn(lsn);
    } catch (e) {
      // "Cannot say" is this method's documented answer; debug level only because waitForReplay()
      // polls it every 50 ms, and the health checks already report a node that is really down.
      this.log.debug({ event: 'action_failed', action: 'replay LSN query', node_id: nodeId, err: errorText(e) },
        `replay LSN query on node ${nodeId} failed: ${errorText(e)}`);
      return null;
    }
  }

  /** Polls a node until it has replayed `lsn` or `timeoutMs` passes; resolves whether it did. */
  async waitForReplay(nodeId: number, lsn: string, timeoutMs: number, pollMs = 50): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.replayedAtLeast(nodeId, lsn)) return true;
      await this.fetchReplayLsn(nodeId);
      if (this.replayedAtLeast(nodeId, lsn)) return true;
      if (Date.now() + pollMs > deadline || this.abort.signal.aborted) return false;
      await new Promise((r) => setTimeout(r, pollMs).unref());
    }
  }

  private schedule(): void {
    if (!this.started || this.timer) return;
    const period = this.config.sr_check_period > 0 ? this.config.sr_check_period : FALLBACK_PERIOD_S;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.checkNow().finally(() => this.schedule());
    }, period * 1000);
    this.timer.unref();
  }

  private async check(): Promise<ReplicationSnapshot | null> {
    const live = this.cluster.nodes.filter((n) => n.status !== NodeStatus.Down && n.status !== NodeStatus.Unused);
    const cred = this.credentials();
    const limits = this.limits();
    const results = await Promise.all(live.map((n) => this.reporter(n, cred, limits, this.abort.signal)));
    if (this.abort.signal.aborted) return null;
    const reports = new Map<number, NodeReport>();
    live.forEach((n, i) => reports.set(n.id, results[i]!));

    for (const [id, r] of reports) {
      if (!r.ok) {
        this.log.debug({ event: 'sr_check_failed', node_id: id, error: r.error }, `replication check of node ${id} failed: ${r.error}`);
        continue;
      }
      if (r.lsn !== null) this.lsns.set(id, r.lsn);
      this.cluster.setObserved(id, 'up', r.inRecovery ? NodeRole.Standby : NodeRole.Primary);
      this.emit('observed', { nodeId: id, inRecovery: r.inRecovery, source: 'sr_check' });
    }

    // Measure against the node we route writes to, if it answered as a primary.
    const pid = this.cluster.primaryId();
    const pr = reports.get(pid);
    const primary = pr?.ok === true && !pr.inRecovery ? pr : null;
    const at = new Date();
    if (primary !== null) {
      this.cluster.setReplication(pid, { delayBytes: 0, delaySeconds: 0, state: '', syncState: '', measuredAt: at });
      for (const n of this.cluster.nodes) {
        if (n.id === pid) continue;
        const row = n.applicationName !== '' ? primary.streaming.find((s) => s.applicationName === n.applicationName) : undefined;
        const r = reports.get(n.id);
        const info: { delayBytes?: number; delaySeconds: number | null; state: string; syncState: string; measuredAt?: Date } = {
          state: row?.state ?? '', syncState: row?.syncState ?? '',
          delaySeconds: row === undefined ? null : (row.replayLagSec ?? 0),
        };
        if (r?.ok === true && r.lsn !== null && primary.lsn !== null) {
          const d = primary.lsn - r.lsn;
          info.delayBytes = Number(d > 0n ? d : 0n);
          info.measuredAt = at;
        }
        this.cluster.setReplication(n.id, info);
        const line = standbyDelayLine(this.config, n.id, pid, info.delayBytes ?? null, info.delaySeconds);
        if (line !== null) logLine(this.log, { event: 'standby_delay', node_id: n.id, primary_node_id: pid }, line);
      }
    }
    const snap: ReplicationSnapshot = { at, reports, primaryId: primary !== null ? pid : -1 };
    this.last = snap;
    this.emit('checked', snap);
    return snap;
  }
}

/**
 * pgpool's log_standby_delay line for one standby after a check, or null: 'always' logs any
 * delay above zero, 'if_over_threshold' (the default) one above delay_threshold_by_time
 * (milliseconds, when set: the delay is then measured in time) or delay_threshold (bytes, when
 * set), 'none' nothing. The wording is pgpool's, for log watchers written against it.
 */
export function standbyDelayLine(
  c: Pick<Config, 'log_standby_delay' | 'delay_threshold' | 'delay_threshold_by_time'>,
  nodeId: number, primaryId: number, delayBytes: number | null, delaySeconds: number | null,
): string | null {
  const mode = c.log_standby_delay;
  if (mode === 'none') return null;
  if (c.delay_threshold_by_time > 0) {
    if (delaySeconds === null) return null;
    const over = mode === 'always' ? delaySeconds > 0 : delaySeconds * 1000 > c.delay_threshold_by_time;
    return over ? `Replication of node: ${nodeId} is behind ${delaySeconds.toFixed(6)} second(s) from the primary server (node: ${primaryId})` : null;
  }
  if (delayBytes === null) return null;
  const over = mode === 'always' ? delayBytes > 0 : c.delay_threshold > 0 && delayBytes > c.delay_threshold;
  return over ? `Replication of node: ${nodeId} is behind ${delayBytes} bytes from the primary server (node: ${primaryId})` : null;
}
