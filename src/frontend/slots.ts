/**
 * Client slots: pgpool's num_init_children as a counting gate instead of a process per client.
 *
 * At most `size` client sessions are served at once. Further clients wait in FIFO order, as
 * pgpool's clients wait in the listen backlog, up to `queueLimit` (listen_backlog_multiplier ×
 * num_init_children); beyond that they are refused (the caller sends 53300). A slot number
 * (0..size-1) is handed out so SHOW POOL_PROCESSES can show one row per slot.
 */

/** A granted slot; release() is once-only. */
export interface SlotLease {
  readonly slot: number;
  release(): void;
}

interface Waiter {
  grant: (lease: SlotLease) => void;
  cancelled: boolean;
}

/** The gate; see the file header. */
export class Slots {
  private readonly free: number[] = [];
  private readonly waiters: Waiter[] = [];
  private waitingCount = 0;
  /** Per slot: clients served since start and when the last one left (pgpool's per-process counters). */
  private readonly served: { connections: number; lastDisconnectedAt: Date | null }[] = [];

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

  /**
   * Takes a slot now, or queues. Returns null when the queue is full.
   * The promise of a queued request can be abandoned with the returned cancel().
   */
  acquire(): { lease: Promise<SlotLease>; cancel: () => void } | null {
    const slot = this.free.pop();
    if (slot !== undefined) return { lease: Promise.resolve(this.lease(slot)), cancel: () => {} };
    if (this.waitingCount >= this.queueLimit) return null;
    let waiter!: Waiter;
    const lease = new Promise<SlotLease>((resolve) => {
      waiter = { grant: resolve, cancelled: false };
    });
    this.waiters.push(waiter);
    this.waitingCount++;
    return {
      lease,
      cancel: () => {
        if (!waiter.cancelled) {
          waiter.cancelled = true;
          this.waitingCount--;
        }
      },
    };
  }

  /** History of one slot (for SHOW POOL_PROCESSES / POOL_POOLS). */
  history(slot: number): { connections: number; lastDisconnectedAt: Date | null } | undefined {
    return this.served[slot];
  }

  private lease(slot: number): SlotLease {
    let released = false;
    const h = (this.served[slot] ??= { connections: 0, lastDisconnectedAt: null });
    h.connections++;
    return {
      slot,
      release: () => {
        if (released) throw new Error(`client slot ${slot} released twice`);
        released = true;
        h.lastDisconnectedAt = new Date();
        this.handOver(slot);
      },
    };
  }

  private handOver(slot: number): void {
    while (this.waiters.length > 0) {
      const w = this.waiters.shift()!;
      if (w.cancelled) continue;
      this.waitingCount--;
      w.grant(this.lease(slot));
      return;
    }
    if (slot < this.size) this.free.push(slot);
  }
}
