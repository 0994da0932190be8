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
  /**
   * The pool's record of this connection (its state, its key's pool): written by the pool when
   * the connection enters it, read by no one else. An implementation declares it (initialised to
   * undefined) so every connection keeps one shape.
   */
  poolSlot?: unknown;
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
  // (Not readonly: a waiter handed its connection is used again for a later wait, see spare.)
  key: string;
  since: number;
  create: () => Promise<T>;
  limit: LeaseLimit;
  resolve: (c: T) => void;
  reject: (e: Error) => void;
  /** leaseThen()'s callback (then resolve/reject are unused), or null for a lease() promise. */
  then: LeaseCallback<T> | null;
  /** waitInLine(): a connection given back is handed over from inside that giveBack() (see handOff). */
  direct: boolean;
  /** When it gives up (Date.now() ms; 0: never), and the wait it was given (ms). */
  deadline: number;
  timeoutMs: number;
  /** Wakes the pump when reserve_pool_timeout has passed for this waiter. */
  reserveTimer: NodeJS.Timeout | null;
  done: boolean;
}

/** How many handed-off waiters a pool keeps for later waits (NodePool.spare). */
const SPARE_WAITERS = 64;

/**
 * Waiters of one key, first come first served, in a ring (a power-of-two array, head and tail):
 * no array is made or dropped when the line empties and fills again — with a few more clients
 * than connections it does so on nearly every transaction. Leaving waiters (granted, timed out)
 * are only marked done and dropped when they reach the head, so every operation is O(1): with a
 * thousand clients queued on twenty connections, a scan of all waiters per lease dominated the
 * CPU profile. A slot the head passed is emptied (the waiter is not kept reachable).
 */
export class WaitQueue<W extends { done: boolean }> {
  private ring: (W | undefined)[] = new Array<W | undefined>(8).fill(undefined);
  private mask = 7;
  private head = 0;
  private tail = 0;

  push(w: W): void {
    if (this.tail - this.head === this.ring.length) this.grow();
    this.ring[this.tail & this.mask] = w;
    this.tail++;
  }

  /** The oldest waiter still waiting, or undefined. */
  first(): W | undefined {
    while (this.head !== this.tail) {
      const w = this.ring[this.head & this.mask]!;
      if (!w.done) return w;
      this.ring[this.head & this.mask] = undefined;
      this.head++;
    }
    return undefined;
  }

  /** The waiter first() returned leaves the line (granted): the next first() does not step over it. */
  advance(): void {
    this.ring[this.head & this.mask] = undefined;
    this.head++;
  }

  /** No entry at all, done or not. */
  get empty(): boolean {
    return this.head === this.tail;
  }

  /** Every waiter still waiting, oldest first (the deadline sweep). */
  waiting(out: W[]): W[] {
    for (let i = this.head; i !== this.tail; i++) {
      const w = this.ring[i & this.mask]!;
      if (!w.done) out.push(w);
    }
    return out;
  }

  /** Every entry, done or not, and the line empties (shutdown). */
  drain(out: W[]): W[] {
    while (this.head !== this.tail) {
      out.push(this.ring[this.head & this.mask]!);
      this.ring[this.head & this.mask] = undefined;
      this.head++;
    }
    return out;
  }

  private grow(): void {
    const n = this.ring.length;
    const next = new Array<W | undefined>(2 * n).fill(undefined);
    for (let i = 0; i < n; i++) next[i] = this.ring[(this.head + i) & this.mask];
    this.ring = next;
    this.mask = 2 * n - 1;
    this.head = 0;
    this.tail = n;
  }
}

/** Where a connection of the pool is (Slot.state). */
const Gone = 0;
const Idle = 1;
const Leased = 2;
const Resetting = 3;

/**
 * The pool's record of one connection (Poolable.poolSlot), made once when the connection enters
 * the pool: a lease and a give-back change its fields, and nothing is added to or removed from a
 * Set or Map (the Sets of leased and idle connections shrank and grew their tables per lease).
 */
class Slot<T> {
  state = Gone;
  /** A pinned session holds it outside its key's default_pool_size (pin). */
  pinned = false;
  /** Its index in NodePool.all. */
  at = -1;
  /** When it last went idle, in the pool's idle order (NodePool.idleSeq): the lowest idled first. */
  seq = 0;
  constructor(readonly owner: object, readonly kp: KeyPool<T>) {}
}

