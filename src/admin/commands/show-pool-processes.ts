/**
 * SHOW POOL_PROCESSES: one row per client slot (num_init_children), pgpool-II 4.6's 8 columns.
 *
 * Mapping onto pgmaitre (no process per client): a pgpool child process is a client slot. A
 * slot with a session shows that session's pgmaitre-issued pid (the one in its BackendKeyData);
 * a free slot shows a stable pseudo-pid (2000000000 + slot) and status "Wait for connection".
 * database/username/backend_connection_time/pool_counter describe the session's first live
 * backend connection, as pgpool describes the first connected pool slot.
 */
import type { AdminCommand, AdminContext, ResultSet } from '../types';
import { exactly } from '../match';
import { pgTimestamp, slotTable } from '../format';

/** Column names, in pgpool's order. */
export const POOL_PROCESSES_COLUMNS = [
  'pool_pid', 'start_time', 'client_connection_count', 'database', 'username', 'backend_connection_time', 'pool_counter', 'status',
] as const;

/** The rows, shared with PCP and HTTP. */
export function poolProcessesRows(ctx: AdminContext): string[][] {
  return slotTable(ctx).map(({ slot, pid, session }) => {
    const hist = ctx.slotHistory?.(slot);
    const first = session?.backends[0];
    return [
      String(pid),
      pgTimestamp(session?.connectedAt ?? ctx.startedAt),
      String(hist?.connections ?? (session !== undefined ? 1 : 0)),
      first !== undefined ? session?.database ?? '' : '',
      first !== undefined ? session?.user ?? '' : '',
      first !== undefined ? pgTimestamp(first.connectedAt) : '',
      first !== undefined ? String(first.useCount) : '',
      session?.status ?? 'Wait for connection',
    ];
  });
}

export const showPoolProcesses: AdminCommand = {
  name: 'SHOW POOL_PROCESSES',
  match: exactly('SHOW', 'POOL_PROCESSES'),
  execute(ctx: AdminContext): ResultSet {
    return { columns: POOL_PROCESSES_COLUMNS, rows: poolProcessesRows(ctx) };
  },
};
