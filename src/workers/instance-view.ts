/**
 * One instance to admins: what each worker holds (collectWorker) merged with the brain's view
 * of the nodes (instanceContext) into an AdminContext that SHOW POOL_*, PCP, /metrics and the
 * status page read exactly as they read a single process's.
 *
 * Merging rules: sessions are listed once (each lives in one worker), slot numbers are the
 * instance's (worker k's num_init_children slots follow those of workers 0..k-1, and its
 * max_client_conn slots follow all num_init_children slots, as in one process); counters and
 * pool counts are summed; node status, roles, health and replication come from the brain,
 * with the statement counters summed over the workers. Pure functions: unit-tested.
 */
import type { AdminContext, HistogramData, PoolingView, QueryCacheAdmin, QueryCacheMetrics, SessionInfo, SlotHistory } from '../admin/types';
import type { BackendNode } from '../cluster/cluster';
import type { NodeCounters } from '../cluster/stats';
import { newNodeCounters } from '../cluster/stats';
import type { PoolCounts } from '../pool/node-pool';
import type { InstanceSnapshot, WorkerSnapshot } from './messages';
import { share, shareOffset } from './shares';

/** What a worker reports about itself, read from its own (local) AdminContext. */
export function collectWorker(local: AdminContext, index: number, count: number, instanceLimits: { nic: number; mcc: number },
  histograms: readonly HistogramData[] = []): WorkerSnapshot {
  const nodes = local.nodes();
  const slotHistory: [number, SlotHistory][] = [];
  const nic = share(instanceLimits.nic, index, count);
  if (local.slotHistory !== undefined) {
    for (let s = 0; s < nic; s++) {
      const h = local.slotHistory(s);
      if (h !== undefined && h.connections > 0) slotHistory.push([s, h]);
    }
  }
  return {
    index,
    pid: process.pid,
    sessions: local.sessions(),
    pools: nodes.map((n) => ({ node: n.id, counts: local.poolCounts(n.id) })).filter((p): p is { node: number; counts: PoolCounts } => p.counts !== undefined),
    counters: nodes.map((n) => ({ node: n.id, counters: { ...n.counters } })),
    slots: local.slots(),
    pooling: local.pooling?.() ?? null,
    classifier: local.classifierStats?.() ?? null,
    slotHistory,
    histograms,
    cache: cacheOf(local.queryCache?.() ?? null),
    shares: {
      nic, nicOffset: shareOffset(instanceLimits.nic, index, count),
      mcc: share(instanceLimits.mcc, index, count), mccOffset: shareOffset(instanceLimits.mcc, index, count),
    },
  };
}

function cacheOf(qc: QueryCacheAdmin | null): WorkerSnapshot['cache'] {
  if (qc === null) return null;
  const m = qc.metrics();
  return { row: qc.poolCacheRow(), metrics: { ...m, invalidations: new Map(m.invalidations) } };
}

/**
 * The workers' query caches as one (each worker keeps its own with shmem): SHOW POOL_CACHE's
 * counts and sizes summed (the hit ratio recomputed), the /metrics counters summed; the commands
 * that invalidate are `base`'s (they reach every worker: QueryCache.share).
 */
export function mergeCache(base: QueryCacheAdmin, parts: readonly NonNullable<WorkerSnapshot['cache']>[]): QueryCacheAdmin {
  const row = parts.reduce<number[]>((a, p) => a.map((v, i) => v + Number(p.row[i] ?? 0)), new Array<number>(9).fill(0));
  row[2] = row[1] === 0 ? 0 : row[0]! / row[1]!;
  const rowText = row.map((v, i) => (i === 2 ? v.toFixed(2) : String(v)));
  const invalidations = new Map<string, number>();
  for (const p of parts) for (const [k, n] of p.metrics.invalidations) invalidations.set(k, (invalidations.get(k) ?? 0) + n);
  const sum = (f: (m: QueryCacheMetrics) => number): number => parts.reduce((a, p) => a + f(p.metrics), 0);
  const metrics: QueryCacheMetrics = {
    method: parts[0]?.metrics.method ?? base.metrics().method,
    hits: sum((m) => m.hits), misses: sum((m) => m.misses), selects: sum((m) => m.selects), stores: sum((m) => m.stores),
    notStored: sum((m) => m.notStored), evictions: sum((m) => m.evictions), memcachedErrors: sum((m) => m.memcachedErrors),
    memcachedUp: parts.every((p) => p.metrics.memcachedUp), bytes: sum((m) => m.bytes), entries: sum((m) => m.entries), invalidations,
  };
  return { ...base, poolCacheRow: () => rowText, metrics: () => metrics, deleteQuery: (s, u, d) => base.deleteQuery(s, u, d), invalidateAll: () => base.invalidateAll() };
}

/** A session's slot number in the instance's numbering. */
function instanceSlot(s: SessionInfo, w: WorkerSnapshot, nicTotal: number): number {
  if (s.slot < 0) return s.slot;
  if (s.slot < w.shares.nic) return w.shares.nicOffset + s.slot;
  return nicTotal + w.shares.mccOffset + (s.slot - w.shares.nic);
}

function addCounts(a: PoolCounts, b: PoolCounts): PoolCounts {
  return {
    idle: a.idle + b.idle, active: a.active + b.active, resetting: a.resetting + b.resetting,
    connecting: a.connecting + b.connecting, total: a.total + b.total, waiting: a.waiting + b.waiting,
  };
}

function addCounters(into: NodeCounters, c: NodeCounters): void {
  for (const k of Object.keys(into) as (keyof NodeCounters)[]) into[k] += c[k] ?? 0;
}

