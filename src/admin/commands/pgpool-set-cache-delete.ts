/**
 * PGPOOL SET CACHE DELETE 'query text' (pgpool-II 4.4): drops the cached answer of that query.
 * pgmaitre's answers are keyed by the generations of the tables they read, so the query's tables
 * are invalidated — its answer and every other cached answer reading them (never less than asked).
 * A query naming no table invalidates the asking session's database.
 */
import type { AdminCommand, AdminContext, AdminError, AdminSession, ResultSet } from '../types';
import { keywords, unquoteValue } from '../match';
import { adminError } from '../errors';

export const pgpoolSetCacheDelete: AdminCommand = {
  name: 'PGPOOL SET CACHE DELETE',
  match: keywords('PGPOOL', 'SET', 'CACHE', 'DELETE'),
  async execute(ctx: AdminContext, session: AdminSession, args: string): Promise<ResultSet | AdminError> {
    const qc = ctx.queryCache?.() ?? null;
    if (qc === null) return adminError('query cache is not enabled', { hint: 'set memory_cache_enabled = on in pgpool.conf (needs a restart)' });
    if (!/^'(?:[^']|'')*'$/.test(args)) return adminError('syntax error in PGPOOL SET CACHE DELETE', { detail: "expected PGPOOL SET CACHE DELETE 'query text'" });
    await qc.deleteQuery(unquoteValue(args), session.user, session.database);
    return { columns: [], rows: [], tag: 'SET' };
  },
};
