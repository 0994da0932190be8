/**
 * Load balancing on the instance's figures (worker_processes > 1). Each worker picks the read node
 * of its own sessions; the algorithms that look at the nodes' load would otherwise see only that
 * worker's share of it:
 *  - least_latency: every worker reports, every LB_REPORT_MS, the sum and count of the latencies it
 *    observed per node; the supervisor merges them into one running mean per node (the same
 *    exponentially weighted mean one process keeps, admin/latency.ts, advanced by the batch's
 *    count) and pushes it to every worker, which balances on it: every worker sees the same
 *    "fastest node", measured on all the instance's queries.
 *  - least_connections: every worker reports how many sessions it holds per node; each worker is
 *    pushed the sum of the *other* workers' counts and adds its own live count: the instance's
 *    count, the other workers' part at most one report period old.
 * weighted and round_robin need nothing shared: a weighted random pick with the same weights in
 * every worker has the instance's distribution, and each worker's smooth round robin keeps every
 * window of sum(weights) picks in proportion, so their sum does too.
 * Pure (time is passed in): unit-tested.
 */
import { ALPHA, RECENT_MS } from '../admin/latency';

/** How often workers report and the supervisor pushes (ms). */
export const LB_REPORT_MS = 250;

/** One worker's report: latencies [node, sum s, count] since its last one; sessions [node, count] now (null: unchanged). */
export interface LbReport {
  readonly latency: readonly (readonly [number, number, number])[];
  readonly active: readonly (readonly [number, number])[] | null;
}

/** See the file header. */
export class InstanceLb {
  private readonly means = new Map<number, { mean: number; at: number }>();
  private readonly active = new Map<number, Map<number, number>>();
  private dirty = false;

  /** Merges worker `worker`'s report received at `now` (ms). */
  report(worker: number, r: LbReport, now: number): void {
    for (const [node, sum, count] of r.latency) {
      if (count <= 0) continue;
      const m = sum / count;
      const e = this.means.get(node);
      if (e === undefined || now - e.at > RECENT_MS) {
        this.means.set(node, { mean: m, at: now });
      } else {
        // `count` observations of mean m, folded into the running mean as one process folds them one by one.
        const keep = (1 - ALPHA) ** count;
        e.mean = e.mean * keep + m * (1 - keep);
        e.at = now;
      }
      this.dirty = true;
    }
    if (r.active !== null) {
      const next = new Map(r.active.filter(([, n]) => n > 0));
      const prev = this.active.get(worker);
      if (prev === undefined || prev.size !== next.size || [...next].some(([k, v]) => prev.get(k) !== v)) this.dirty = true;
      this.active.set(worker, next);
    }
  }

  /** A worker gone: its sessions are gone too. */
  forget(worker: number): void {
    if (this.active.delete(worker)) this.dirty = true;
  }

  /** True once since the last call when something changed (the supervisor pushes then). */
  takeDirty(): boolean {
    const d = this.dirty;
    this.dirty = false;
    return d;
  }

  /** The instance's means: [node, mean s, age ms of the newest observation], recent ones only. */
  latencies(now: number): [number, number, number][] {
    const out: [number, number, number][] = [];
    for (const [node, e] of this.means) if (now - e.at <= RECENT_MS) out.push([node, e.mean, now - e.at]);
    return out;
  }

  /** Sessions per node held by every worker but `worker`. */
  othersActive(worker: number): [number, number][] {
    const sum = new Map<number, number>();
    for (const [w, m] of this.active) {
      if (w === worker) continue;
      for (const [node, n] of m) sum.set(node, (sum.get(node) ?? 0) + n);
    }
    return [...sum];
  }
}
