/**
 * The JSON snapshot behind the status page (/api/status) and the Patroni-style health
 * endpoints: nodes with role/status/weight/lag/counters/pool usage, client sessions, slots,
 * recent events and classifier cache counters. Built from AdminContext reads only.
 */
import type { AdminContext, PoolingView } from '../admin/types';
import { normalisedWeights, roleText } from '../admin/format';

/** One node in the snapshot. */
export interface NodeStatusJson {
  id: number; host: string; port: number; status: string; role: string; pgStatus: string; pgRole: string;
  weight: number; lagBytes: number; lagSeconds: number | null; replicationState: string; syncState: string;
  lastStatusChange: string; statusReason: string;
  counters: Record<string, number>;
  pool: { idle: number; active: number; resetting: number; connecting: number; total: number } | null;
  health: { total: number; success: number; fail: number; lastCheck: string | null };
}

/** The whole snapshot. */
export interface StatusJson {
  version: string; startedAt: string; now: string; primaryId: number;
  nodes: NodeStatusJson[];
  slots: { capacity: number; inUse: number; waiting: number };
  sessions: { pid: number; slot: number; user: string; database: string; applicationName: string; address: string; port: number;
    status: string; connectedAt: string; loadBalanceNode: number; backends: { nodeId: number; backendPid: number; useCount: number }[] }[];
  events: { at: string; kind: string; nodeId: number; message: string }[];
  classifier: { hits: number; misses: number; size: number; hitRatio: number } | null;
  /** HA pair: this instance and whether it holds the failover command lease (null: no etcd). */
  failoverLease: { instance: string; leading: boolean } | null;
  /** Transaction pooling (SHOW POOL_LEASES), null when not wired. */
  pooling: PoolingView | null;
}

/** Builds the snapshot. */
export function statusSnapshot(ctx: AdminContext): StatusJson {
  const nodes = ctx.nodes();
  const weights = normalisedWeights(nodes);
  const cls = ctx.classifierStats?.();
  const rec = ctx.recovery?.() ?? null;
  return {
    version: ctx.version,
    startedAt: ctx.startedAt.toISOString(),
    now: new Date().toISOString(),
    primaryId: ctx.primaryId(),
    nodes: nodes.map((n) => ({
      id: n.id, host: n.host, port: n.port, status: rec?.nodeId === n.id && n.status === 'down' ? 'recovering' : n.status, role: roleText(ctx, n), pgStatus: n.pgStatus, pgRole: n.pgRole,
      weight: weights.get(n.id) ?? 0, lagBytes: n.replication.delayBytes, lagSeconds: n.replication.delaySeconds,
      replicationState: n.replication.state, syncState: n.replication.syncState,
      lastStatusChange: n.lastStatusChange.toISOString(),
      statusReason: rec?.nodeId === n.id ? `online recovery: ${rec.stage} (since ${rec.startedAt.toISOString()})` : n.statusReason,
      counters: { ...n.counters },
      pool: ctx.poolCounts(n.id) ?? null,
      health: {
        total: n.health.total_count, success: n.health.success_count, fail: n.health.fail_count,
        lastCheck: n.health.last_health_check?.toISOString() ?? null,
      },
    })),
    slots: { ...ctx.slots() },
    sessions: ctx.sessions().map((s) => ({
      pid: s.pid, slot: s.slot, user: s.user, database: s.database, applicationName: s.applicationName, address: s.address,
      port: s.port, status: s.status, connectedAt: s.connectedAt.toISOString(), loadBalanceNode: s.loadBalanceNode,
      backends: s.backends.map((b) => ({ nodeId: b.nodeId, backendPid: b.backendPid, useCount: b.useCount })),
    })),
    events: (ctx.recentEvents?.() ?? []).slice(-50).map((e) => ({ at: e.at.toISOString(), kind: e.kind, nodeId: e.nodeId, message: e.message })),
    pooling: ctx.pooling?.() ?? null,
    classifier: cls === undefined ? null : { ...cls, hitRatio: cls.hits + cls.misses > 0 ? cls.hits / (cls.hits + cls.misses) : 0 },
    failoverLease: ctx.failoverLease?.() ?? null,
  };
}

const UP = new Set(['up', 'waiting']);

/** Patroni-style checks: [http status, body]. */
export function healthCheck(ctx: AdminContext, kind: 'primary' | 'replica' | 'health', maxLagBytes?: number): [number, object] {
  const nodes = ctx.nodes();
  const primary = ctx.primaryId();
  const up = nodes.filter((n) => UP.has(n.status));
  if (kind === 'health') return [up.length > 0 ? 200 : 503, { state: up.length > 0 ? 'running' : 'no backend up', nodes_up: up.length, primary_id: primary }];
  if (kind === 'primary') {
    const p = nodes.find((n) => n.id === primary && UP.has(n.status));
    return [p !== undefined ? 200 : 503, { role: 'primary', primary_id: primary, ...(p !== undefined ? { host: p.host, port: p.port } : {}) }];
  }
  const standbys = up.filter((n) => n.id !== primary && (maxLagBytes === undefined || n.replication.delayBytes <= maxLagBytes));
  return [standbys.length > 0 ? 200 : 503, { role: 'replica', replicas: standbys.map((n) => ({ id: n.id, host: n.host, port: n.port, lag_bytes: n.replication.delayBytes })) }];
}

/** Parses Patroni's lag argument: bytes, or with a unit (kB, MB, GB). */
export function parseLag(v: string | null): number | undefined {
  if (v === null || v === '') return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*(B|kB|KB|MB|GB|TB)?$/i.exec(v.trim());
  if (m === null) return undefined;
  const mult: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 };
  return Number(m[1]) * (mult[(m[2] ?? 'b').toLowerCase()] ?? 1);
}
