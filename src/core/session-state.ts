/**
 * Session state that must follow the client: the parameters it SET (replayed on every other node
 * it reads from, and in transaction pooling on every connection it borrows), and what it holds that
 * cannot be replayed (LISTEN, session advisory locks, cursors WITH HOLD, temporary tables).
 *
 * SETs are transactional: a SET inside a transaction only counts once that transaction commits
 * (`stage` then `commit`/`discard`; ROLLBACK TO a savepoint drops what followed the savepoint).
 * The committed state is kept as the last statement text per parameter — replaying the client's
 * own text is exact, and the map stays bounded by the number of distinct parameters, not the
 * number of SETs. `version` changes with every committed change: a connection that applied the
 * current version needs nothing (the common case costs one comparison).
 */
import type { SessionEffect } from '../classify/session-effects';

/** Parameters RESET ALL leaves alone (GUC_NO_RESET_ALL). */
const NOT_RESET_BY_ALL = new Set(['role', 'session_authorization']);

/** What a connection has applied, so that only differences are replayed. */
export interface AppliedState {
  /** Parameter → statement text, as last replayed or executed there; null: unknown (full replay). */
  applied: Map<string, string> | null;
  /** State version the connection matches (for this session), or -1. */
  appliedVersion: number;
  /** The session the version belongs to (transaction pooling shares connections). */
  appliedOwner: unknown;
}

type Change = { readonly kind: 'set'; readonly name: string; readonly text: string } | { readonly kind: 'reset'; readonly name: string } | { readonly kind: 'reset_all' };

/** See the file header. */
export class SessionState {
  private readonly sets = new Map<string, string>();
  /**
   * Transaction pooling: the client's startup parameters as SET statements. They are what a RESET
   * goes back to on this client's own connection, so on a shared one they are replayed like SETs.
   */
  private base: ReadonlyMap<string, string> = NO_BASE;
  version = 0;
  /** Changes made inside the current transaction, not yet committed. */
  private staged: Change[] = [];
  private savepoints: { name: string; at: number }[] = [];

  /** LISTEN channels. */
  readonly listening = new Set<string>();
  /**
   * A session advisory lock may be held: set by any pg_[try_]advisory_lock[_shared] call, cleared
   * only by pg_advisory_unlock_all() or DISCARD ALL (a count per call would be wrong: one statement
   * can lock several keys, locks are re-entrant, an unlock may release nothing).
   */
  advisoryHeld = false;
  /** Cursors declared WITH HOLD. */
  readonly holdCursors = new Set<string>();

  /** The committed value of a parameter as the client set it (lower-cased first argument), or undefined. */
  private readonly values = new Map<string, string | null>();

  /** default_transaction_isolation is serializable: a standby cannot run this session's reads. */
  get serializableDefault(): boolean {
    return this.values.get('default_transaction_isolation') === 'serializable';
  }

  /** Records the effects of a statement the client sent (SETs staged until commit). */
  stage(effects: readonly SessionEffect[]): void {
    for (const e of effects) {
      switch (e.kind) {
        case 'set':
          this.staged.push({ kind: 'set', name: e.name, text: e.text });
          this.stagedValues.set(e.name, e.value);
          break;
        case 'reset':
          this.staged.push({ kind: 'reset', name: e.name });
          this.stagedValues.set(e.name, null);
          break;
        case 'reset_all':
          this.staged.push({ kind: 'reset_all' });
          break;
        case 'discard':
          if (e.what === 'all') {
            this.staged.push({ kind: 'reset_all' }, { kind: 'reset', name: 'role' }, { kind: 'reset', name: 'session_authorization' });
            this.listening.clear();
            this.advisoryHeld = false;
            this.holdCursors.clear();
          }
          break;
        case 'listen':
          this.listening.add(e.channel);
          break;
        case 'unlisten':
          if (e.channel === null) this.listening.clear();
          else this.listening.delete(e.channel);
          break;
        case 'declare_hold':
          this.holdCursors.add(e.name);
          break;
        case 'close_cursor':
          if (e.name === null) this.holdCursors.clear();
          else this.holdCursors.delete(e.name);
          break;
        default:
          break;
      }
    }
  }

  private readonly stagedValues = new Map<string, string | null>();

  /** SAVEPOINT name: staged changes made after it can be rolled back. */
  savepoint(name: string): void {
    this.savepoints.push({ name: name.toLowerCase(), at: this.staged.length });
  }

  /** ROLLBACK TO SAVEPOINT name. */
  rollbackTo(name: string): void {
    const n = name.toLowerCase();
    for (let i = this.savepoints.length - 1; i >= 0; i--) {
      if (this.savepoints[i]!.name === n) {
        this.staged.length = this.savepoints[i]!.at;
        this.savepoints.length = i + 1;
        return;
      }
    }
  }

  /** RELEASE SAVEPOINT name: its changes stay staged. */
  release(name: string): void {
    const n = name.toLowerCase();
    for (let i = this.savepoints.length - 1; i >= 0; i--) {
      if (this.savepoints[i]!.name === n) {
        this.savepoints.length = i;
        return;
      }
    }
  }

  /** True when changes wait for the transaction's end. */
  get pending(): boolean {
    return this.staged.length > 0;
  }

