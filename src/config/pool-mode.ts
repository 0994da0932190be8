/**
 * Which pool_mode a client gets: pool_mode_user_list, then pool_mode_database_list, then
 * pool_mode. The lists use pgpool's list syntax (`pattern:mode, ...`, as the redirect preference
 * lists): each pattern is a regular expression matched against the whole user or database name.
 */

/** PgBouncer's pool modes. */
export type PoolMode = 'session' | 'transaction' | 'statement';

const MODES: readonly PoolMode[] = ['session', 'transaction', 'statement'];

/** One parsed list entry. */
export interface PoolModeRule {
  readonly pattern: RegExp;
  readonly mode: PoolMode;
}

/** Parses a pool_mode_*_list value; throws naming the offending entry. */
export function parsePoolModeList(value: string): PoolModeRule[] {
  const out: PoolModeRule[] = [];
  for (const raw of value.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const colon = item.lastIndexOf(':');
    const mode = item.slice(colon + 1).trim().toLowerCase() as PoolMode;
    if (colon <= 0 || !MODES.includes(mode)) throw new Error(`invalid entry "${item}" (expected name:session|transaction|statement)`);
    out.push({ pattern: new RegExp(`^(?:${item.slice(0, colon).trim()})$`), mode });
  }
  return out;
}

/** The pool mode of a (user, database). */
export function poolModeFor(user: string, database: string, rules: { users: readonly PoolModeRule[]; databases: readonly PoolModeRule[]; fallback: PoolMode }): PoolMode {
  for (const r of rules.users) if (r.pattern.test(user)) return r.mode;
  for (const r of rules.databases) if (r.pattern.test(database)) return r.mode;
  return rules.fallback;
}
