/**
 * A worker process (worker_processes > 1): serves clients on the instance's listeners (Node's
 * cluster module shares them: the supervisor accepts and deals the connections round-robin),
 * with its share of the limits (shares.ts). What is decided once per instance comes from the
 * supervisor over IPC (messages.ts): node states, configuration reloads, stop; what concerns the
 * instance goes to it: backend errors, node actions, cancels for sessions of another worker, and
 * the instance view SQL admin commands answer from.
 */
import { loadConfig, type Config } from '../config/load';
import { createLogger, logLine } from '../log/logger';
import { startApp, type App } from '../app';
import type { AdminActions, AdminContext } from '../admin/types';
import type { SharedQueryCache } from './role';
import type { ActionRequest, FromWorker, InstanceSnapshot, ToWorker } from './messages';
import { remoteHealth, type RemoteHealth } from './remote-health';
import { workerConfig } from './shares';
import { collectWorker, instanceContext } from './instance-view';
import { RemoteLsn } from './remote-lsn';
import { drainLatencyWindows, leaseWait, queryLatency, setInstanceLatencies } from '../admin/latency';
import { localActive } from '../frontend/lb-candidates';
import { LB_REPORT_MS } from './instance-lb';

/** Environment the supervisor gives each worker. */
export const WORKER_INDEX_ENV = 'PGMAITRE_WORKER_INDEX';
export const WORKER_COUNT_ENV = 'PGMAITRE_WORKER_COUNT';

function send(m: FromWorker): void {
  if (process.connected) process.send!(m);
}

