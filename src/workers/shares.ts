/**
 * How the instance-wide limits are divided between worker processes.
 *
 * Each worker owns its clients, its pools and its slots, so an instance-wide limit is held by
 * giving every worker a share: worker k of W gets ⌊N/W⌋, plus one for the first N mod W workers,
 * so the shares add up to N exactly. The limits that protect PostgreSQL (backend connections:
 * num_init_children × max_pool, default_pool_size, reserve_pool_size) are therefore never
 * exceeded by the instance. A share is at least 1 (a worker with no room at all would refuse
 * every client), so with N < W the instance may hold up to W instead of N: docs/workers.md.
 * Client limits (num_init_children, max_client_conn), the per-address connection rate and the
 * shmem query cache's bounds (memqcache_total_size, memqcache_max_num_cache) are split the same
 * way; connections are dealt to the workers round-robin, so the instance refuses at the
 * configured number give or take one per worker (docs/workers.md says how exact each is).
 */
import { deepFreeze, type Config } from '../config/load';

/** Worker `index`'s share of `total` among `count` workers (at least 1 when total > 0). */
export function share(total: number, index: number, count: number): number {
  if (total <= 0 || count <= 1) return total;
  const base = Math.floor(total / count) + (index < total % count ? 1 : 0);
  return Math.max(1, base);
}

/** Where worker `index`'s share starts (its first slot number in the instance's numbering). */
export function shareOffset(total: number, index: number, count: number): number {
  let off = 0;
  for (let k = 0; k < index; k++) off += share(total, k, count);
  return off;
}

/** Keys whose value is split between the workers (docs/workers.md says why each). */
export const SPLIT_KEYS = [
  'num_init_children', 'max_client_conn', 'default_pool_size', 'reserve_pool_size', 'client_connection_rate_limit',
  // The shmem query cache: each worker keeps its own answers, so the instance's bound is held by
  // splitting it (the bytes and the entries add up to what is configured).
  'memqcache_total_size', 'memqcache_max_num_cache',
] as const;

/** The configuration worker `index` of `count` runs with: the instance's, with its share of each limit. */
export function workerConfig(config: Config, index: number, count: number): Config {
  if (count <= 1) return config;
  const out: Record<string, unknown> = { ...config };
  for (const k of SPLIT_KEYS) out[k] = share(config[k], index, count);
  // The queue for a slot (listen_backlog_multiplier × num_init_children) is not split: a waiting
  // client holds nothing on PostgreSQL, and connections dealt round-robin can reach one worker in a
  // burst; each worker may queue as many as the whole instance would.
  out['listen_backlog_multiplier'] = Math.ceil(config.listen_backlog_multiplier * config.num_init_children / (out['num_init_children'] as number));
  return deepFreeze(out) as unknown as Config;
}
