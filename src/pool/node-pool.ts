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
 *
 * Transaction pooling (pool_mode = transaction | statement) leases a connection for one
 * transaction instead of a session: `tryLease` takes an idle connection of the key at once (no
 * promise on the hot path), `lease` waits in FIFO order when the key already has its
 * default_pool_size connections (reserve_pool_size more after reserve_pool_timeout), up to a
 * deadline, and `giveBack` returns it without a reset — to the first waiter of its key, else to
 * the idle list. The connection carries the session state applied on it (core/session-state.ts),
 * so the next lease replays only differences.
 */

import { emptyArray } from '../util/arrays';

/** How many new connections in a row may be found closed right after their login (createLive). */
const DEAD_ON_ARRIVAL_TRIES = 5;

/** What the pool needs from a connection. */
export interface Poolable {
  readonly key: string;
  readonly createdAt: number;
  lastUsedAt: number;
  useCount: number;
  readonly usable: boolean;
  destroy(reason: string): void;
  /** Why a closed connection closed (the server's words when it said some). */
  closedError?(): Error;
}

/** Pool sizing and expiry, in pgpool's terms (seconds; 0 = never). */
export interface NodePoolOptions<T extends Poolable> {
  readonly capacity: number;
  readonly idleTimeoutSec: number;
  readonly maxUses: number;
  readonly connectionCache: boolean;
  /** Resets a returned connection; resolves true when it may be reused. */
  readonly reset: (conn: T) => Promise<boolean>;
  /**
   * Transaction pooling: DISCARD ALL on a connection whose lease ended with session state on it
   * (advisory locks, LISTEN, temporary tables); resolves true when it may be leased again.
   */
  readonly discard?: (conn: T) => Promise<boolean>;
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
  /** Clients waiting for a lease (transaction pooling). */
  waiting: number;
}

/** How many connections a key may have (transaction pooling). */
export interface LeaseLimit {
  /** default_pool_size. */
  readonly size: number;
  /** reserve_pool_size: more, for a client that has waited reserveAfterMs. */
  readonly reserve: number;
  readonly reserveAfterMs: number;
}

/**
 * How leaseThen() reports: the connection (`err` null), or why there is none (LeaseTimeout, the
 * pool closed, the login failed).
 */
export type LeaseCallback<T> = (conn: T | null, err: Error | null) => void;

/** Thrown when a lease could not be had before its deadline. */
export class LeaseTimeout extends Error {
  override name = 'LeaseTimeout';
}

interface Waiter<T> {
  readonly key: string;
  readonly since: number;
  readonly create: () => Promise<T>;
  readonly limit: LeaseLimit;
  resolve(c: T): void;
  reject(e: Error): void;
  /** leaseThen()'s callback (then resolve/reject are unused), or null for a lease() promise. */
  readonly then: LeaseCallback<T> | null;
  /** waitInLine(): a connection given back is handed over from inside that giveBack() (see handOff). */
  readonly direct: boolean;
  /** When it gives up (Date.now() ms; 0: never), and the wait it was given (ms). */
  readonly deadline: number;
  readonly timeoutMs: number;
  /** Wakes the pump when reserve_pool_timeout has passed for this waiter. */
  reserveTimer: NodeJS.Timeout | null;
  done: boolean;
}

/**
 * Waiters of one key, first come first served. Leaving waiters (granted, timed out) are only
 * marked done and dropped when they reach the head, so every operation is O(1): with a thousand
 * clients queued on twenty connections, a scan of all waiters per lease dominated the CPU profile.
 */
class WaitQueue<T> {
  private items: Waiter<T>[] = [];
  private head = 0;

  push(w: Waiter<T>): void {
    this.items.push(w);
  }

  /** The oldest waiter still waiting, or undefined. */
  first(): Waiter<T> | undefined {
    const items = this.items;
    while (this.head < items.length && items[this.head]!.done) this.head++;
    if (this.head === items.length) {
      this.items = [];
      this.head = 0;
      return undefined;
    }
    if (this.head >= 1024 && this.head * 2 >= items.length) {
      this.items = items.slice(this.head);
      this.head = 0;
    }
    return this.items[this.head];
  }

  /** The waiter first() returned leaves the line (granted): the next first() does not step over it. */
  advance(): void {
    this.head++;
  }

