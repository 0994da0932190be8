/**
 * A small LRU map on top of Map's insertion order: a hit re-inserts the key at the end, an
 * insert beyond capacity evicts the first (least recently used) key. O(1) per operation.
 * Hand-written: it sits on the classifier's hot path (one get per statement) and is 40 lines;
 * it also bounds the pg_proc volatility cache (backend/function-volatility.ts).
 */
export class LruCache<V> {
  private readonly map = new Map<string, V>();
  /**
   * The most recently used key (null: unknown): a hit on it changes no order, so it is not
   * re-inserted. A delete and a set per hit cost little in a large map, but in a map of one or
   * two keys (the greeting of a per-request client's login, looked up at every login) each
   * delete shrank V8's hash table and the set grew it again: two calls into the runtime and a
   * new table per hit.
   */
  private newest: string | null = null;
  constructor(readonly capacity: number) {}

  get size(): number {
    return this.map.size;
  }

  get(key: string): V | undefined {
    const val = this.map.get(key);
    if (val === undefined || key === this.newest) return val;
    this.map.delete(key);
    this.map.set(key, val);
    this.newest = key;
    return val;
  }

  set(key: string, val: V): void {
    if (this.capacity <= 0) return;
    if (this.map.has(key)) this.map.delete(key);
    else if (this.map.size >= this.capacity) {
      const oldest = this.map.keys().next();
      if (!oldest.done) this.map.delete(oldest.value);
    }
    this.map.set(key, val);
    this.newest = key;
  }

  delete(key: string): void {
    this.map.delete(key);
    if (key === this.newest) this.newest = null;
  }

  clear(): void {
    this.map.clear();
    this.newest = null;
  }
}
