/**
 * pg_proc.provolatile of the functions SELECTs call, looked up on the primary and cached
 * (pgpool-II does the same through its relation cache when neither write_function_list nor
 * read_only_function_list is set). The cache is one LRU of `relcache_size` entries (pgpool's
 * relation cache size); an entry lives `relcache_expire` seconds (0: until evicted or a reload).
 * A lookup failure counts as volatile (fail closed), is logged with the node, and is retried
 * after FAILED_RETRY_MS.
 *
 * The same query reads the bodies (pg_proc.prosrc) of the overloads outside pg_catalog, which
 * transaction pooling reads for session-state changes (`bodyEffect`, sessionEffect()); a lookup
 * failure, another language than SQL/PL/pgSQL, or a function the lookup database does not have
 * (pg_proc is per database: the side connection's database may not be the client's) counts as
 * unknown, which pins (fail closed).
 *
 * Lookups run on one persistent `pg` side connection to the primary (never a client's backend
 * connection): opened on first use, re-opened after an error or when the primary (or the side
 * connection's settings) changed. Concurrent lookups queue on it (the pg driver queues
 * queries); a batch of functions is one query.
 *
 * The dispatcher asks get() again once a lookup resolves: a batch's answers stay readable for
 * RECENT_MS even when the LRU could not keep them all (a statement calling more distinct
 * functions than relcache_size), so a lookup ends the wait rather than asking for another
 * lookup. That side table holds at most RECENT_MAX entries, or one batch if larger.
 */
import { Client } from 'pg';
import { logFailure, type Logger } from '../log/logger';
import { LruCache } from '../util/lru-cache';
import type { SideTarget } from './side-target';

/** 'v' volatile, 's' stable, 'i' immutable. */
export type Volatility = 'v' | 's' | 'i';

/** Where lookups run: the primary's side-connection settings and its node id. */
export interface VolatilityTarget extends SideTarget {
  readonly nodeId: number;
}

/** Options of FunctionVolatility. */
export interface FunctionVolatilityOptions {
  /** The primary, or null when there is none (or no side-connection user): everything is volatile. */
  readonly target: () => VolatilityTarget | null;
  /** Entries kept (relcache_size). */
  readonly capacity: number;
  /** Seconds an entry lives (relcache_expire); 0: until evicted. */
  readonly expireSec?: number;
  readonly log?: Logger;
  /** Clock (tests). */
  readonly now?: () => number;
  /**
   * Session state a function with these bodies may change ('' when none): given the sources of
   * its overloads outside pg_catalog (null for another language than SQL/PL/pgSQL). Default: none.
   */
  readonly bodyEffect?: (body: string | null) => string;
}

/** application_name of the side connection (visible in pg_stat_activity). */
export const VOLATILITY_APPLICATION_NAME = 'pgmaitre volatility';

/** How long a failed lookup's "volatile" stands before the function is looked up again. */
const FAILED_RETRY_MS = 10_000;
/** How long (ms) and how many of the latest answers stay readable beside the LRU (see the header). */
const RECENT_MS = 2000;
const RECENT_MAX = 4096;

/**
 * Any overload being volatile makes the call volatile: argument types are not resolved. `bodies`:
 * the sources of the overloads outside pg_catalog (NULL for a language other than SQL or PL/pgSQL),
 * read by `bodyEffect` (transaction pooling: does a call change session state?).
 */
const LOOKUP_SQL = `SELECT f.fn, (SELECT p.provolatile FROM pg_catalog.pg_proc p
    JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
   WHERE p.proname = f.name AND (f.nsp IS NULL OR n.nspname = f.nsp)
   ORDER BY (p.provolatile = 'v') DESC LIMIT 1)::text AS v,
  (SELECT pg_catalog.array_agg(CASE WHEN l.lanname IN ('sql', 'plpgsql') THEN p.prosrc END) FROM pg_catalog.pg_proc p
    JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace JOIN pg_catalog.pg_language l ON l.oid = p.prolang
   WHERE p.proname = f.name AND (f.nsp IS NULL OR n.nspname = f.nsp) AND n.nspname <> 'pg_catalog') AS bodies
  FROM unnest($1::text[], $2::text[], $3::text[]) AS f(fn, nsp, name)`;

