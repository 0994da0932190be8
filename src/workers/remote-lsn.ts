/**
 * A worker's WAL positions for read_your_writes (core/read-your-writes.ts' LsnSource), asked of
 * the supervisor, which runs the instance's one LsnProbe (backend/lsn-probe.ts): one side
 * connection per node for the whole instance, one replay-position query at a time per standby
 * whichever worker wants it, and every replay position the supervisor learns is pushed to every
 * worker at once (a session in another worker reads it without asking).
 *
 * Exactness is the probe's: a replay position only ever grows (kept as the highest seen), the
 * primary's position answers a query sent at or after the commit (the same clock: one machine).
 */
import type { LsnSource } from '../core/read-your-writes';

/** A refresh the supervisor does not answer within this long ends (reads stay on the primary meanwhile). */
const REFRESH_TIMEOUT_MS = 5000;

/** See the file header. */
export class RemoteLsn implements LsnSource {
  private readonly replay = new Map<number, bigint>();
  private readonly refreshing = new Map<number, { done: () => void }>();

  constructor(
    private readonly askReplay: (node: number) => void,
    private readonly askCurrent: (node: number, after: number) => Promise<bigint>,
  ) {}

  currentLsnAfter(nodeId: number, after: number): Promise<bigint> {
    return this.askCurrent(nodeId, after);
  }

  replayLsn(nodeId: number): bigint | null {
    return this.replay.get(nodeId) ?? null;
  }

  refreshReplay(nodeId: number): Promise<void> {
    if (this.refreshing.has(nodeId)) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => entry.done(), REFRESH_TIMEOUT_MS);
      const entry = { done: () => { clearTimeout(timer); this.refreshing.delete(nodeId); resolve(); } };
      this.refreshing.set(nodeId, entry);
      this.askReplay(nodeId);
    });
  }

  /** The supervisor's push: what a standby has replayed (null: its query failed). */
  apply(nodeId: number, lsn: bigint | null): void {
    if (lsn !== null) {
      const cur = this.replay.get(nodeId);
      if (cur === undefined || lsn > cur) this.replay.set(nodeId, lsn);
    }
    this.refreshing.get(nodeId)?.done();
  }

  async close(): Promise<void> {
    for (const e of [...this.refreshing.values()]) e.done();
  }
}
