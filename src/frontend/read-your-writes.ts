/**
 * read_your_writes: after a session's write commits, its reads go to a standby only once that
 * standby has replayed at least the primary's WAL position observed after the commit.
 *
 * The commit LSN is fetched on a side connection right after the primary's ReadyForQuery 'I'
 * (a position read after the commit covers it); standbys' replay positions are cached lower
 * bounds refreshed on demand. Until both are known, reads go to the primary.
 */
import type { LsnProbe } from '../backend/lsn-probe';

/** "Never fresh enough": when the commit LSN could not be read, reads stay on the primary. */
const UNKNOWN_LSN = BigInt(Number.MAX_SAFE_INTEGER) * 1024n;

/** One session's read-your-writes state; see the file header. */
export class ReadYourWrites {
  /** A write went to the primary and has not been confirmed committed yet. */
  private writeSent = false;
  /** The commit LSN is being fetched. */
  private pending = false;
  /** The LSN a standby must have replayed before it may serve this session's reads. */
  private needed = 0n;

  constructor(private readonly lsn: () => LsnProbe | null) {}

  /** A statement that writes was sent to the primary. */
  noteWrite(): void {
    this.writeSent = true;
  }

  /** The primary said ReadyForQuery 'I' with nothing outstanding: fetch the commit's LSN. */
  onPrimaryIdle(primary: number): void {
    if (!this.writeSent) return;
    this.writeSent = false;
    const lsn = this.lsn();
    if (lsn === null) return;
    this.pending = true;
    lsn.currentLsnAfter(primary, Date.now()).then((l) => {
      if (l > this.needed) this.needed = l;
      this.pending = false;
    }, () => {
      this.needed = UNKNOWN_LSN;
      this.pending = false;
    });
  }

  /** May a read go to standby `node` without missing this session's own writes? */
  freshEnough(node: number): boolean {
    if (this.pending || this.writeSent) return false;
    if (this.needed === 0n) return true;
    const lsn = this.lsn();
    const replayed = lsn?.replayLsn(node) ?? null;
    if (replayed !== null && replayed >= this.needed) return true;
    void lsn?.refreshReplay(node);
    return false;
  }
}
