/**
 * SHOW POOL_NODES: one row per configured backend, pgpool-II 4.6's 14 columns in its order.
 * status is pgpool's backend status (up/down/waiting/unused/quarantine); lb_weight is the
 * normalised weight as printf("%f"); role comes from who is primary now, pg_role from what the
 * node itself said (unknown unless pg_status is up); load_balance_node is relative to the
 * asking session; last_status_change is local time. A node being rebuilt by online recovery
 * shows status `recovering` (pgpool-II shows `down`; pcp_node_info still reports it down).
 */
import type { AdminCommand, AdminContext, AdminSession, ResultSet } from '../types';
import { exactly } from '../match';
import { normalisedWeights, pgRoleText, pgTimestamp, printfF, replicationDelayText, roleText } from '../format';

/** Column names, in pgpool's order. */
export const POOL_NODES_COLUMNS = [
  'node_id', 'hostname', 'port', 'status', 'pg_status', 'lb_weight', 'role', 'pg_role', 'select_cnt',
  'load_balance_node', 'replication_delay', 'replication_state', 'replication_sync_state', 'last_status_change',
] as const;

/** The rows, shared with PCP and HTTP. */
export function poolNodesRows(ctx: AdminContext, loadBalanceNode: number): string[][] {
  const nodes = ctx.nodes();
  const weights = normalisedWeights(nodes);
  const recovering = ctx.recovery?.()?.nodeId ?? -1;
  return nodes.map((n) => [
    String(n.id),
    n.host,
    String(n.port),
    n.id === recovering && n.status === 'down' ? 'recovering' : n.status,
    n.pgStatus,
    printfF(weights.get(n.id) ?? 0),
    roleText(ctx, n),
    pgRoleText(ctx, n),
    String(n.counters.select_cnt),
    n.id === loadBalanceNode ? 'true' : 'false',
    replicationDelayText(ctx, n),
    n.replication.state,
    n.replication.syncState,
    pgTimestamp(n.lastStatusChange),
  ]);
}

export const showPoolNodes: AdminCommand = {
  name: 'SHOW POOL_NODES',
  match: exactly('SHOW', 'POOL_NODES'),
  execute(ctx: AdminContext, session: AdminSession): ResultSet {
    return { columns: POOL_NODES_COLUMNS, rows: poolNodesRows(ctx, session.loadBalanceNode) };
  },
};