/** Runs this process as worker `index` of `count`; argv as for the single process. */
export async function runWorker(configFile: string, overrides: { hbaFile?: string; pcpFile?: string; keyFile?: string }, debug: boolean): Promise<void> {
  const index = Number(process.env[WORKER_INDEX_ENV] ?? 0);
  const count = Number(process.env[WORKER_COUNT_ENV] ?? 1);
  const loaded = loadConfig(configFile, overrides);
  if (debug) (loaded as { config: Config }).config = { ...loaded.config, log_min_messages: 'debug1' };
  let instanceConfig = loaded.config;
  const log = createLogger(loaded.config).child({ worker: index });

  let nextId = 1;
  const pending = new Map<number, (m: ToWorker) => void>();
  const ask = <T extends ToWorker>(make: (id: number) => FromWorker, timeoutMs = 30_000): Promise<T> => new Promise((resolve, reject) => {
    const id = nextId++;
    const timer = setTimeout(() => { pending.delete(id); reject(new Error('the supervisor did not answer')); }, timeoutMs);
    pending.set(id, (m) => { clearTimeout(timer); pending.delete(id); resolve(m as T); });
    send(make(id));
  });
  const act = async (request: ActionRequest): Promise<string> => {
    const r = await ask<Extract<ToWorker, { t: 'action-done' }>>((id) => ({ t: 'action', id, request }), 120_000);
    if (!r.ok) throw new Error(r.message);
    return r.message;
  };
  const remoteActions: AdminActions = {
    attachNode: (node) => act({ action: 'attach', node }),
    detachNode: (node, opts) => act({ action: 'detach', node, ...(opts !== undefined ? { opts } : {}) }),
    promoteNode: (node, opts) => act({ action: 'promote', node, ...(opts !== undefined ? { opts } : {}) }),
    recoverNode: (node) => act({ action: 'recover', node }),
    reloadConfig: () => act({ action: 'reload' }),
    logRotate: () => act({ action: 'log-rotate' }),
    stop: (mode) => act({ action: 'stop', mode }),
  };

  const lsn = new RemoteLsn(
    (node) => send({ t: 'replay?', node }),
    async (node, after) => {
      const r = await ask<Extract<ToWorker, { t: 'current' }>>((id) => ({ t: 'current?', id, node, after }), 10_000);
      if (r.lsn === null) throw new Error(r.error);
      return r.lsn;
    },
  );

  // The query cache's invalidations (shmem: generations per process) go to every other worker.
  let queryCache: SharedQueryCache | null = null;
  const shareBumps = (names: readonly string[], forget: boolean): Promise<void> =>
    ask<Extract<ToWorker, { t: 'cache-shared' }>>((id) => ({ t: 'cache-bump', id, names, forget }), 30_000).then(() => undefined, (e: unknown) => {
      log.warn({ event: 'query_cache_share' }, `query cache: invalidation not acknowledged by the other workers: ${(e as Error)?.message ?? e}`);
    });

  let health: RemoteHealth | null = null;
  let app: App | null = null;
  const early: ToWorker[] = [];
  const onMessage = (m: ToWorker): void => {
    if (m.t === 'nodes') {
      if (health === null) early.push(m);
      else health.apply(m.nodes);
      return;
    }
    if (m.t === 'cache-bump') {
      // Applied before the acknowledgement: the writer's ReadyForQuery waits for it.
      queryCache?.applyShared(m.names, m.forget);
      send({ t: 'cache-bumped', id: m.id });
      return;
    }
    if (m.t === 'replay') {
      lsn.apply(m.node, m.lsn);
      return;
    }
    if (m.t === 'lb') {
      setInstanceLatencies(m.latency);
      const others = new Map(m.othersActive);
      if (app !== null) app.ctx.otherWorkersActive = (node) => others.get(node) ?? 0;
      return;
    }
    if ('id' in m && (m.t === 'instance' || m.t === 'action-done' || m.t === 'current' || m.t === 'cache-shared')) {
      pending.get(m.id)?.(m);
      return;
    }
    if (app === null) {
      // Stopped while starting (it has no client yet): nothing to drain.
      if (m.t === 'stop') process.exit(0);
      early.push(m);
      return;
    }
    handle(app, m);
  };
  const handle = (a: App, m: ToWorker): void => {
    switch (m.t) {
      case 'cancel':
        a.ctx.registry.cancelLocal(m.pid, m.secret);
        return;
      case 'collect':
        if (a.admin !== null) {
          const local = a.admin.adminCtx;
          Promise.all([queryLatency.get(), leaseWait.get()]).then((histograms) => {
            send({ t: 'collected', id: m.id, snapshot: collectWorker(local, index, count, { nic: instanceConfig.num_init_children, mcc: instanceConfig.max_client_conn }, histograms) });
          }, (e: unknown) => log.warn({ event: 'collect_failed' }, `collecting this worker's figures failed: ${(e as Error)?.message ?? e}`));
        }
        return;
      case 'reload':
        a.reload().catch((e: unknown) => log.error({ event: 'reload_failed' }, `configuration reload failed, keeping the running configuration: ${(e as Error)?.message ?? e}`));
        return;
      case 'log-rotate':
        a.rotateLog();
        return;
      case 'stop':
        a.stop().then(() => process.exit(0), () => process.exit(1));
        return;
      default:
    }
  };
  process.on('message', onMessage);
  // The supervisor decides: Ctrl-C reaches the whole process group, SIGHUP is fanned out by it.
  process.on('SIGINT', () => {});
  process.on('SIGHUP', () => {});
  // Without the supervisor there is nobody to serve: stop (its clients see their connections end).
  process.on('disconnect', () => {
    log.warn({ event: 'supervisor_gone' }, 'the supervisor is gone: worker stopping');
    if (app !== null) app.stop().finally(() => process.exit(1));
    else process.exit(1);
  });

  app = await startApp(loaded, {
    log,
    overrides,
    role: {
      kind: 'worker',
      shareConfig: (c) => {
        instanceConfig = c;
        return workerConfig(c, index, count);
      },
      health: (cluster) => {
        health = remoteHealth(cluster, (node, reason) => send({ t: 'backend-error', node, reason }), remoteActions);
        for (const m of early.splice(0)) if (m.t === 'nodes') health.apply(m.nodes);
        return health.system;
      },
      instanceView: async (local: AdminContext) => {
        const r = await ask<Extract<ToWorker, { t: 'instance' }>>((id) => ({ t: 'instance?', id }), 10_000);
        return instanceContext({ ...local, config: () => instanceConfig }, r.snapshot as InstanceSnapshot);
      },
      actions: () => remoteActions,
      lsn: () => lsn,
      queryCache: (c) => {
        queryCache = c;
        c.share = shareBumps;
      },
    },
  });
  app.ctx.registry.partitionPids(index, count);
  app.ctx.registry.onMiss = (pid, secret) => send({ t: 'cancel', pid, secret });
  process.on('SIGTERM', () => {
    logLine(log, { event: 'signal', signal: 'SIGTERM' }, 'worker received SIGTERM, stopping');
    app!.stop().then(() => process.exit(0), () => process.exit(1));
  });
  for (const m of early.splice(0)) handle(app, m);
  // least_latency / least_connections: this worker's figures for the instance's (instance-lb.ts).
  let lastActive = '';
  const ctx = app.ctx;
  setInterval(() => {
    const algorithm = ctx.routing.prefs.algorithm;
    const windows = drainLatencyWindows();
    const latency = algorithm === 'least_latency' ? windows : [];
    let active: [number, number][] | null = null;
    if (algorithm === 'least_connections') {
      const now = ctx.cluster.nodes.map((n): [number, number] => [n.id, localActive(ctx, n.id)]);
      const text = JSON.stringify(now);
      if (text !== lastActive) {
        active = now;
        lastActive = text;
      }
    } else {
      lastActive = '';
    }
    if (latency.length > 0 || active !== null) send({ t: 'lb', latency, active });
  }, LB_REPORT_MS).unref();
  send({ t: 'ready' });
}
