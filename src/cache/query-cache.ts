/**
 * The query cache of the whole process (pgpool-II's memqcache): where answers are kept (shmem:
 * this process's memory; memcached: a server every pgmaitre sharing it reads and writes), the
 * table generations that make invalidation shared, the catalog lookups, and the counters SHOW
 * POOL_CACHE and /metrics read. Sessions reach it through session-cache.ts.
 *
 * Never stale, by construction: an answer's key includes the current generation of every table
 * it read (by OID, per database), of its database and of the whole cache. A write that commits
 * moves the generations of what it touched on; answers stored under the old ones are never asked
 * for again (memcached evicts them; shmem's LRU does). A session's query reads the generations
 * before it is sent, so an answer computed before a concurrent commit lands under the old key.
 *
 * memcached down: every operation fails fast (0.5 s at most); the cache is bypassed (queries go
 * to the backends, a warning once, `memcached_errors` counted) and tried again every second. It
 * comes back only once a bump of the global generation went through: invalidations lost while it
 * was unreachable cannot leave an old answer reachable.
 */
import { hash } from 'node:crypto';
import type { Logger } from '../log/logger';
import { Catalog } from './catalog';
import { compileTableLists, type TableLists } from './cacheable';
import { MemcachedStore } from './memcached-store';
import { ShmemStore } from './shmem-store';
import { ChangeStreams } from './change-stream';
import type { SideTarget } from '../backend/side-target';

/** The settings the cache reads (pgpool-II's names). */
export interface QueryCacheConfig {
  readonly memqcache_method: 'shmem' | 'memcached';
  readonly memqcache_memcached_host: string;
  readonly memqcache_memcached_port: number;
  readonly memqcache_total_size: number;
  readonly memqcache_max_num_cache: number;
  readonly memqcache_expire: number;
  readonly memqcache_auto_cache_invalidation: boolean;
  readonly memqcache_maxcache: number;
  readonly cache_safe_memqcache_table_list: readonly string[];
  readonly cache_unsafe_memqcache_table_list: readonly string[];
  readonly memqcache_logical_invalidation: boolean;
  readonly memqcache_logical_max_lag: number;
}

/** Counters (monotonic) and sizes. */
export interface QueryCacheStats {
  hits: number;
  misses: number;
  /** SELECTs seen (cacheable or not): SHOW POOL_CACHE's num_selects. */
  selects: number;
  stores: number;
  /** Answers not stored: too large, not a plain result, read after a write... */
  notStored: number;
  evictions: number;
  memcachedErrors: number;
  /** Invalidations by cause: 'write', 'ddl', 'all' (fail closed), 'admin', 'memcached_recovered', 'change_stream', 'change_stream_start'. */
  readonly invalidations: Map<string, number>;
}

const RETRY_MS = 1000;

/** One generation (shmem): a key reads `n`; a bump increments it. */
export interface GenCell {
  n: number;
}

/** See the file header. */
export class QueryCache {
  readonly shmem: ShmemStore | null;
  readonly memcached: MemcachedStore | null;
  readonly catalog: Catalog;
  /** memqcache_logical_invalidation: the primary's change streams (change-stream.ts), else null. */
  readonly streams: ChangeStreams | null;
  readonly stats: QueryCacheStats = {
    hits: 0, misses: 0, selects: 0, stores: 0, notStored: 0, evictions: 0, memcachedErrors: 0, invalidations: new Map(),
  };
  lists: TableLists;
  config: QueryCacheConfig;
  /**
   * worker_processes > 1 (set by workers/worker.ts, role.ts' SharedQueryCache): sends generation
   * bumps to every other worker, resolved once all applied them. Null in one process.
   */
  share: ((names: readonly string[], forget: boolean) => Promise<void>) | null = null;
  /** shmem generations: one cell per name, never removed (a session's memo holds the cells it reads). */
  private readonly gens = new Map<string, GenCell>();
  /**
   * Moves on whenever what a memoised resolution of a text read may have changed (catalog
   * forgotten, lists reloaded): session-cache.ts' memos are checked against it.
   */
  epoch = 0;
  /** Invalidations applied in this process (its own, and other workers'): session-cache.ts' transactions compare it. */
  bumps = 0;
  private down = false;
  private retryAt = 0;
  private recovering = false;

  constructor(config: QueryCacheConfig, target: (database: string) => SideTarget | null, private readonly log: Logger) {
    this.config = config;
    this.lists = compileTableLists(config.cache_safe_memqcache_table_list, config.cache_unsafe_memqcache_table_list);
    this.catalog = new Catalog(target);
    if (config.memqcache_method === 'memcached') {
      this.shmem = null;
      this.memcached = new MemcachedStore(config.memqcache_memcached_host, config.memqcache_memcached_port, config.memqcache_expire);
      // Start as if it had been down: the first successful global bump opens the cache.
      this.down = true;
      this.retryAt = 0;
    } else {
      this.memcached = null;
      this.shmem = new ShmemStore(config.memqcache_total_size, config.memqcache_max_num_cache, config.memqcache_expire);
    }
    this.streams = !config.memqcache_logical_invalidation ? null : new ChangeStreams(config, target, {
      invalidate: async (database, oids) => {
        const set = await this.catalog.writeSet(database, oids);
        await (set.all ? this.bump([`d:${database}`], 'change_stream') : this.bump(QueryCache.genNames(database, set.oids).slice(2), 'change_stream'));
      },
      invalidateDatabase: async (database, cause) => {
        await this.bump([`d:${database}`], cause);
      },
    }, log);
  }

