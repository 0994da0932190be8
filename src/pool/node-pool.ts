/**
 * The connection pool of one backend node: cached connections keyed by (user, database,
 * startup parameters), pgpool's "connection cache" without its process per client.
 *
 * Hand-written (generic-pool was measured: no reset-on-return hook, and it retried a dead backend
 * ~29k times a second). The pool knows connections, not SQL: creating and resetting are callbacks.
 * Capacity is pgpool's num_init_children × max_pool connections per node. Client sessions are
 * already capped at num_init_children (frontend/slots.ts) and each holds at most one connection
 * per node, so a lease never waits for capacity: when the pool is full, the least recently used
 * idle connection (of any key) is closed to make room, as a pgpool child evicts its oldest cached
 * connection. Leases are released exactly once; a second release throws.
 *
 * Idle connections are closed after connection_life_time (pgpool: cached connection expiration)
 * or child_life_time (pgpool: an idle child exits, dropping its cache), whichever is shorter, and
 * after child_max_connections uses (pgpool: a child exits after that many client connections).
 * The maintenance timer is unref()'d.
 */

/** What the pool needs from a connection. */
export interface Poolable {
  readonly key: string;
  readonly createdAt: number;
  lastUsedAt: number;
  useCount: number;
  readonly usable: boolean;
  destroy(reason: string): void;
}

/** Pool sizing and expiry, in pgpool's terms (seconds; 0 = never). */
export interface NodePoolOptions<T extends Poolable> {
  readonly capacity: number;
  readonly idleTimeoutSec: number;
  readonly maxUses: number;
  readonly connectionCache: boolean;
  /** Resets a returned connection; resolves true when it may be reused. */
  readonly reset: (conn: T) => Promise<boolean>;
  /** Told when a connection is closed by the pool (for logs/stats). */
  readonly onClose?: (conn: T, reason: string) => void;
}

/** Counts reported by SHOW POOL_POOLS and the metrics. */
export interface PoolCounts {
  idle: number;
  active: number;
  resetting: number;
  connecting: number;
  total: number;
}

/** Pool of one node; see the file header. */
export class NodePool<T extends Poolable> {
  /** Idle connections per key, most recently used last (LIFO reuse keeps them warm). */
  private readonly idleByKey = new Map<string, T[]>();
  /** Every idle connection in release order: the first is the least recently used. */
  private readonly idleOrder = new Set<T>();
  private readonly leased = new Set<T>();
  private readonly resetting = new Set<T>();
  private connecting = 0;
  private closed = false;
  private readonly timer: NodeJS.Timeout;
  /** Lifetime counters. */
  created = 0;
  reused = 0;
  evicted = 0;

  constructor(readonly nodeId: number, private opts: NodePoolOptions<T>) {
    this.timer = setInterval(() => this.reap(), 1000);
    this.timer.unref();
  }

  /** Replaces sizing/expiry options (config reload). */
  configure(opts: Partial<Pick<NodePoolOptions<T>, 'capacity' | 'idleTimeoutSec' | 'maxUses' | 'connectionCache'>>): void {
    this.opts = { ...this.opts, ...opts };
  }

  /** Lends a connection for `key`: a cached one when available, else a new one from `create`. */
  async acquire(key: string, create: () => Promise<T>): Promise<T> {
    if (this.closed) throw new Error(`pool of node ${this.nodeId} is closed`);
    const list = this.idleByKey.get(key);
    while (list !== undefined && list.length > 0) {
      const conn = list.pop()!;
      this.idleOrder.delete(conn);
      if (list.length === 0) this.idleByKey.delete(key);
      if (!conn.usable) {
        this.close(conn, 'found closed in the pool');
        continue;
      }
      this.leased.add(conn);
      this.reused++;
      return conn;
    }
    this.makeRoom(1);
    this.connecting++;
    try {
      const conn = await create();
      this.created++;
      if (this.closed) {
        conn.destroy('pool closed');
        throw new Error(`pool of node ${this.nodeId} is closed`);
      }
      this.leased.add(conn);
      return conn;
    } finally {
      this.connecting--;
    }
  }