  /** Every waiter still waiting, oldest first (the deadline sweep). */
  *waiting(): IterableIterator<Waiter<T>> {
    for (let i = this.head; i < this.items.length; i++) if (!this.items[i]!.done) yield this.items[i]!;
  }

  /** Every entry, done or not (shutdown). */
  drain(): Waiter<T>[] {
    const all = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return all;
  }
}

/** Pool of one node; see the file header. */
export class NodePool<T extends Poolable> {
  /** Idle connections per key, most recently used last (LIFO reuse keeps them warm). */
  private readonly idleByKey = new Map<string, T[]>();
  /** Every idle connection in release order: the first is the least recently used. */
  private readonly idleOrder = new Set<T>();
  private readonly leased = new Set<T>();
  private readonly resetting = new Set<T>();
  /** Session pooling: connections of each key being reset (reset_query_list) after a release. */
  private readonly resettingPerKey = new Map<string, number>();
  /** acquire() calls waiting for one of those resets, per key (one reset wakes one of them). */
  private readonly resetWaiters = new Map<string, (() => void)[]>();
  private connecting = 0;
  private closed = false;
  private readonly timer: NodeJS.Timeout;
  /** Lifetime counters. */
  created = 0;
  /** New connections found closed when their login ended (createLive). */
  deadOnArrival = 0;
  reused = 0;
  evicted = 0;
  /** Leases granted (transaction pooling), and how many had to wait. */
  leases = 0;
  waitedLeases = 0;
  /** Connections per key, all states (transaction pooling limits count them). */
  private readonly perKey = new Map<string, number>();
  /** Clients waiting for a connection, per key; `waiting` counts those not done. */
  private readonly waiters = new Map<string, WaitQueue<T>>();
  private waiting = 0;
  /** Called with the wait of every lease that waited (seconds), for the wait-time histogram. */
  onWaited: ((seconds: number) => void) | null = null;
  /** The limit last asked for each key (giveBack closes connections beyond it). */
  private readonly limits = new Map<string, LeaseLimit>();
  /** Leased connections held by pinned sessions: counted apart from their key's default_pool_size. */
  private readonly pinnedConns = new Set<T>();
  private readonly pinnedPerKey = new Map<string, number>();
  /**
   * query_wait_timeout: one timer for the whole pool, set for the earliest deadline of any waiter
   * (a sweep then rejects those past theirs and sets it for the next). A timer per waiter, set
   * and cleared for each lease that waited, was work on nearly every transaction once clients
   * outnumbered default_pool_size (test/unit/pool/node-pool.test.ts counts the timers).
   */
  private deadlineTimer: NodeJS.Timeout | null = null;
  private deadlineAt = 0;
  /** The deadline timer holds the event loop (someone waits); unref'd while nobody does. */
  private deadlineRefed = false;
  /**
   * leaseThen() outcomes not reported yet: waiter, connection, error, in threes. They are
   * reported in one microtask, never from inside the call that decided them (a giveBack() runs
   * inside another session's code, which must not find a second session's core running in it),
   * as a promise's reactions would be — without the promises.
   *
   * The microtask is a reaction to a promise resolved once, not queueMicrotask(): Node's
   * queueMicrotask() makes an AsyncResource, binds a function to it and runs the callback in
   * its async scope — about 2 µs per call on the lab VM, paid once per lease wait (nearly every
   * transaction once clients outnumber default_pool_size; issue 17, item 9). Same queue, same
   * order. A callback that throws is thrown again from a queueMicrotask() of its own, so it
   * surfaces as an uncaught exception as before, not as an unhandled rejection.
   */
  private outcomes: (Waiter<T> | T | Error | null)[] = [];
  /** Outcomes being reported (swapped with `outcomes`: no array is made or truncated per report). */
  private reporting: (Waiter<T> | T | Error | null)[] = [];
  private readonly reportOutcomes = (): void => {
    let o = this.outcomes;
    // (a callback may settle more: they go to the other array, reported by the loop below)
    while (o.length > 0) {
      this.outcomes = this.reporting;
      this.reporting = o;
      for (let i = 0; i < o.length; i += 3) {
        try {
          (o[i] as Waiter<T>).then!(o[i + 1] as T | null, o[i + 2] as Error | null);
        } catch (e) {
          // A callback that threw does not cost the others their report.
          queueMicrotask(() => {
            throw e;
          });
        }
      }
      emptyArray(o);
      o = this.outcomes;
    }
  };