/** What a lookup failure makes of a function's session effect (fail closed). */
const UNKNOWN_EFFECT = 'a function pgmaitre could not look up';
/**
 * A function the side connection's database does not have (it lives in the client's database,
 * pg_proc is per database): its body is unknown, fail closed.
 */
const NOT_FOUND_EFFECT = 'a function not found in the lookup database';

interface Entry {
  readonly v: Volatility;
  /** Session state a call may change (see FunctionVolatilityOptions.bodyEffect), '' when none. */
  readonly effect: string;
  /** Expiry time (ms since epoch); Infinity: none. */
  readonly until: number;
}

interface Side {
  readonly client: Client;
  readonly key: string;
}

/** Cache of function volatility; see the file header. */
export class FunctionVolatility {
  private readonly cache: LruCache<Entry>;
  private readonly pending = new Map<string, Promise<void>>();
  /** The latest answers, oldest first, with when they came (see the header). */
  private readonly recent = new Map<string, { readonly v: Volatility; readonly effect: string; readonly at: number; readonly batch: number }>();
  private batches = 0;
  private side: Side | null = null;
  private connecting: { readonly key: string; readonly promise: Promise<Client> } | null = null;
  private closed = false;

  private readonly now: () => number;

  constructor(private readonly opts: FunctionVolatilityOptions) {
    this.cache = new LruCache<Entry>(opts.capacity);
    this.now = opts.now ?? Date.now;
  }

  /** Cached volatility, or undefined when not looked up (or evicted, or expired). */
  get(fn: string): Volatility | undefined {
    return this.entry(fn)?.v;
  }

  /** Session state a call of `fn` may change ('' none), or undefined when not looked up (same lookup as get). */
  sessionEffect(fn: string): string | undefined {
    return this.entry(fn)?.effect;
  }

  private entry(fn: string): { readonly v: Volatility; readonly effect: string } | undefined {
    const e = this.cache.get(fn);
    if (e !== undefined) {
      if (e.until === Infinity || e.until > this.now()) return e;
      this.cache.delete(fn);
    }
    const r = this.recent.get(fn);
    return r !== undefined && this.now() - r.at < RECENT_MS ? r : undefined;
  }

  /** Entries cached. */
  get size(): number {
    return this.cache.size;
  }

  /** Looks up the given functions (all at once); resolves when every one has an answer. */
  lookup(fns: readonly string[]): Promise<void> {
    const missing = fns.filter((f) => this.get(f) === undefined && !this.pending.has(f));
    const waits = fns.map((f) => this.pending.get(f)).filter((p): p is Promise<void> => p !== undefined);
    if (missing.length > 0) {
      const p = this.fetch(missing).finally(() => { for (const f of missing) this.pending.delete(f); });
      for (const f of missing) this.pending.set(f, p);
      waits.push(p);
    }
    return Promise.all(waits).then(() => undefined);
  }

  /** Forgets every answer (config reload). The side connection stays. */
  clear(): void {
    this.cache.clear();
    this.recent.clear();
  }

  /** Closes the side connection (shutdown); later lookups answer "volatile". */
  async close(): Promise<void> {
    this.closed = true;
    const side = this.side;
    this.side = null;
    if (side !== null) await this.end(side.client);
  }