  /** Applies a reload (the lists and the invalidation switch; the storage keeps its restart-time settings). */
  reload(config: QueryCacheConfig): void {
    this.config = config;
    this.epoch++;
    if (this.streams !== null) this.streams.config = config;
    this.lists = compileTableLists(config.cache_safe_memqcache_table_list, config.cache_unsafe_memqcache_table_list);
  }

  /** memcached reachable (always true for shmem). */
  get isUp(): boolean {
    return !this.down;
  }

  /** Whether the storage can be used now (memcached: reachable; else it is probed in the background). */
  available(): boolean {
    if (!this.down) return true;
    if (!this.recovering && Date.now() >= this.retryAt) this.recover();
    return false;
  }

  private recover(): void {
    this.recovering = true;
    this.memcached!.bump(['*']).then(() => {
      const was = this.retryAt !== 0;
      this.down = false;
      this.count('memcached_recovered');
      if (was) this.log.warn({ event: 'query_cache_memcached' }, `query cache: memcached at ${this.where()} is reachable again; cache in use (everything cached before is invalidated)`);
    }, (e: unknown) => this.failed(e)).finally(() => { this.recovering = false; });
  }

  /** A memcached operation failed: bypass the cache for a while. */
  failed(e: unknown): void {
    this.stats.memcachedErrors++;
    if (!this.down || this.retryAt === 0) {
      this.log.warn({ event: 'query_cache_memcached', err: (e as Error)?.message ?? String(e) },
        `query cache: memcached at ${this.where()} is unreachable; queries bypass the cache until it is back`);
    }
    this.down = true;
    this.retryAt = Date.now() + RETRY_MS;
  }

  private where(): string {
    return `${this.config.memqcache_memcached_host}:${this.config.memqcache_memcached_port}`;
  }

  /** Generation names of an answer reading `oids` in `database`. */
  static genNames(database: string, oids: readonly number[]): string[] {
    const out = ['*', `d:${database}`];
    for (const o of oids) out.push(`t:${database}:${o}`);
    return out;
  }

  /** shmem: the generation cell of `name` (created at 0). */
  cell(name: string): GenCell {
    let c = this.gens.get(name);
    if (c === undefined) {
      c = { n: 0 };
      this.gens.set(name, c);
    }
    return c;
  }

  /** shmem: the cells of `names`, in order. */
  cells(names: readonly string[]): GenCell[] {
    return names.map((n) => this.cell(n));
  }

  /** shmem: current generations of `names`. */
  gensNow(names: readonly string[]): string[] {
    return names.map((n) => String(this.gens.get(n)?.n ?? 0));
  }

  /** shmem: current generations of cells as the tail of a key. */
  static gensKey(cells: readonly GenCell[]): string {
    let out = '';
    for (let i = 0; i < cells.length; i++) out += `\u0000${cells[i]!.n}`;
    return out;
  }

  private readonly interned = new Map<string, string>();
  private internNext = 0;
  /**
   * shmem keys: a short stand-in for a long string (a session's user, database and settings).
   * Numbers are never reused: when the map is full it is emptied and later strings get new
   * numbers (their answers stored under the old ones are then only missed, never mixed up).
   */
  intern(s: string): string {
    let id = this.interned.get(s);
    if (id === undefined) {
      if (this.interned.size >= 10_000) this.interned.clear();
      id = (this.internNext++).toString(36);
      this.interned.set(s, id);
    }
    return id;
  }

  /** The key of an answer: everything it depends on (each part with its length), hashed in one call. */
  static key(parts: readonly (string | Buffer)[]): string {
    let s = '';
    for (const p of parts) {
      const t = typeof p === 'string' ? p : p.toString('latin1');
      s += `${t.length}:${t}\u0000`;
    }
    return hash('sha1', s, 'hex');
  }

  /**
   * Stores an answer: its messages followed by ReadyForQuery 'I' (6 bytes, not counted against
   * memqcache_maxcache). shmem keeps it so (a hit outside a transaction is written as it is);
   * memcached gets the messages only. memcached: in the background; a failure only counts.
   */
  store(key: string, value: Buffer): void {
    if (value.length - 6 > this.config.memqcache_maxcache) {
      this.stats.notStored++;
      return;
    }
    this.stats.stores++;
    if (this.shmem !== null) {
      const before = this.shmem.evictions;
      if (!this.shmem.set(key, value)) this.stats.notStored++;
      this.stats.evictions += this.shmem.evictions - before;
      return;
    }
    if (!this.available()) return;
    // memcached keys are `<hash>|<generations>` (session-cache.ts): the answer is stored with them.
    const bar = key.indexOf('|');
    this.memcached!.set(key.slice(0, bar), key.slice(bar + 1), value.subarray(0, value.length - 6)).catch((e: unknown) => this.failed(e));
  }

