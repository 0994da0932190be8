/**
 * SHOW POOL_POOLS: num_init_children × max_pool × nodes rows, pgpool-II 4.7's 21 columns
 * (pgpool_compatibility = '4.6': 4.6's first 18).
 *
 * Mapping onto pgmaitre: a row is (client slot, pool_id, backend node). A session uses one
 * user/database pair, so its backend connections are pool_id 0 (one per node it holds); pool
 * ids 1..max_pool-1 of a slot are empty, as are all pools of a free slot. pool_pid follows
 * SHOW POOL_PROCESSES (session pid or 2000000000 + slot). pool_connected is 1 while a client
 * holds the connection; load_balance_node is 1 on the row of the session's load-balance node.
 * majorversion/minorversion are 3/0 for a live connection (protocol 3.0), else 0/0.
 * client_host/client_port are the session's client ('[local]' and '' on a Unix socket, as
 * PostgreSQL names them); statement is the last statement sent on that backend connection,
 * clipped as pgpool clips it (MAXSTMTLEN: 1023 bytes and its terminator), on a UTF-8 character
 * boundary. The connection only keeps a reference to the text; the clipping happens here.
 */
import type { AdminCommand, AdminContext, ResultSet } from '../types';
import { exactly } from '../match';
import { pgTimestamp, slotTable } from '../format';

/** Column names, in pgpool 4.7's order (the first 17 are 4.3's pcp_proc_info fields, 18 are 4.6's). */
export const POOL_POOLS_COLUMNS = [
  'pool_pid', 'start_time', 'client_connection_count', 'pool_id', 'backend_id', 'database', 'username',
  'backend_connection_time', 'client_connection_time', 'client_disconnection_time', 'client_idle_duration',
  'majorversion', 'minorversion', 'pool_counter', 'pool_backendpid', 'pool_connected', 'status', 'load_balance_node',
  'client_host', 'client_port', 'statement',
] as const;

/** Columns of pgpool-II 4.6 (before client_host, client_port, statement). */
const POOL_POOLS_46 = 18;

/** The columns at a compatibility level. */
export function poolPoolsColumns(level: string): readonly string[] {
  return level === '4.6' ? POOL_POOLS_COLUMNS.slice(0, POOL_POOLS_46) : POOL_POOLS_COLUMNS;
}

/** pgpool's statement buffer (MAXSTMTLEN): the text keeps at most 1023 bytes. */
export const MAX_STATEMENT_BYTES = 1023;

/** `sql` clipped to MAX_STATEMENT_BYTES of UTF-8, never inside a character. */
export function clipStatement(sql: string): string {
  // Fast path: a string of n UTF-16 units is at most 3n UTF-8 bytes.
  if (sql.length * 3 <= MAX_STATEMENT_BYTES || Buffer.byteLength(sql) <= MAX_STATEMENT_BYTES) return sql;
  const bytes = Buffer.from(sql.slice(0, MAX_STATEMENT_BYTES));
  let end = MAX_STATEMENT_BYTES;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // back to the start of the cut character
  return bytes.subarray(0, end).toString('utf8');
}

/** The rows, shared with PCP (pcp_proc_info) and HTTP. `pid` limits them to one slot. */
export function poolPoolsRows(ctx: AdminContext, pid?: number): string[][] {
  const width = poolPoolsColumns(ctx.config().pgpool_compatibility).length;
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
          session !== undefined ? clientHost(session.address) : '',
          session !== undefined && session.port > 0 ? String(session.port) : '',
          live ? clipStatement(conn.statement ?? '') : '',
        ].slice(0, width));
      }
    }
  }
  return rows;
}

/** The client's host as pgpool shows it: the address, '[local]' for a Unix-domain socket. */
function clientHost(address: string): string {
  return address === '' ? '[local]' : address;
}

export const showPoolPools: AdminCommand = {
  name: 'SHOW POOL_POOLS',
  match: exactly('SHOW', 'POOL_POOLS'),
  execute(ctx: AdminContext): ResultSet {
    return { columns: poolPoolsColumns(ctx.config().pgpool_compatibility), rows: poolPoolsRows(ctx) };
  },
};
