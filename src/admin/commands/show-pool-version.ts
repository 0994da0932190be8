/** SHOW POOL_VERSION: one column, pool_version, "<version> (<name>)" as pgpool prints "4.6.0 (codename)". */
import type { AdminCommand, AdminContext, ResultSet } from '../types';
import { exactly } from '../match';

/** The version string. */
export function poolVersionText(ctx: AdminContext): string {
  return `${ctx.version} (pgmaitre)`;
}

export const showPoolVersion: AdminCommand = {
  name: 'SHOW POOL_VERSION',
  match: exactly('SHOW', 'POOL_VERSION'),
  execute(ctx: AdminContext): ResultSet {
    return { columns: ['pool_version'], rows: [[poolVersionText(ctx)]] };
  },
};
