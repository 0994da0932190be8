/**
 * SHOW POOL_POOLS: num_init_children × max_pool × nodes rows, pgpool-II 4.6's columns.
 *
 * Mapping onto pgmaitre: a row is (client slot, pool_id, backend node). A session uses one
 * user/database pair, so its backend connections are pool_id 0 (one per node it holds); pool
 * ids 1..max_pool-1 of a slot are empty, as are all pools of a free slot. pool_pid follows
 * SHOW POOL_PROCESSES (session pid or 2000000000 + slot). pool_connected is 1 while a client
 * holds the connection; load_balance_node is 1 on the row of the session's load-balance node.
 * majorversion/minorversion are 3/0 for a live connection (protocol 3.0), else 0/0.
 */
import type { AdminCommand, AdminContext, ResultSet } from '../types';
import { exactly } from '../match';
import { pgTimestamp, slotTable } from '../format';

/** Column names, in pgpool's order (the first 17 are also pcp_proc_info's fields). */
export const POOL_POOLS_COLUMNS = [
  'pool_pid', 'start_time', 'client_connection_count', 'pool_id', 'backend_id', 'database', 'username',
  'backend_connection_time', 'client_connection_time', 'client_disconnection_time', 'client_idle_duration',
  'majorversion', 'minorversion', 'pool_counter', 'pool_backendpid', 'pool_connected', 'status', 'load_balance_node',
] as const;

/** The rows, shared with PCP (pcp_proc_info) and HTTP. `pid` limits them to one slot. */
export function poolPoolsRows(ctx: AdminContext, pid?: number): string[][] {
  const maxPool = Math.max(1, ctx.config().max_pool);
  const nodes = ctx.nodes();
  const rows: string[][] = [];
  for (const { slot, pid: slotPid, session } of slotTable(ctx)) {
    if (pid !== undefined && pid !== slotPid) continue;
    const hist = ctx.slotHistory?.(slot);
    const startTime = pgTimestamp(session?.connectedAt ?? ctx.startedAt);
    const count = String(hist?.connections ?? (session !== undefined ? 1 : 0));
    const status = session?.status ?? 'Wait for connection';
    for (let pool = 0; pool < maxPool; pool++) {
      for (const node of nodes) {
        const conn = pool === 0 ? session?.backends.find((b) => b.nodeId === node.id) : undefined;
        const live = conn !== undefined && session !== undefined;
        rows.push([
          String(slotPid),
          startTime,
          count,
          String(pool),
          String(node.id),
          live ? session.database : '',
          live ? session.user : '',
          live ? pgTimestamp(conn.connectedAt) : '',
          live ? pgTimestamp(session.connectedAt) : '',
          pool === 0 ? pgTimestamp(hist?.lastDisconnectedAt ?? null) : '',
          '0',
          live ? '3' : '0',
          '0',
          live ? String(conn.useCount) : '0',
          live ? String(conn.backendPid) : '0',
          live ? '1' : '0',
          status,
          session !== undefined && pool === 0 && session.loadBalanceNode === node.id ? '1' : '0',
        ]);
      }
    }
  }
  return rows;
}

export const showPoolPools: AdminCommand = {
  name: 'SHOW POOL_POOLS',
  match: exactly('SHOW', 'POOL_POOLS'),
  execute(ctx: AdminContext): ResultSet {
    return { columns: POOL_POOLS_COLUMNS, rows: poolPoolsRows(ctx) };
  },
};
