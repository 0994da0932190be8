/**
 * Slowing down password guessing: a constant delay before every "authentication failed", and a
 * per-address limit on failures.
 *
 * Delay: every failed client authentication (wrong password, unknown user — which goes through a
 * mock exchange, see client-auth.ts — or a wrong SCRAM proof) waits auth_failure_delay ms before
 * the FATAL is sent, so the answer's timing tells nothing about whether the user exists, and a
 * single connection can try at most one password per delay.
 *
 * Limit: when one client address has had auth_failure_limit failures within the last
 * auth_failure_window seconds, its further logins are refused at once with 28000 ("too many
 * authentication failures"), before any slot is taken or password read, until enough of those
 * failures age out of the window. Successful logins do not reset the count (a guesser may own
 * one valid account). Memory is bounded: at most MAX_TRACKED addresses, oldest evicted first.
 */

const MAX_TRACKED = 10_000;

/** The settings the guard reads (live: a reload applies at once). */
export interface AuthGuardSettings {
  readonly auth_failure_delay: number;
  readonly auth_failure_limit: number;
  readonly auth_failure_window: number;
}

/** Failure bookkeeping per client address; see the file header. */
export class AuthGuard {
  /** Address → times (ms) of recent failures, oldest first. Map order = insertion order (LRU-ish). */
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly settings: () => AuthGuardSettings, private readonly now: () => number = Date.now) {}

  /** Seconds until `address` may try again, or 0 when it is not blocked. */
  blockedFor(address: string): number {
    const limit = this.settings().auth_failure_limit;
    if (limit <= 0) return 0;
    const times = this.recent(address);
    if (times.length < limit) return 0;
    const windowMs = this.settings().auth_failure_window * 1000;
    // Blocked until the failure that makes the count reach the limit ages out.
    const freeAt = times[times.length - limit]! + windowMs;
    return Math.max(1, Math.ceil((freeAt - this.now()) / 1000));
  }

  /** Records a failure from `address`; resolves after auth_failure_delay. */
  async failed(address: string): Promise<void> {
    const times = this.recent(address);
    times.push(this.now());
    this.failures.delete(address);
    this.failures.set(address, times);
    if (this.failures.size > MAX_TRACKED) {
      const oldest = this.failures.keys().next().value;
      if (oldest !== undefined) this.failures.delete(oldest);
    }
    const delay = this.settings().auth_failure_delay;
    if (delay > 0) await new Promise<void>((resolve) => setTimeout(resolve, delay));
  }

  /** Addresses currently tracked (for tests and stats). */
  get tracked(): number {
    return this.failures.size;
  }

  private recent(address: string): number[] {
    const times = this.failures.get(address);
    if (times === undefined) return [];
    const cutoff = this.now() - this.settings().auth_failure_window * 1000;
    let drop = 0;
    while (drop < times.length && times[drop]! <= cutoff) drop++;
    if (drop > 0) times.splice(0, drop);
    if (times.length === 0) this.failures.delete(address);
    return times;
  }
}
