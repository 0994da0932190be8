/**
 * The supervisor of a multi-process instance (worker_processes > 1): the brain, once per
 * instance. It runs app.ts without client listeners (role 'supervisor'): the health checks,
 * replication checks, failover/failback/follow-primary, the etcd lease, PCP and HTTP; and it
 * forks the workers (worker.ts) with Node's cluster module, which shares the listeners: this
 * process accepts and deals connections to the workers round-robin (cluster.SCHED_RR, Node's
 * default on Linux; docs/workers.md compares it with the workers accepting themselves).
 *
 * Design notes:
 *  - Node states: every Cluster 'change' is pushed to every worker at once (the whole node
 *    list, so a worker that missed nothing sees each step in order), and the measured fields
 *    (replication lag, pg_status) every 500 ms when they changed.
 *  - Admin figures: PCP, HTTP and SQL admin commands ask every worker for its snapshot, merge
 *    it with the brain's node view (instance-view.ts) and answer for the whole instance.
 *  - Load balancing: least_latency and least_connections balance on the instance's figures,
 *    reported by the workers and pushed back every LB_REPORT_MS (instance-lb.ts).
 *  - Cancel: a worker that has no session for a CancelRequest's key sends it here; it goes to
 *    every other worker, and the one that owns the key cancels (keys carry random secrets).
 *  - Faults: a worker that exits is logged with its code or signal and forked again (after a
 *    second if it lived less than two); only its own clients lost their connections.
 *  - Reload (SIGHUP, pcp_reload_config, PGPOOL RELOAD): the brain reloads, then every worker.
 *    Stop: every worker drains (app.stop()), then the brain stops.
 */
import cluster, { type Worker } from 'node:cluster';
import * as path from 'node:path';
import { removeStaleSocket } from '../util/listen';
import type { LoadedConfig } from '../config/load';
import { LogEvent, logLine, type Logger } from '../log/logger';
import { startApp, type App } from '../app';
import type { AdminActions, AdminContext, PoolingView, QueryCacheAdmin } from '../admin/types';
import type { ActionRequest, FromWorker, InstanceSnapshot, NodeState, ToWorker, WorkerSnapshot } from './messages';
import { instanceContext } from './instance-view';
import { InstanceLb, LB_REPORT_MS } from './instance-lb';
import { WORKER_COUNT_ENV, WORKER_INDEX_ENV } from './worker';

/** Options of startSupervisor. */
export interface SupervisorOptions {
  readonly log: Logger;
  readonly overrides: { hbaFile?: string; pcpFile?: string; keyFile?: string };
  /** The arguments the workers are started with (the CLI's). */
  readonly argv: readonly string[];
  readonly onStopped?: () => void;
}

interface Slot {
  worker: Worker | null;
  ready: boolean;
  startedAt: number;
}

const COLLECT_TIMEOUT_MS = 2000;
/** A worker that does not apply a query cache invalidation within this long is restarted (its cache could answer stale). */
const BUMP_TIMEOUT_MS = 10_000;

