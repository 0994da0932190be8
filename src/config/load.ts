/**
 * Load a pgpool.conf into a validated, deep-frozen Config snapshot.
 *
 * Pipeline: parse (syntax) → classify each key (ours/pgpool's, numbered, obsolete, unknown)
 * → fold obsolete keys into their successors → convert every value with one zod schema
 * built from the declarative table (so every bad value is reported, each with key and
 * line) → cross-field checks (backends, flags) → resolve file paths against the config
 * directory, as pgpool does → deep-freeze. Problems are collected and thrown together as
 * one ConfigError; keys we accept but do not act on yet come back as warnings.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError, formatIssue, type ConfigIssue } from './config-error';
import { parseValue, type ParamSpec, type ParamValue, type Reload, type UnitKind } from './param-spec';
import { parsePgpoolConfLenient, type ConfEntry } from './pgpool-conf-parser';
import {
  FEATURE_GATES, HEALTH_CHECK_FAMILIES, MAX_NUMBERED_INDEX, PARAMS, lookupNumbered, lookupObsolete, lookupParam,
} from './schema';
import { BACKEND_FLAGS, type BackendConfig, type BackendFlag, type Config, type HealthCheckConfig } from './types';

export { ConfigError } from './config-error';
export type { ConfigIssue } from './config-error';
export type { BackendConfig, BackendFlag, Config, HealthCheckConfig } from './types';

/** Result of loadConfig: the snapshot plus non-fatal warnings (already formatted). */
export interface LoadedConfig {
  readonly config: Config;
  readonly warnings: string[];
}

/** Paths given on the command line that win over the defaults. */
export interface LoadOverrides {
  hbaFile?: string;
  pcpFile?: string;
  keyFile?: string;
}

interface Setting {
  readonly key: string;
  readonly raw: string;
  readonly line: number;
  /** The key as written when it was renamed from an obsolete one. */
  readonly writtenAs: string;
  readonly spec: ParamSpec;
}

/** Zod field that turns a raw string into the spec's typed value or a precise issue. */
function fieldSchema(spec: ParamSpec): z.ZodType<ParamValue, string> {
  return z.string().transform((raw, ctx) => {
    const r = parseValue(spec, raw);
    if (!r.ok) {
      ctx.addIssue({ code: 'custom', message: r.error });
      return z.NEVER;
    }
    return r.value;
  });
}

function isTrue(raw: string | undefined): boolean {
  if (raw === undefined) return false;
  const r = parseValue(PARAMS.load_balance_mode, raw);
  return r.ok && r.value === true;
}

/** Recursively Object.freeze a plain value. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}

/** Sort entries and fold duplicates (last one wins, like PostgreSQL). */
function lastWins(entries: readonly ConfEntry[]): Map<string, ConfEntry> {
  const m = new Map<string, ConfEntry>();
  for (const e of entries) {
    m.delete(e.key);
    m.set(e.key, e);
  }
  return m;
}

/** Map the obsolete clustering switches to backend_clustering_mode. */
function modeFromObsolete(byKey: Map<string, ConfEntry>): string | undefined {
  const rep = byKey.get('replication_mode');
  const ms = byKey.get('master_slave_mode');
  if (rep === undefined && ms === undefined) return undefined;
  if (isTrue(rep?.value)) return 'native_replication';
  if (isTrue(ms?.value)) {
    const sub = (byKey.get('master_slave_sub_mode')?.value ?? 'slony').trim().toLowerCase();
    return sub === 'stream' ? 'streaming_replication' : sub === 'logical' ? 'logical_replication' : 'slony';
  }
  return 'raw';
}

/** Load and validate a pgpool.conf file; throws ConfigError listing every problem. */
export function loadConfig(file: string, overrides: LoadOverrides = {}): LoadedConfig {
  const configFile = resolve(file);
  const fileName = basename(configFile);
  let text: string;
  try {
    text = readFileSync(configFile, 'utf8');
  } catch (err) {
    throw new ConfigError([{ file: fileName, message: `cannot read ${configFile}: ${(err as Error).message}` }]);
  }
  return loadConfigText(text, configFile, overrides);
}

