/**
 * Health checker: one probe loop per backend node (pgpool's health_check_* parameters).
 *
 * Design: each node has its own chain of unref'd timers, so a slow node never delays another
 * and nothing here ever blocks the data path. One "health check" is one attempt plus up to
 * health_check_max_retries retries spaced by health_check_retry_delay; only when every attempt
 * failed is the node reported 'failed' (the failover manager decides what that means). Nodes
 * already down are skipped (skip_count), as pgpool does; bringing them back is failback's job.
 * The probe asks pg_is_in_recovery(), so every successful check is also a role observation.
 * Per-node settings come resolved from config.backends[i].healthCheck; period 0 = off.
 *
 * HAProxy's `rise` (health_check_rise > 0): a node that is down is still probed every period,
 * once, and after `rise` consecutive successes a 'risen' event says so (the failover manager
 * decides whether that attaches it). With health_check_http_port set, a node's check is the HTTP
 * role check (http-probe.ts) instead of a PostgreSQL probe.
 */
import { EventEmitter } from 'node:events';
import type { Config } from '../config/load';
import type { HealthCheckConfig } from '../config/types';
import type { PoolPasswdEntry } from '../config/pool-passwd';
import type { Logger } from '../log/logger';
import { type Cluster, NodeStatus } from '../cluster/cluster';
import { type ProbeFn, type ProbeResult, probeNode, resolvePassword } from './probe';
import { httpRoleProbe } from './http-probe';

/** A successful probe: the node answered and said whether it is in recovery. */
export interface ProbeObservation {
  readonly nodeId: number;
  readonly inRecovery: boolean;
  readonly source: 'health_check' | 'sr_check' | 'search';
}

/** Events of the health checker. */
export interface HealthEvents {
  /** Every attempt that succeeded (a role observation). */
  observed: [ProbeObservation];
  /** A health check failed after all retries. */
  failed: [{ readonly nodeId: number; readonly error: string; readonly attempts: number }];
  /** A node that had failed a whole health check answers again (it was not detached). */
  recovered: [{ readonly nodeId: number }];
  /** A down node answered health_check_rise checks in a row (HAProxy rise). */
  risen: [{ readonly nodeId: number; readonly inRecovery: boolean; readonly checks: number }];
}

interface NodeLoop {
  timer: NodeJS.Timeout | null;
  running: Promise<boolean> | null;
  failedReported: boolean;
  /** Consecutive successful checks while the node is down (rise). */
  riseCount: number;
}

/** Options of the health checker (probe injectable for tests). */
export interface HealthCheckerOptions {
  readonly config: Config;
  readonly cluster: Cluster;
  readonly log: Logger;
  readonly poolPasswd: ReadonlyMap<string, PoolPasswdEntry>;
  readonly probe?: ProbeFn;
}

/** Per-node periodic health checks; see the file header. */
export class HealthChecker extends EventEmitter<HealthEvents> {
  private config: Config;
  private readonly cluster: Cluster;
  private readonly log: Logger;
  private readonly poolPasswd: ReadonlyMap<string, PoolPasswdEntry>;
  private readonly probe: ProbeFn;
  private readonly loops = new Map<number, NodeLoop>();
  private abort = new AbortController();
  private started = false;

  constructor(opts: HealthCheckerOptions) {
    super();
    this.config = opts.config;
    this.cluster = opts.cluster;
    this.log = opts.log;
    this.poolPasswd = opts.poolPasswd;
    this.probe = opts.probe ?? probeNode;
    for (const n of this.cluster.nodes) this.loops.set(n.id, { timer: null, running: null, failedReported: false, riseCount: 0 });
  }

  /** Starts the loops of nodes whose health_check_period > 0. */
  start(): void {
    this.started = true;
    for (const id of this.loops.keys()) this.schedule(id);
  }

  /** Stops every loop and aborts probes in flight; resolves once they have ended. */
  async stop(): Promise<void> {
    this.started = false;
    this.abort.abort();
    const running: Promise<unknown>[] = [];
    for (const l of this.loops.values()) {
      if (l.timer) clearTimeout(l.timer);
      l.timer = null;
      if (l.running) running.push(l.running);
    }
    await Promise.allSettled(running);
    this.abort = new AbortController();
  }

  /** Applies a reloaded configuration (periods, credentials, retries) from the next check on. */
  reconfigure(config: Config): void {
    this.config = config;
    if (!this.started) return;
    for (const [id, l] of this.loops) {
      if (l.timer) clearTimeout(l.timer);
      l.timer = null;
      if (!l.running) this.schedule(id);
    }
  }

  /** The resolved health check settings of a node. */
  settingsOf(nodeId: number): HealthCheckConfig | undefined {
    return this.config.backends.find((b) => b.id === nodeId)?.healthCheck;
  }

  /**
   * Runs a full health check of a node now (coalesced with one in progress), whatever the
   * period. Resolves true when the node answered. Used after a backend error when
   * failover_on_backend_error is off, and by admin paths.
   */
  checkNow(nodeId: number): Promise<boolean> {
    const l = this.loops.get(nodeId);
    if (l === undefined) return Promise.resolve(false);
    if (l.running) return l.running;
    if (l.timer) clearTimeout(l.timer);
    l.timer = null;
    return this.runCycle(nodeId);
  }

  /** One probe with the node's health check settings (no stats, no events). */
  probeOnce(nodeId: number): Promise<ProbeResult> {
    const n = this.cluster.node(nodeId);
    const hc = this.settingsOf(nodeId);
    if (n === undefined || hc === undefined) return Promise.resolve({ ok: false, error: 'no such node', durationMs: 0 });
    return this.probeWith(n, hc);
  }