/** Starts the brain, then `count` workers; resolves once every worker listens. */
export async function startSupervisor(loaded: LoadedConfig, count: number, opts: SupervisorOptions): Promise<App> {
  const { log } = opts;
  const slots: Slot[] = Array.from({ length: count }, () => ({ worker: null, ready: false, startedAt: 0 }));
  let stopping: Promise<void> | null = null;
  /** A start that fails (a worker could not listen) rejects: the CLI exits 1, not through onStopped's 0. */
  let startFailing = false;
  let brain: App | null = null;
  let nextId = 1;
  const collecting = new Map<number, { want: number; got: WorkerSnapshot[]; done: () => void }>();
  /** Query cache invalidations on their way: the workers that have not acknowledged yet. */
  const bumps = new Map<number, { left: Set<Worker>; done: () => void }>();
  const bumpAcked = (id: number, w: Worker): void => {
    const e = bumps.get(id);
    if (e === undefined) return;
    e.left.delete(w);
    if (e.left.size === 0) e.done();
  };

  /** least_latency / least_connections on the instance's figures (instance-lb.ts). */
  const lb = new InstanceLb();
  const pushLb = setInterval(() => {
    if (!lb.takeDirty()) return;
    const now = Date.now();
    const latency = lb.latencies(now);
    slots.forEach((s, i) => sendTo(s.worker, { t: 'lb', latency, othersActive: lb.othersActive(i) }));
  }, LB_REPORT_MS);
  pushLb.unref();

  const sendTo = (w: Worker | null, m: ToWorker): void => {
    if (w !== null && w.isConnected()) w.send(m);
  };
  const broadcast = (m: ToWorker, except?: Worker): void => {
    for (const s of slots) if (s.ready && s.worker !== except) sendTo(s.worker, m);
  };

  // ---- node states ----------------------------------------------------------------------
  const nodeStates = (): NodeState[] => {
    const app = brain!;
    return app.ctx.cluster.nodes.map((n) => ({
      id: n.id, status: n.status, role: n.role, reason: n.statusReason, pgStatus: n.pgStatus, pgRole: n.pgRole,
      replication: { ...n.replication }, lagging: app.health.replication.isLagging(n.id),
    }));
  };
  let lastPushed = '';
  const pushNodes = (force: boolean): void => {
    if (brain === null) return;
    const nodes = nodeStates();
    const text = JSON.stringify(nodes);
    if (!force && text === lastPushed) return;
    lastPushed = text;
    for (const s of slots) sendTo(s.worker, { t: 'nodes', nodes });
  };

  // ---- the instance view ------------------------------------------------------------------
  const collect = (): Promise<WorkerSnapshot[]> => {
    const ready = slots.filter((s) => s.ready && s.worker !== null && s.worker.isConnected());
    if (ready.length === 0) return Promise.resolve([]);
    const id = nextId++;
    return new Promise((resolve) => {
      const entry = { want: ready.length, got: [] as WorkerSnapshot[], done: () => { clearTimeout(timer); collecting.delete(id); resolve(entry.got); } };
      const timer = setTimeout(entry.done, COLLECT_TIMEOUT_MS);
      collecting.set(id, entry);
      for (const s of ready) sendTo(s.worker, { t: 'collect', id });
    });
  };
  const snapshot = async (): Promise<InstanceSnapshot> => {
    const workers = await collect();
    const local = brain!.admin!.adminCtx;
    return {
      nodes: local.nodes(), primaryId: local.primaryId(), startedAt: local.startedAt,
      events: local.recentEvents?.() ?? [], eventCounts: local.eventCounts?.() ?? new Map(),
      lease: local.failoverLease?.() ?? null, recovery: local.recovery?.() ?? null, workers,
    };
  };

  // ---- actions ----------------------------------------------------------------------------
  let actions: AdminActions | null = null;
  const runAction = (r: ActionRequest): Promise<string> => {
    const a = actions!;
    switch (r.action) {
      case 'attach': return a.attachNode(r.node);
      case 'detach': return a.detachNode(r.node, r.opts);
      case 'promote': return a.promoteNode(r.node, r.opts);
      case 'recover': return a.recoverNode !== undefined ? a.recoverNode(r.node) : Promise.reject(new Error('online recovery is not available'));
      case 'reload': return a.reloadConfig();
      case 'log-rotate': return a.logRotate();
      case 'stop': return a.stop(r.mode);
      default: return Promise.reject(new Error('unknown action'));
    }
  };
  const reloadWorkers = (): void => broadcast({ t: 'reload' });

  // ---- workers ------------------------------------------------------------------------------
  let startupFailed: ((e: Error) => void) | null = null;
  const fork = (index: number): void => {
    const slot = slots[index]!;
    const w = cluster.fork({ [WORKER_INDEX_ENV]: String(index), [WORKER_COUNT_ENV]: String(count) });
    slot.worker = w;
    slot.ready = false;
    slot.startedAt = Date.now();
    w.on('message', (m: FromWorker) => onWorkerMessage(index, w, m));
    // Its first node states, before it starts listening (its health stand-in waits for them);
    // again once it runs, in case the channel was not up yet.
    w.send({ t: 'nodes', nodes: nodeStates() } satisfies ToWorker);
    w.once('online', () => sendTo(w, { t: 'nodes', nodes: nodeStates() }));
    w.on('exit', (code, signal) => {
      // A worker gone has no cache left to invalidate, and no sessions left on any node.
      for (const id of [...bumps.keys()]) bumpAcked(id, w);
      if (slot.worker !== w) return;
      lb.forget(index);
      slot.worker = null;
      slot.ready = false;
      const cause = signal !== null ? `signal ${signal}` : `exit code ${code}`;
      if (stopping !== null) {
        log.info({ event: 'worker_exit', worker: index, pid: w.process.pid, code, signal }, `worker ${index} (pid ${w.process.pid}) stopped (${cause})`);
        return;
      }
      if (startupFailed !== null) {
        startupFailed(new Error(`worker ${index} exited before it was ready (${cause}); see its log lines above`));
        return;
      }
      const lived = Date.now() - slot.startedAt;
      log.error({ event: 'worker_died', worker: index, pid: w.process.pid, code, signal },
        `worker ${index} (pid ${w.process.pid}) died (${cause}); its clients lost their connections; starting it again`);
      setTimeout(() => { if (stopping === null) fork(index); }, lived < 2000 ? 1000 : 0).unref();
    });
  };
  /**
   * Query cache: generation bumps for every worker but `from` (a worker's commit; null: the
   * supervisor's own, e.g. pcp_invalidate_query_cache), resolved once all of them applied them.
   */
  const shareBumps = (names: readonly string[], forget: boolean, from: Worker | null): Promise<void> => {
    const others = slots.map((s) => s.worker).filter((o): o is Worker => o !== null && o !== from && o.isConnected());
    if (others.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const sid = nextId++;
      const timer = setTimeout(() => {
        const e = bumps.get(sid);
        if (e === undefined) return;
        for (const o of e.left) {
          log.error({ event: 'query_cache_share', worker: o.process.pid }, `worker pid ${o.process.pid} did not apply a query cache invalidation within ${BUMP_TIMEOUT_MS / 1000} s: restarting it (its cache could answer stale)`);
          o.process.kill('SIGKILL');
        }
      }, BUMP_TIMEOUT_MS);
      timer.unref();
      bumps.set(sid, { left: new Set(others), done: () => { clearTimeout(timer); bumps.delete(sid); resolve(); } });
      for (const o of others) sendTo(o, { t: 'cache-bump', id: sid, names, forget });
    });
  };
  const onWorkerMessage = (index: number, w: Worker, m: FromWorker): void => {
    switch (m.t) {
      case 'ready':
        if (startupFailed === null && stopping === null) {
          logLine(log, { event: 'worker_ready', worker: index, pid: w.process.pid }, `worker ${index} (pid ${w.process.pid}) serving clients again`);
        }
        slots[index]!.ready = true;
        readyWaiters.splice(0).forEach((f) => f());
        pushNodes(true);
        // A restarted worker balances on the instance's figures at once, not after the next change.
        sendTo(w, { t: 'lb', latency: lb.latencies(Date.now()), othersActive: lb.othersActive(index) });
        return;
      case 'cancel':
        broadcast({ t: 'cancel', pid: m.pid, secret: m.secret }, w);
        return;
      case 'backend-error':
        brain?.health.reportBackendError(m.node, m.reason);
        return;
      case 'collected': {
        const c = collecting.get(m.id);
        if (c === undefined) return;
        c.got.push(m.snapshot);
        if (c.got.length >= c.want) c.done();
        return;
      }
      case 'instance?':
        snapshot().then((s) => sendTo(w, { t: 'instance', id: m.id, snapshot: s }), (e: unknown) => log.warn({ event: 'instance_view' }, `instance view failed: ${(e as Error).message}`));
        return;
      case 'cache-bump':
        void shareBumps(m.names, m.forget, w).then(() => sendTo(w, { t: 'cache-shared', id: m.id }));
        return;
      case 'cache-bumped':
        bumpAcked(m.id, w);
        return;
      case 'lb':
        lb.report(index, m, Date.now());
        return;
      case 'replay?': {
        // One query at a time per standby for the whole instance (the probe shares it); what it
        // learns goes to every worker.
        const probe = brain?.ctx.lsn;
        if (probe === null || probe === undefined) return;
        void probe.refreshReplay(m.node).then(() => {
          const lsn = probe.replayLsn(m.node);
          for (const s of slots) sendTo(s.worker, { t: 'replay', node: m.node, lsn });
        });
        return;
      }
      case 'current?': {
        const probe = brain?.ctx.lsn;
        if (probe === null || probe === undefined) {
          sendTo(w, { t: 'current', id: m.id, lsn: null, error: 'no WAL position source' });
          return;
        }
        probe.currentLsnAfter(m.node, m.after).then(
          (lsn) => sendTo(w, { t: 'current', id: m.id, lsn, error: '' }),
          (e: unknown) => sendTo(w, { t: 'current', id: m.id, lsn: null, error: (e as Error)?.message ?? String(e) }),
        );
        return;
      }
      case 'action':
        runAction(m.request).then(
          (message) => sendTo(w, { t: 'action-done', id: m.id, ok: true, message }),
          (e: unknown) => sendTo(w, { t: 'action-done', id: m.id, ok: false, message: (e as Error)?.message ?? String(e) }),
        );
        return;
      default:
    }
  };
  const readyWaiters: (() => void)[] = [];

  const stopAll = (): Promise<void> => {
    stopping ??= (async () => {
      logLine(log, { event: LogEvent.Shutdown }, `stopping ${count} worker processes`);
      const exits = slots.map((s) => s.worker).filter((w): w is Worker => w !== null).map((w) => new Promise<void>((resolve) => {
        if (w.isDead()) { resolve(); return; }
        w.once('exit', () => resolve());
        sendTo(w, { t: 'stop' });
        // A worker that does not drain in time is killed (the CLI's own limit is 10 s).
        setTimeout(() => { if (!w.isDead()) w.process.kill('SIGKILL'); }, 8000).unref();
      }));
      await Promise.all(exits);
      await brain?.stop();
    })();
    return stopping;
  };

  // ---- the brain ------------------------------------------------------------------------------
  const faces = (local: AdminContext): AdminContext => liveContext(local, async () => instanceContext(local, await snapshot()));
  brain = await startApp(loaded, {
    log, overrides: opts.overrides,
    ...(opts.onStopped !== undefined ? { onStopped: () => { if (!startFailing) opts.onStopped?.(); } } : {}),
    role: {
      kind: 'supervisor',
      facesContext: faces,
      // The admin faces here (pcp_invalidate_query_cache, HTTP) invalidate every worker's cache.
      queryCache: (c) => { c.share = (names, forget) => shareBumps(names, forget, null); },
      instanceView: async (local) => instanceContext(local, await snapshot()),
      actions: (local) => (actions = {
        ...local,
        reloadConfig: async () => {
          const r = await local.reloadConfig();
          reloadWorkers();
          return r;
        },
        // pcp_log_rotate: every process reopens its own log file.
        logRotate: async () => {
          const r = await local.logRotate();
          broadcast({ t: 'log-rotate' });
          return r;
        },
        stop: async (mode) => {
          log.warn({ event: 'stop_requested', mode }, `stop requested (${mode})`);
          setImmediate(() => { void stopAll(); });
          return `stopping (${mode})`;
        },
      }),
    },
  });
  const app = brain;
  app.ctx.cluster.on('change', () => pushNodes(true));
  const measured = setInterval(() => pushNodes(false), 500);
  measured.unref();

  // The workers' Unix sockets: the cluster module opens each once, here, for every worker, so a
  // stale file is removed once before the first worker listens (a worker finding the file its
  // sibling opened would take it for another process's); one a live process holds fails the start.
  try {
    await removeStaleWorkerSockets(loaded);
  } catch (e) {
    startFailing = true;
    await app.stop();
    throw e;
  }
  cluster.setupPrimary({ exec: path.resolve(__dirname, '../../../bin/pgmaitre.js'), args: [...opts.argv], serialization: 'advanced' });
  await new Promise<void>((resolve, reject) => {
    startupFailed = (e) => {
      startupFailed = null;
      startFailing = true;
      void stopAll().then(() => reject(e), () => reject(e));
    };
    const check = (): void => {
      if (slots.every((s) => s.ready)) {
        startupFailed = null;
        resolve();
      } else {
        readyWaiters.push(check);
      }
    };
    for (let i = 0; i < count; i++) fork(i);
    readyWaiters.push(check);
  });
  logLine(log, { event: 'workers_ready', workers: count, pids: slots.map((s) => s.worker?.process.pid) },
    `${count} worker processes serving clients on port ${loaded.config.port}`);

  return {
    ctx: app.ctx, ports: [loaded.config.port], dedicated: null, health: app.health, admin: app.admin, recovery: app.recovery,
    rotateLog: () => {
      broadcast({ t: 'log-rotate' });
      return app.rotateLog();
    },
    stop: () => {
      clearInterval(measured);
      clearInterval(pushLb);
      return stopAll();
    },
    reload: async () => {
      const r = await app.reload();
      reloadWorkers();
      return r;
    },
  };
}

