/**
 * The admin command registry: which simple-query statements pgmaitre answers itself.
 *
 * The session calls findAdminCommand(sql) for each simple Query; on a hit it calls
 * runAdminCommand and serializes the ResultSet (RowDescription with type OID 0 text columns,
 * DataRows, CommandComplete `tag ?? SELECT n`; no RowDescription when columns is empty) or the
 * AdminError (ErrorResponse, the session lives). Any other SHOW goes to PostgreSQL.
 */
import type { AdminCommand, AdminContext, AdminError, AdminSession, ResultSet } from './types';
import { adminError } from './errors';
import { showPoolNodes } from './commands/show-pool-nodes';
import { showPoolProcesses } from './commands/show-pool-processes';
import { showPoolPools } from './commands/show-pool-pools';
import { showPoolVersion } from './commands/show-pool-version';
import { showPoolLeases } from './commands/show-pool-leases';
import { showPoolHealthCheckStats } from './commands/show-pool-health-check-stats';
import { showPoolBackendStats } from './commands/show-pool-backend-stats';
import { showPoolStatus } from './commands/show-pool-status';
import { pgpoolShow } from './commands/pgpool-show';
import { pgpoolSet } from './commands/pgpool-set';
import { pgpoolSetCacheDelete } from './commands/pgpool-set-cache-delete';
import { showPoolCache } from './commands/show-pool-cache';
import { pgpoolReset } from './commands/pgpool-reset';

/** Every admin command, in matching order. */
export const ADMIN_COMMANDS: readonly AdminCommand[] = [
  showPoolNodes, showPoolProcesses, showPoolPools, showPoolVersion, showPoolHealthCheckStats, showPoolLeases,
  showPoolBackendStats, showPoolStatus, showPoolCache, pgpoolShow, pgpoolSetCacheDelete, pgpoolSet, pgpoolReset,
];

/** The command a statement names, with its argument text, or null (not an admin statement). */
export function findAdminCommand(sql: string): { command: AdminCommand; args: string } | null {
  for (const command of ADMIN_COMMANDS) {
    const args = command.match(sql);
    if (args !== null) return { command, args };
  }
  return null;
}

/** Runs an admin statement. A non-admin statement, or a command that throws, becomes an AdminError. */
export async function runAdminCommand(ctx: AdminContext, session: AdminSession, sql: string): Promise<ResultSet | AdminError> {
  const hit = findAdminCommand(sql);
  if (hit === null) return adminError('not a pgmaitre admin command');
  try {
    return await hit.command.execute(ctx, session, hit.args);
  } catch (err) {
    return adminError(`${hit.command.name} failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}
