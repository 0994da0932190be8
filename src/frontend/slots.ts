/**
 * Client slots: pgpool's num_init_children as a counting gate instead of a process per client.
 *
 * At most `size` client sessions are served at once. Further clients wait in FIFO order, as
 * pgpool's clients wait in the listen backlog, up to `queueLimit` (listen_backlog_multiplier ×
 * num_init_children); beyond that they are refused (the caller sends 53300). A slot number
 * (0..size-1) is handed out so SHOW POOL_PROCESSES can show one row per slot.
 */
import { performance } from 'node:perf_hooks';

/** A granted slot; release() is once-only. */
export interface SlotLease {
  readonly slot: number;
  release(): void;
}

/** A request for a slot: the lease (now or once queued), and a way to abandon it. */
export interface SlotRequest {
  readonly lease: Promise<SlotLease>;
  /**
   * Abandons the request: a queued one leaves the queue; a granted one gives its slot back
   * (to the next client waiting), unless its lease was released already. Idempotent. After
   * cancel(), the caller must not release the lease itself.
   */
  cancel(): void;
}

/** A slot's history (pgpool's per-process counters). */
interface Served {
  connections: number;
  /**
   * When the last client left, as performance.now() (0: never): a Date is made when asked, from
   * the time elapsed since. (Date.now() is a call into V8's runtime, ~1 µs in a login's profile;
   * perf_hooks' clock is a fast API call.)
   */
  lastLeftPerf: number;
}

/**
 * A granted slot: one object per client (not a lease object, a record and two closures), its
 * release() once-only.
 */
class Grant implements SlotLease {
  released = false;

  constructor(readonly slot: number, private readonly slots: Slots, private readonly served: Served) {}

  release(): void {
    if (this.released) throw new Error(`client slot ${this.slot} released twice`);
    this.released = true;
    this.served.lastLeftPerf = performance.now() || Number.MIN_VALUE;
    this.slots.handOver(this.slot);
  }
}

interface Waiter {
  state: 'waiting' | 'granted' | 'cancelled';
  grant: (g: Grant) => void;
}

/** The gate; see the file header. */
export class Slots {
  private readonly free: number[] = [];
  private readonly waiters: Waiter[] = [];
  private waitingCount = 0;
  /** Per slot: clients served since start and when the last one left (pgpool's per-process counters). */
  private readonly served: Served[] = [];

  constructor(private size: number, private queueLimit: number) {
    for (let i = size - 1; i >= 0; i--) this.free.push(i);
  }

  /** Sessions being served. */
  get inUse(): number {
    return this.size - this.free.length;
  }

  /** Clients waiting for a slot. */
  get waiting(): number {
    return this.waitingCount;
  }

  /** Total slots (num_init_children). */
  get capacity(): number {
    return this.size;
  }

  /** Takes a free slot now, without a promise; null when none is free (then acquire()). */
  tryAcquire(): SlotLease | null {
    const slot = this.free.pop();
    return slot === undefined ? null : this.lease(slot);
  }

  /** Takes a slot now, or queues. Returns null when the queue is full (the caller sends 53300). */
  acquire(): SlotRequest | null {
    const slot = this.free.pop();
    if (slot !== undefined) {
      const g = this.lease(slot);
      return { lease: Promise.resolve<SlotLease>(g), cancel: () => { if (!g.released) g.release(); } };
    }
    if (this.waitingCount >= this.queueLimit) return null;
    let granted: Grant | null = null;
    let resolveLease!: (l: SlotLease) => void;
    const lease = new Promise<SlotLease>((resolve) => { resolveLease = resolve; });
    const waiter: Waiter = {
      state: 'waiting',
      grant: (g) => {
        granted = g;
        resolveLease(g);
      },
    };
    this.waiters.push(waiter);
    this.waitingCount++;
    return {
      lease,
      cancel: () => {
        if (waiter.state === 'waiting') {
          // Still queued: it leaves the line now (a client gone while waiting is not kept).
          waiter.state = 'cancelled';
          this.waitingCount--;
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
        } else if (waiter.state === 'granted') {
          // Granted (and already uncounted by handOver()) before the caller saw it: give it back.
          waiter.state = 'cancelled';
          const g = granted as Grant | null;
          if (g !== null && !g.released) g.release();
        }
      },
    };
  }

  /** History of one slot (for SHOW POOL_PROCESSES / POOL_POOLS). */
  history(slot: number): { connections: number; lastDisconnectedAt: Date | null } | undefined {
    const h = this.served[slot];
    return h === undefined ? undefined : { connections: h.connections, lastDisconnectedAt: h.lastLeftPerf === 0 ? null : new Date(Date.now() - (performance.now() - h.lastLeftPerf)) };
  }

  private lease(slot: number): Grant {
    const h = (this.served[slot] ??= { connections: 0, lastLeftPerf: 0 });
    h.connections++;
    return new Grant(slot, this, h);
  }

  /** @internal A slot given back (Grant.release): to the next client waiting, else free. */
  handOver(slot: number): void {
    while (this.waiters.length > 0) {
      const w = this.waiters.shift()!;
      if (w.state !== 'waiting') continue;
      w.state = 'granted';
      this.waitingCount--;
      w.grant(this.lease(slot));
      return;
    }
    if (slot < this.size) this.free.push(slot);
  }
}

/**
 * A slot for one client: taken now, or after waiting in line until one is free. 'full' when the
 * line is full (the caller sends 53300); null when the client went away meanwhile (its place in
 * line, or a slot granted at that moment, is given back). `gone` may be a function that makes the
 * promise, called only when the client has to wait.
 */
export async function waitForSlot(slots: Slots, gone: Promise<unknown> | (() => Promise<unknown>), isGone: () => boolean): Promise<SlotLease | 'full' | null> {
  const now = slots.tryAcquire();
  if (now !== null) {
    if (!isGone()) return now;
    now.release();
    return null;
  }
  const want = slots.acquire();
  if (want === null) return 'full';
  const lease = await Promise.race([want.lease, (typeof gone === 'function' ? gone() : gone).then(() => null)]);
  if (lease === null || isGone()) {
    want.cancel();
    return null;
  }
  return lease;
}