/** Same as loadConfig, for text already read (configFile names it and anchors relative paths). */
export function loadConfigText(text: string, configFile: string, overrides: LoadOverrides = {}): LoadedConfig {
  const fileName = basename(configFile);
  const configDir = dirname(resolve(configFile));
  const parsed = parsePgpoolConfLenient(text, fileName);
  const issues: ConfigIssue[] = [...parsed.issues];
  const warnings: ConfigIssue[] = [];
  const byKey = lastWins(parsed.entries);

  const settings = new Map<string, Setting>();
  const renamed: { from: ConfEntry; to: string }[] = [];
  for (const e of byKey.values()) {
    const spec = lookupParam(e.key) ?? lookupNumbered(e.key)?.spec;
    if (spec !== undefined) {
      const num = lookupNumbered(e.key);
      if (num !== undefined && num.index > MAX_NUMBERED_INDEX) {
        issues.push({ file: fileName, line: e.line, key: e.key, message: `index must be between 0 and ${MAX_NUMBERED_INDEX}` });
        continue;
      }
      settings.set(e.key, { key: e.key, raw: e.value, line: e.line, writtenAs: e.key, spec });
      continue;
    }
    const obs = lookupObsolete(e.key);
    if (obs === undefined) {
      issues.push({ file: fileName, line: e.line, key: e.key, message: 'unrecognized configuration parameter' });
    } else if (obs.entry.kind === 'renamed' && obs.newKey !== undefined) {
      renamed.push({ from: e, to: obs.newKey });
    } else if (obs.entry.kind === 'mode') {
      const explicit = byKey.has('backend_clustering_mode');
      warnings.push({
        file: fileName, line: e.line, key: e.key,
        message: explicit
          ? `obsolete since pgpool-II ${obs.entry.since}, ignored (backend_clustering_mode is set)`
          : `obsolete since pgpool-II ${obs.entry.since}, use backend_clustering_mode (taken as '${modeFromObsolete(byKey) ?? ''}')`,
      });
    } else {
      warnings.push({ file: fileName, line: e.line, key: e.key, message: `obsolete pgpool parameter (removed in ${obs.entry.since}), ignored` });
    }
  }
  for (const { from, to } of renamed) {
    const target = lookupParam(to) ?? lookupNumbered(to)?.spec;
    if (target === undefined) continue;
    if (settings.has(to)) {
      warnings.push({ file: fileName, line: from.line, key: from.key, message: `obsolete name of ${to}, ignored because ${to} is also set` });
    } else {
      warnings.push({ file: fileName, line: from.line, key: from.key, message: `obsolete name of ${to}, value applied to ${to}` });
      settings.set(to, { key: to, raw: from.value, line: from.line, writtenAs: from.key, spec: target });
    }
  }
  if (!byKey.has('backend_clustering_mode')) {
    const mode = modeFromObsolete(byKey);
    const line = (byKey.get('master_slave_mode') ?? byKey.get('replication_mode'))?.line ?? 0;
    if (mode !== undefined) {
      settings.set('backend_clustering_mode', {
        key: 'backend_clustering_mode', raw: mode, line, writtenAs: 'master_slave_mode', spec: PARAMS.backend_clustering_mode,
      });
    }
  }

  // One zod schema over every present key: all conversion errors at once.
  const shape: Record<string, z.ZodType<ParamValue, string>> = {};
  const input: Record<string, string> = {};
  for (const s of settings.values()) {
    shape[s.key] = fieldSchema(s.spec);
    input[s.key] = s.raw;
  }
  const values = new Map<string, ParamValue>();
  const result = z.object(shape).safeParse(input);
  if (result.success) {
    for (const [k, v] of Object.entries(result.data)) values.set(k, v as ParamValue);
  } else {
    for (const iss of result.error.issues) {
      const key = String(iss.path[0] ?? '');
      const s = settings.get(key);
      issues.push({ file: fileName, line: s?.line, key: s?.writtenAs ?? key, message: iss.message });
    }
  }

  for (const s of settings.values()) {
    if (s.spec.implemented || !values.has(s.key)) continue;
    const v = values.get(s.key);
    if (JSON.stringify(v) === JSON.stringify(s.spec.default)) continue;
    // A key of a feature switched off (use_watchdog = off...) is ignored by pgpool too.
    const gate = FEATURE_GATES[lookupNumbered(s.key)?.family ?? s.key];
    if (gate !== undefined && (values.get(gate) ?? PARAMS[gate].default) === false) continue;
    warnings.push({ file: fileName, line: s.line, key: s.writtenAs, message: 'not implemented by pgmaitre yet, ignored' });
  }

  const flat: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(PARAMS) as [string, ParamSpec][]) {
    let v: ParamValue = values.get(name) ?? spec.default;
    if (spec.path && typeof v === 'string' && v !== '' && !isAbsolute(v)) v = resolve(configDir, v);
    flat[name] = v;
  }

  // logdir is pgpool 4.7's old name of work_dir: its value is used when work_dir is not set.
  if (settings.has('logdir') && !settings.has('work_dir') && flat['logdir'] !== '') flat['work_dir'] = flat['logdir'];

  const logDest = String(flat['log_destination']).split(',').map((x) => x.trim().toLowerCase()).filter((x) => x !== '');
  const badDest = logDest.filter((d) => d !== 'stderr' && d !== 'syslog');
  if (badDest.length > 0) {
    const s = settings.get('log_destination');
    issues.push({ file: fileName, line: s?.line, key: 'log_destination', message: `must be stderr, syslog or both, got ${JSON.stringify(badDest.join(','))}` });
  }

  const backends = buildBackends(settings, values, flat, fileName, issues, warnings);

  if (issues.length > 0) {
    issues.sort((a, b) => (a.line ?? Number.MAX_SAFE_INTEGER) - (b.line ?? Number.MAX_SAFE_INTEGER));
    warnings.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    throw new ConfigError(issues, warnings);
  }

  const poolKeyFile = String(flat['pool_key_file']);
  const keyFile = overrides.keyFile !== undefined
    ? resolve(overrides.keyFile)
    : poolKeyFile !== ''
      ? poolKeyFile
      : resolve(process.env['PGPOOLKEYFILE'] ?? resolve(homedir(), '.pgpoolkey'));
  const config = {
    ...flat,
    backends,
    config_file: resolve(configFile),
    hba_file: overrides.hbaFile !== undefined ? resolve(overrides.hbaFile) : resolve(configDir, 'pool_hba.conf'),
    pcp_file: overrides.pcpFile !== undefined ? resolve(overrides.pcpFile) : resolve(configDir, 'pcp.conf'),
    key_file: keyFile,
  } as unknown as Config;
  warnings.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  return { config: deepFreeze(config), warnings: warnings.map(formatIssue) };
}