  /** Moves generations on. shmem: at once (null); memcached: a promise (failures mark it down). */
  bump(names: readonly string[], cause: string): Promise<void> | null {
    this.count(cause);
    this.bumps++;
    // Other workers forget their table-name lookups too after a DDL or an invalidation of everything.
    const forget = cause !== 'write';
    if (this.shmem !== null) {
      this.applyGens(names);
      // worker_processes > 1: every other worker's generations move on before this resolves.
      return this.share === null ? null : this.share(names, forget);
    }
    if (this.down) return this.share !== null && forget ? this.share([], true) : null; // recovery bumps '*' before anything is served again
    const done = this.memcached!.bump(names).catch((e: unknown) => this.failed(e));
    // memcached: the generations are shared already; only the lookups to forget go to the other workers.
    return this.share !== null && forget ? Promise.all([done, this.share([], true)]).then(() => undefined) : done;
  }

  private applyGens(names: readonly string[]): void {
    for (const n of names) this.cell(n).n++;
    if (names.includes('*')) this.shmem!.clear();
  }

  /** Another worker's bumps (workers/role.ts' SharedQueryCache), applied here. */
  applyShared(names: readonly string[], forget: boolean): void {
    this.bumps++;
    if (forget) this.forget();
    if (this.shmem !== null && names.length > 0) this.applyGens(names);
  }

  /** Invalidates everything (pcp_invalidate_query_cache, ALTER ROLE, a failed catalog lookup...). */
  invalidateAll(cause: string): Promise<void> | null {
    this.forget();
    return this.bump(['*'], cause);
  }

  /** Forgets the catalog's answers and every memo built on them. */
  forget(): void {
    this.catalog.forget();
    this.epoch++;
  }

  private count(cause: string): void {
    this.stats.invalidations.set(cause, (this.stats.invalidations.get(cause) ?? 0) + 1);
  }

  /** SHOW POOL_CACHE's row (pgpool-II's nine columns). */
  poolCacheRow(): string[] {
    const s = this.stats;
    const ratio = s.selects === 0 ? 0 : s.hits / s.selects;
    const m = this.shmem;
    const entries = m?.entries ?? 0;
    const used = m?.usedBytes ?? 0;
    return [
      String(s.hits), String(s.selects), ratio.toFixed(2),
      String(m !== null ? this.config.memqcache_max_num_cache : 0), String(entries), String(entries),
      String(used), String(m !== null ? Math.max(0, this.config.memqcache_total_size - used) : 0), '0',
    ];
  }

  async close(): Promise<void> {
    this.memcached?.close();
    await Promise.all([this.catalog.close(), this.streams?.close()]);
  }
}

/** SHOW POOL_CACHE's columns, as pgpool-II names them. */
export const POOL_CACHE_COLUMNS = [
  'num_cache_hits', 'num_selects', 'cache_hit_ratio', 'num_hash_entries', 'used_hash_entries',
  'num_cache_entries', 'used_cache_entries_size', 'free_cache_entries_size', 'fragment_cache_entries_size',
] as const;

/** The admin faces' view of the cache (admin/types.ts's QueryCacheAdmin), with the classifier it needs. */
export function queryCacheAdmin(cache: QueryCache, classify: (sql: string) => { readonly relations: readonly string[] }) {
  return {
    poolCacheRow: (): string[] => cache.poolCacheRow(),
    async deleteQuery(sql: string, _user: string, database: string): Promise<void> {
      const names = classify(sql).relations;
      const missing = names.filter((n) => cache.catalog.known(database, '', n) === undefined);
      if (missing.length > 0) await cache.catalog.lookup(database, '', missing);
      const oids: number[] = [];
      for (const n of names) {
        const r = cache.catalog.known(database, '', n);
        if (r == null) {
          await cache.bump([`d:${database}`], 'admin');
          return;
        }
        oids.push(r.oid);
      }
      await cache.bump(oids.length === 0 ? [`d:${database}`] : QueryCache.genNames(database, oids).slice(2), 'admin');
    },
    async invalidateAll(): Promise<void> {
      await cache.invalidateAll('admin');
    },
    metrics: () => ({
      method: cache.config.memqcache_method,
      hits: cache.stats.hits, misses: cache.stats.misses, selects: cache.stats.selects, stores: cache.stats.stores,
      notStored: cache.stats.notStored, evictions: cache.stats.evictions, memcachedErrors: cache.stats.memcachedErrors,
      memcachedUp: cache.memcached === null || cache.isUp, bytes: cache.shmem?.usedBytes ?? 0, entries: cache.shmem?.entries ?? 0,
      invalidations: cache.stats.invalidations,
      changeStreams: cache.streams?.status(),
    }),
  };
}