  /** The transaction committed: staged changes become the session's; `conn` (which ran them) follows. */
  commit(conn: AppliedState | null, owner: unknown): void {
    this.savepoints = [];
    if (this.staged.length === 0) return;
    const upToDate = conn !== null && conn.appliedOwner === owner && conn.appliedVersion === this.version;
    for (const c of this.staged) {
      this.apply(this.sets, c);
      if (conn?.applied) this.apply(conn.applied, c);
    }
    for (const [k, v] of this.stagedValues) {
      if (v === null) this.values.delete(k);
      else this.values.set(k, v);
    }
    if (this.staged.some((c) => c.kind === 'reset_all')) {
      for (const k of [...this.values.keys()]) if (!NOT_RESET_BY_ALL.has(k) && !this.sets.has(k)) this.values.delete(k);
    }
    this.staged = [];
    this.stagedValues.clear();
    this.version++;
    if (conn !== null && upToDate) conn.appliedVersion = this.version;
  }

  /** The transaction rolled back: staged changes are dropped. */
  discard(): void {
    this.staged = [];
    this.stagedValues.clear();
    this.savepoints = [];
  }

  private apply(m: Map<string, string>, c: Change): void {
    if (c.kind === 'set') m.set(c.name, c.text);
    else if (c.kind === 'reset') m.delete(c.name);
    else for (const k of [...m.keys()]) if (!NOT_RESET_BY_ALL.has(k)) m.delete(k);
  }

  /** Sets the startup parameters replayed beneath the client's SETs (transaction pooling). */
  setBase(base: ReadonlyMap<string, string>): void {
    this.base = base;
    this.version++;
  }

  /** desired() as of `wantVersion` (it changes only with the version). */
  private want: ReadonlyMap<string, string> | null = null;
  private wantVersion = -1;

  /** What a connection must have for this client: its startup parameters, then its SETs. */
  private desired(): ReadonlyMap<string, string> {
    if (this.want !== null && this.wantVersion === this.version) return this.want;
    let m: ReadonlyMap<string, string> = this.sets;
    // (No SET yet, the usual new session: its startup parameters as they are, no Map built.)
    if (this.base.size > 0 && this.sets.size === 0) m = this.base;
    else if (this.base.size > 0) {
      const merged = new Map(this.base);
      for (const [k, v] of this.sets) merged.set(k, v);
      m = merged;
    }
    this.want = m;
    this.wantVersion = this.version;
    return m;
  }

  /** The search_path this client wants (its SET or startup text; '' = the default): statements resolve names under it. */
  get searchPath(): string {
    return this.sets.get('search_path') ?? this.base.get('search_path') ?? '';
  }

  /** Committed SET texts by parameter (read-only view). */
  get parameters(): ReadonlyMap<string, string> {
    return this.sets;
  }

  /**
   * The statements that bring `conn` to this session's state (empty when it is there already),
   * and marks it as brought there. A connection whose state is unknown gets a full reset first.
   */
  replayFor(conn: AppliedState, owner: unknown): readonly string[] {
    // (Both compared every time: with `&&` a session's first lease, whose owner never matches,
    // never read the version, and its second request ran code optimized without it: a deopt at
    // every client that sends two requests after a thousand that sent one; issue 21 item 5.)
    const sameOwner = conn.appliedOwner === owner;
    const sameVersion = conn.appliedVersion === this.version;
    if (sameOwner && sameVersion) return NOTHING;
    const want = this.desired();
    let applied = conn.applied;
    if (applied !== null && sameEntries(applied, want)) {
      // Transaction pooling, the common case: the connection comes from another client whose
      // settings are the same (same startup parameters, no SET). Nothing to send, and nothing
      // built: this ran on nearly every lease once clients outnumbered the connections, and
      // built two Maps and an array each time.
      conn.appliedVersion = this.version;
      conn.appliedOwner = owner;
      return NOTHING;
    }
    const out: string[] = [];
    if (applied === null) {
      out.push('RESET ALL', 'RESET ROLE', 'RESET SESSION AUTHORIZATION');
      applied = new Map();
    }
    for (const k of applied.keys()) if (!want.has(k)) out.push(resetText(k));
    for (const [k, text] of want) if (applied.get(k) !== text) out.push(text);
    conn.applied = new Map(want);
    conn.appliedVersion = this.version;
    conn.appliedOwner = owner;
    return out;
  }

  /** Something the client relies on lives only on its connection (it cannot be replayed elsewhere). */
  get holdsUnreplayable(): boolean {
    return this.listening.size > 0 || this.advisoryHeld || this.holdCursors.size > 0;
  }
}

const NOTHING: readonly string[] = Object.freeze([]);
/** A session's base settings until setBase(): none (shared; never written, setBase replaces it). */
const NO_BASE: ReadonlyMap<string, string> = new Map();

/** True when `a` and `b` hold the same entries. */
function sameEntries(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  if (a.size !== b.size) return false;
  if (a.size === 0) return true;
  for (const [k, v] of b) if (a.get(k) !== v) return false;
  return true;
}

function resetText(name: string): string {
  if (name === 'role') return 'RESET ROLE';
  if (name === 'session_authorization') return 'RESET SESSION AUTHORIZATION';
  return `RESET ${/^[a-z_][a-z0-9_.]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`}`;
}
