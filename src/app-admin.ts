/**
 * Composition of the admin faces (part of the composition root, beside app.ts): builds the
 * AdminContext over the live cluster, pools, sessions and slots; wires SQL admin commands into
 * the frontend; starts the PCP and HTTP servers; and applies configuration reloads (SIGHUP,
 * pcp_reload_config, `pgmaitre reload`): reloadable parameters take effect without dropping
 * sessions, changes to restart-only ones are refused with a log line naming them.
 */
import { resolvePcpClientVersion } from './pcp/tool-version';
import { queryCacheAdmin } from './cache/query-cache';
import * as fs from 'node:fs';
import { loadConfig, deepFreeze, type Config } from './config/load';
import { diffConfig } from './config/diff';
import { loadAuthFiles } from './config/auth-files';
import { formatIssue } from './config/config-error';
import { loadPcpConf } from './config/pcp-conf';
import { LogEvent, logFailure, logLine, pinoLevel, type Logger } from './log/logger';
import type { AdminActions, AdminContext } from './admin/types';
import { runAdminCommand } from './admin/registry';
import { EventLog } from './admin/event-log';
import { createPcpServer, type PcpServer } from './pcp/server';
import { createHttpServer, type HttpServer } from './http/server';
import { buildRoutingContext } from './core/routing-context';
import type { FrontendContext } from './frontend/context';
import type { ClientSession } from './frontend/session';
import type { HealthSystem } from './failover';
import type { OnlineRecovery } from './recovery/online-recovery';
import type { ProcessRole } from './workers/role';

import { pgpoolVersion } from './admin/compat';
import type { LogFile } from './log/log-file';

/** What the admin wiring needs from app.ts. */
export interface AdminWiring {
  readonly ctx: FrontendContext;
  readonly log: Logger;
  readonly health: HealthSystem;
  /** Online recovery (pcp_recovery_node); absent in tests that do not need it. */
  readonly recovery?: OnlineRecovery;
  readonly overrides: { hbaFile?: string; pcpFile?: string; keyFile?: string };
  /** Stops pgmaitre (and, for the CLI, the process). */
  readonly stop: () => Promise<void>;
  /** worker_processes > 1 (src/workers/role.ts): instance-wide admin views and actions. */
  readonly role?: ProcessRole;
  /** The logging collector's file (logging_collector = on), else null. */
  readonly logFile?: LogFile | null;
}

/** The running admin faces. */
export interface AdminFaces {
  readonly adminCtx: AdminContext;
  readonly pcp: PcpServer | null;
  readonly http: HttpServer | null;
  readonly pcpPort: number;
  readonly httpPort: number;
  reload(): Promise<string>;
  close(): Promise<void>;
}