/**
 * Sums histograms (prom-client metric objects) by name, then by sample name and labels: bucket
 * counts, _sum and _count add up exactly, as prom-client's own cluster aggregator does.
 */
export function mergeHistograms(per: readonly (readonly HistogramData[])[]): HistogramData[] {
  const out = new Map<string, { meta: HistogramData; values: Map<string, HistogramData['values'][number]> }>();
  for (const list of per) {
    for (const m of list) {
      let e = out.get(m.name);
      if (e === undefined) out.set(m.name, (e = { meta: m, values: new Map() }));
      for (const v of m.values) {
        const key = `${v.metricName ?? ''}${JSON.stringify(Object.entries(v.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))}`;
        const cur = e.values.get(key);
        e.values.set(key, cur === undefined ? { ...v, labels: { ...v.labels } } : { ...cur, value: cur.value + v.value });
      }
    }
  }
  return [...out.values()].map((e) => ({ ...e.meta, values: [...e.values.values()] }));
}

/** Sums the workers' pooling views (null when no worker has one). */
export function mergePooling(views: readonly (PoolingView | null)[], config: { pool_mode: string; default_pool_size: number; max_client_conn: number }): PoolingView | null {
  const present = views.filter((v): v is PoolingView => v !== null);
  if (present.length === 0) return null;
  const nodes = new Map<number, { node: number; idle: number; leased: number; waiting: number; leases: number; waitedLeases: number }>();
  let clients = 0; let pinnedNow = 0; let pinnedTotal = 0; let cacheHits = 0; let cacheMisses = 0;
  for (const v of present) {
    clients += v.clients; pinnedNow += v.pinnedNow; pinnedTotal += v.pinnedTotal; cacheHits += v.cacheHits; cacheMisses += v.cacheMisses;
    for (const n of v.nodes) {
      const m = nodes.get(n.node) ?? { node: n.node, idle: 0, leased: 0, waiting: 0, leases: 0, waitedLeases: 0 };
      m.idle += n.idle; m.leased += n.leased; m.waiting += n.waiting; m.leases += n.leases; m.waitedLeases += n.waitedLeases;
      nodes.set(n.node, m);
    }
  }
  return {
    mode: config.pool_mode, defaultPoolSize: config.default_pool_size, clients, maxClientConn: config.max_client_conn,
    nodes: [...nodes.values()].sort((a, b) => a.node - b.node), pinnedNow, pinnedTotal, cacheHits, cacheMisses,
  };
}

/**
 * The instance as an AdminContext: `base` gives the configuration (the instance's, unsplit),
 * version and actions; the snapshot everything that is counted or listed.
 */
export function instanceContext(base: AdminContext, snap: InstanceSnapshot): AdminContext {
  const config = base.config();
  const nicTotal = config.num_init_children;
  const workers = [...snap.workers].sort((a, b) => a.index - b.index);
  const counters = new Map<number, NodeCounters>();
  for (const n of snap.nodes) counters.set(n.id, newNodeCounters());
  for (const w of workers) for (const c of w.counters) { const into = counters.get(c.node); if (into !== undefined) addCounters(into, c.counters); }
  const nodes: BackendNode[] = snap.nodes.map((n) => ({ ...n, counters: counters.get(n.id) ?? n.counters }));
  const sessions = workers.flatMap((w) => w.sessions.map((s) => ({ ...s, slot: instanceSlot(s, w, nicTotal) })));
  const pools = new Map<number, PoolCounts>();
  for (const w of workers) for (const p of w.pools) { const m = pools.get(p.node); pools.set(p.node, m === undefined ? p.counts : addCounts(m, p.counts)); }
  const slotHistory = new Map<number, SlotHistory>();
  for (const w of workers) for (const [s, h] of w.slotHistory) slotHistory.set(w.shares.nicOffset + s, h);
  const slots = workers.reduce((a, w) => ({ capacity: a.capacity + w.slots.capacity, inUse: a.inUse + w.slots.inUse, waiting: a.waiting + w.slots.waiting }), { capacity: 0, inUse: 0, waiting: 0 });
  const classifiers = workers.map((w) => w.classifier).filter((c) => c !== null);
  const pooling = mergePooling(workers.map((w) => w.pooling), config);
  const histograms = mergeHistograms(workers.map((w) => w.histograms ?? []));
  const baseCache = base.queryCache?.() ?? null;
  const cacheParts = workers.map((w) => w.cache).filter((c): c is NonNullable<WorkerSnapshot['cache']> => c != null);
  const cache = baseCache === null ? null : mergeCache(baseCache, cacheParts);
  return {
    ...base,
    nodes: () => nodes,
    primaryId: () => snap.primaryId,
    poolCounts: (id) => pools.get(id),
    sessions: () => sessions,
    slots: () => slots,
    startedAt: snap.startedAt,
    recentEvents: () => snap.events,
    eventCounts: () => snap.eventCounts,
    ...(classifiers.length > 0 ? {
      classifierStats: () => classifiers.reduce((a, c) => ({ hits: a.hits + c.hits, misses: a.misses + c.misses, size: a.size + c.size }), { hits: 0, misses: 0, size: 0 }),
    } : {}),
    slotHistory: (slot) => slotHistory.get(slot),
    ...(pooling !== null ? { pooling: () => pooling } : {}),
    histograms: () => histograms,
    ...(cache !== null ? { queryCache: () => cache } : {}),
    failoverLease: () => snap.lease,
    recovery: () => snap.recovery,
  };
}
