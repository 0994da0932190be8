/**
 * SHOW POOL_CACHE: the query cache's counters in pgpool-II's nine columns (num_cache_hits,
 * num_selects, cache_hit_ratio, num_hash_entries, used_hash_entries, num_cache_entries,
 * used_cache_entries_size, free_cache_entries_size, fragment_cache_entries_size). With
 * memqcache_method = memcached the size columns are 0, as in pgpool-II (memcached keeps them).
 */
import type { AdminCommand, AdminContext, AdminError, ResultSet } from '../types';
import { exactly } from '../match';
import { adminError } from '../errors';

export const POOL_CACHE_COLUMNS = [
  'num_cache_hits', 'num_selects', 'cache_hit_ratio', 'num_hash_entries', 'used_hash_entries',
  'num_cache_entries', 'used_cache_entries_size', 'free_cache_entries_size', 'fragment_cache_entries_size',
] as const;

export const showPoolCache: AdminCommand = {
  name: 'SHOW POOL_CACHE',
  match: exactly('SHOW', 'POOL_CACHE'),
  execute(ctx: AdminContext): ResultSet | AdminError {
    const qc = ctx.queryCache?.() ?? null;
    if (qc === null) return adminError('query cache is not enabled', { hint: 'set memory_cache_enabled = on in pgpool.conf (needs a restart)' });
    return { columns: [...POOL_CACHE_COLUMNS], rows: [qc.poolCacheRow()] };
  },
};
