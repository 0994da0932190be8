/**
 * Composition root: the only place that builds concrete modules and wires them together.
 *
 * config → logger, cluster (nodes), one pool per node, client slots, session registry →
 * primary detection → listeners. stop() drains gracefully: stop accepting, end sessions with
 * 57P01, close pooled connections.
 */
import type * as net from 'node:net';
import type { Config, LoadedConfig } from './config/load';
import { loadAuthFiles, startupWarnings } from './config/auth-files';
import { formatIssue } from './config/config-error';
import { createLogger, LogEvent, logLine, type Logger, type LogFlags } from './log/logger';
import { Cluster } from './cluster/cluster';
import { createHealthSystem, Reason, type HealthSystem } from './failover/index';
import { NodePool } from './pool/node-pool';
import type { ServerConnection } from './backend/server-connection';
import { Slots } from './frontend/slots';
import { observeLeaseWait } from './admin/latency';
import { LruCache } from './util/lru-cache';
import { SessionRegistry } from './frontend/registry';
import { ClientSession } from './frontend/session';
import type { FrontendContext } from './frontend/context';
import { bindHosts, closeAll, listenAll } from './frontend/listener';
import type { RawSocket } from './util/raw-socket';
import { buildRoutingContext } from './core/routing-context';
import { FunctionVolatility } from './backend/function-volatility';
import { bodyChangesSession } from './core/tx-pooling';
import { QueryCache } from './cache/query-cache';
import { LsnProbe } from './backend/lsn-probe';
import type { SideTarget } from './backend/side-target';
import { initClassifier } from './classify/classify';
import { resolvePassword } from './health/probe';
import { startAdmin, type AdminFaces } from './app-admin';
import { LogFile } from './log/log-file';
import { buildBackendTls, buildFrontendTls } from './frontend/tls';
import { AuthGuard } from './frontend/rate-limit';
import { AuthQuery } from './frontend/auth-query';
import { ConnectionRateLimiter, admitConnection } from './frontend/conn-rate-limit';
import { startDedicatedPorts, type DedicatedPorts } from './ports/dedicated-ports';
import { startReplicationRelays } from './ports/replication-relay';
import { TxStatus } from './protocol/codes';
import { OnlineRecovery } from './recovery/online-recovery';
import type { ProcessRole } from './workers/role';

/** A running pgmaitre. */
export interface App {
  readonly ctx: FrontendContext;
  /** TCP ports actually bound (useful when port = 0 in tests). */
  readonly ports: readonly number[];
  /** write_port / read_port (HAProxy-style byte relays), null when neither is configured. */
  readonly dedicated: DedicatedPorts | null;
  /** Health checks, replication checks, failover; admin actions (attach/detach/promote) live here. */
  readonly health: HealthSystem;
  /** Online recovery (pcp_recovery_node, auto_recovery). */
  readonly recovery: OnlineRecovery;
  /** PCP and HTTP servers and the admin context (null only while starting). */
  readonly admin: AdminFaces | null;
  stop(): Promise<void>;
  /** Re-reads the configuration (SIGHUP, pcp_reload_config); resolves with a summary. */
  reload(): Promise<string>;
  /** Reopens the logging collector's file (pcp_log_rotate); '' when logging_collector is off. */
  rotateLog(): string;
}

/** Transaction pooling's reset of a connection left with session state (frozen: encoded once). */
const DISCARD_ALL: readonly string[] = Object.freeze(['DISCARD ALL']);

/** Splits reset_query_list ('ABORT; DISCARD ALL') into statements. */
export function resetQueries(value: string | readonly string[]): string[] {
  const items = typeof value === 'string' ? value.split(';') : value.flatMap((v) => v.split(';'));
  return items.map((q) => q.trim()).filter((q) => q !== '');
}

function logFlagsOf(c: Config): LogFlags {
  return {
    statement: c.log_statement,
    perNodeStatement: c.log_per_node_statement,
    clientMessages: c.log_client_messages,
    connections: c.log_connections,
    disconnections: c.log_disconnections,
    backendMessages: c.log_backend_messages,
  };
}

/** Options of startApp. */
export interface StartOptions {
  readonly log?: Logger;
  /** The -a/-F/-k files, re-used when the configuration is reloaded. */
  readonly overrides?: { hbaFile?: string; pcpFile?: string; keyFile?: string };
  /** Called once pgmaitre has stopped (the CLI exits then). */
  readonly onStopped?: () => void;
  /** worker_processes > 1: this process's part (src/workers/role.ts); absent for one process. */
  readonly role?: ProcessRole;
}