  constructor(readonly nodeId: number, private opts: NodePoolOptions<T>) {
    this.timer = setInterval(() => this.reap(), 1000);
    this.timer.unref();
  }

  /** Replaces sizing/expiry options (config reload). */
  configure(opts: Partial<Pick<NodePoolOptions<T>, 'capacity' | 'idleTimeoutSec' | 'maxUses' | 'connectionCache'>>): void {
    this.opts = { ...this.opts, ...opts };
  }

  /**
   * Lends a connection for `key`: a cached one when available, else one of the key being reset
   * once its reset is done (a client that connects per request logs in while its previous
   * connection still runs reset_query_list: PgBouncer reuses that connection too), else a new one
   * from `create`.
   */
  async acquire(key: string, create: () => Promise<T>): Promise<T> {
    if (this.closed) throw new Error(`pool of node ${this.nodeId} is closed`);
    let idle = this.takeIdle(key);
    if (idle !== null) return idle;
    const waiting = this.resetWaiters.get(key);
    if ((this.resettingPerKey.get(key) ?? 0) > (waiting?.length ?? 0)) {
      await new Promise<void>((resolve) => {
        if (waiting === undefined) this.resetWaiters.set(key, [resolve]);
        else waiting.push(resolve);
      });
      if (this.closed) throw new Error(`pool of node ${this.nodeId} is closed`);
      idle = this.takeIdle(key);
      if (idle !== null) return idle;
    }
    this.makeRoom(1);
    this.connecting++;
    try {
      const conn = await this.createLive(create);
      this.created++;
      this.countKey(conn.key, 1);
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

  /**
   * Session pooling: an idle (cached) connection of `key`, now lent, at once; null when there is
   * none (then acquire(), which also waits for one being reset or opens one).
   */
  tryAcquire(key: string): T | null {
    return this.closed ? null : this.takeIdle(key);
  }

  /**
   * `create()`, again when the connection it gave is closed already: a backend terminated right
   * after its login (pg_terminate_backend() of every backend catches new ones too) says FATAL
   * 57P01 in the same read as the login's ReadyForQuery, and a dead connection must not be lent
   * (the session would write into a closed socket and wait for an answer that never comes).
   * Bounded: after DEAD_ON_ARRIVAL_TRIES such connections in a row, an error.
   */
  private createLive(create: () => Promise<T>, tries = DEAD_ON_ARRIVAL_TRIES): Promise<T> {
    return create().then((conn) => {
      if (conn.usable) return conn;
      conn.destroy('closed right after its login');
      this.deadOnArrival++;
      if (tries <= 1) throw conn.closedError?.() ?? new Error(`new connections to node ${this.nodeId} were closed right after their login ${DEAD_ON_ARRIVAL_TRIES} times in a row`);
      return this.createLive(create, tries - 1);
    });
  }

  /** Takes in a connection opened outside the pool (a relayed login) as a lease. */
  adopt(conn: T): void {
    this.created++;
    this.countKey(conn.key, 1);
    this.leased.add(conn);
    this.makeRoom(0);
  }

  /**
   * Gives a connection back. `reusable` is the session's verdict on the protocol state; the pool
   * then resets it (or closes it). Calling release twice for one lease throws.
   */
  release(conn: T, reusable: boolean, why = 'session ended in an unclean state'): void {
    this.unpin(conn);
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
    this.resettingPerKey.set(conn.key, (this.resettingPerKey.get(conn.key) ?? 0) + 1);
    this.opts.reset(conn).then(
      (ok) => this.afterReset(conn, ok, 'reset query failed'),
      (e: Error) => this.afterReset(conn, false, `reset failed: ${e.message}`),
    );
  }

  private afterReset(conn: T, ok: boolean, why: string): void {
    this.resetting.delete(conn);
    const n = (this.resettingPerKey.get(conn.key) ?? 1) - 1;
    if (n <= 0) this.resettingPerKey.delete(conn.key);
    else this.resettingPerKey.set(conn.key, n);
    if (!ok || !conn.usable || this.closed) {
      this.close(conn, this.closed ? 'pool closed' : why);
    } else {
      conn.lastUsedAt = Date.now();
      let list = this.idleByKey.get(conn.key);
      if (list === undefined) this.idleByKey.set(conn.key, (list = []));
      list.push(conn);
      this.idleOrder.add(conn);
      this.makeRoom(0);
    }
    // One acquire() waiting for this key's reset takes the connection (or, when the reset
    // failed, opens a new one).
    const waiting = this.resetWaiters.get(conn.key);
    const next = waiting?.shift();
    if (waiting !== undefined && waiting.length === 0) this.resetWaiters.delete(conn.key);
    next?.();
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
    this.countKey(conn.key, -1);
    this.opts.onClose?.(conn, reason);
    this.pump();
  }

  private countKey(key: string, d: number): void {
    const n = (this.perKey.get(key) ?? 0) + d;
    if (n <= 0) this.perKey.delete(key);
    else this.perKey.set(key, n);
  }

  /** Connections of `key` in any state. */
  keyCount(key: string): number {
    return this.perKey.get(key) ?? 0;
  }

  // ---- transaction pooling ---------------------------------------------------------------

  /** An idle connection of `key`, leased at once; null when there is none (then lease()). */
  tryLease(key: string): T | null {
    if (this.closed) return null;
    const conn = this.takeIdle(key);
    if (conn !== null) this.leases++;
    return conn;
  }

  /** The most recently used idle connection of `key`, now leased (broken ones found are closed). */
  private takeIdle(key: string): T | null {
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
    return null;
  }

  /**
   * A connection of `key`: an idle one, a new one while the key has fewer than limit.size
   * (limit.size + limit.reserve for a client that waited reserveAfterMs), else the first one given
   * back to this key, in FIFO order. Rejects with LeaseTimeout after timeoutMs (0: no limit).
   */
  lease(key: string, create: () => Promise<T>, limit: LeaseLimit, timeoutMs: number): Promise<T> {
    this.limits.set(key, limit);
    const now = this.tryLease(key);
    if (now !== null) return Promise.resolve(now);
    if (this.closed) return Promise.reject(new Error(`pool of node ${this.nodeId} is closed`));
    return new Promise<T>((resolve, reject) => this.wait(key, create, limit, timeoutMs, resolve, reject, null, false));
  }

  /**
   * lease() for a caller that found no idle connection (tryLease gave null) and waits in line:
   * `then` is called once, in a later microtask, never from inside this call. Once clients
   * outnumber default_pool_size nearly every transaction waits here; lease() and an async caller
   * made about six promises and their reactions per wait (issue 17, item 9).
   */
  leaseThen(key: string, create: () => Promise<T>, limit: LeaseLimit, timeoutMs: number, then: LeaseCallback<T>): void {
    this.limits.set(key, limit);
    const now = this.tryLease(key);
    if (now !== null) this.report(then, now, null);
    else if (this.closed) this.report(then, null, new Error(`pool of node ${this.nodeId} is closed`));
    else this.wait(key, create, limit, timeoutMs, noop, noop, then, false);
  }

  /**
   * leaseThen() whose waiter is handed the connection another lessee gives back from inside that
   * giveBack() (handOff): the waiting session sends its parked request on it at once, in the
   * same turn, instead of in a microtask of its own. Served in the same FIFO line as every other
   * waiter, up to timeoutMs. Every other outcome (an idle connection at once, a new connection,
   * one found by the pump, LeaseTimeout, the pool closed) is reported in a later microtask as by
   * leaseThen(); `then` is never called from inside this call.
   *
   * Once clients outnumber default_pool_size nearly every transaction waits here, so this is the
   * path a transaction takes (issue 17, item 9).
   */
  waitInLine(key: string, create: () => Promise<T>, limit: LeaseLimit, timeoutMs: number, then: LeaseCallback<T>): void {
    if (this.limits.get(key) !== limit) this.limits.set(key, limit);
    const now = this.tryLease(key);
    if (now !== null) this.report(then, now, null);
    else if (this.closed) this.report(then, null, new Error(`pool of node ${this.nodeId} is closed`));
    else this.wait(key, create, limit, timeoutMs, noop, noop, then, true);
  }

  /** Reports a leaseThen() outcome in a microtask (see `outcomes`). */
  private report(then: LeaseCallback<T>, conn: T | null, err: Error | null): void {
    this.settle({ then } as Waiter<T>, conn, err);
  }

  /** A waiter's outcome: its promise settled, or its callback queued. */
  private settle(w: Waiter<T>, conn: T | null, err: Error | null): void {
    if (w.then === null) {
      if (err === null) w.resolve(conn!);
      else w.reject(err);
      return;
    }
    if (this.outcomes.length === 0 && this.reporting.length === 0) RESOLVED.then(this.reportOutcomes);
    this.outcomes.push(w, conn, err);
  }

  private wait(key: string, create: () => Promise<T>, limit: LeaseLimit, timeoutMs: number,
    resolve: (c: T) => void, reject: (e: Error) => void, then: LeaseCallback<T> | null, direct: boolean): void {
    const since = Date.now();
    const w: Waiter<T> = {
      key, since, create, limit, resolve, reject, then, direct, deadline: timeoutMs > 0 ? since + timeoutMs : 0, timeoutMs, reserveTimer: null, done: false,
    };
    if (w.deadline > 0) this.armDeadline(w.deadline);
    if (limit.reserve > 0 && limit.reserveAfterMs > 0) {
      w.reserveTimer = setTimeout(() => {
        w.reserveTimer = null;
        if (!w.done) this.pump();
      }, limit.reserveAfterMs + 1);
      w.reserveTimer.unref();
    }
    let q = this.waiters.get(key);
    if (q === undefined) this.waiters.set(key, (q = new WaitQueue<T>()));
    // Behind other waiters, with no reserve to open for them, there is nothing to pump: every
    // event that could serve this key's head (a give-back, a close, a pin) pumps it, and what the
    // head may not have, no later waiter may (pumpKey). Nearly every waiter is one of these once
    // clients outnumber default_pool_size.
    const behind = q.first() !== undefined && limit.reserve === 0;
    q.push(w);
    this.waiting++;
    if (!behind) this.pumpKey(key, q, since);
  }

  /**
   * Transaction pooling: a pinned session keeps `conn` (LISTEN, a temporary table, an advisory
   * lock...): while fewer than `max` connections of its key are pinned, it stops counting toward
   * default_pool_size, so the other clients of the key get another connection instead of waiting
   * for one that may never come back. False when the key has `max` pinned already (it then keeps
   * counting). The node's capacity still counts it.
   */
  pin(conn: T, max: number): boolean {
    if (this.pinnedConns.has(conn)) return true;
    if (!this.leased.has(conn) || (this.pinnedPerKey.get(conn.key) ?? 0) >= max) return false;
    this.pinnedConns.add(conn);
    this.pinnedPerKey.set(conn.key, (this.pinnedPerKey.get(conn.key) ?? 0) + 1);
    this.countKey(conn.key, -1);
    const q = this.waiters.get(conn.key);
    if (q !== undefined) this.pumpKey(conn.key, q);
    return true;
  }

  /** The session let go of what pinned it: `conn` counts toward default_pool_size again. */
  unpin(conn: T): void {
    if (!this.pinnedConns.delete(conn)) return;
    const n = (this.pinnedPerKey.get(conn.key) ?? 1) - 1;
    if (n <= 0) this.pinnedPerKey.delete(conn.key);
    else this.pinnedPerKey.set(conn.key, n);
    this.countKey(conn.key, 1);
  }

  /** Connections of `key` held by pinned sessions outside default_pool_size. */
  pinnedCount(key: string): number {
    return this.pinnedPerKey.get(key) ?? 0;
  }

  /** Transaction pooling: the lease ends; the connection goes to the next waiter of its key, or idles. */
  giveBack(conn: T, reusable: boolean, why = 'session ended in an unclean state', limit?: LeaseLimit, reset = false): void {
    if (!this.leased.has(conn)) throw new Error(`connection given back twice to the pool of node ${this.nodeId}`);
    // Back from a pinned session: it counts again (and is closed below when that is one too many).
    if (this.pinnedConns.size > 0) this.unpin(conn);
    const key = conn.key;
    let lim = this.limits.get(key);
    if (limit !== undefined && lim !== limit) this.limits.set(key, (lim = limit));
    if (!reusable || !conn.usable || this.closed || (reset && this.opts.discard === undefined)) {
      this.leased.delete(conn);
      conn.lastUsedAt = Date.now();
      this.close(conn, !conn.usable ? 'connection broken' : this.closed ? 'pool closed' : reset ? 'session state left on it' : why);
      return;
    }
    if (reset) {
      // Not leased, not idle while DISCARD ALL runs; then given back clean.
      this.leased.delete(conn);
      this.resetting.add(conn);
      const done = (ok: boolean, reason: string): void => {
        this.resetting.delete(conn);
        if (!ok || !conn.usable || this.closed) {
          this.close(conn, this.closed ? 'pool closed' : reason);
          return;
        }
        this.leased.add(conn);
        this.giveBack(conn, true, why);
      };
      this.opts.discard!(conn).then((ok) => done(ok, 'DISCARD ALL failed'), (e: Error) => done(false, `DISCARD ALL failed: ${e.message}`));
      return;
    }
    // (one clock read per give-back: a call into V8's runtime, ~0.2 µs on the lab VM)
    const now = Date.now();
    if (lim !== undefined && this.keyCount(key) > lim.size + lim.reserve) {
      // More than the key may keep (a relayed login opens a connection of its own): close it.
      this.leased.delete(conn);
      conn.lastUsedAt = now;
      this.close(conn, 'above default_pool_size + reserve_pool_size');
      return;
    }
    const q = this.waiters.get(key);
    const w = q?.first();
    if (w !== undefined) {
      // Leased again at once: it was never idle (lastUsedAt is the idle reaper's).
      q!.advance();
      this.grant(w, conn, now, true);
      return;
    }
    conn.lastUsedAt = now;
    this.leased.delete(conn);
    this.toIdle(conn);
  }

  /** An unleased connection joins the idle ones of its key. */
  private toIdle(conn: T): void {
    let list = this.idleByKey.get(conn.key);
    if (list === undefined) this.idleByKey.set(conn.key, (list = []));
    list.push(conn);
    this.idleOrder.add(conn);
    this.makeRoom(0);
  }

  /** A waiter stops waiting (granted, given a new connection, timed out). */
  private leave(w: Waiter<T>): void {
    w.done = true;
    this.waiting--;
    if (w.reserveTimer !== null) clearTimeout(w.reserveTimer);
    w.reserveTimer = null;
    if (this.waiting === 0 && this.deadlineRefed) {
      // Nobody waits: nothing to keep the process up for (the timer holds the event loop, as
      // each waiter's own timer did). Unref'd, not cleared: with a few more clients than
      // connections the line empties and fills again on nearly every transaction, and a
      // clearTimeout() and setTimeout() per wait cost more than the sweep it may run for nobody.
      this.deadlineTimer!.unref();
      this.deadlineRefed = false;
    }
  }

  /** Makes the deadline timer fire by `at` (it stays set for an earlier one). */
  private armDeadline(at: number): void {
    if (this.deadlineTimer !== null && this.deadlineAt <= at) {
      if (!this.deadlineRefed) {
        this.deadlineTimer.ref();
        this.deadlineRefed = true;
      }
      return;
    }
    if (this.deadlineTimer !== null) clearTimeout(this.deadlineTimer);
    this.deadlineAt = at;
    this.deadlineTimer = setTimeout(() => this.sweepDeadlines(), Math.max(1, at - Date.now()));
    this.deadlineRefed = true;
  }

  /** Rejects every waiter past its deadline with LeaseTimeout; sets the timer for the next one. */
  private sweepDeadlines(): void {
    this.deadlineTimer = null;
    this.deadlineRefed = false;
    const now = Date.now();
    let next = 0;
    const expired: Waiter<T>[] = [];
    for (const q of this.waiters.values()) {
      for (const w of q.waiting()) {
        if (w.deadline === 0) continue;
        if (w.deadline <= now + 1) expired.push(w);
        else if (next === 0 || w.deadline < next) next = w.deadline;
      }
    }
    for (const w of expired) {
      if (w.done) continue;
      this.leave(w);
      this.settle(w, null, new LeaseTimeout(`no connection to node ${this.nodeId} became free within ${w.timeoutMs / 1000} s`));
    }
    if (next > 0) this.armDeadline(next);
  }

  /** `w` gets `conn`; `givenBack`: inside the giveBack() that freed it (then waitInLine()'s waiters are handed it at once). */
  private grant(w: Waiter<T>, conn: T, now: number, givenBack = false): void {
    this.leave(w);
    this.leases++;
    this.waitedLeases++;
    this.reused++;
    this.onWaited?.((now - w.since) / 1000);
    if (givenBack && w.direct && handingOff === 0) this.handOff(w, conn);
    else this.settle(w, conn, null);
  }

  /**
   * waitInLine(): the connection given back goes to the waiting session from inside the
   * giveBack() that freed it — the pool's state is final by then — so it sends its parked request
   * at once, in the same turn, instead of in a later microtask after every other event of the
   * turn (issue 17, item 9). One level deep only, over every pool: a connection given back from
   * inside a hand-off (the waiting session ending, or answering its request without a server) is
   * reported in a microtask, so one session's code never runs more than one other session's, and
   * the session giving back never finds its own code running inside its call (a session waits
   * only on nodes where it holds no connection, and the one it gave back was its own). A throw
   * does not reach the giver (its session would end for another's bug): it surfaces as an
   * uncaught exception from a microtask of its own, as from reportOutcomes.
   */
  private handOff(w: Waiter<T>, conn: T): void {
    handingOff++;
    try {
      w.then!(conn, null);
    } catch (e) {
      queueMicrotask(() => {
        throw e;
      });
    } finally {
      handingOff--;
    }
  }

  /** Serves waiters from idle connections, or opens new ones for keys below their limit. */
  private pump(): void {
    for (const [key, q] of this.waiters) this.pumpKey(key, q);
  }

  /**
   * Serves the waiters of one key, oldest first, until one cannot be served: the head has waited
   * longest, so when it may not open a connection (reserve_pool_size comes after reserveAfterMs)
   * no later waiter may either.
   */
  private pumpKey(key: string, q: WaitQueue<T>, now = Date.now()): void {
    for (let w = q.first(); w !== undefined; w = q.first()) {
      const idle = this.tryLease(key);
      if (idle !== null) {
        this.leases--; // counted by grant
        this.reused--;
        // tryLease may have closed a broken connection, which pumps: w may be served already.
        const to = w.done ? q.first() : w;
        if (to === undefined) {
          this.leased.delete(idle);
          this.toIdle(idle);
          break;
        }
        this.grant(to, idle, now);
        continue;
      }
      if (w.done) continue;
      const cap = w.limit.size + (now - w.since >= w.limit.reserveAfterMs ? w.limit.reserve : 0);
      if (this.keyCount(key) >= cap) break;
      // Room for one more: open it for this waiter.
      this.leave(w);
      this.countKey(w.key, 1);
      this.connecting++;
      this.makeRoom(0);
      this.createLive(w.create).then((conn) => {
        this.connecting--;
        this.countKey(w.key, -1);
        this.created++;
        this.countKey(conn.key, 1);
        if (this.closed) {
          conn.destroy('pool closed');
          this.countKey(conn.key, -1);
          this.settle(w, null, new Error(`pool of node ${this.nodeId} is closed`));
          return;
        }
        this.leased.add(conn);
        this.leases++;
        if (now - w.since > 1) {
          this.waitedLeases++;
          this.onWaited?.((Date.now() - w.since) / 1000);
        }
        this.settle(w, conn, null);
      }, (e: Error) => {
        this.connecting--;
        this.countKey(w.key, -1);
        this.settle(w, null, e);
        this.pump();
      });
    }
    if (q.first() === undefined && this.waiters.get(key) === q) this.waiters.delete(key);
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
      waiting: this.waiting,
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
    if (this.deadlineTimer !== null) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    this.deadlineRefed = false;
    this.closeIdle('pool closed');
    const resetWaiters = [...this.resetWaiters.values()].flat();
    this.resetWaiters.clear();
    for (const wake of resetWaiters) wake();
    const all = [...this.waiters.values()].flatMap((q) => q.drain());
    this.waiters.clear();
    for (const w of all) {
      if (w.done) continue;
      this.leave(w);
      this.settle(w, null, new Error(`pool of node ${this.nodeId} is closed`));
    }
  }
}

const noop = (): void => {};

/** Hand-offs in progress, over every pool (see NodePool.handOff). */
let handingOff = 0;

/** The promise whose reactions report leaseThen() outcomes (see NodePool.outcomes). */
const RESOLVED = Promise.resolve();
