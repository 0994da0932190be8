/**
 * Live client sessions by their pgmaitre-issued process id, for CancelRequest, admin commands
 * and shutdown. Each client gets its own (pid, secret) in BackendKeyData; the real backend's
 * key stays private to pgmaitre.
 */
import { randomInt } from 'node:crypto';

/** What the registry needs from a session. */
export interface RegisteredSession {
  readonly pid: number;
  readonly secret: number;
  /** Forwards a cancel to whatever backend runs this session's query. */
  cancel(): void;
  /** Ends the session with an error (shutdown). */
  terminate(reason: 'shutdown'): void;
}

/** Sessions by pid; see the file header. */
export class SessionRegistry<S extends RegisteredSession = RegisteredSession> {
  private readonly byPid = new Map<number, S>();
  private nextPid = randomInt(10_000, 1_000_000);

  /** Issues a fresh (pid, secret) pair. Pids are unique among live sessions. */
  issueKey(): { pid: number; secret: number } {
    do {
      this.nextPid = this.nextPid >= 0x7ffffff0 ? 10_000 : this.nextPid + 1;
    } while (this.byPid.has(this.nextPid));
    return { pid: this.nextPid, secret: randomInt(1, 0x7fffffff) };
  }

  add(s: S): void {
    this.byPid.set(s.pid, s);
  }

  delete(s: S): void {
    if (this.byPid.get(s.pid) === s) this.byPid.delete(s.pid);
  }

  /** Handles a CancelRequest: true when the key matched a live session. */
  cancel(pid: number, secret: number): boolean {
    const s = this.byPid.get(pid);
    if (s === undefined || s.secret !== secret) return false;
    s.cancel();
    return true;
  }

  get size(): number {
    return this.byPid.size;
  }

  /** All live sessions (read-only snapshot). */
  list(): S[] {
    return [...this.byPid.values()];
  }
}
