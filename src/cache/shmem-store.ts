/**
 * memqcache_method = 'shmem': the cache in pgmaitre's own memory (one process: its sessions share
 * it). An LRU map from key to the answer's bytes, bounded by memqcache_total_size bytes (the
 * answers plus a fixed per-entry overhead) and by memqcache_max_num_cache entries; the least
 * recently used entry goes first (approximately: a hit moves an entry only when it may be in the
 * older half). memqcache_expire (seconds, 0 = never) is checked on read.
 * Table generations are a plain map here: nothing else shares them.
 */

/** Bytes counted per entry beside its answer (key, map slot, bookkeeping): keeps the bound honest. */
export const ENTRY_OVERHEAD = 128;

interface Entry {
  readonly value: Buffer;
  /** ms since epoch; Infinity: never. */
  readonly until: number;
  /** The store's operation count when the entry was last moved to the recent end. */
  moved: number;
}

/** See the file header. */
export class ShmemStore {
  private readonly map = new Map<string, Entry>();
  private bytes = 0;
  private ops = 0;
  evictions = 0;

  constructor(readonly totalSize: number, readonly maxEntries: number, readonly expireSec: number, private readonly now: () => number = Date.now) {}

  get(key: string): Buffer | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    if (e.until !== Infinity && e.until <= this.now()) {
      this.remove(key, e);
      return undefined;
    }
    // Moved to the recent end only when it may be in the older half (fewer operations since its
    // last move than half the entries: fewer than that many entries follow it), which saves a
    // delete and an insert on most hits of a hot set. Eviction still takes the older half first.
    if (this.ops - e.moved >= this.map.size >>> 1) {
      this.map.delete(key);
      this.map.set(key, e);
      e.moved = this.ops;
    }
    this.ops++;
    return e.value;
  }

  /** Stores an answer; false when it can never fit. */
  set(key: string, value: Buffer): boolean {
    const size = value.length + key.length + ENTRY_OVERHEAD;
    if (size > this.totalSize || this.maxEntries <= 0) return false;
    const old = this.map.get(key);
    if (old !== undefined) this.remove(key, old);
    while (this.map.size > 0 && (this.bytes + size > this.totalSize || this.map.size >= this.maxEntries)) {
      const k = this.map.keys().next().value as string;
      this.remove(k, this.map.get(k)!);
      this.evictions++;
    }
    this.map.set(key, { value, until: this.expireSec > 0 ? this.now() + this.expireSec * 1000 : Infinity, moved: this.ops++ });
    this.bytes += size;
    return true;
  }

  delete(key: string): void {
    const e = this.map.get(key);
    if (e !== undefined) this.remove(key, e);
  }

  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }

  private remove(key: string, e: Entry): void {
    this.map.delete(key);
    this.bytes -= e.value.length + key.length + ENTRY_OVERHEAD;
  }

  get entries(): number {
    return this.map.size;
  }

  get usedBytes(): number {
    return this.bytes;
  }
}
