/** SHOW POOL_BACKEND_STATS: per-node statement and error counters, pgpool-II's 14 columns. */
import type { AdminCommand, AdminContext, ResultSet } from '../types';
import { exactly } from '../match';
import { roleText } from '../format';

/** Column names, in pgpool's order. */
export const BACKEND_STATS_COLUMNS = [
  'node_id', 'hostname', 'port', 'status', 'role', 'select_cnt', 'insert_cnt', 'update_cnt', 'delete_cnt',
  'ddl_cnt', 'other_cnt', 'panic_cnt', 'fatal_cnt', 'error_cnt',
] as const;

export const showPoolBackendStats: AdminCommand = {
  name: 'SHOW POOL_BACKEND_STATS',
  match: exactly('SHOW', 'POOL_BACKEND_STATS'),
  execute(ctx: AdminContext): ResultSet {
    const rows = ctx.nodes().map((n) => {
      const c = n.counters;
      return [
        String(n.id), n.host, String(n.port), n.status, roleText(ctx, n),
        String(c.select_cnt), String(c.insert_cnt), String(c.update_cnt), String(c.delete_cnt), String(c.ddl_cnt),
        String(c.other_cnt), String(c.panic_cnt), String(c.fatal_cnt), String(c.error_cnt),
      ];
    });
    return { columns: BACKEND_STATS_COLUMNS, rows };
  },
};
