/**
 * read_your_writes: after a session's write commits, its reads go to a standby only once that
 * standby has replayed at least the primary's WAL position observed after the commit.
 *
 * Each commit of a write gets a sequence number. The primary's position is fetched lazily — only
 * when a read would like to go to a standby — on a side connection, by a query sent after the
 * commit (a position read after the commit covers it), so a workload that never reads outside its
 * transactions (pgbench tpcb-like) never pays for it. A position answers for the commits made
 * before its query was sent: a second commit made while the first one's position is being fetched
 * waits for a fetch of its own. Standbys' replay positions are cached lower bounds refreshed on
 * demand. Until a standby is known to be fresh enough, reads go to the primary; a failed fetch is
 * retried after a second, never given up for good.
 */

/** What the position lookups need (backend/lsn-probe.ts implements it). */
export interface LsnSource {
  /** pg_current_wal_lsn() of `nodeId` from a query sent at or after `after` (ms). */
  currentLsnAfter(nodeId: number, after: number): Promise<bigint>;
  /** Highest replay position known for a standby, or null. */
  replayLsn(nodeId: number): bigint | null;
  /** Asks a standby how far it has replayed (errors are ignored). */
  refreshReplay(nodeId: number): Promise<void>;
}

const RETRY_AFTER_MS = 1000;

/** One session's read-your-writes state; see the file header. */
export class ReadYourWrites {
  /** A write went to the primary and has not been seen committed yet. */
  private writeSent = false;
  /** Commits of writes so far, and when the last one was seen. */
  private commits = 0;
  private lastCommitAt = 0;
  private primary = -1;
  /** The commits `needed` covers, and the position a standby must have replayed. */
  private covered = 0;
  private needed = 0n;
  private fetching = false;
  private failedAt = 0;

  constructor(private readonly source: () => LsnSource | null, private readonly now: () => number = Date.now) {}

  /** A statement that writes was sent to the primary. */
  noteWrite(): void {
    this.writeSent = true;
  }

  /** The primary said ReadyForQuery 'I' with nothing outstanding: the session's writes are committed. */
  onPrimaryIdle(primary: number): void {
    if (!this.writeSent) return;
    this.writeSent = false;
    this.commits++;
    this.lastCommitAt = this.now();
    this.primary = primary;
  }

  /**
   * No write of this session was sent or committed: freshEnough() is true for every node, and
   * asks nothing (SessionCore.quickRefusal asks this instead).
   */
  get nothingWritten(): boolean {
    return !this.writeSent && this.commits === 0;
  }

  /** May a read go to standby `node` without missing this session's own writes? */
  freshEnough(node: number): boolean {
    if (this.writeSent) return false;
    if (this.covered < this.commits) {
      this.fetch();
      return false;
    }
    if (this.needed === 0n) return true;
    const src = this.source();
    const replayed = src?.replayLsn(node) ?? null;
    if (replayed !== null && replayed >= this.needed) return true;
    void src?.refreshReplay(node);
    return false;
  }

  private fetch(): void {
    if (this.fetching || this.now() - this.failedAt < RETRY_AFTER_MS) return;
    const src = this.source();
    if (src === null) return;
    this.fetching = true;
    const upTo = this.commits;
    src.currentLsnAfter(this.primary, this.lastCommitAt).then((l) => {
      if (l > this.needed) this.needed = l;
      if (upTo > this.covered) this.covered = upTo;
      this.fetching = false;
    }, () => {
      this.failedAt = this.now();
      this.fetching = false;
    });
  }
}
