/**
 * Compare two Config snapshots for SIGHUP reload.
 *
 * Reload never mutates the running snapshot: it loads a new one and applies this diff.
 * Each changed key carries its reload class; keys needing a restart are listed apart so
 * the caller can log "changed, takes effect after restart" and keep the old value.
 * Backends are compared per node and per field, named the way pgpool.conf spells them
 * (backend_port1, health_check_period0, …). Changing the address of an existing node, or
 * removing a node, needs a restart (as in pgpool); adding a node or changing its weight,
 * flags or health check settings is hot.
 */
import type { Reload } from './param-spec';
import { lookupParam } from './schema';
import type { BackendConfig, Config } from './types';

/** One changed key. */
export interface ConfigChange {
  readonly key: string;
  readonly from: unknown;
  readonly to: unknown;
  readonly reload: Reload;
}

/** Result of diffConfig. */
export interface ConfigDiff {
  readonly changed: ConfigChange[];
  /** Keys whose change only takes effect after a restart. */
  readonly restartOnly: string[];
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

const FILE_KEYS = ['config_file', 'hba_file', 'pcp_file', 'key_file'] as const;

function backendFields(b: BackendConfig | undefined): Record<string, [unknown, Reload]> {
  if (b === undefined) return {};
  const n = b.id;
  return {
    [`backend_hostname${n}`]: [b.hostname, 'restart'],
    [`backend_port${n}`]: [b.port, 'restart'],
    [`backend_data_directory${n}`]: [b.dataDirectory, 'restart'],
    [`backend_weight${n}`]: [b.weight, 'hot'],
    [`backend_flag${n}`]: [b.flags.join('|'), 'hot'],
    [`backend_application_name${n}`]: [b.applicationName, 'hot'],
    [`health_check_period${n}`]: [b.healthCheck.period, 'hot'],
    [`health_check_timeout${n}`]: [b.healthCheck.timeout, 'hot'],
    [`health_check_user${n}`]: [b.healthCheck.user, 'hot'],
    [`health_check_password${n}`]: [b.healthCheck.password, 'hot'],
    [`health_check_database${n}`]: [b.healthCheck.database, 'hot'],
    [`health_check_max_retries${n}`]: [b.healthCheck.max_retries, 'hot'],
    [`health_check_retry_delay${n}`]: [b.healthCheck.retry_delay, 'hot'],
    [`connect_timeout${n}`]: [b.healthCheck.connect_timeout, 'hot'],
    [`health_check_rise${n}`]: [b.healthCheck.rise, 'hot'],
    [`health_check_http_port${n}`]: [b.healthCheck.http_port, 'hot'],
  };
}

/** List what differs between the running snapshot and a newly loaded one. */
export function diffConfig(old: Config, next: Config): ConfigDiff {
  const changed: ConfigChange[] = [];
  const oldRec = old as unknown as Record<string, unknown>;
  const nextRec = next as unknown as Record<string, unknown>;
  for (const key of Object.keys(nextRec)) {
    if (key === 'backends') continue;
    if (same(oldRec[key], nextRec[key])) continue;
    const reload: Reload = (FILE_KEYS as readonly string[]).includes(key) ? 'restart' : lookupParam(key)?.reload ?? 'restart';
    changed.push({ key, from: oldRec[key], to: nextRec[key], reload });
  }
  const ids = new Set<number>([...old.backends.map((b) => b.id), ...next.backends.map((b) => b.id)]);
  for (const id of [...ids].sort((a, b) => a - b)) {
    const ob = old.backends.find((b) => b.id === id);
    const nb = next.backends.find((b) => b.id === id);
    const of = backendFields(ob);
    const nf = backendFields(nb);
    for (const key of new Set([...Object.keys(of), ...Object.keys(nf)])) {
      const o = of[key];
      const n = nf[key];
      if (same(o?.[0], n?.[0])) continue;
      // A node that appears is hot (pgpool adds nodes on reload); one that goes away is not.
      const reload: Reload = ob === undefined ? 'hot' : nb === undefined ? 'restart' : (n?.[1] ?? 'restart');
      changed.push({ key, from: o?.[0], to: n?.[0], reload });
    }
  }
  return { changed, restartOnly: changed.filter((c) => c.reload === 'restart').map((c) => c.key) };
}
