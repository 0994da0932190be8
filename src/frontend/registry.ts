/**
 * Live client sessions by the pid their BackendKeyData carries, for CancelRequest, admin commands
 * and shutdown. A client's pid is its login connection's backend pid (so pg_backend_pid() and
 * NOTIFY pids agree with it); its secret is pgmaitre's own, so a cancel comes through pgmaitre,
 * which forwards it to whichever backend runs the client's query. Two sessions may share a pid
 * (logins to different nodes when there was no primary): the secret tells them apart.
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
  private readonly byPid = new Map<number, S[]>();
  private count = 0;
  private nextPid = randomInt(10_000, 1_000_000);

  /**
   * A pid for a client with no backend of its own (transaction pooling: its queries run on shared
   * connections), unique among live sessions.
   */
  issuePid(): number {
    do {
      this.nextPid = this.nextPid >= 0x7ffffff0 ? 10_000 : this.nextPid + 1;
    } while (this.byPid.has(this.nextPid));
    return this.nextPid;
  }

  /** A fresh random secret for a session's BackendKeyData. */
  issueSecret(): number {
    return randomInt(1, 0x7fffffff);
  }

  add(s: S): void {
    const list = this.byPid.get(s.pid);
    if (list === undefined) this.byPid.set(s.pid, [s]);
    else list.push(s);
    this.count++;
  }

  delete(s: S): void {
    const list = this.byPid.get(s.pid);
    const i = list?.indexOf(s) ?? -1;
    if (list === undefined || i < 0) return;
    list.splice(i, 1);
    if (list.length === 0) this.byPid.delete(s.pid);
    this.count--;
  }

  /** Handles a CancelRequest: true when the key matched a live session. */
  cancel(pid: number, secret: number): boolean {
    const s = this.byPid.get(pid)?.find((x) => x.secret === secret);
    if (s === undefined) return false;
    s.cancel();
    return true;
  }

  get size(): number {
    return this.count;
  }

  /** All live sessions (read-only snapshot). */
  list(): S[] {
    return [...this.byPid.values()].flat();
  }
}
