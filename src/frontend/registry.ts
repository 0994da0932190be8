/**
 * Live client sessions by the pid their BackendKeyData carries, for CancelRequest, admin commands
 * and shutdown. A client's pid is its login connection's backend pid (so pg_backend_pid() and
 * NOTIFY pids agree with it); its secret is pgmaitre's own, so a cancel comes through pgmaitre,
 * which forwards it to whichever backend runs the client's query. Two sessions may share a pid
 * (logins to different nodes when there was no primary): the secret tells them apart.
 */
import { randomFillSync, randomInt } from 'node:crypto';

/**
 * Secrets for BackendKeyData, drawn from a pool of cryptographically random bytes filled 4 KiB at
 * a time (1 024 secrets per fill): as unpredictable as randomInt(), whose rejection sampling and
 * argument checks cost more than the rest of a `pgbench -C` login's key. `fill` is the source
 * (randomFillSync; a test counts its calls).
 */
export class SecretPool {
  private readonly bytes: Buffer;
  private at: number;
  fills = 0;

  constructor(size = 4096, private readonly fill: (b: Buffer) => void = (b) => { randomFillSync(b); }) {
    this.bytes = Buffer.allocUnsafe(size - (size % 4));
    this.at = this.bytes.length;
  }

  /** A secret in 1..2^31-1 (uniform but for the one value 0 mapped to 1, as 31 random bits). */
  next(): number {
    if (this.at >= this.bytes.length) {
      this.fill(this.bytes);
      this.fills++;
      this.at = 0;
    }
    const v = this.bytes.readUInt32LE(this.at) >>> 1;
    this.at += 4;
    return v === 0 ? 1 : v;
  }
}

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
  /** One session, or the few that share a pid (no array for the usual single one: one less allocation per login). */
  private readonly byPid = new Map<number, S | S[]>();
  private count = 0;
  private nextPid = randomInt(10_000, 1_000_000);
  /** worker_processes > 1: this worker issues pids ≡ pidIndex (mod pidStride), so none repeats in another. */
  private pidStride = 1;
  private pidIndex = 0;
  /**
   * worker_processes > 1: a CancelRequest for no session here goes to the other workers
   * (src/workers/), since the client that sends it may land on any of them.
   */
  onMiss: ((pid: number, secret: number) => void) | null = null;

  /** Makes issued pids disjoint between `count` workers (this is worker `index`). */
  partitionPids(index: number, count: number): void {
    this.pidStride = count;
    this.pidIndex = index;
    this.nextPid -= this.nextPid % count;
  }

  /**
   * A pid for a client with no backend of its own (transaction pooling: its queries run on shared
   * connections), unique among live sessions.
   */
  issuePid(): number {
    let pid: number;
    do {
      this.nextPid = this.nextPid >= 0x7ffffe00 ? 10_000 : this.nextPid + this.pidStride;
      pid = this.nextPid - (this.nextPid % this.pidStride) + this.pidIndex;
    } while (this.byPid.has(pid));
    return pid;
  }

  /** Where secrets come from (cryptographically random, pooled: see SecretPool). */
  readonly secrets = new SecretPool();

  /** A fresh random secret for a session's BackendKeyData. */
  issueSecret(): number {
    return this.secrets.next();
  }

  add(s: S): void {
    const cur = this.byPid.get(s.pid);
    if (cur === undefined) this.byPid.set(s.pid, s);
    else if (Array.isArray(cur)) cur.push(s);
    else this.byPid.set(s.pid, [cur, s]);
    this.count++;
  }

  delete(s: S): void {
    const cur = this.byPid.get(s.pid);
    if (cur === s) {
      this.byPid.delete(s.pid);
      this.count--;
      return;
    }
    if (!Array.isArray(cur)) return;
    const i = cur.indexOf(s);
    if (i < 0) return;
    cur.splice(i, 1);
    if (cur.length === 1) this.byPid.set(s.pid, cur[0]!);
    this.count--;
  }

  /** Handles a CancelRequest: true when the key matched a live session. */
  cancel(pid: number, secret: number): boolean {
    if (this.cancelLocal(pid, secret)) return true;
    this.onMiss?.(pid, secret);
    return false;
  }

  /** A cancel for this process's sessions only (one another worker forwarded). */
  cancelLocal(pid: number, secret: number): boolean {
    const cur = this.byPid.get(pid);
    const s = cur === undefined ? undefined : Array.isArray(cur) ? cur.find((x) => x.secret === secret) : cur.secret === secret ? cur : undefined;
    if (s === undefined) return false;
    s.cancel();
    return true;
  }

  get size(): number {
    return this.count;
  }

  /** All live sessions (read-only snapshot). */
  list(): S[] {
    return [...this.byPid.values()].flat() as S[];
  }
}
