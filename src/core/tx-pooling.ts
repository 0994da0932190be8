/**
 * Transaction pooling policy: what a session holds that cannot follow it to another connection
 * (pins), and the one decision about a connection's fate when its lease ends.
 *
 * Pins match PostgreSQL's truth, failing closed where pgmaitre cannot know it:
 * - LISTEN and cursors WITH HOLD (tracked exactly by session-state.ts);
 * - session advisory locks (SessionState.advisoryHeld): taken by any pg_[try_]advisory_lock[_shared]
 *   call; released only by pg_advisory_unlock_all() or DISCARD ALL (a per-call count is wrong:
 *   one statement can take several keys, a lock is re-entrant, an unlock can release nothing);
 * - temporary relations: from CREATE TEMP until the server says none is left (a probe of
 *   pg_class in pg_my_temp_schema() after a transaction that may have dropped one), or DISCARD;
 * - session state pgmaitre cannot replay: set_config(..., false) (or an is_local it cannot
 *   read), SET/RESET/set_config inside a DO block; cleared only by DISCARD ALL;
 * - SQL PREPARE/EXECUTE/DEALLOCATE whose names could not be rewritten (forced).
 *
 * leaseFate() decides, for every way a lease ends, what becomes of the connection: kept (the
 * session still needs it), given back clean, given back after a reset (DISCARD ALL: it also
 * frees advisory locks, LISTEN, temporary tables and cursors; the connection's statement
 * registry and replayed state are cleared with it), closed, or held until a cancel in flight
 * has reached the server. Every path that ends a lease asks it.
 */
import { TxStatus } from '../protocol/codes';
import type { QueryClass } from '../classify/types';
import { skipFiller } from '../classify/filler';
import type { Link } from './link';
import type { SessionState } from './session-state';

/** What becomes of a leased connection. */
export const Fate = {
  /** The session still needs it (transaction, pipeline, COPY, pin): no lease ends. */
  Keep: 0,
  /** Back to the pool as it is. */
  Clean: 1,
  /** Back to the pool after DISCARD ALL. */
  Reset: 2,
  /** Closed: its protocol state is unknown (a request in flight, a transaction open, COPY). */
  Close: 3,
  /** A cancel for it is on its way: decide again once the server took it. */
  Hold: 4,
} as const;
export type Fate = (typeof Fate)[keyof typeof Fate];

/** What leaseFate reads from the session. */
export interface LeaseSession {
  /** The link in COPY IN (its client frames go straight there), or null. */
  readonly copyLink: Link | null;
  /** After a Flush the session stays on this node until Sync (-1: none). */
  readonly stickyNode: number;
  /** A cancel request for `link`'s backend is on its way. */
  cancelInFlight(link: Link): boolean;
  /** Why the session keeps its connections ('' = it does not): see Pins. */
  pinReason(): string;
}

/**
 * The fate of `link`'s connection. `ending`: the lease must end now (client gone, session
 * failed); otherwise this is the end of a transaction, and a connection the session still needs
 * is kept. `stateLost`: replaying the session's settings there failed (their state is unknown).
 */
export function leaseFate(link: Link, s: LeaseSession, ending: boolean, stateLost = false): Fate {
  const atRest = link.owed === 0 && link.quiet && !link.unsynced && link.txStatus === TxStatus.Idle
    && link.out.length === 0 && link !== s.copyLink && !link.broken;
  if (!ending) {
    // The common case costs these comparisons and one call.
    if (!atRest || s.stickyNode === link.node || s.cancelInFlight(link) || s.pinReason() !== '') return Fate.Keep;
    return Fate.Clean;
  }
  if (s.cancelInFlight(link)) return Fate.Hold;
  if (!atRest) return Fate.Close;
  if (stateLost || s.pinReason() !== '') return Fate.Reset;
  return Fate.Clean;
}