  /** True when the node's role comes from its HTTP check (health_check_http_portN). */
  usesHttpCheck(nodeId: number): boolean {
    return (this.settingsOf(nodeId)?.http_port ?? 0) > 0;
  }

  /** The node's check: HTTP role check when configured, else the PostgreSQL probe. */
  private probeWith(n: { host: string; port: number }, hc: HealthCheckConfig): Promise<ProbeResult> {
    if (hc.http_port > 0) {
      const c = this.config;
      return httpRoleProbe({ host: n.host, port: hc.http_port, primaryPath: c.health_check_http_primary_path, replicaPath: c.health_check_http_replica_path,
        timeoutMs: hc.timeout * 1000 }, this.abort.signal);
    }
    return this.probe(n, this.credentials(hc), this.limits(hc), this.abort.signal);
  }

  private credentials(hc: HealthCheckConfig): { user: string; password: string; database: string } {
    return { user: hc.user, password: resolvePassword(hc.user, hc.password, this.poolPasswd), database: hc.database };
  }

  private limits(hc: HealthCheckConfig): { connectTimeoutMs: number; totalTimeoutMs: number } {
    return { connectTimeoutMs: hc.connect_timeout, totalTimeoutMs: hc.timeout * 1000 };
  }

  private schedule(nodeId: number): void {
    const l = this.loops.get(nodeId);
    const hc = this.settingsOf(nodeId);
    if (!this.started || l === undefined || hc === undefined || hc.period <= 0 || l.timer) return;
    l.timer = setTimeout(() => {
      l.timer = null;
      void this.runCycle(nodeId);
    }, hc.period * 1000);
    l.timer.unref();
  }

  private runCycle(nodeId: number): Promise<boolean> {
    const l = this.loops.get(nodeId)!;
    const p = this.cycle(nodeId).catch((e: unknown) => {
      this.log.error({ event: 'health_check_bug', node_id: nodeId, err: String(e) }, 'health check cycle threw');
      return false;
    }).finally(() => {
      l.running = null;
      this.schedule(nodeId);
    });
    l.running = p;
    return p;
  }

  /** One health check: attempt + retries; updates the node's SHOW POOL_HEALTH_CHECK_STATS record. */
  private async cycle(nodeId: number): Promise<boolean> {
    const node = this.cluster.node(nodeId);
    const hc = this.settingsOf(nodeId);
    const l = this.loops.get(nodeId)!;
    if (node === undefined || hc === undefined || this.abort.signal.aborted) return false;
    const stats = node.health;
    const now = new Date();
    if (node.status === NodeStatus.Down || node.status === NodeStatus.Unused) {
      stats.skip_count++;
      stats.last_skip_health_check = now;
      if (hc.rise <= 0 || node.status !== NodeStatus.Down) return false;
      // rise: one probe per period while down; `rise` successes in a row bring it back.
      const r = await this.probeWith(node, hc);
      if (this.abort.signal.aborted || this.cluster.node(nodeId)?.status !== NodeStatus.Down) return false;
      l.riseCount = r.ok ? l.riseCount + 1 : 0;
      if (r.ok && l.riseCount >= hc.rise) {
        l.riseCount = 0;
        this.emit('risen', { nodeId, inRecovery: r.inRecovery, checks: hc.rise });
      }
      return r.ok;
    }
    l.riseCount = 0;
    stats.total_count++;
    stats.last_health_check = now;
    const t0 = performance.now();
    let retries = 0;
    let result = await this.probeWith(node, hc);
    while (!result.ok && retries < hc.max_retries && !this.abort.signal.aborted) {
      this.log.warn({ event: 'health_check_retry', node_id: nodeId, error: result.error, retry: retries + 1 },
        `health check of node ${nodeId} failed (${result.error}); retry ${retries + 1}/${hc.max_retries} in ${hc.retry_delay} s`);
      await sleep(hc.retry_delay * 1000, this.abort.signal);
      if (this.abort.signal.aborted) break;
      retries++;
      result = await this.probeWith(node, hc);
    }
    if (this.abort.signal.aborted) return false;
    const ms = Math.round(performance.now() - t0);
    stats.retry_count += retries;
    stats.max_retry_count = Math.max(stats.max_retry_count, retries);
    stats.total_duration += ms;
    stats.max_duration = Math.max(stats.max_duration, ms);
    stats.min_duration = stats.success_count + stats.fail_count === 0 ? ms : Math.min(stats.min_duration, ms);
    if (result.ok) {
      stats.success_count++;
      stats.last_successful_health_check = new Date();
      this.cluster.setObserved(nodeId, 'up', result.inRecovery ? 'standby' : 'primary');
      this.emit('observed', { nodeId, inRecovery: result.inRecovery, source: 'health_check' });
      if (l.failedReported) {
        l.failedReported = false;
        this.emit('recovered', { nodeId });
      }
      return true;
    }
    stats.fail_count++;
    stats.last_failed_health_check = new Date();
    this.cluster.setObserved(nodeId, 'down', node.pgRole);
    l.failedReported = true;
    this.log.error({ event: 'health_check_failed', node_id: nodeId, error: result.error, attempts: retries + 1 },
      `health check of node ${nodeId} failed after ${retries + 1} attempt(s): ${result.error}`);
    this.emit('failed', { nodeId, error: result.error, attempts: retries + 1 });
    return false;
  }
}

/** setTimeout as a promise that resolves early (never rejects) on abort. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted || ms <= 0) {
      resolve();
      return;
    }
    const t = setTimeout(done, ms);
    t.unref();
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