function buildBackends(
  settings: ReadonlyMap<string, Setting>,
  values: ReadonlyMap<string, ParamValue>,
  flat: Readonly<Record<string, unknown>>,
  fileName: string,
  issues: ConfigIssue[],
  warnings: ConfigIssue[],
): BackendConfig[] {
  const firstLine = new Map<number, Setting>();
  const hcOnly = new Map<number, Setting>();
  for (const s of settings.values()) {
    const num = lookupNumbered(s.key);
    if (num === undefined) continue;
    if (num.family.startsWith('backend_')) {
      const prev = firstLine.get(num.index);
      if (prev === undefined || s.line < prev.line) firstLine.set(num.index, s);
    } else if ((HEALTH_CHECK_FAMILIES as readonly string[]).includes(num.family)) {
      hcOnly.set(num.index, s);
    }
  }
  const ids = [...firstLine.keys()].sort((a, b) => a - b);
  if (ids.length === 0) {
    issues.push({ file: fileName, key: 'backend_hostname0', message: 'at least one backend must be configured (backend_hostname0, backend_port0, ...)' });
  }
  for (const [idx, s] of hcOnly) {
    if (!firstLine.has(idx)) warnings.push({ file: fileName, line: s.line, key: s.writtenAs, message: `no backend ${idx} is configured, ignored` });
  }
  const get = <T extends ParamValue>(key: string, fallback: T): T => (values.has(key) ? (values.get(key) as T) : fallback);
  const backends: BackendConfig[] = [];
  for (const id of ids) {
    if (!settings.has(`backend_hostname${id}`)) {
      const s = firstLine.get(id);
      issues.push({ file: fileName, line: s?.line, key: `backend_hostname${id}`, message: `required: backend ${id} is configured (${s?.writtenAs ?? ''}) but has no host name` });
      continue;
    }
    const flagRaw = get(`backend_flag${id}`, 'ALLOW_TO_FAILOVER');
    const flags: BackendFlag[] = [];
    for (const part of flagRaw.split('|').map((x) => x.trim().toUpperCase()).filter((x) => x !== '')) {
      if ((BACKEND_FLAGS as readonly string[]).includes(part)) {
        if (!flags.includes(part as BackendFlag)) flags.push(part as BackendFlag);
      } else {
        issues.push({ file: fileName, line: settings.get(`backend_flag${id}`)?.line, key: `backend_flag${id}`, message: `unknown flag ${JSON.stringify(part)} (valid: ${BACKEND_FLAGS.join(', ')})` });
      }
    }
    if (flags.includes('ALLOW_TO_FAILOVER') && flags.includes('DISALLOW_TO_FAILOVER')) {
      issues.push({ file: fileName, line: settings.get(`backend_flag${id}`)?.line, key: `backend_flag${id}`, message: 'ALLOW_TO_FAILOVER and DISALLOW_TO_FAILOVER are mutually exclusive' });
    }
    if (flags.includes('BACKUP') && flags.includes('ALWAYS_PRIMARY')) {
      issues.push({ file: fileName, line: settings.get(`backend_flag${id}`)?.line, key: `backend_flag${id}`, message: 'BACKUP (a standby used only when the others are down) and ALWAYS_PRIMARY are mutually exclusive' });
    }
    if (!flags.includes('DISALLOW_TO_FAILOVER') && !flags.includes('ALLOW_TO_FAILOVER')) flags.unshift('ALLOW_TO_FAILOVER');
    const hc = (name: (typeof HEALTH_CHECK_FAMILIES)[number]): ParamValue => get(`${name}${id}`, flat[name] as ParamValue);
    const healthCheck: HealthCheckConfig = {
      period: hc('health_check_period') as number,
      timeout: hc('health_check_timeout') as number,
      user: hc('health_check_user') as string,
      password: hc('health_check_password') as string,
      database: hc('health_check_database') as string,
      max_retries: hc('health_check_max_retries') as number,
      retry_delay: hc('health_check_retry_delay') as number,
      connect_timeout: hc('connect_timeout') as number,
      rise: hc('health_check_rise') as number,
      http_port: hc('health_check_http_port') as number,
    };
    backends.push({
      id,
      hostname: get(`backend_hostname${id}`, ''),
      port: get(`backend_port${id}`, 5432),
      weight: get(`backend_weight${id}`, 1),
      flags,
      dataDirectory: get(`backend_data_directory${id}`, ''),
      applicationName: get(`backend_application_name${id}`, ''),
      healthCheck,
    });
  }
  return backends;
}