const EMPTY_POOLING: PoolingView = { mode: 'session', defaultPoolSize: 0, clients: 0, maxClientConn: 0, nodes: [], pinnedNow: 0, pinnedTotal: 0, cacheHits: 0, cacheMisses: 0 };

/**
 * An AdminContext for PCP and HTTP whose figures are the latest instance view; `refresh()`
 * (awaited by those faces per request) collects a new one.
 */
function liveContext(local: AdminContext, build: () => Promise<AdminContext>): AdminContext {
  let current: AdminContext = local;
  let inflight: Promise<void> | null = null;
  // /metrics reads the cache object once: a stable one that reads the latest instance view.
  const localCache = local.queryCache?.() ?? null;
  const cacheNow = (): QueryCacheAdmin => current.queryCache?.() ?? localCache!;
  const liveCache: QueryCacheAdmin | null = localCache === null ? null : {
    poolCacheRow: () => cacheNow().poolCacheRow(),
    metrics: () => cacheNow().metrics(),
    deleteQuery: (s, u, d) => localCache.deleteQuery(s, u, d),
    invalidateAll: () => localCache.invalidateAll(),
  };
  return {
    config: () => local.config(),
    nodes: () => current.nodes(),
    primaryId: () => current.primaryId(),
    poolCounts: (id) => current.poolCounts(id),
    sessions: () => current.sessions(),
    slots: () => current.slots(),
    startedAt: local.startedAt,
    version: local.version,
    actions: local.actions,
    recentEvents: () => current.recentEvents?.() ?? [],
    eventCounts: () => current.eventCounts?.() ?? new Map(),
    classifierStats: () => current.classifierStats?.() ?? { hits: 0, misses: 0, size: 0 },
    slotHistory: (slot) => current.slotHistory?.(slot),
    pooling: () => current.pooling?.() ?? { ...EMPTY_POOLING, mode: local.config().pool_mode },
    failoverLease: () => current.failoverLease?.() ?? null,
    recovery: () => local.recovery?.() ?? null,
    histograms: () => current.histograms?.() ?? [],
    ...(liveCache !== null ? { queryCache: () => liveCache } : {}),
    refresh: () => {
      // Requests that arrive together share one collection.
      inflight ??= build().then((c) => { current = c; }).finally(() => { inflight = null; });
      return inflight;
    },
  };
}

/** Removes stale socket files of the workers' listeners (smart endpoint and dedicated ports); throws a ListenError for a live one. */
async function removeStaleWorkerSockets(loaded: LoadedConfig): Promise<void> {
  const c = loaded.config;
  const ports: [number, string][] = [[c.port, 'unix_socket_directories']];
  for (const kind of ['write', 'read'] as const) if (c[`${kind}_port`] > 0) ports.push([c[`${kind}_port`], `unix_socket_directories (${kind}_port)`]);
  for (const dir of c.unix_socket_directories.map((d) => d.trim()).filter((d) => d !== '')) {
    for (const [port, key] of ports) await removeStaleSocket(path.join(dir, `.s.PGSQL.${port}`), port, key);
  }
}