  private async fetch(fns: readonly string[]): Promise<void> {
    const batch = ++this.batches;
    const t = this.closed ? null : this.opts.target();
    if (t === null) {
      // No primary or no side-connection user (app.ts logs that at start): fail closed.
      for (const f of fns) this.store(f, 'v', UNKNOWN_EFFECT, this.now() + FAILED_RETRY_MS, batch);
      return;
    }
    let client: Client | null = null;
    try {
      client = await this.client(t);
      const nsp: (string | null)[] = [];
      const name: string[] = [];
      for (const fn of fns) {
        const dot = fn.lastIndexOf('.');
        nsp.push(dot >= 0 ? fn.slice(0, dot) : null);
        name.push(dot >= 0 ? fn.slice(dot + 1) : fn);
      }
      const r = await client.query<{ fn: string; v: string | null; bodies: (string | null)[] | null }>(LOOKUP_SQL, [fns, nsp, name]);
      const expire = this.opts.expireSec ?? 0;
      const until = expire > 0 ? this.now() + expire * 1000 : Infinity;
      for (const row of r.rows) this.store(row.fn, row.v === 'i' || row.v === 's' ? row.v : 'v', row.v === null ? NOT_FOUND_EFFECT : this.effectOf(row.bodies), until, batch);
    } catch (e) {
      const shown = fns.length > 5 ? `${fns.slice(0, 5).join(', ')}, ... (${fns.length} functions)` : fns.join(', ');
      if (this.opts.log !== undefined) logFailure(this.opts.log, `pg_proc volatility lookup of ${shown} (counted as volatile)`, t.nodeId, e);
      // A broken connection (no SQLSTATE: timeout, reset) is replaced at the next lookup.
      if (client !== null && (e as { code?: string }).code === undefined) this.drop(client);
    }
    // Whatever happened, every function asked for has an answer now (fail closed).
    const retry = this.now() + FAILED_RETRY_MS;
    for (const f of fns) if (this.recent.get(f)?.batch !== batch) this.store(f, 'v', UNKNOWN_EFFECT, retry, batch);
  }

  /** The session effect of a function whose overloads outside pg_catalog have these bodies. */
  private effectOf(bodies: readonly (string | null)[] | null): string {
    const read = this.opts.bodyEffect;
    if (read === undefined || bodies === null) return '';
    for (const b of bodies) {
      const e = read(b);
      if (e !== '') return e;
    }
    return '';
  }

  /** Caches one answer; it also joins `recent`, which drops what is too old or too many (never this batch). */
  private store(fn: string, v: Volatility, effect: string, until: number, batch: number): void {
    this.cache.set(fn, { v, effect, until });
    const now = this.now();
    this.recent.delete(fn);
    this.recent.set(fn, { v, effect, at: now, batch });
    for (const [k, r] of this.recent) {
      if (r.batch === batch || (now - r.at < RECENT_MS && this.recent.size <= RECENT_MAX)) break;
      this.recent.delete(k);
    }
  }

  /** The side connection to `t`, (re)opened when needed. */
  private client(t: VolatilityTarget): Promise<Client> {
    const key = [t.nodeId, t.host, t.port, t.user, t.database, t.password].join('\u0000');
    if (this.side !== null) {
      if (this.side.key === key) return Promise.resolve(this.side.client);
      // The primary (or sr_check_user...) changed: this connection points at the old one.
      const old = this.side.client;
      this.side = null;
      void this.end(old);
    }
    if (this.connecting !== null && this.connecting.key === key) return this.connecting.promise;
    const c = new Client({
      host: t.host, port: t.port, user: t.user, password: t.password || undefined, database: t.database,
      connectionTimeoutMillis: t.timeoutMs, query_timeout: t.timeoutMs, application_name: VOLATILITY_APPLICATION_NAME,
    });
    c.on('error', (e: Error) => {
      if (this.opts.log !== undefined) logFailure(this.opts.log, 'pg_proc volatility side connection', t.nodeId, e);
      this.drop(c);
    });
    c.on('end', () => { if (this.side?.client === c) this.side = null; });
    const promise: Promise<Client> = c.connect().then(
      () => {
        if (this.closed) {
          void this.end(c);
          throw new Error('pgmaitre is stopping');
        }
        this.side = { client: c, key };
        return c;
      },
      async (e: unknown) => {
        await this.end(c);
        throw e;
      },
    ).finally(() => { if (this.connecting?.promise === promise) this.connecting = null; });
    this.connecting = { key, promise };
    return promise;
  }

  private drop(c: Client): void {
    if (this.side?.client === c) this.side = null;
    void this.end(c);
  }

  /** Ends a side connection being discarded. */
  private async end(c: Client): Promise<void> {
    try {
      // node-postgres' end() never settles on a connection the server already closed (a
      // pg_terminate_backend of the side connection): pgmaitre's stop must not wait for it.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([c.end(), new Promise<void>((resolve) => { timer = setTimeout(resolve, 2000); timer.unref(); })]);
      clearTimeout(timer);
    } catch {
      // Ignored on purpose: the connection is being thrown away, after its own error (if any)
      // was logged; a failure to say goodbye on a broken socket tells nothing more.
    }
  }
}