/**
 * Everything about one key (user, database, startup parameters) in one object: one lookup per
 * lease instead of one per map (idle list, count, limit, waiters, pins, resets).
 */
class KeyPool<T> {
  /** Idle connections, most recently used last (LIFO reuse keeps them warm); oldest first by Slot.seq. */
  readonly idle: T[] = [];
  /** Connections in any state, and those being opened by the pump (pinned ones not counted). */
  count = 0;
  /** Leased connections held by pinned sessions, counted apart from default_pool_size. */
  pinned = 0;
  /** Session pooling: connections being reset (reset_query_list) after a release. */
  resetting = 0;
  /** acquire() calls waiting for one of those resets (one reset wakes one of them). */
  readonly resetWaiters: (() => void)[] = [];
  /** The limit last asked for (giveBack closes connections beyond it). */
  limit: LeaseLimit | undefined = undefined;
  /** Clients waiting for a connection (transaction pooling). */
  readonly line = new WaitQueue<Waiter<T>>();
  constructor(readonly key: string) {}

  /** Nothing of the key is left: the record may go (reap). */
  get unused(): boolean {
    return this.count === 0 && this.pinned === 0 && this.resetting === 0 && this.idle.length === 0
      && this.resetWaiters.length === 0 && this.line.empty;
  }
}

/** Pool of one node; see the file header. */
export class NodePool<T extends Poolable> {
  /** Per key: idle connections, counts, limit, waiters (reap drops the records of unused keys). */
  private readonly keys = new Map<string, KeyPool<T>>();
  /** The last key looked up and its record (nearly every lease of a node is of one key). */
  private lastKey = '';
  private lastKp: KeyPool<T> | null = null;
  /** Every connection the pool holds (idle, leased, resetting), in no order (Slot.at). */
  private readonly all: T[] = [];
  private idleCount = 0;
  private leasedCount = 0;
  private resettingCount = 0;
  /** Advanced each time a connection goes idle (Slot.seq): the idle order, least recently used first. */
  private idleSeq = 0;
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
  /** Waiters handed their connection by handOff(), kept for later waits (SPARE_WAITERS at most). */
  private readonly spare: Waiter<T>[] = [];
  /** Clients waiting for a connection, over every key (those not done). */
  private waiting = 0;
  /** Called with the wait of every lease that waited (seconds), for the wait-time histogram. */
  onWaited: ((seconds: number) => void) | null = null;
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

  /** The record of `key`, made when missing. */
  private keyPool(key: string): KeyPool<T> {
    if (key === this.lastKey && this.lastKp !== null) return this.lastKp;
    let kp = this.keys.get(key);
    if (kp === undefined) this.keys.set(key, (kp = new KeyPool<T>(key)));
    this.lastKey = key;
    this.lastKp = kp;
    return kp;
  }

  /** `conn`'s record in this pool, or undefined when it is not one of this pool's connections. */
  private slotOf(conn: T): Slot<T> | undefined {
    const s = conn.poolSlot as Slot<T> | undefined;
    return s !== undefined && s.owner === this && s.state !== Gone ? s : undefined;
  }

  /** A connection enters the pool, leased (the caller counts it in its key). */
  private enter(conn: T): Slot<T> {
    const s = new Slot<T>(this, this.keyPool(conn.key));
    conn.poolSlot = s;
    s.state = Leased;
    s.at = this.all.length;
    this.all.push(conn);
    this.leasedCount++;
    return s;
  }

  /** `conn` leaves whatever state it is in, and the pool (before it is closed). */
  private unlist(conn: T, s: Slot<T>): void {
    switch (s.state) {
      case Idle: {
        const list = s.kp.idle;
        const i = list.lastIndexOf(conn);
        if (i === list.length - 1) list.pop();
        else if (i >= 0) list.splice(i, 1);
        this.idleCount--;
        break;
      }
      case Leased: this.leasedCount--; break;
      case Resetting: this.resettingCount--; break;
      default: return;
    }
    s.state = Gone;
    const last = this.all.pop()!;
    if (last !== conn) {
      this.all[s.at] = last;
      (last.poolSlot as Slot<T>).at = s.at;
    }
    s.at = -1;
  }

