/**
 * Side connections to backends for health, replication and role checks (never the data path).
 *
 * Every probe is time-boxed twice: connect_timeout bounds the TCP+startup phase, and a total
 * deadline (health_check_timeout, or the caller's) bounds the whole exchange; when it expires
 * the socket is destroyed, so a hung backend can never pin a probe. An AbortSignal lets stop()
 * end probes in flight at once. Passwords left empty are looked up in pool_passwd (TEXT/AES
 * entries only, as pgpool does for health_check_password / sr_check_password).
 */
import { Client } from 'pg';
import type { PoolPasswdEntry } from '../config/pool-passwd';

/** Where to connect. */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

/** Who to connect as. An empty database means "postgres, then template1" (pgpool's rule). */
export interface Credentials {
  readonly user: string;
  readonly password: string;
  readonly database: string;
}

/** Time limits of one probe in ms; 0 means no limit. */
export interface ProbeLimits {
  readonly connectTimeoutMs: number;
  readonly totalTimeoutMs: number;
}

/** Outcome of a liveness + role probe. */
export type ProbeResult =
  | { readonly ok: true; readonly inRecovery: boolean; readonly durationMs: number }
  | { readonly ok: false; readonly error: string; readonly durationMs: number };

/** The probe function type (injectable so policies can be tested without PostgreSQL). */
export type ProbeFn = (ep: Endpoint, cred: Credentials, limits: ProbeLimits, signal?: AbortSignal) => Promise<ProbeResult>;

/** Empty password → the user's clear-text (TEXT/AES-decrypted) pool_passwd entry, else ''. */
export function resolvePassword(user: string, password: string, poolPasswd: ReadonlyMap<string, PoolPasswdEntry>): string {
  if (password !== '') return password;
  const e = poolPasswd.get(user);
  return e?.kind === 'text' ? e.password : '';
}

class ProbeTimeout extends Error {}

/** Opens a client, runs `fn`, always closes it; rejects on timeout/abort with the socket destroyed. */
export async function withProbeClient<T>(
  ep: Endpoint, cred: Credentials, limits: ProbeLimits, fn: (c: Client) => Promise<T>, signal?: AbortSignal,
): Promise<T> {
  const databases = cred.database !== '' ? [cred.database] : ['postgres', 'template1'];
  const deadline = limits.totalTimeoutMs > 0 ? Date.now() + limits.totalTimeoutMs : Infinity;
  let lastError: unknown;
  for (const database of databases) {
    try {
      return await once(ep, { ...cred, database }, limits, deadline, fn, signal);
    } catch (e) {
      lastError = e;
      // Only a missing database makes the next candidate worth trying.
      if ((e as { code?: string }).code !== '3D000') break;
    }
  }
  throw lastError;
}

async function once<T>(
  ep: Endpoint, cred: Credentials, limits: ProbeLimits, deadline: number, fn: (c: Client) => Promise<T>, signal?: AbortSignal,
): Promise<T> {
  if (signal?.aborted) throw new Error('probe aborted');
  const remaining = deadline - Date.now();
  if (remaining <= 0) throw new ProbeTimeout('timed out');
  const connectMs = Math.min(limits.connectTimeoutMs > 0 ? limits.connectTimeoutMs : remaining, remaining);
  const client = new Client({
    host: ep.host, port: ep.port, user: cred.user, database: cred.database,
    password: cred.password === '' ? undefined : cred.password,
    connectionTimeoutMillis: Number.isFinite(connectMs) ? Math.max(1, Math.ceil(connectMs)) : 0,
    application_name: 'pgmaitre check',
  });
  // Ignored on purpose: a broken connection also rejects connect() or the query, which the
  // caller reports (probe result, log); unhandled, the 'error' event would end the process.
  client.on('error', () => undefined);
  const kill = (): void => {
    (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  };
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const guard = new Promise<never>((_, reject) => {
    if (Number.isFinite(remaining)) {
      timer = setTimeout(() => { kill(); reject(new ProbeTimeout(`timed out after ${Math.round(limits.totalTimeoutMs)} ms`)); }, remaining);
      timer.unref();
    }
    onAbort = (): void => { kill(); reject(new Error('probe aborted')); };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  // The guard's rejection (timeout, abort) is reported through the races below; this only keeps
  // it from being an unhandled rejection when the work finished first.
  guard.catch(() => undefined);
  try {
    await Promise.race([client.connect(), guard]);
    return await Promise.race([fn(client), guard]);
  } finally {
    if (timer) clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
    // Ignored on purpose: the probe is over (its outcome already decided) and the socket is destroyed next.
    client.end().catch(() => undefined);
    kill();
  }
}

/** Connects and asks pg_is_in_recovery(): the health check and the role check in one round trip. */
export const probeNode: ProbeFn = async (ep, cred, limits, signal) => {
  const t0 = performance.now();
  try {
    const inRecovery = await withProbeClient(ep, cred, limits, async (c) => {
      const r = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
      return r.rows[0]?.r === true;
    }, signal);
    return { ok: true, inRecovery, durationMs: performance.now() - t0 };
  } catch (e) {
    return { ok: false, error: errorText(e), durationMs: performance.now() - t0 };
  }
};

/** A short, single-line description of a probe error. */
export function errorText(e: unknown): string {
  const err = e as { message?: string; code?: string };
  const msg = (err.message ?? String(e)).split('\n')[0] ?? '';
  return err.code !== undefined && !msg.includes(err.code) ? `${msg} (${err.code})` : msg;
}
