/**
 * One call for the composition root: builds the health checker, the replication checker and the
 * failover manager over a Cluster, and returns the handles app.ts and the admin layer need.
 * start() performs the initial primary detection (every node asked in parallel) before
 * resolving, then starts the periodic loops; stop() ends every timer, probe and command.
 */
import type { Config } from '../config/load';
import type { PoolPasswdEntry } from '../config/pool-passwd';
import type { Logger } from '../log/logger';
import type { Cluster } from '../cluster/cluster';
import { HealthChecker } from '../health/health-checker';
import { ReplicationChecker } from '../health/replication-checker';
import type { ProbeFn } from '../health/probe';
import type { NodeReporter } from '../health/replication-checker';
import { FailoverManager } from './failover-manager';
import { EtcdCommandGate, type CommandGate } from './command-gate';

export { Reason } from './policy';
export { FailoverManager } from './failover-manager';

/** What createHealthSystem needs. `probe`/`reporter` replace the PostgreSQL queries in tests. */
export interface HealthSystemOptions {
  readonly config: Config;
  readonly cluster: Cluster;
  readonly log: Logger;
  readonly poolPasswd: ReadonlyMap<string, PoolPasswdEntry>;
  readonly probe?: ProbeFn;
  readonly reporter?: NodeReporter;
  readonly commandTimeoutMs?: number;
  readonly searchIntervalMs?: number;
  /** Client port of this instance (names it in etcd when etcd_instance_name is empty). */
  readonly port?: number;
}

/** The running health/failover subsystem. */
export interface HealthSystem {
  /** Initial primary detection, then the health and replication loops. */
  start(): Promise<void>;
  /** Ends every loop, probe, search and command. */
  stop(): Promise<void>;
  /** Data path: a backend socket failed (failover_on_backend_error decides what follows). */
  reportBackendError(nodeId: number, reason: string): void;
  attachNode(id: number): Promise<string>;
  detachNode(id: number, opts?: { gracefully?: boolean; switchover?: boolean }): Promise<string>;
  promoteNode(id: number, opts?: { switchover?: boolean }): Promise<string>;
  readonly health: HealthChecker;
  readonly replication: ReplicationChecker;
  readonly failover: FailoverManager;
  /** The command lease of an HA pair (etcd_endpoints), undefined when off. */
  readonly gate: CommandGate | undefined;
  /** Applies a reloaded configuration (all these keys are hot-reloadable). */
  onConfigReload(config: Config): void;
}

/** Builds the health/failover subsystem; see the file header. */
export function createHealthSystem(opts: HealthSystemOptions): HealthSystem {
  const { config, cluster, log, poolPasswd } = opts;
  const health = new HealthChecker({ config, cluster, log, poolPasswd, ...(opts.probe ? { probe: opts.probe } : {}) });
  const replication = new ReplicationChecker({ config, cluster, log, poolPasswd, ...(opts.reporter ? { reporter: opts.reporter } : {}) });
  const gate = config.etcd_endpoints.trim() !== ''
    ? new EtcdCommandGate({ endpoints: config.etcd_endpoints, prefix: config.etcd_prefix, ttlSec: config.etcd_lease_ttl, name: config.etcd_instance_name, port: opts.port ?? config.port, log })
    : undefined;
  const failover = new FailoverManager({
    ...(gate !== undefined ? { gate } : {}),
    config, cluster, log, health, replication,
    ...(opts.probe ? { probe: opts.probe } : {}),
    ...(opts.commandTimeoutMs !== undefined ? { commandTimeoutMs: opts.commandTimeoutMs } : {}),
    ...(opts.searchIntervalMs !== undefined ? { searchIntervalMs: opts.searchIntervalMs } : {}),
  });
  let started = false;
  return {
    health, replication, failover, gate,
    async start() {
      await failover.start();
      health.start();
      replication.start();
      started = true;
    },
    async stop() {
      if (!started) {
        await failover.stop();
        await gate?.stop();
        return;
      }
      started = false;
      await Promise.all([health.stop(), replication.stop()]);
      await failover.stop();
      await gate?.stop();
    },
    reportBackendError: (id, reason) => failover.reportBackendError(id, reason),
    attachNode: (id) => failover.attachNode(id),
    detachNode: (id, o) => failover.detachNode(id, o),
    promoteNode: (id, o) => failover.promoteNode(id, o),
    onConfigReload(c) {
      health.reconfigure(c);
      replication.reconfigure(c);
      failover.reconfigure(c);
    },
  };
}