/** Description of one key for admin commands (SHOW/PGPOOL SHOW, docs). */
export interface ParamDescription {
  readonly name: string;
  readonly type: ParamSpec['type'];
  readonly default: ParamValue;
  readonly unit?: UnitKind;
  readonly values?: readonly string[];
  readonly reload: Reload;
  readonly session: boolean;
  readonly implemented: boolean;
  readonly pgmaitre: boolean;
  readonly secret: boolean;
  readonly doc: string;
}

/** Describe a key (numbered keys such as backend_port2 describe their family); undefined if unknown. */
export function describeParam(key: string): ParamDescription | undefined {
  const k = key.toLowerCase();
  const spec = lookupParam(k) ?? lookupNumbered(k)?.spec;
  if (spec === undefined) return undefined;
  return {
    name: k,
    type: spec.type,
    default: spec.default,
    ...(spec.type === 'int' && spec.unit !== undefined ? { unit: spec.unit } : {}),
    ...(spec.type === 'enum' ? { values: spec.values } : {}),
    reload: spec.reload,
    session: spec.session,
    implemented: spec.implemented,
    pgmaitre: spec.pgmaitre,
    secret: spec.secret,
    doc: spec.doc,
  };
}

/** Check a `PGPOOL SET key = value`: returns the typed value or throws an Error with the reason. */
export function validateOverride(key: string, value: string): ParamValue {
  const k = key.toLowerCase();
  const spec = lookupParam(k);
  if (spec === undefined) {
    if (lookupNumbered(k) !== undefined) throw new Error(`parameter "${k}" cannot be changed with PGPOOL SET`);
    throw new Error(`unrecognized configuration parameter "${k}"`);
  }
  if (!spec.session) throw new Error(`parameter "${k}" cannot be changed with PGPOOL SET (${spec.reload === 'hot' ? 'change it in pgpool.conf and reload' : 'change it in pgpool.conf and restart'})`);
  const r = parseValue(spec, value);
  if (!r.ok) throw new Error(`invalid value for parameter "${k}": ${r.error}`);
  return r.value;
}

const REDACTED = '********';

/** A copy of the snapshot with secret values (passwords, auth keys) replaced, for logs and SHOW. */
export function redactConfig(config: Config): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) {
    const spec = lookupParam(k);
    out[k] = spec?.secret === true && v !== '' ? REDACTED : v;
  }
  out['backends'] = config.backends.map((b) => ({
    ...b,
    healthCheck: { ...b.healthCheck, password: b.healthCheck.password !== '' ? REDACTED : '' },
  }));
  return out;
}
