/**
 * memqcache_method = 'shmem': the cache in pgmaitre's own memory (one process: its sessions share
 * it). An LRU map from key to the answer's bytes, bounded by memqcache_total_size bytes (the
 * answers plus a fixed per-entry overhead) and by memqcache_max_num_cache entries; the least
 * recently used entry goes first, approximately (second chance: a hit only marks its entry; an
 * eviction that meets a marked entry at the old end moves it to the recent end, unmarked, and
 * goes on — so a hit costs one map lookup, and the reordering is paid by stores, which are
 * rarer). memqcache_expire (seconds, 0 = never) is checked on read. An entry taken out (evicted,
 * replaced, expired, cleared) drops its answer: session-cache.ts' index of hot requests holds
 * entries and reads them again with live(), no key involved, and keeps no answer the store let go.
 * Table generations are a plain map here: nothing else shares them.
 */

/** Bytes counted per entry beside its answer (key, map slot, bookkeeping): keeps the bound honest. */
export const ENTRY_OVERHEAD = 128;

/** One stored answer (session-cache.ts' index of hot requests holds them: see live()). */
export interface ShmemEntry {
  /** The answer; null once the entry left the store (evicted, replaced, expired, cleared). */
  value: Buffer | null;
  /** ms since epoch; Infinity: never. */
  readonly until: number;
  /** Read since it was stored or last moved to the recent end. */
  used: boolean;
}

/** See the file header. */
export class ShmemStore {
  private readonly map = new Map<string, ShmemEntry>();
  private bytes = 0;
  evictions = 0;

  constructor(readonly totalSize: number, readonly maxEntries: number, readonly expireSec: number, private readonly now: () => number = Date.now) {}

  get(key: string): Buffer | undefined {
    return this.entry(key)?.value ?? undefined;
  }

  /** The entry of `key` (as get(): an expired one is removed), for live() to read again. */
  entry(key: string): ShmemEntry | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    if (e.until !== Infinity && e.until <= this.now()) {
      this.remove(key, e);
      return undefined;
    }
    e.used = true;
    return e;
  }

  /**
   * The answer of an entry entry() gave, read again without its key (no string hashed or
   * compared): null once it left the store or expired (then left as get() would leave it, for
   * the next store or get of its key to drop). Marks it used, as get() does.
   */
  live(e: ShmemEntry): Buffer | null {
    const v = e.value;
    if (v === null || (e.until !== Infinity && e.until <= this.now())) return null;
    e.used = true;
    return v;
  }

  /** Stores an answer; false when it can never fit. */
  set(key: string, value: Buffer): boolean {
    const size = value.length + key.length + ENTRY_OVERHEAD;
    if (size > this.totalSize || this.maxEntries <= 0) return false;
    const old = this.map.get(key);
    if (old !== undefined) this.remove(key, old);
    while (this.map.size > 0 && (this.bytes + size > this.totalSize || this.map.size >= this.maxEntries)) {
      const k = this.map.keys().next().value as string;
      const e = this.map.get(k)!;
      if (e.used) {
        // Read since it came to the recent end: a second chance (each entry gets one per pass, so this ends).
        e.used = false;
        this.map.delete(k);
        this.map.set(k, e);
        continue;
      }
      this.remove(k, e);
      this.evictions++;
    }
    this.map.set(key, { value, until: this.expireSec > 0 ? this.now() + this.expireSec * 1000 : Infinity, used: false });
    this.bytes += size;
    return true;
  }

  delete(key: string): void {
    const e = this.map.get(key);
    if (e !== undefined) this.remove(key, e);
  }

  clear(): void {
    for (const e of this.map.values()) e.value = null;
    this.map.clear();
    this.bytes = 0;
  }

  private remove(key: string, e: ShmemEntry): void {
    this.map.delete(key);
    this.bytes -= e.value!.length + key.length + ENTRY_OVERHEAD;
    e.value = null; // what still holds the entry (session-cache.ts' index) holds no answer
  }

  get entries(): number {
    return this.map.size;
  }

  get usedBytes(): number {
    return this.bytes;
  }
}