  /** Takes in a connection opened outside the pool (a relayed login) as a lease. */
  adopt(conn: T): void {
    this.created++;
    this.leased.add(conn);
    this.makeRoom(0);
  }

  /**
   * Gives a connection back. `reusable` is the session's verdict on the protocol state; the pool
   * then resets it (or closes it). Calling release twice for one lease throws.
   */
  release(conn: T, reusable: boolean, why = 'session ended in an unclean state'): void {
    if (!this.leased.delete(conn)) throw new Error(`connection released twice to the pool of node ${this.nodeId}`);
    conn.lastUsedAt = Date.now();
    if (!reusable || !conn.usable || this.closed || !this.opts.connectionCache) {
      this.close(conn, !conn.usable ? 'connection broken' : this.closed ? 'pool closed'
        : !this.opts.connectionCache ? 'connection_cache = off' : why);
      return;
    }
    if (this.opts.maxUses > 0 && conn.useCount >= this.opts.maxUses) {
      this.close(conn, 'child_max_connections reached');
      return;
    }
    this.resetting.add(conn);
    this.opts.reset(conn).then(
      (ok) => this.afterReset(conn, ok, 'reset query failed'),
      (e: Error) => this.afterReset(conn, false, `reset failed: ${e.message}`),
    );
  }

  private afterReset(conn: T, ok: boolean, why: string): void {
    this.resetting.delete(conn);
    if (!ok || !conn.usable || this.closed) {
      this.close(conn, this.closed ? 'pool closed' : why);
      return;
    }
    conn.lastUsedAt = Date.now();
    let list = this.idleByKey.get(conn.key);
    if (list === undefined) this.idleByKey.set(conn.key, (list = []));
    list.push(conn);
    this.idleOrder.add(conn);
    this.makeRoom(0);
  }

  /** Closes least-recently-used idle connections while the node is at capacity. */
  private makeRoom(reserve: number): void {
    while (this.totalCount() + reserve > this.opts.capacity && this.idleOrder.size > 0) {
      const oldest = this.idleOrder.values().next().value as T;
      this.removeIdle(oldest);
      this.evicted++;
      this.close(oldest, 'evicted: pool at capacity (num_init_children × max_pool)');
    }
  }

  private removeIdle(conn: T): void {
    this.idleOrder.delete(conn);
    const list = this.idleByKey.get(conn.key);
    if (list === undefined) return;
    const i = list.indexOf(conn);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.idleByKey.delete(conn.key);
  }

  private close(conn: T, reason: string): void {
    conn.destroy(reason);
    this.opts.onClose?.(conn, reason);
  }

  private totalCount(): number {
    return this.idleOrder.size + this.leased.size + this.resetting.size + this.connecting;
  }

  /** Closes idle connections past their idle time, and broken ones. */
  reap(now = Date.now()): void {
    const limit = this.opts.idleTimeoutSec * 1000;
    for (const conn of [...this.idleOrder]) {
      if (!conn.usable) {
        this.removeIdle(conn);
        this.close(conn, 'closed while idle');
      } else if (limit > 0 && now - conn.lastUsedAt >= limit) {
        this.removeIdle(conn);
        this.close(conn, 'idle timeout (connection_life_time / child_life_time)');
      }
    }
  }

  /** Current counts. */
  counts(): PoolCounts {
    return {
      idle: this.idleOrder.size,
      active: this.leased.size,
      resetting: this.resetting.size,
      connecting: this.connecting,
      total: this.totalCount(),
    };
  }

  /** Idle connections, least recently used first (read-only view for admin commands). */
  idleConnections(): readonly T[] {
    return [...this.idleOrder];
  }

  /** Leased connections (read-only view for admin commands). */
  leasedConnections(): readonly T[] {
    return [...this.leased];
  }

  /** Closes every idle connection (e.g. node went down); leased ones close on release. */
  closeIdle(reason: string): void {
    for (const conn of [...this.idleOrder]) {
      this.removeIdle(conn);
      this.close(conn, reason);
    }
  }

  /** Stops the pool: closes idle connections now, the others as they come back. */
  shutdown(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.closeIdle('pool closed');
  }
}
