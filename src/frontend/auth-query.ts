/**
 * auth_query (as in PgBouncer): users need no pool_passwd entry. When pool_passwd has none,
 * pgmaitre asks the primary for the user's stored secret — auth_query, e.g.
 * `SELECT usename, passwd FROM pg_shadow WHERE usename = $1`, run as auth_user (whose password
 * is in pool_passwd) — and authenticates the client against it: an md5 hash for md5, a SCRAM
 * verifier for scram-sha-256 (the ClientKey recovered from the client's proof then logs pgmaitre
 * in to the backends, which hold the same verifier: SCRAM pass-through).
 *
 * The same connection answers role membership for pool_hba.conf's `+group` and `samerole`.
 *
 * One connection to the primary, opened on first use and re-opened after an error (the pg driver
 * queues concurrent queries on it). Answers, including "no such user", are cached for
 * auth_query_cache_ttl seconds (bounded to MAX_CACHED users), so a burst of logins costs one
 * query per user and a changed password is seen within the TTL.
 */
import { Client } from 'pg';
import { logFailure, type Logger } from '../log/logger';
import type { PoolPasswdEntry } from '../config/pool-passwd';
import { isMd5Hash } from '../protocol/auth/md5';
import { parseScramVerifier } from '../protocol/auth/scram';
import type { BackendTlsOptions } from '../backend/server-connection';

const MAX_CACHED = 10_000;

/** Roles `$1` is a member of, directly or through other roles, itself included (not via superuser). */
const MEMBERSHIP_SQL = `WITH RECURSIVE m(oid) AS (
  SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1
  UNION SELECT a.roleid FROM pg_catalog.pg_auth_members a JOIN m ON a.member = m.oid)
SELECT r.rolname FROM m JOIN pg_catalog.pg_roles r ON r.oid = m.oid`;

/** Where and as whom auth_query runs (read on every lookup: a reload applies at once). */
export interface AuthQuerySettings {
  readonly query: string;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  readonly ttlSec: number;
  readonly timeoutMs: number;
  /** The primary, or null when there is none. */
  readonly primary: { id: number; host: string; port: number } | null;
  readonly tls?: BackendTlsOptions;
}

/** A stored secret turned into a pool_passwd-like entry (md5, scram, or text). */
export function entryOfSecret(secret: string): PoolPasswdEntry {
  if (isMd5Hash(secret)) return { kind: 'md5', md5: secret };
  if (secret.startsWith('SCRAM-SHA-256$')) {
    return parseScramVerifier(secret) !== null ? { kind: 'scram', verifier: secret } : { kind: 'unusable', reason: 'auth_query returned a malformed SCRAM verifier' };
  }
  return { kind: 'text', password: secret };
}

interface Cached<T> {
  readonly at: number;
  readonly value: T;
}

/** auth_query lookups and membership queries; see the file header. */
export class AuthQuery {
  private client: Client | null = null;
  private connecting: Promise<Client> | null = null;
  private readonly secrets = new Map<string, Cached<PoolPasswdEntry | undefined>>();
  private readonly roles = new Map<string, Cached<ReadonlySet<string>>>();

  constructor(private readonly settings: () => AuthQuerySettings, private readonly log?: Logger) {}

  /** True when auth_query and auth_user are configured. */
  get enabled(): boolean {
    const s = this.settings();
    return s.query !== '' && s.user !== '';
  }

  /** True when membership lookups can run (auth_user set). */
  get canLookUpRoles(): boolean {
    return this.settings().user !== '';
  }

  /** The user's stored secret, undefined when the user does not exist (or has no password). Rejects when the query fails. */
  async lookup(user: string): Promise<PoolPasswdEntry | undefined> {
    const hit = this.cached(this.secrets, user);
    if (hit !== null) return hit.value;
    const s = this.settings();
    const rows = await this.query(s.query, [user]);
    const row = rows[0];
    let value: PoolPasswdEntry | undefined;
    if (row !== undefined) {
      // PgBouncer's contract: (usename, passwd); take the column named passwd, else the second.
      const secret = 'passwd' in row ? row['passwd'] : Object.values(row)[1];
      value = typeof secret === 'string' && secret !== '' ? entryOfSecret(secret) : undefined;
    }
    this.store(this.secrets, user, value);
    return value;
  }

  /** Roles `user` belongs to (itself included), for +group and samerole. Rejects when the query fails. */
  async rolesOf(user: string): Promise<ReadonlySet<string>> {
    const hit = this.cached(this.roles, user);
    if (hit !== null) return hit.value;
    const rows = await this.query(MEMBERSHIP_SQL, [user]);
    const value = new Set(rows.map((r) => String(r['rolname'])));
    this.store(this.roles, user, value);
    return value;
  }

  /** Closes the connection (shutdown, reload). */
  async close(): Promise<void> {
    const c = this.client;
    this.client = null;
    this.connecting = null;
    this.secrets.clear();
    this.roles.clear();
    // Ignored on purpose: the connection is being discarded (shutdown, reload); a failed goodbye changes nothing.
    await c?.end().catch(() => undefined);
  }

  private cached<T>(map: Map<string, Cached<T>>, key: string): Cached<T> | null {
    const hit = map.get(key);
    if (hit === undefined) return null;
    if (Date.now() - hit.at < this.settings().ttlSec * 1000) return hit;
    map.delete(key);
    return null;
  }

  private store<T>(map: Map<string, Cached<T>>, key: string, value: T): void {
    if (this.settings().ttlSec <= 0) return;
    map.delete(key);
    map.set(key, { at: Date.now(), value });
    if (map.size > MAX_CACHED) {
      const oldest = map.keys().next().value;
      if (oldest !== undefined) map.delete(oldest);
    }
  }

  private async query(sql: string, params: readonly string[]): Promise<Record<string, unknown>[]> {
    const client = await this.connect();
    try {
      const r = await client.query({ text: sql, values: [...params], query_timeout: this.settings().timeoutMs } as never);
      return (r as { rows: Record<string, unknown>[] }).rows;
    } catch (e) {
      // A broken connection is replaced on the next lookup; an SQL error leaves it usable.
      if (!(e as { code?: string }).code) this.drop(client);
      throw e;
    }
  }

  private drop(client: Client): void {
    if (this.client === client) this.client = null;
    // Ignored on purpose: the connection is discarded after its error (logged by the caller).
    client.end().catch(() => undefined);
  }

  private connect(): Promise<Client> {
    if (this.client !== null) return Promise.resolve(this.client);
    this.connecting ??= (async () => {
      const s = this.settings();
      if (s.primary === null) throw new Error('no primary node to run auth_query on');
      const t = s.tls;
      const client = new Client({
        host: s.primary.host, port: s.primary.port, user: s.user, password: s.password, database: s.database,
        connectionTimeoutMillis: s.timeoutMs, application_name: 'pgmaitre auth_query',
        ...(t !== undefined ? { ssl: { rejectUnauthorized: t.verify, ...(t.ca ? { ca: t.ca } : {}), checkServerIdentity: () => undefined } } : {}),
      });
      const nodeId = s.primary.id;
      client.on('error', (e: Error) => {
        if (this.log !== undefined) logFailure(this.log, 'auth_query side connection (re-opened at the next lookup)', nodeId, e);
        this.drop(client);
      });
      try {
        await client.connect();
      } catch (e) {
        // The connect error is what the caller reports; ending the half-made client can only fail the same way.
        await client.end().catch(() => undefined);
        throw e;
      }
      this.client = client;
      return client;
    })().finally(() => { this.connecting = null; });
    return this.connecting;
  }
}