  /**
   * Lends a connection for `key`: a cached one when available, else one of the key being reset
   * once its reset is done (a client that connects per request logs in while its previous
   * connection still runs reset_query_list: PgBouncer reuses that connection too), else a new one
   * from `create`.
   */
  async acquire(key: string, create: () => Promise<T>): Promise<T> {
    if (this.closed) throw new Error(`pool of node ${this.nodeId} is closed`);
    let kp = this.keyPool(key);
    let idle = this.takeIdle(kp);
    if (idle !== null) return idle;
    if (kp.resetting > kp.resetWaiters.length) {
      const waiting = kp.resetWaiters;
      await new Promise<void>((resolve) => waiting.push(resolve));
      if (this.closed) throw new Error(`pool of node ${this.nodeId} is closed`);
      kp = this.keyPool(key);
      idle = this.takeIdle(kp);
      if (idle !== null) return idle;
    }
    this.makeRoom(1);
    this.connecting++;
    try {
      const conn = await this.createLive(create);
      this.created++;
      if (this.closed) {
        conn.destroy('pool closed');
        throw new Error(`pool of node ${this.nodeId} is closed`);
      }
      this.enter(conn).kp.count++;
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
    return this.closed ? null : this.takeIdle(this.keyPool(key));
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
    this.enter(conn).kp.count++;
    this.makeRoom(0);
  }

  /**
   * Gives a connection back. `reusable` is the session's verdict on the protocol state; the pool
   * then resets it (or closes it). Calling release twice for one lease throws.
   */
  release(conn: T, reusable: boolean, why = 'session ended in an unclean state'): void {
    const s = this.slotOf(conn);
    if (s === undefined || s.state !== Leased) throw new Error(`connection released twice to the pool of node ${this.nodeId}`);
    if (s.pinned) this.unpin(conn);
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
    s.state = Resetting;
    this.leasedCount--;
    this.resettingCount++;
    s.kp.resetting++;
    this.opts.reset(conn).then(
      (ok) => this.afterReset(conn, s, ok, 'reset query failed'),
      (e: Error) => this.afterReset(conn, s, false, `reset failed: ${e.message}`),
    );
  }

  private afterReset(conn: T, s: Slot<T>, ok: boolean, why: string): void {
    const kp = s.kp;
    kp.resetting--;
    if (s.state === Resetting) {
      if (!ok || !conn.usable || this.closed) {
        this.close(conn, this.closed ? 'pool closed' : why);
      } else {
        this.resettingCount--;
        conn.lastUsedAt = Date.now();
        this.toIdle(conn, s);
      }
    }
    // One acquire() waiting for this key's reset takes the connection (or, when the reset
    // failed, opens a new one).
    kp.resetWaiters.shift()?.();
  }

  /** Closes least-recently-used idle connections while the node is at capacity. */
  private makeRoom(reserve: number): void {
    while (this.totalCount() + reserve > this.opts.capacity && this.idleCount > 0) {
      this.evicted++;
      this.close(this.oldestIdle()!, 'evicted: pool at capacity (num_init_children × max_pool)');
    }
  }

  /** The least recently used idle connection of any key (the bottom of one key's idle list). */
  private oldestIdle(): T | undefined {
    let oldest: T | undefined;
    let seq = Infinity;
    for (const kp of this.keys.values()) {
      const c = kp.idle[0];
      if (c !== undefined && (c.poolSlot as Slot<T>).seq < seq) {
        oldest = c;
        seq = (c.poolSlot as Slot<T>).seq;
      }
    }
    return oldest;
  }

  /** Closes `conn` (in any state: it leaves it), then serves waiters the room it leaves. */
  private close(conn: T, reason: string, pump = true): void {
    const s = conn.poolSlot as Slot<T> | undefined;
    if (s !== undefined && s.owner === this && s.state !== Gone) {
      if (s.pinned) this.unpin(conn);
      this.unlist(conn, s);
      s.kp.count--;
    }
    conn.destroy(reason);
    this.opts.onClose?.(conn, reason);
    if (pump) this.pump();
  }

  /** Connections of `key` in any state. */
  keyCount(key: string): number {
    return this.keys.get(key)?.count ?? 0;
  }

  // ---- transaction pooling ---------------------------------------------------------------

  /** An idle connection of `key`, leased at once; null when there is none (then lease()). */
  tryLease(key: string): T | null {
    if (this.closed) return null;
    const conn = this.takeIdle(this.keyPool(key));
    if (conn !== null) this.leases++;
    return conn;
  }

  /** The most recently used idle connection of the key, now leased (broken ones found are closed). */
  private takeIdle(kp: KeyPool<T>): T | null {
    const list = kp.idle;
    while (list.length > 0) {
      const conn = list.pop()!;
      const s = conn.poolSlot as Slot<T>;
      this.idleCount--;
      s.state = Leased;
      this.leasedCount++;
      if (!conn.usable) {
        this.close(conn, 'found closed in the pool');
        continue;
      }
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
    this.keyPool(key).limit = limit;
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
    this.keyPool(key).limit = limit;
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
    const kp = this.keyPool(key);
    if (kp.limit !== limit) kp.limit = limit;
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
    const deadline = timeoutMs > 0 ? since + timeoutMs : 0;
    let w = this.spare.pop();
    if (w === undefined) {
      w = { key, since, create, limit, resolve, reject, then, direct, deadline, timeoutMs, reserveTimer: null, done: false };
    } else {
      w.key = key;
      w.since = since;
      w.create = create;
      w.limit = limit;
      w.resolve = resolve;
      w.reject = reject;
      w.then = then;
      w.direct = direct;
      w.deadline = deadline;
      w.timeoutMs = timeoutMs;
      w.reserveTimer = null;
      w.done = false;
    }
    if (w.deadline > 0) this.armDeadline(w.deadline);
    if (limit.reserve > 0 && limit.reserveAfterMs > 0) {
      w.reserveTimer = this.reserveTimer(w, limit.reserveAfterMs + 1);
    }
    const kp = this.keyPool(key);
    const q = kp.line;
    // Behind other waiters, with no reserve to open for them, there is nothing to pump: every
    // event that could serve this key's head (a give-back, a close, a pin) pumps it, and what the
    // head may not have, no later waiter may (pumpKey). Nearly every waiter is one of these once
    // clients outnumber default_pool_size.
    const first = q.first();
    const behind = first !== undefined && limit.reserve === 0;
    q.push(w);
    this.waiting++;
    // Alone in line, no idle connection and no room for a new one now: what pumpKey would find
    // (a few more clients than connections: nearly every wait).
    if (first === undefined && kp.idle.length === 0 && kp.count >= limit.size + (limit.reserveAfterMs <= 0 ? limit.reserve : 0)) return;
    if (!behind) this.pumpKey(kp, since);
  }

  /** Wakes the pump after reserve_pool_timeout for `w` (unless it was served or cleared first). */
  private reserveTimer(w: Waiter<T>, ms: number): NodeJS.Timeout {
    const t = setTimeout(() => {
      if (w.reserveTimer !== t) return; // (cleared, or w waits again for another lease)
      w.reserveTimer = null;
      if (!w.done) this.pump();
    }, ms);
    t.unref();
    return t;
  }

  /**
   * Transaction pooling: a pinned session keeps `conn` (LISTEN, a temporary table, an advisory
   * lock...): while fewer than `max` connections of its key are pinned, it stops counting toward
   * default_pool_size, so the other clients of the key get another connection instead of waiting
   * for one that may never come back. False when the key has `max` pinned already (it then keeps
   * counting). The node's capacity still counts it.
   */
  pin(conn: T, max: number): boolean {
    const s = this.slotOf(conn);
    if (s?.pinned === true) return true;
    if (s === undefined || s.state !== Leased || s.kp.pinned >= max) return false;
    s.pinned = true;
    s.kp.pinned++;
    s.kp.count--;
    if (!s.kp.line.empty) this.pumpKey(s.kp);
    return true;
  }

  /** The session let go of what pinned it: `conn` counts toward default_pool_size again. */
  unpin(conn: T): void {
    const s = this.slotOf(conn);
    if (s === undefined || !s.pinned) return;
    s.pinned = false;
    s.kp.pinned--;
    s.kp.count++;
  }

  /** Connections of `key` held by pinned sessions outside default_pool_size. */
  pinnedCount(key: string): number {
    return this.keys.get(key)?.pinned ?? 0;
  }

  /** Transaction pooling: the lease ends; the connection goes to the next waiter of its key, or idles. */
  giveBack(conn: T, reusable: boolean, why = 'session ended in an unclean state', limit?: LeaseLimit, reset = false): void {
    const s = conn.poolSlot as Slot<T> | undefined;
    if (s === undefined || s.owner !== this || s.state !== Leased) throw new Error(`connection given back twice to the pool of node ${this.nodeId}`);
    // Back from a pinned session: it counts again (and is closed below when that is one too many).
    if (s.pinned) this.unpin(conn);
    const kp = s.kp;
    if (limit !== undefined && kp.limit !== limit) kp.limit = limit;
    if (!reusable || !conn.usable || this.closed || (reset && this.opts.discard === undefined)) {
      conn.lastUsedAt = Date.now();
      this.close(conn, !conn.usable ? 'connection broken' : this.closed ? 'pool closed' : reset ? 'session state left on it' : why);
      return;
    }
    if (reset) {
      // Not leased, not idle while DISCARD ALL runs; then given back clean.
      s.state = Resetting;
      this.leasedCount--;
      this.resettingCount++;
      const done = (ok: boolean, reason: string): void => {
        if (s.state !== Resetting) return;
        if (!ok || !conn.usable || this.closed) {
          this.close(conn, this.closed ? 'pool closed' : reason);
          return;
        }
        s.state = Leased;
        this.resettingCount--;
        this.leasedCount++;
        this.giveBack(conn, true, why);
      };
      this.opts.discard!(conn).then((ok) => done(ok, 'DISCARD ALL failed'), (e: Error) => done(false, `DISCARD ALL failed: ${e.message}`));
      return;
    }
    // (one clock read per give-back: a call into V8's runtime, ~0.2 µs on the lab VM)
    const now = Date.now();
    const lim = kp.limit;
    if (lim !== undefined && kp.count > lim.size + lim.reserve) {
      // More than the key may keep (a relayed login opens a connection of its own): close it.
      conn.lastUsedAt = now;
      this.close(conn, 'above default_pool_size + reserve_pool_size');
      return;
    }
    const w = kp.line.first();
    if (w !== undefined) {
      // Leased again at once: it was never idle (lastUsedAt is the idle reaper's).
      kp.line.advance();
      this.grant(w, conn, now, true);
      return;
    }
    conn.lastUsedAt = now;
    this.leasedCount--;
    this.toIdle(conn, s);
  }

  /** A connection that is neither idle nor leased (counted nowhere) joins the idle ones of its key. */
  private toIdle(conn: T, s: Slot<T>): void {
    s.state = Idle;
    s.seq = ++this.idleSeq;
    s.kp.idle.push(conn);
    this.idleCount++;
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
    const waiting: Waiter<T>[] = [];
    for (const kp of this.keys.values()) kp.line.waiting(waiting);
    for (const w of waiting) {
      if (w.deadline === 0) continue;
      if (w.deadline <= now + 1) expired.push(w);
      else if (next === 0 || w.deadline < next) next = w.deadline;
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
    if (givenBack && w.direct && handingOff === 0) {
      this.handOff(w, conn);
      // Nothing refers to it now (out of the line, its timer cleared, not in `outcomes`): the
      // next wait uses it again instead of a new object (~150 bytes per waited transaction).
      if (this.spare.length < SPARE_WAITERS) this.spare.push(w);
    } else this.settle(w, conn, null);
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
    if (this.waiting === 0 || this.closed) return; // (after shutdown() nobody waits: nothing to open)
    for (const kp of this.keys.values()) if (!kp.line.empty) this.pumpKey(kp);
  }

  /**
   * Serves the waiters of one key, oldest first, until one cannot be served: the head has waited
   * longest, so when it may not open a connection (reserve_pool_size comes after reserveAfterMs)
   * no later waiter may either.
   */
  private pumpKey(kp: KeyPool<T>, now = Date.now()): void {
    const q = kp.line;
    for (let w = q.first(); w !== undefined; w = q.first()) {
      const idle = this.closed ? null : this.takeIdle(kp);
      if (idle !== null) {
        this.reused--; // counted by grant
        // takeIdle may have closed a broken connection, which pumps: w may be served already.
        const to = w.done ? q.first() : w;
        if (to === undefined) {
          this.leasedCount--;
          this.toIdle(idle, idle.poolSlot as Slot<T>);
          break;
        }
        this.grant(to, idle, now);
        continue;
      }
      if (w.done) continue;
      const cap = w.limit.size + (now - w.since >= w.limit.reserveAfterMs ? w.limit.reserve : 0);
      if (kp.count >= cap) break;
      // Room for one more: open it for this waiter.
      this.leave(w);
      kp.count++;
      this.connecting++;
      this.makeRoom(0);
      this.createLive(w.create).then((conn) => {
        this.connecting--;
        kp.count--;
        this.created++;
        if (this.closed) {
          conn.destroy('pool closed');
          this.settle(w, null, new Error(`pool of node ${this.nodeId} is closed`));
          return;
        }
        this.enter(conn).kp.count++;
        this.leases++;
        if (now - w.since > 1) {
          this.waitedLeases++;
          this.onWaited?.((Date.now() - w.since) / 1000);
        }
        this.settle(w, conn, null);
      }, (e: Error) => {
        this.connecting--;
        kp.count--;
        this.settle(w, null, e);
        this.pump();
      });
    }
  }

  private totalCount(): number {
    return this.idleCount + this.leasedCount + this.resettingCount + this.connecting;
  }

  /** Closes idle connections past their idle time, and broken ones; forgets keys with nothing left. */
  reap(now = Date.now()): void {
    const limit = this.opts.idleTimeoutSec * 1000;
    const due: T[] = [];
    for (const kp of this.keys.values()) {
      for (const conn of kp.idle) if (!conn.usable || (limit > 0 && now - conn.lastUsedAt >= limit)) due.push(conn);
    }
    for (const conn of due) {
      if ((conn.poolSlot as Slot<T>).state !== Idle) continue; // (leased meanwhile by a pump)
      this.close(conn, !conn.usable ? 'closed while idle' : 'idle timeout (connection_life_time / child_life_time)');
    }
    for (const [key, kp] of this.keys) {
      if (!kp.unused) continue;
      this.keys.delete(key);
      if (this.lastKp === kp) {
        this.lastKp = null;
        this.lastKey = '';
      }
    }
  }

  /** Current counts. */
  counts(): PoolCounts {
    return {
      idle: this.idleCount,
      active: this.leasedCount,
      resetting: this.resettingCount,
      connecting: this.connecting,
      total: this.totalCount(),
      waiting: this.waiting,
    };
  }

  /** Leased connections now (least_connections load balancing reads it per choice: no object made). */
  activeCount(): number {
    return this.leasedCount;
  }

  /** Idle connections, least recently used first (read-only view for admin commands). */
  idleConnections(): readonly T[] {
    const out: T[] = [];
    for (const kp of this.keys.values()) out.push(...kp.idle);
    return out.sort((a, b) => (a.poolSlot as Slot<T>).seq - (b.poolSlot as Slot<T>).seq);
  }

  /** Leased connections (read-only view for admin commands). */
  leasedConnections(): readonly T[] {
    return this.all.filter((c) => (c.poolSlot as Slot<T>).state === Leased);
  }

  /** Closes every idle connection (e.g. node went down); leased ones close on release. */
  closeIdle(reason: string): void {
    // No waiter is served until every one is closed (a close pumps): none of these may be
    // handed to one.
    const idle = this.idleConnections();
    for (const conn of idle) this.close(conn, reason, false);
    if (idle.length > 0) this.pump();
  }

  /** Stops the pool: closes idle connections now, the others as they come back. */
  shutdown(): void {
    this.closed = true;
    clearInterval(this.timer);
    if (this.deadlineTimer !== null) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    this.deadlineRefed = false;
    this.closeIdle('pool closed');
    const resetWaiters: (() => void)[] = [];
    const all: Waiter<T>[] = [];
    for (const kp of this.keys.values()) {
      resetWaiters.push(...kp.resetWaiters.splice(0));
      kp.line.drain(all);
    }
    for (const wake of resetWaiters) wake();
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