/** Builds and starts pgmaitre from a loaded configuration. */
export async function startApp(loaded: LoadedConfig, opts: StartOptions = {}): Promise<App> {
  const role = opts.role;
  const config = role?.shareConfig?.(loaded.config) ?? loaded.config;
  // logging_collector = on: lines go to log_directory/log_filename, rotated (log/log-file.ts).
  const logFile = opts.log === undefined && config.logging_collector ? new LogFile(config) : null;
  const log = opts.log ?? createLogger(config, logFile ?? undefined);
  for (const w of loaded.warnings) log.warn({ event: LogEvent.ConfigWarning }, w);

  // The same loaders `pgmaitre check` runs (src/check.ts).
  const { poolPasswd, hba, warnings: fileWarnings } = loadAuthFiles(config);
  const frontendTls = buildFrontendTls(config);
  for (const w of [...fileWarnings, ...startupWarnings(config)]) {
    const line = formatIssue(w);
    if (w.key === 'sr_check_user' || w.key === 'health_check_user') log.error({ event: LogEvent.ConfigWarning, key: w.key }, line);
    else log.warn({ event: LogEvent.ConfigWarning, ...(w.key !== undefined ? { key: w.key } : {}) }, line);
  }

  const cluster = new Cluster(config.backends.map((b) => ({
    id: b.id, host: b.hostname, port: b.port, weight: b.weight, flags: b.flags,
    dataDirectory: b.dataDirectory, applicationName: b.applicationName,
  })));
  cluster.on('change', (c) => log.info({ event: 'node_change', ...c }, `node ${c.nodeId} ${c.field} ${c.from} -> ${c.to} (${c.reason})`));

  // (Frozen: ServerConnection.runInternal encodes a frozen list once, not at every disconnect.)
  const reset = Object.freeze(resetQueries(config.reset_query_list));
  // ABORT is sent only to a connection inside a transaction block, as pgpool-II does
  // (reset_backend(): "if transaction state is idle, we don't need to issue ABORT"): outside one it
  // only makes PostgreSQL log a WARNING and answer with a notice, at every session-pooled disconnect.
  const resetIdle = Object.freeze(reset.filter((q) => !/^abort$/i.test(q)));
  const discardAll = reset.some((q) => /^discard\s+all$/i.test(q));
  const lifetimes = [config.connection_life_time, config.child_life_time].filter((v) => v > 0);
  const idleTimeoutSec = lifetimes.length > 0 ? Math.min(...lifetimes) : 0;
  const pools = new Map<number, NodePool<ServerConnection>>();
  for (const n of cluster.nodes) {
    pools.set(n.id, new NodePool<ServerConnection>(n.id, {
      capacity: config.num_init_children * config.max_pool,
      idleTimeoutSec,
      maxUses: config.child_max_connections,
      connectionCache: config.connection_cache,
      reset: async (conn) => {
        // What the last session applied is forgotten: after DISCARD ALL nothing; otherwise unknown
        // (the next session's settings are then replayed after a full reset, core/session-state.ts).
        // (an empty map the connection holds already is kept: most sessions applied nothing)
        if (!discardAll) conn.applied = null;
        else if (conn.applied === null || conn.applied.size > 0) conn.applied = new Map();
        conn.appliedOwner = null;
        conn.appliedVersion = -1;
        if (discardAll) conn.statements.clear();
        // Without reset queries only a connection outside any transaction may be reused.
        if (reset.length === 0) return conn.clean;
        // The leading Sync ends any skip-until-Sync state a failed extended-protocol message left.
        const errors = await conn.runInternal(conn.txStatus === TxStatus.Idle ? resetIdle : reset, 10_000, { sync: true });
        // ABORT outside a transaction only warns; any real error makes the connection suspect.
        return errors.length === 0 && conn.clean;
      },
      discard: async (conn) => {
        // Transaction pooling: a lease ended with session state on the connection (tx-pooling.ts).
        const errors = await conn.runInternal(DISCARD_ALL, 10_000, { sync: true });
        conn.statements.clear();
        conn.applied = null; // RESET ALL went back to the connection's own startup values: replayed in full next time
        conn.appliedOwner = null;
        conn.appliedVersion = -1;
        return errors.length === 0 && conn.clean;
      },
      onClose: (conn, reason) => log.debug({ event: LogEvent.PoolClose, node_id: conn.nodeId, reason }, 'pooled connection closed'),
    }));
  }

  for (const p of pools.values()) p.onWaited = (s) => observeLeaseWait(s);
  await initClassifier();
  // Side connections (pg_proc lookups, WAL positions) run as the streaming-replication check user
  // (else the health check user); with neither set they fail and the data path fails closed.
  const sideTarget = (nodeId: number): SideTarget | null => {
    const c = ctx.config;
    const n = cluster.node(nodeId);
    const user = c.sr_check_user || c.health_check_user;
    if (n === undefined || user === '') return null;
    const password = resolvePassword(user, c.sr_check_user ? c.sr_check_password : c.health_check_password, ctx.poolPasswd);
    return { host: n.host, port: n.port, user, password, database: c.sr_check_database || 'postgres', timeoutMs: Math.max(1000, c.connect_timeout || 10000) };
  };
  const volatility = new FunctionVolatility({
    target: () => {
      const id = cluster.primaryId();
      const t = sideTarget(id);
      return t === null ? null : { ...t, nodeId: id };
    },
    capacity: config.relcache_size, expireSec: config.relcache_expire, log, bodyEffect: bodyChangesSession,
  });

  const ctx: FrontendContext = {
    config, log, logFlags: logFlagsOf(config), cluster, pools,
    slots: new Slots(config.num_init_children, config.listen_backlog_multiplier * config.num_init_children),
    pooledClients: new Slots(config.max_client_conn, 0),
    poolStats: { pinnedNow: 0, pinnedTotal: 0, cacheHits: 0, cacheMisses: 0, onWait: (s) => observeLeaseWait(s) },
    knownStatements: new LruCache<boolean>(10_000),
    greetings: new LruCache<ReadonlyMap<string, string>>(1_000),
    registry: new SessionRegistry(),
    hba, poolPasswd, trustedLogins: new Set(), shuttingDown: false,
    routing: buildRoutingContext(config, volatility),
    admin: null,
    lsn: role?.lsn?.() ?? new LsnProbe(sideTarget, log),
    onBackendError: (nodeId, reason) => health.reportBackendError(nodeId, reason),
    tls: frontendTls,
    ...(config.ssl ? { backendTls: buildBackendTls(config) } : {}),
    authGuard: new AuthGuard(() => ctx.config),
  };
  ctx.authQuery = new AuthQuery(() => {
    const c = ctx.config;
    const p = cluster.node(cluster.primaryId());
    return {
      query: c.auth_query, user: c.auth_user, password: resolvePassword(c.auth_user, '', ctx.poolPasswd), database: c.auth_query_database,
      ttlSec: c.auth_query_cache_ttl, timeoutMs: Math.max(1000, c.connect_timeout || 10000),
      primary: p === undefined ? null : { id: p.id, host: p.host, port: p.port }, ...(ctx.backendTls !== undefined ? { tls: ctx.backendTls } : {}),
    };
  }, log);

  // Health checks, replication checks and failover: initial primary detection, then the loops.
  // A node that goes down loses its idle pooled connections at once.
  const health = role?.health?.(cluster, config, log) ?? createHealthSystem({ config, cluster, log, poolPasswd });
  // Reads skip standbys lagging beyond delay_threshold / delay_threshold_by_time.
  ctx.routing.lag = (id) => ({ lagging: health.replication.isLagging(id), delay: cluster.node(id)?.replication.delayBytes ?? 0 });
  cluster.on('change', (c) => {
    if (c.field === 'status' && c.to === 'down') pools.get(c.nodeId)?.closeIdle(`node ${c.nodeId} down: ${c.reason}`);
    // A node that went away may come back another server (restarted, upgraded, promoted): logins
    // learn its greeting again.
    ctx.greetings.clear();
  });
  await health.start();
  // Online recovery: rebuilds a detached node from the primary (pcp_recovery_node, auto_recovery).
  const recovery = new OnlineRecovery({
    cluster, log, config: () => ctx.config, poolPasswd: () => ctx.poolPasswd,
    attach: (id) => health.failover.attachNode(id, Reason.OnlineRecovery),
    holdAttach: (id, hold) => health.failover.holdAttach(id, hold),
    checkReplication: () => health.replication.checkNow(),
    ...(health.gate !== undefined ? { leading: () => health.gate!.leading } : {}),
  });
  if (role?.kind !== 'worker') recovery.startAuto(); // once per instance: the supervisor's (src/workers/)
  // Replication connections (pg_basebackup, pg_recvlogical...) are relayed to the primary.
  const replication = startReplicationRelays(ctx, log);
  const listens = role?.kind !== 'supervisor'; // the supervisor serves no clients (src/workers/)
  ctx.replication = (h) => replication.accept(h);

  // The query cache (memory_cache_enabled): catalog lookups on side connections to the session's database.
  // shmem is one process's memory: with several worker processes each keeps its own answers and
  // generations, and a commit's invalidation goes to every worker through the supervisor,
  // acknowledged before the writer's ReadyForQuery (role.queryCache; docs/workers.md).
  if (config.memory_cache_enabled) {
    ctx.queryCache = new QueryCache(config, (database) => {
      const t = sideTarget(cluster.primaryId());
      return t === null ? null : { ...t, database };
    }, log);
    // worker_processes > 1: invalidations reach every worker (src/workers/).
    role?.queryCache?.(ctx.queryCache);
  }

  const connLimiter = new ConnectionRateLimiter(() => ctx.config);
  const onSocket = (socket: net.Socket): void => {
    if (ctx.shuttingDown) {
      socket.destroy();
      return;
    }
    if (!admitConnection(connLimiter, socket)) return;
    new ClientSession(socket, ctx);
  };
  const socketDirs = config.unix_socket_directories.map((d) => d.trim()).filter((d) => d !== '');
  const onRaw = (socket: RawSocket): void => {
    if (ctx.shuttingDown) {
      socket.destroy();
      return;
    }
    if (!admitConnection(connLimiter, socket)) return;
    new ClientSession(socket, ctx);
  };
  const servers = !listens ? [] : await listenAll(bindHosts(config.listen_addresses), config.port, socketDirs, onSocket, undefined, onRaw).catch(async (e: unknown) => {
    await health.stop();
    throw e;
  });
  const ports = servers.map((s) => s.address()).filter((a): a is net.AddressInfo => typeof a === 'object' && a !== null).map((a) => a.port);
  // At pgpool's LOG level, written under the default log_min_messages (pgpool logs its start so too).
  if (listens) logLine(log, { event: LogEvent.Listening, addresses: config.listen_addresses, port: ports[0] ?? config.port }, `pgmaitre listening on ${config.listen_addresses}:${ports[0] ?? config.port}`);
  let dedicated: DedicatedPorts | null = null;
  if (listens && (config.write_port > 0 || config.read_port > 0)) {
    dedicated = await startDedicatedPorts(ctx, log, connLimiter).catch(async (e: unknown) => {
      await closeAll(servers);
      await health.stop();
      throw e;
    });
    ctx.relayCount = dedicated.relayCount;
  }

  let stopping: Promise<void> | null = null;
  // A start that fails (a listener cannot open) stops what it started without calling onStopped:
  // the caller gets the error and exits non-zero (systemd's Restart=on-failure sees a failure).
  let startFailed = false;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      ctx.shuttingDown = true;
      logLine(log, { event: LogEvent.Shutdown }, startFailed ? 'start failed, stopping' : 'shutting down');
      const recoveryStopped = recovery.stop();
      const healthStopped = health.stop();
      const closing = Promise.all([closeAll(servers), dedicated?.close()]);
      replication.close();
      const adminClosed = admin?.close();
      const lsnClosed = ctx.lsn?.close();
      const volatilityClosed = volatility.close();
      const cacheClosed = ctx.queryCache?.close();
      for (const s of ctx.registry.list()) s.terminate('shutdown');
      for (const p of pools.values()) p.shutdown();
      void ctx.authQuery?.close();
      await Promise.all([closing, healthStopped, adminClosed, lsnClosed, volatilityClosed, recoveryStopped, cacheClosed]);
      if (!startFailed) opts.onStopped?.();
    })();
    return stopping;
  };
  let admin: AdminFaces | null = null;
  try {
    admin = await startAdmin({ ctx, log, health, recovery, overrides: opts.overrides ?? {}, stop, logFile, ...(role !== undefined ? { role } : {}) });
  } catch (e) {
    startFailed = true;
    await stop();
    throw e;
  }
  return { ctx, ports, dedicated, health, recovery, admin, stop, reload: () => admin!.reload(), rotateLog: () => logFile?.rotate() ?? '' };
}
