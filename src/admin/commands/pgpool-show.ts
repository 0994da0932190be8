/**
 * PGPOOL SHOW <param> | <group> | ALL.
 *
 * A parameter answers one row in a column named after it, with the session's value (a
 * PGPOOL SET override if any). Groups and ALL answer item/value/description rows. pgpool's
 * groups: backend, watchdog, heartbeat, health_check; pgmaitre has no watchdog, so watchdog and
 * heartbeat are empty. Double-quoted names keep their case, as in pgpool.
 */
import type { AdminCommand, AdminContext, AdminError, AdminSession, ResultSet } from '../types';
import { keywords, unquoteIdent } from '../match';
import { backendGroupItems, globalItems, healthCheckGroupItems, numberedValue, type ConfigItem } from '../config-items';
import { lookupParam } from '../../config/schema';
import { paramText } from '../format';
import { adminError, unrecognizedParam } from '../errors';
import { CONFIG_ITEM_COLUMNS } from './show-pool-status';

function items(rows: ConfigItem[]): ResultSet {
  return { columns: CONFIG_ITEM_COLUMNS, rows: rows.map((i) => [i.item, i.value, i.description]) };
}

export const pgpoolShow: AdminCommand = {
  name: 'PGPOOL SHOW',
  match: keywords('PGPOOL', 'SHOW'),
  execute(ctx: AdminContext, session: AdminSession, args: string): ResultSet | AdminError {
    if (args === '') return adminError('syntax error in PGPOOL SHOW', { detail: 'expected a parameter name, a group or ALL' });
    const name = unquoteIdent(args);
    if (!/^"/.test(args.trim()) && name === 'all') {
      const all = [...globalItems(ctx, session), ...backendGroupItems(ctx), ...healthCheckGroupItems(ctx, session).filter((i) => /\d$/.test(i.item))];
      return items(all);
    }
    switch (name) {
      case 'backend': return items(backendGroupItems(ctx));
      case 'health_check': return items(healthCheckGroupItems(ctx, session));
      case 'watchdog':
      case 'heartbeat': return items([]);
      default: break;
    }
    if (lookupParam(name) !== undefined) {
      const v = session.getParam(name);
      const value = v !== undefined ? v : (ctx.config() as unknown as Record<string, unknown>)[name];
      return { columns: [name], rows: [[paramText(name, value)]] };
    }
    const numbered = numberedValue(ctx, name);
    if (numbered !== undefined) return { columns: [name], rows: [[numbered]] };
    return unrecognizedParam(name);
  },
};
