/** SHOW POOL_STATUS: item, value, description for every configuration parameter (secrets redacted). */
import type { AdminCommand, AdminContext, AdminSession, ResultSet } from '../types';
import { exactly } from '../match';
import { poolStatusItems } from '../config-items';

/** Column names, in pgpool's order. */
export const CONFIG_ITEM_COLUMNS = ['item', 'value', 'description'] as const;

export const showPoolStatus: AdminCommand = {
  name: 'SHOW POOL_STATUS',
  match: exactly('SHOW', 'POOL_STATUS'),
  execute(ctx: AdminContext, session: AdminSession): ResultSet {
    return { columns: CONFIG_ITEM_COLUMNS, rows: poolStatusItems(ctx, session).map((i) => [i.item, i.value, i.description]) };
  },
};
