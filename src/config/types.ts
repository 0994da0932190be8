/**
 * TypeScript types of a loaded configuration, derived from the schema table.
 *
 * Every non-numbered key of PARAMS becomes a readonly property with its parsed type
 * (bool → boolean, int/real → number, enum → union of its values, list → readonly
 * string[], string → string). Numbered backend keys are folded into `backends`.
 */
import type { ValueOf } from './param-spec';
import type { PARAMS, ParamName } from './schema';

/** Flags of backend_flagN. */
export const BACKEND_FLAGS = ['ALLOW_TO_FAILOVER', 'DISALLOW_TO_FAILOVER', 'ALWAYS_PRIMARY', 'BACKUP'] as const;

/** One backend flag. */
export type BackendFlag = (typeof BACKEND_FLAGS)[number];

/** Health check settings of one backend, per-node overrides resolved against the globals. */
export interface HealthCheckConfig {
  readonly period: number;
  readonly timeout: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  readonly max_retries: number;
  readonly retry_delay: number;
  readonly connect_timeout: number;
  /** Consecutive successes that attach a node detached by failed checks again (0 = never). */
  readonly rise: number;
  /** HTTP role check port (Patroni REST API), 0 = check PostgreSQL itself. */
  readonly http_port: number;
}

/** One backend (backend_hostnameN, backend_portN, … for N = id). */
export interface BackendConfig {
  readonly id: number;
  readonly hostname: string;
  readonly port: number;
  readonly weight: number;
  readonly flags: readonly BackendFlag[];
  readonly dataDirectory: string;
  readonly applicationName: string;
  readonly healthCheck: HealthCheckConfig;
}

/** Typed values of every non-numbered parameter. */
export type ParamValues = { readonly [K in ParamName]: ValueOf<(typeof PARAMS)[K]> };

/** A loaded, validated, deep-frozen configuration snapshot. */
export type Config = ParamValues & {
  readonly backends: readonly BackendConfig[];
  /** Absolute path of the pgpool.conf this snapshot came from. */
  readonly config_file: string;
  /** Absolute path of pool_hba.conf. */
  readonly hba_file: string;
  /** Absolute path of pcp.conf. */
  readonly pcp_file: string;
  /** Absolute path of the AES key file for pool_passwd (may not exist). */
  readonly key_file: string;
};
