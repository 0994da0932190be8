/**
 * The configuration as admin items (item, value, description) for SHOW POOL_STATUS, PGPOOL SHOW
 * and pcp_pool_status: every parameter of the schema in declaration order with the session's
 * value (PGPOOL SET overrides win), then per-node backend and health check keys. Secrets are
 * printed as '********'. Descriptions are the schema's doc text.
 */
import { HEALTH_CHECK_FAMILIES, NUMBERED_FAMILIES, PARAMS, lookupNumbered } from '../config/schema';
import type { BackendConfig } from '../config/load';
import type { AdminContext, AdminSession } from './types';
import { normalisedWeights, paramText, printfF } from './format';

/** One item row. */
export interface ConfigItem {
  readonly item: string;
  readonly value: string;
  readonly description: string;
}

function currentValue(ctx: AdminContext, session: AdminSession | undefined, key: string): unknown {
  const fromSession = session?.getParam(key);
  return fromSession !== undefined ? fromSession : (ctx.config() as unknown as Record<string, unknown>)[key];
}

/** Every non-numbered parameter. */
export function globalItems(ctx: AdminContext, session?: AdminSession): ConfigItem[] {
  return Object.entries(PARAMS).map(([key, spec]) => ({
    item: key,
    value: paramText(key, currentValue(ctx, session, key)),
    description: spec.doc,
  }));
}

const BACKEND_KEYS = ['backend_hostname', 'backend_port', 'backend_weight', 'backend_data_directory', 'backend_flag', 'backend_application_name'] as const;

function backendValue(b: BackendConfig, family: string): string {
  switch (family) {
    case 'backend_hostname': return b.hostname;
    case 'backend_port': return String(b.port);
    case 'backend_weight': return String(b.weight);
    case 'backend_data_directory': return b.dataDirectory;
    case 'backend_flag': return b.flags.join('|');
    case 'backend_application_name': return b.applicationName;
    case 'health_check_period': return String(b.healthCheck.period);
    case 'health_check_timeout': return String(b.healthCheck.timeout);
    case 'health_check_user': return b.healthCheck.user;
    case 'health_check_password': return b.healthCheck.password === '' ? '' : '********';
    case 'health_check_database': return b.healthCheck.database;
    case 'health_check_max_retries': return String(b.healthCheck.max_retries);
    case 'health_check_retry_delay': return String(b.healthCheck.retry_delay);
    case 'connect_timeout': return String(b.healthCheck.connect_timeout);
    default: return '';
  }
}

function familyDoc(family: string, id: number): string {
  const spec = (NUMBERED_FAMILIES as Record<string, { doc: string }>)[family];
  return (spec?.doc ?? '').replace(/\bN\b/g, `#${id}`);
}

/** A numbered key's value (backend_port1, health_check_period0, ...); undefined if not known. */
export function numberedValue(ctx: AdminContext, key: string): string | undefined {
  const hit = lookupNumbered(key);
  if (hit === undefined) return undefined;
  const b = ctx.config().backends.find((x) => x.id === hit.index);
  if (b === undefined) return undefined;
  const v = backendValue(b, hit.family);
  return hit.family.startsWith('backend_') || (HEALTH_CHECK_FAMILIES as readonly string[]).includes(hit.family) ? v : undefined;
}

/** PGPOOL SHOW backend: the backend_*N keys of every configured node. */
export function backendGroupItems(ctx: AdminContext): ConfigItem[] {
  return ctx.config().backends.flatMap((b) => BACKEND_KEYS.map((f) => ({ item: `${f}${b.id}`, value: backendValue(b, f), description: familyDoc(f, b.id) })));
}

/** PGPOOL SHOW health_check: the global health check keys, then each node's resolved ones. */
export function healthCheckGroupItems(ctx: AdminContext, session?: AdminSession): ConfigItem[] {
  const globals = HEALTH_CHECK_FAMILIES.map((k) => ({
    item: k, value: paramText(k, currentValue(ctx, session, k)), description: (PARAMS as Record<string, { doc: string }>)[k]?.doc ?? '',
  }));
  const perNode = ctx.config().backends.flatMap((b) => HEALTH_CHECK_FAMILIES.map((f) => ({ item: `${f}${b.id}`, value: backendValue(b, f), description: familyDoc(f, b.id) })));
  return [...globals, ...perNode];
}

/** SHOW POOL_STATUS / pcp_pool_status: every parameter, then pgpool's per-backend status items. */
export function poolStatusItems(ctx: AdminContext, session?: AdminSession): ConfigItem[] {
  const items = globalItems(ctx, session);
  const weights = normalisedWeights(ctx.nodes());
  const config = ctx.config();
  for (const n of ctx.nodes()) {
    const b = config.backends.find((x) => x.id === n.id);
    const id = n.id;
    items.push(
      { item: `backend_hostname${id}`, value: n.host, description: `backend #${id} hostname` },
      { item: `backend_port${id}`, value: String(n.port), description: `backend #${id} port number` },
      { item: `backend_weight${id}`, value: printfF(weights.get(id) ?? 0), description: `weight of backend #${id}` },
      { item: `backend_data_directory${id}`, value: n.dataDirectory, description: `data directory for backend #${id}` },
      { item: `backend_status${id}`, value: n.status, description: `status of backend #${id}` },
      { item: `standby_delay${id}`, value: String(Math.trunc(n.replication.delayBytes)), description: `standby delay of backend #${id}` },
      { item: `backend_flag${id}`, value: (b?.flags ?? n.flags).join('|'), description: `backend #${id} flag` },
      { item: `backend_application_name${id}`, value: n.applicationName, description: `application_name for backend #${id}` },
    );
  }
  return items;
}
