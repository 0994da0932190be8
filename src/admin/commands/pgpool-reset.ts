/** PGPOOL RESET <param> | ALL: drops session overrides (only session-scoped parameters). Tag "RESET". */
import type { AdminCommand, AdminContext, AdminError, AdminSession, ResultSet } from '../types';
import { keywords, unquoteIdent } from '../match';
import { lookupParam } from '../../config/schema';
import { adminError, notSessionParam, unrecognizedParam } from '../errors';

export const pgpoolReset: AdminCommand = {
  name: 'PGPOOL RESET',
  match: keywords('PGPOOL', 'RESET'),
  execute(_ctx: AdminContext, session: AdminSession, args: string): ResultSet | AdminError {
    if (args === '') return adminError('syntax error in PGPOOL RESET', { detail: 'expected a parameter name or ALL' });
    const name = unquoteIdent(args);
    if (name === 'all' && !args.trim().startsWith('"')) {
      session.resetParam('*');
      return { columns: [], rows: [], tag: 'RESET' };
    }
    const spec = lookupParam(name);
    if (spec === undefined) return unrecognizedParam(name);
    if (!spec.session) return notSessionParam(name);
    session.resetParam(name);
    return { columns: [], rows: [], tag: 'RESET' };
  },
};