/** Builds the AdminContext, wires the SQL hook, starts PCP and HTTP. */
export async function startAdmin(w: AdminWiring): Promise<AdminFaces> {
  const { ctx, log, health } = w;
  const events = new EventLog(ctx.cluster);
  w.recovery?.on('event', (e) => events.record({ at: new Date(), ...e }));
  const startedAt = new Date();
  /** Sessions (by pid) running an admin command right now. */
  const runningAdmin = new Set<number>();

  const reload = async (): Promise<string> => {
    const old = ctx.config;
    const loaded = loadConfig(old.config_file, w.overrides);
    if (w.role?.shareConfig !== undefined) (loaded as { config: Config }).config = w.role.shareConfig(loaded.config);
    const diff = diffConfig(old, loaded.config);
    const refused = new Set(diff.restartOnly);
    if (refused.size > 0) {
      log.warn({ event: 'reload_refused', keys: [...refused] },
        `configuration reload: changes to ${[...refused].join(', ')} need a restart; they are ignored`);
    }
    // Keep the old value of every restart-only key; take every reloadable change.
    const merged: Record<string, unknown> = { ...loaded.config };
    for (const k of refused) merged[k] = (old as unknown as Record<string, unknown>)[k];
    if ([...refused].some((k) => k.startsWith('backend_'))) merged.backends = old.backends;
    const next = deepFreeze(merged) as unknown as Config;
    // Read pool_hba.conf and pool_passwd before changing anything: a bad file keeps the old configuration.
    const files = loadAuthFiles(next);
    ctx.config = next;
    ctx.logFlags.statement = next.log_statement;
    ctx.logFlags.perNodeStatement = next.log_per_node_statement;
    ctx.logFlags.clientMessages = next.log_client_messages;
    ctx.logFlags.connections = next.log_connections;
    ctx.logFlags.disconnections = next.log_disconnections;
    ctx.logFlags.backendMessages = next.log_backend_messages;
    log.level = pinoLevel(next.log_min_messages);
    const lag = ctx.routing.lag;
    ctx.routing.volatility.clear();
    ctx.routing = buildRoutingContext(next, ctx.routing.volatility, lag);
    ctx.queryCache?.reload(next);
    const lifetimes = [next.connection_life_time, next.child_life_time].filter((v) => v > 0);
    for (const p of ctx.pools.values()) {
      p.configure({ idleTimeoutSec: lifetimes.length > 0 ? Math.min(...lifetimes) : 0, maxUses: next.child_max_connections, connectionCache: next.connection_cache });
    }
    if (files.hba !== null) ctx.hba = files.hba;
    ctx.poolPasswd = files.poolPasswd;
    // pg_hba.conf may have changed with the configuration: every (user, database) the primary
    // once let in without a password authenticates again at its next login (handshake.ts).
    if (ctx.trustedLogins.size > 0) {
      logLine(log, { event: LogEvent.TrustForgotten, count: ctx.trustedLogins.size },
        `configuration reload: ${ctx.trustedLogins.size} login(s) the primary trusted must authenticate again`);
      ctx.trustedLogins.clear();
    }
    ctx.greetings.clear(); // transaction-pooled logins learn the servers' ParameterStatus again
    health.onConfigReload(next);
    w.logFile?.reconfigure(next);
    const applied = diff.changed.filter((c) => !refused.has(c.key)).map((c) => c.key);
    logLine(log, { event: 'reload', applied, refused: [...refused] }, `configuration reloaded (${applied.length} change(s) applied)`);
    for (const w2 of [...loaded.warnings, ...files.warnings.map(formatIssue)]) log.warn({ event: 'config_warning' }, w2);
    return refused.size > 0 ? `reloaded; restart needed for: ${[...refused].join(', ')}` : 'reloaded';
  };

  const cacheAdmin = ctx.queryCache == null ? null : queryCacheAdmin(ctx.queryCache, (sql) => ctx.routing.classifier.classify(sql));
  const localCtx: AdminContext = {
    config: () => ctx.config,
    nodes: () => ctx.cluster.nodes,
    primaryId: () => ctx.cluster.primaryId(),
    poolCounts: (id) => ctx.pools.get(id)?.counts(),
    pooling: () => {
      const c = ctx.config;
      const st = ctx.poolStats;
      return {
        mode: c.pool_mode, defaultPoolSize: c.default_pool_size, clients: ctx.pooledClients.inUse, maxClientConn: c.max_client_conn,
        nodes: [...ctx.pools.entries()].map(([node, p]) => {
          const k = p.counts();
          return { node, idle: k.idle, leased: k.active, waiting: k.waiting, leases: p.leases, waitedLeases: p.waitedLeases };
        }),
        pinnedNow: st.pinnedNow, pinnedTotal: st.pinnedTotal, cacheHits: st.cacheHits, cacheMisses: st.cacheMisses,
      };
    },
    // A session running an admin command has nothing outstanding on a backend, yet it is
    // executing a command (pgpool shows its own process as such in SHOW POOL_PROCESSES).
    sessions: () => (ctx.registry.list() as ClientSession[]).map((s) => {
      const info = s.info();
      return runningAdmin.has(info.pid) ? { ...info, status: 'Execute command' } : info;
    }),
    slots: () => ({ capacity: ctx.slots.capacity, inUse: ctx.slots.inUse, waiting: ctx.slots.waiting }),
    startedAt,
    // Follows pgpool_compatibility, also after a reload.
    get version(): string { return pgpoolVersion(ctx.config.pgpool_compatibility); },
    actions: wrapActions(w.role, {
      attachNode: (id) => health.attachNode(id),
      detachNode: (id, opts) => health.detachNode(id, opts),
      promoteNode: (id, opts) => health.promoteNode(id, opts),
      ...(w.recovery !== undefined ? { recoverNode: (id: number) => w.recovery!.recover(id) } : {}),
      reloadConfig: reload,
      logRotate: async () => {
        if (w.logFile == null) return 'logging_collector is off: nothing to rotate';
        const file = w.logFile.rotate();
        logLine(log, { event: 'log_rotated', file }, `log file reopened: ${file || 'stderr'}`);
        return `log file ${file}`;
      },
      stop: async (mode) => {
        log.warn({ event: 'stop_requested', mode }, `stop requested (${mode})`);
        setImmediate(() => {
          w.stop().catch((e: unknown) => logFailure(log, `stop (${mode})`, null, e, 'error'));
        });
        return `stopping (${mode})`;
      },
    }),
    recentEvents: () => events.list(),
    recovery: () => w.recovery?.progress() ?? null,
    eventCounts: () => events.counts(),
    classifierStats: () => ctx.routing.classifier.stats(),
    slotHistory: (slot) => ctx.slots.history(slot),
    failoverLease: () => (health.gate === undefined ? null : { instance: health.gate.name, leading: health.gate.leading }),
    queryCache: () => cacheAdmin,
  };
  const adminCtx = w.role?.facesContext?.(localCtx) ?? localCtx;
  ctx.admin = {
    run: async (sql, session) => {
      runningAdmin.add(session.pid); // a session runs one admin command at a time
      try {
        return await runAdminCommand(w.role?.instanceView !== undefined ? await w.role.instanceView(localCtx) : localCtx, session, sql);
      } finally {
        runningAdmin.delete(session.pid);
      }
    },
  };

  const cfg = ctx.config;
  let pcp: PcpServer | null = null;
  let pcpPort = 0;
  const faces = w.role?.kind !== 'worker'; // workers leave PCP and HTTP to the supervisor
  if (faces && cfg.pcp_listen_addresses.trim() !== '') {
    const pcpTools = resolvePcpClientVersion(cfg.pcp_client_version);
    log.info({ event: 'pcp_client_version', version: pcpTools.version, from: pcpTools.from }, `PCP node-info replies in pgpool-II ${pcpTools.version}'s layout (${pcpTools.from})`);
    pcp = createPcpServer(adminCtx, {
      port: cfg.pcp_port,
      listenAddresses: cfg.pcp_listen_addresses,
      users: () => (fs.existsSync(ctx.config.pcp_file) ? loadPcpConf(ctx.config.pcp_file) : new Map()),
      ...(cfg.pcp_socket_dir !== '' ? { socketDir: cfg.pcp_socket_dir } : {}),
      clientVersion: pcpTools.version,
      onLog: (level, message) => (level === 'log' ? logLine(log, { event: 'pcp' }, message) : log[level]({ event: 'pcp' }, message)),
    });
    try {
      pcpPort = await pcp.listen();
    } catch (e) {
      await pcp.close();
      throw e;
    }
    log.info({ event: 'pcp_listening', port: pcpPort }, `PCP listening on ${cfg.pcp_listen_addresses}:${pcpPort}`);
  }
  let http: HttpServer | null = null;
  let httpPort = 0;
  if (faces && cfg.http_port > 0) {
    http = createHttpServer(adminCtx, { port: cfg.http_port, listenAddresses: cfg.http_listen_addresses, auth: () => ctx.config.http_auth });
    try {
      httpPort = await http.listen();
    } catch (e) {
      await Promise.all([http.close(), pcp?.close()]);
      throw e;
    }
    log.info({ event: 'http_listening', port: httpPort }, `HTTP status page and metrics on ${cfg.http_listen_addresses}:${httpPort}`);
  }

  return {
    adminCtx: localCtx, pcp, http, pcpPort, httpPort, reload,
    close: async () => {
      await Promise.all([pcp?.close(), http?.close()]);
    },
  };
}

/** The admin actions, as the process role extends them (src/workers/role.ts). */
function wrapActions(role: ProcessRole | undefined, local: AdminActions): AdminActions {
  return role?.actions?.(local) ?? local;
}
