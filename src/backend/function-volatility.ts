/**
 * pg_proc.provolatile of the functions SELECTs call, looked up on the primary once per function
 * name and cached (pgpool-II does the same when neither write_function_list nor
 * read_only_function_list is set). A lookup failure counts as volatile: fail closed.
 * Runs on a `pg` side connection, never on a client's backend connection.
 */
import { Client } from 'pg';
import type { SideTarget } from './side-target';

/** 'v' volatile, 's' stable, 'i' immutable. */
export type Volatility = 'v' | 's' | 'i';


/** Cache of function volatility; see the file header. */
export class FunctionVolatility {
  private readonly cache = new Map<string, Volatility>();
  private readonly pending = new Map<string, Promise<void>>();

  constructor(private readonly target: () => SideTarget | null) {}

  /** Cached volatility, or undefined when never looked up. */
  get(fn: string): Volatility | undefined {
    return this.cache.get(fn);
  }

  /** Looks up the given functions (all at once); resolves when every one is cached. */
  lookup(fns: readonly string[]): Promise<void> {
    const missing = fns.filter((f) => !this.cache.has(f) && !this.pending.has(f));
    const waits = fns.map((f) => this.pending.get(f)).filter((p): p is Promise<void> => p !== undefined);
    if (missing.length > 0) {
      const p = this.fetch(missing).finally(() => { for (const f of missing) this.pending.delete(f); });
      for (const f of missing) this.pending.set(f, p);
      waits.push(p);
    }
    return Promise.all(waits).then(() => undefined);
  }

  private async fetch(fns: readonly string[]): Promise<void> {
    const t = this.target();
    if (t === null) {
      for (const f of fns) this.cache.set(f, 'v');
      return;
    }
    const client = new Client({
      host: t.host, port: t.port, user: t.user, password: t.password || undefined, database: t.database,
      connectionTimeoutMillis: t.timeoutMs, query_timeout: t.timeoutMs, application_name: 'pgmaitre volatility',
    });
    client.on('error', () => {});
    try {
      await client.connect();
      for (const fn of fns) {
        const dot = fn.lastIndexOf('.');
        const schema = dot >= 0 ? fn.slice(0, dot) : null;
        const name = dot >= 0 ? fn.slice(dot + 1) : fn;
        // Any overload being volatile makes the call volatile: we do not resolve argument types.
        const r = await client.query<{ v: string }>(
          `SELECT p.provolatile AS v FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
           WHERE p.proname = $1 AND ($2::text IS NULL OR n.nspname = $2) ORDER BY (p.provolatile = 'v') DESC LIMIT 1`,
          [name, schema]);
        const v = r.rows[0]?.v;
        this.cache.set(fn, v === 'i' || v === 's' ? v : 'v');
      }
    } catch {
      for (const f of fns) if (!this.cache.has(f)) this.cache.set(f, 'v');
    } finally {
      client.end().catch(() => {});
    }
  }

  /** Forgets everything (e.g. after a primary change or a config reload). */
  clear(): void {
    this.cache.clear();
  }
}
