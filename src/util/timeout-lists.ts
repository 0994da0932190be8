/**
 * Many timeouts of a few durations without a Node timer each: per duration, a FIFO of entries
 * (added in time order, so each list is in deadline order) and one unref'd Node timer armed at
 * its head's deadline. schedule() and cancel() are O(1); an entry cancelled before its deadline
 * (the usual case: a login completes long before authentication_timeout) costs an unlink, and the
 * list's timer, when it fires, finds the next head and re-arms for it.
 *
 * For deadlines every connection has and almost none reaches: a setTimeout and clearTimeout per
 * connection (a Timeout object, the timer list insert, the libuv clock, unref's bookkeeping)
 * cost ~2 % of the CPU of a login under `pgbench -C`.
 *
 * The clock is perf_hooks' `performance`, imported: the global `performance` is an accessor of
 * Node's on globalThis, and reading it went through its getter at every call (~0.3 µs of the
 * ~0.5 µs a schedule() and cancel() took).
 */
import { performance } from 'node:perf_hooks';

/** A scheduled timeout: pass it to cancel(). */
export interface TimeoutEntry {
  /** @internal */ at: number;
  /** @internal */ fn: (() => void) | null;
  /** @internal */ prev: TimeoutEntry | null;
  /** @internal */ next: TimeoutEntry | null;
  /** @internal */ list: TimeoutList | null;
}

interface TimeoutList {
  readonly ms: number;
  head: TimeoutEntry | null;
  tail: TimeoutEntry | null;
  timer: NodeJS.Timeout | null;
}

/** A set of timeout lists, one per duration; see the file header. */
export class TimeoutLists {
  private readonly lists = new Map<number, TimeoutList>();

  /** Calls `fn` once, `ms` (> 0) milliseconds from now, unless cancelled first. */
  schedule(ms: number, fn: () => void): TimeoutEntry {
    let list = this.lists.get(ms);
    if (list === undefined) this.lists.set(ms, (list = { ms, head: null, tail: null, timer: null }));
    const e: TimeoutEntry = { at: performance.now() + ms, fn, prev: list.tail, next: null, list };
    if (list.tail === null) list.head = e;
    else list.tail.next = e;
    list.tail = e;
    if (list.timer === null) this.arm(list, ms);
    return e;
  }

  /** Cancels `e` (nothing when it already ran or was cancelled). */
  cancel(e: TimeoutEntry): void {
    const list = e.list;
    if (list === null) return;
    unlink(list, e);
  }

  /** Entries waiting (for tests). */
  get size(): number {
    let n = 0;
    for (const l of this.lists.values()) for (let e = l.head; e !== null; e = e.next) n++;
    return n;
  }

  private arm(list: TimeoutList, delay: number): void {
    list.timer = setTimeout(() => this.fire(list), Math.max(1, Math.ceil(delay)));
    list.timer.unref();
  }

  private fire(list: TimeoutList): void {
    list.timer = null;
    const now = performance.now();
    // Node's clock may lag performance.now() by a fraction of a millisecond: that much early is due.
    try {
      while (list.head !== null && list.head.at <= now + 1) {
        const e = list.head;
        const fn = e.fn!;
        unlink(list, e);
        fn();
      }
    } finally {
      if (list.head !== null) this.arm(list, list.head.at - performance.now());
      else this.lists.delete(list.ms);
    }
  }
}

function unlink(list: TimeoutList, e: TimeoutEntry): void {
  if (e.prev === null) list.head = e.next;
  else e.prev.next = e.next;
  if (e.next === null) list.tail = e.prev;
  else e.next.prev = e.prev;
  e.prev = null;
  e.next = null;
  e.list = null;
  e.fn = null;
}