/** Names of the set_config calls in a statement whose is_local pgmaitre can read as true (others pin). */
const SET_CONFIG_CALL = /set_config\s*\(/gi;
const LOCAL_TRUE = /^(?:true|'(?:true|on|t|yes|y|1)'(?:::bool(?:ean)?)?)$/i;

/**
 * Session state a statement changes that pgmaitre cannot replay (it pins, failing closed), or ''.
 * Only looked at for statements that call set_config or start with DO (cheap tests first).
 */
export function untrackedChange(cls: QueryClass, sql: string): string {
  if (cls.functions.includes('set_config') || cls.functions.includes('pg_catalog.set_config')) {
    if (!allSetConfigLocal(sql)) return 'set_config(..., false)';
  }
  if (startsWithDo(sql) && /\b(?:set|reset|set_config)\b/i.test(sql)) {
    return 'SET inside a DO block';
  }
  return '';
}

/** True when every set_config( call in `sql` has a literal true as its third argument. */
export function allSetConfigLocal(sql: string): boolean {
  SET_CONFIG_CALL.lastIndex = 0;
  for (let m = SET_CONFIG_CALL.exec(sql); m !== null; m = SET_CONFIG_CALL.exec(sql)) {
    const args = callArguments(sql, m.index + m[0].length);
    if (args === null || args.length !== 3 || !LOCAL_TRUE.test(args[2]!.trim())) return false;
  }
  return true;
}

/** The top-level arguments of a call whose '(' ends just before `from`; null when unbalanced. */
function callArguments(sql: string, from: number): string[] | null {
  const out: string[] = [];
  let depth = 0;
  let start = from;
  for (let i = from; i < sql.length; i++) {
    const c = sql[i]!;
    if (c === "'" || c === '"') {
      const close = sql.indexOf(c, i + 1);
      if (close < 0) return null;
      i = close;
      while (sql[i + 1] === c) i = sql.indexOf(c, i + 2) < 0 ? sql.length : sql.indexOf(c, i + 2);
    } else if (c === '(') {
      depth++;
    } else if (c === ')') {
      if (depth === 0) {
        out.push(sql.slice(start, i));
        return out;
      }
      depth--;
    } else if (c === ',' && depth === 0) {
      out.push(sql.slice(start, i));
      start = i + 1;
    }
  }
  return null;
}

function startsWithDo(sql: string): boolean {
  const i = skipFiller(sql);
  return (sql.charCodeAt(i) | 0x20) === 0x64 && (sql.charCodeAt(i + 1) | 0x20) === 0x6f && !/[\w$]/.test(sql[i + 2] ?? ' ');
}

/** The probe that tells whether any temporary relation of this session is left (a row: yes). */
export const TEMP_PROBE = "SELECT 1 FROM pg_catalog.pg_class WHERE relnamespace = pg_catalog.pg_my_temp_schema() AND relpersistence = 't' LIMIT 1";

/** See the file header: what keeps a transaction-pooled session on its connections. */
export class Pins {
  /** A reason no state change lifts except DISCARD ALL (names that could not be rewritten, untracked state). */
  forced = '';
  /** A temporary relation may exist. */
  temp = false;
  /** Advanced at every CREATE TEMP: a probe sent before it cannot lift the pin. */
  tempGeneration = 0;
  /** A statement that may have dropped the temporary relations ran since the last probe. */
  tempProbeDue = false;

  /** A statement was sent (transaction pooling): the pins it sets. */
  noteStatement(cls: QueryClass, sql: string): void {
    if (cls.flags.createsTemp) {
      this.temp = true;
      this.tempGeneration++;
      if (/\bdrop\b/i.test(sql)) this.tempProbeDue = true; // ON COMMIT DROP
    } else if (this.temp && (cls.kind === 'ddl' || cls.kind === 'temp_table' || cls.kind === 'commit' || cls.kind === 'rollback' || cls.kind === 'unknown')) {
      this.tempProbeDue = true;
    }
    if (cls.functions.length > 0 || cls.kind === 'write' || cls.kind === 'utility' || cls.kind === 'unknown') {
      const why = untrackedChange(cls, sql);
      if (why !== '' && this.forced === '') this.forced = why;
    }
  }

  /** DISCARD ALL succeeded: nothing of the session is left on the connection. */
  discarded(): void {
    this.forced = '';
    this.temp = false;
    this.tempProbeDue = false;
  }

  /** DISCARD TEMP. */
  tempDiscarded(): void {
    this.temp = false;
    this.tempProbeDue = false;
  }
}

/** Why a session keeps its connections in transaction pooling ('' when it does not): its pins, then what its state holds. */
export function pinReasonOf(p: Pins, st: SessionState): string {
  if (p.forced !== '') return p.forced;
  if (st.listening.size > 0) return 'LISTEN';
  if (st.advisoryHeld) return 'a session advisory lock';
  if (st.holdCursors.size > 0) return 'a cursor WITH HOLD';
  if (p.temp) return 'a temporary table';
  return '';
}
