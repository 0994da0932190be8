/**
 * SHOW POOL_LEASES (pgmaitre's own): transaction pooling at a glance, one row per backend node —
 * connections idle and leased, clients waiting for one, leases granted and how many had to
 * wait — plus the pool-wide figures: pooled client sessions, pinned sessions (LISTEN, advisory
 * locks, cursors WITH HOLD, temporary tables keep their connection) and the shared
 * prepared-statement cache's hits and misses.
 */
import type { AdminCommand, AdminContext, ResultSet } from '../types';
import { exactly } from '../match';

export const POOL_LEASES_COLUMNS = [
  'node_id', 'pool_mode', 'default_pool_size', 'idle', 'leased', 'waiting', 'leases', 'waited_leases',
  'clients', 'max_client_conn', 'pinned_clients', 'pinned_total', 'cache_hits', 'cache_misses',
] as const;

export const showPoolLeases: AdminCommand = {
  name: 'SHOW POOL_LEASES',
  match: exactly('SHOW', 'POOL_LEASES'),
  execute(ctx: AdminContext): ResultSet {
    const p = ctx.pooling?.();
    if (p === undefined) return { columns: [...POOL_LEASES_COLUMNS], rows: [] };
    return {
      columns: [...POOL_LEASES_COLUMNS],
      rows: p.nodes.map((n) => [
        String(n.node), p.mode, String(p.defaultPoolSize), String(n.idle), String(n.leased), String(n.waiting),
        String(n.leases), String(n.waitedLeases), String(p.clients), String(p.maxClientConn), String(p.pinnedNow),
        String(p.pinnedTotal), String(p.cacheHits), String(p.cacheMisses),
      ]),
    };
  },
};
