/**
 * The files a start (and a reload) reads besides pgpool.conf, in one place so that the start,
 * the reload and `pgmaitre check` read them the same way: pool_passwd (with the AES key file),
 * pool_hba.conf when enable_pool_hba is on, and the settings that a start accepts but warns
 * about. Errors throw ConfigError (`FILE:LINE: why`); warnings come back as issues.
 */
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { ConfigError, type ConfigIssue } from './config-error';
import { SUPPORTED_METHODS, checkHbaRoles, loadHba, type HbaRule } from './hba';
import { loadPoolPasswd, type PoolPasswdEntry } from './pool-passwd';
import type { Config } from './types';

/** What loadAuthFiles read. */
export interface AuthFiles {
  readonly poolPasswd: ReadonlyMap<string, PoolPasswdEntry>;
  /** The rules of pool_hba.conf, or null when enable_pool_hba is off. */
  readonly hba: HbaRule[] | null;
  /** Non-fatal problems: unusable pool_passwd entries, pool_hba.conf lines no client can pass. */
  readonly warnings: readonly ConfigIssue[];
}

/**
 * Reads pool_passwd (a missing file is an empty one, as in pgpool) and, with enable_pool_hba,
 * pool_hba.conf (which must exist and parse). Throws ConfigError for a bad pool_hba.conf.
 */
export function loadAuthFiles(config: Config): AuthFiles {
  const warnings: ConfigIssue[] = [];
  const poolPasswd: ReadonlyMap<string, PoolPasswdEntry> = config.pool_passwd !== '' && existsSync(config.pool_passwd)
    ? loadPoolPasswd(config.pool_passwd, config.key_file) : new Map();
  for (const [user, e] of poolPasswd) {
    if (e.kind !== 'unusable') continue;
    // The reason reads `pool_passwd:LINE: user: why`.
    const m = /^[^:]*:(\d+): (.*)$/.exec(e.reason);
    const why = m?.[2]?.startsWith(`${user}: `) ? m[2].slice(user.length + 2) : (m?.[2] ?? e.reason);
    warnings.push({ file: basename(config.pool_passwd), ...(m ? { line: Number(m[1]) } : {}), key: user, message: `entry unusable: ${why}` });
  }
  let hba: HbaRule[] | null = null;
  if (config.enable_pool_hba) {
    if (!existsSync(config.hba_file)) {
      throw new ConfigError([{ file: basename(config.hba_file), message: `enable_pool_hba = on but ${config.hba_file} does not exist` }]);
    }
    hba = loadHba(config.hba_file);
    checkHbaRoles(hba, config.auth_user, basename(config.hba_file));
    for (const r of hba) {
      if (!(SUPPORTED_METHODS as readonly string[]).includes(r.method)) {
        warnings.push({ file: basename(config.hba_file), line: r.line, message: `authentication method "${r.method}" is not supported by pgmaitre: clients matching this line are refused` });
      }
      if (r.method === 'ldap' && r.type === 'host') {
        // As PostgreSQL's documentation warns: the ldap method receives the password in clear text.
        warnings.push({ file: basename(config.hba_file), line: r.line, message: 'ldap on a "host" line: clients not using TLS send their password in clear text; use "hostssl" (with ssl = on)' });
      }
    }
  }
  return { poolPasswd, hba, warnings };
}

/** Settings a start accepts but that leave a feature unusable (logged at start, reported by check). */
export function startupWarnings(config: Config): ConfigIssue[] {
  const file = basename(config.config_file);
  const out: ConfigIssue[] = [];
  if (config.ssl && (config.ssl_cert === '' || config.ssl_key === '')) {
    out.push({ file, key: 'ssl', message: 'ssl = on but ssl_cert or ssl_key is not set: clients cannot use TLS (SSLRequest is answered N)' });
  }
  if (config.sr_check_user === '') {
    out.push({ file, key: 'sr_check_user', message: 'not set: pgmaitre cannot ask the nodes which one is the primary (set sr_check_user, and sr_check_password or a pool_passwd entry)' });
  }
  // pgpool 4.6 made the *_user keys empty by default: a feature switched on needs its user set.
  const unchecked = config.backends.filter((b) => b.healthCheck.period > 0 && b.healthCheck.user === '' && b.healthCheck.http_port === 0);
  if (unchecked.length > 0) {
    out.push({
      file, key: 'health_check_user',
      message: `not set while health checks are on (health_check_period) for node(s) ${unchecked.map((b) => b.id).join(', ')}: every check fails to log in and those nodes are detached (set health_check_user, or health_check_userN, and a password)`,
    });
  }
  // The dedicated write port relays bytes without parsing them: the query cache does not see its
  // writes, as it does not see a direct connection's (docs/query-cache.md).
  if (config.memory_cache_enabled && config.write_port > 0 && !config.memqcache_logical_invalidation) {
    out.push({
      file, key: 'write_port',
      message: `writes through the dedicated write port (${config.write_port}) are relayed without being parsed: the query cache does not see them and may answer what they changed until memqcache_expire (set memqcache_logical_invalidation = on to invalidate by the primary's change stream, or send writes to port ${config.port})`,
    });
  }
  return out;
}
