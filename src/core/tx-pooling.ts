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
import { Buffer } from 'node:buffer';
import { TxStatus } from '../protocol/codes';
import type { QueryClass } from '../classify/types';
import { skipFiller } from '../classify/filler';
import { firstKeyword, K, lex, Tok, TokenBuffer } from '../classify/lexer';
import { SAFE_FUNCTIONS, WRITER_FUNCTIONS } from '../classify/functions';
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

/**
 * A function call whose body transaction pooling must read (bodyChangesSession, through the
 * catalog lookup): anything but the built-ins the classifier knows (their effects are tracked
 * by name) and pg_catalog's.
 */
export function userFunction(fn: string): boolean {
  return !fn.startsWith('pg_catalog.') && !SAFE_FUNCTIONS.has(fn) && !WRITER_FUNCTIONS.has(fn);
}

/** Where a statement may start in a function body: its start, after `;`, a plpgsql block keyword, a comment, or a quote (EXECUTE 'SET ...'). */
const STMT_START = String.raw`(?:^|[;']|\b(?:begin|then|else|loop)\b|--[^\n]*\n|\*/)\s*`;
const BODY_CHECKS: readonly (readonly [RegExp, string])[] = [
  [new RegExp(STMT_START + String.raw`(?:set|reset)\b(?!\s+(?:local|transaction|constraints)\b)`, 'i'), 'SET'],
  [new RegExp(STMT_START + String.raw`prepare\s+(?!transaction\b)`, 'i'), 'PREPARE'],
  [new RegExp(STMT_START + String.raw`(?:deallocate|listen|unlisten|load|discard)\b`, 'i'), 'LISTEN, LOAD, DEALLOCATE or DISCARD'],
  [/\bpg_(?:try_)?advisory_lock(?:_shared)?\b/i, 'a session advisory lock'],
  [/\b(?:create\s+(?:or\s+replace\s+)?(?:(?:global|local)\s+)?|into\s+)(?:temp|temporary)\b/i, 'CREATE TEMP'],
  [/\bwith\s+hold\b/i, 'a cursor WITH HOLD'],
  [/\bexecute\s+(?!'|e'|format\s*\()/i, 'dynamic SQL'],
];

/**
 * Session state a function body may change that pgmaitre cannot follow (it pins, failing
 * closed), or ''. `body`: pg_proc.prosrc of a SQL or PL/pgSQL function, or null for another
 * language (unknown: pins). A cheap textual check: SET/RESET (not LOCAL), set_config(..., false),
 * PREPARE, LISTEN/UNLISTEN, LOAD, session advisory locks, CREATE TEMP, cursors WITH HOLD, and
 * EXECUTE of a string it cannot read. Functions the body calls are not followed.
 */
export function bodyChangesSession(body: string | null): string {
  if (body === null) return 'a function in a language pgmaitre cannot read';
  if (/set_config/i.test(body) && !allSetConfigLocal(body)) return 'a function that calls set_config(..., false)';
  for (const [re, what] of BODY_CHECKS) if (re.test(body)) return `a function that runs ${what}`;
  return '';
}

/** The keyword of `sql` starting at `i` (letters only, lower case), and where it ends. */
function keywordAt(sql: string, i: number): [string, number] {
  let j = i;
  while (j < sql.length && /[A-Za-z_]/.test(sql[j]!)) j++;
  return [sql.slice(i, j).toLowerCase(), j];
}

/**
 * True when PostgreSQL parses `sql` even in an aborted transaction (postgres.c: an empty query,
 * or IsTransactionExitStmt: COMMIT/END, ROLLBACK/ABORT, ROLLBACK TO [SAVEPOINT], PREPARE
 * TRANSACTION; not COMMIT/ROLLBACK PREPARED). Every other Parse there is refused with 25P02.
 */
export function parsedWhenAborted(sql: string): boolean {
  let i = skipFiller(sql);
  while (sql[i] === ';') i = skipFiller(sql, i + 1);
  if (i >= sql.length) return true;
  const [first, end] = keywordAt(sql, i);
  const [second] = keywordAt(sql, skipFiller(sql, end));
  switch (first) {
    case 'end': case 'abort': return true;
    case 'commit': case 'rollback': return second !== 'prepared';
    case 'prepare': return second === 'transaction';
    default: return false;
  }
}

const TX_MODE = /\s*(?:,\s*)?(?:(isolation)\s+level\s+(?:serializable|repeatable\s+read|read\s+committed|read\s+uncommitted)|read\s+(only|write)|(?:not\s+)?(deferrable))\b/iy;

/**
 * The CommandComplete tag of a BEGIN whose answer transaction pooling may give before it has a
 * connection (the BEGIN is sent later, in front of the transaction's first statement), or null.
 * Only forms PostgreSQL always accepts outside a transaction: BEGIN [WORK | TRANSACTION] or START
 * TRANSACTION, with at most one isolation level, one READ ONLY/WRITE and one [NOT] DEFERRABLE;
 * anything else (comments inside, other statements) is sent at once, for PostgreSQL to judge.
 */
export function deferrableBegin(sql: string): string | null {
  const m = /^(?:(begin)(?:\s+(?:work|transaction))?|start\s+transaction)\b/i.exec(sql.slice(skipFiller(sql)));
  if (m === null) return null;
  let i = skipFiller(sql) + m[0].length;
  const seen = new Set<string>();
  for (;;) {
    TX_MODE.lastIndex = i;
    const t = TX_MODE.exec(sql);
    if (t === null) break;
    const kind = t[1] !== undefined ? 'iso' : t[2] !== undefined ? 'rw' : 'def';
    if (seen.has(kind) || (seen.size === 0 && /^\s*,/.test(t[0]))) return null;
    seen.add(kind);
    i = TX_MODE.lastIndex;
  }
  return /^\s*;?\s*$/.test(sql.slice(i)) ? (m[1] !== undefined ? 'BEGIN' : 'START TRANSACTION') : null;
}

/** The tag of a plain COMMIT/END or ROLLBACK/ABORT (no CHAIN, no PREPARED, no savepoint), or null. */
export function plainTransactionEnd(sql: string): 'COMMIT' | 'ROLLBACK' | null {
  const m = /^(commit|end|rollback|abort)(?:\s+(?:work|transaction))?\s*;?\s*$/i.exec(sql.slice(skipFiller(sql)));
  if (m === null) return null;
  const k = m[1]!.toLowerCase();
  return k === 'commit' || k === 'end' ? 'COMMIT' : 'ROLLBACK';
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

/** Statements whose `$n` references count as parameters (analysed with the Parse's parameters). */
const PARAM_STATEMENTS = new Set(['select', 'with', 'values', 'table', 'insert', 'update', 'delete', 'merge', 'explain', 'call', 'declare']);
const paramTokens = new TokenBuffer();

/**
 * The number of parameters PostgreSQL gives the statement of Parse frame `frame` (SQL `sql`): the
 * declared types, extended to the highest `$n` the statement refers to (parse analysis adds the
 * types it infers). -1 when pgmaitre cannot be sure (an unterminated literal; `$n` inside a
 * utility statement, where it may belong to a nested body).
 */
export function statementParameters(frame: Buffer, sql: string): number {
  const nameEnd = frame.indexOf(0, 5);
  const sqlEnd = nameEnd < 0 ? -1 : frame.indexOf(0, nameEnd + 1);
  if (sqlEnd < 0 || sqlEnd + 3 > frame.length) return -1;
  const declared = frame.readInt16BE(sqlEnd + 1);
  if (declared < 0) return -1;
  let highest = 0;
  try {
    if (!lex(sql, paramTokens)) return -1;
    for (let i = 0; i < paramTokens.count; i++) {
      if (paramTokens.kind[i] !== Tok.Param) continue;
      const n = Number(sql.slice(paramTokens.start[i]! + 1, paramTokens.end[i]));
      if (!Number.isInteger(n) || n < 1) return -1;
      if (n > highest) highest = n;
    }
  } finally {
    paramTokens.reset(''); // (the SQL text must not stay reachable)
  }
  if (highest > 0 && !PARAM_STATEMENTS.has(firstKeyword(sql))) return -1;
  return Math.max(declared, highest);
}

/**
 * PostgreSQL's answer (postgres.c exec_bind_message) to Bind frame `bind` (data[start, end)) of
 * statement `name`, which has `params` parameters and is not a transaction-exit statement, in an
 * aborted transaction: after the statement is found, the parameter formats and count are
 * checked (08P01) before the aborted state (25P02). Null when the Bind cannot be read.
 */
export function abortedBindError(data: Buffer, start: number, end: number, name: string, params: number): { code: string; message: string } | null {
  const portalEnd = data.indexOf(0, start + 5);
  const stmtEnd = portalEnd < 0 ? -1 : data.indexOf(0, portalEnd + 1);
  if (stmtEnd < 0 || stmtEnd >= end) return null;
  let pos = stmtEnd + 1;
  if (pos + 2 > end) return null;
  const formats = data.readUInt16BE(pos);
  pos += 2 + 2 * formats;
  if (pos + 2 > end) return null;
  const supplied = data.readUInt16BE(pos);
  if (formats > 1 && formats !== supplied) {
    return { code: '08P01', message: `bind message has ${formats} parameter formats but ${supplied} parameters` };
  }
  if (supplied !== params) {
    return { code: '08P01', message: `bind message supplies ${supplied} parameters, but prepared statement "${name}" requires ${params}` };
  }
  return { code: '25P02', message: 'current transaction is aborted, commands ignored until end of transaction block' };
}

const ROW_FIRST = new Set([K.select, K.values, K.table, K.show, K.explain]);
const DML_FIRST = new Set([K.insert, K.update, K.delete]);

/**
 * PostgreSQL's answer to a Describe of the (non-exit) statement of Parse frame `frame` in an
 * aborted transaction (exec_describe_statement_message): a statement that returns rows is refused
 * (25P02: its row description needs the catalogs); one that returns none is described, its
 * parameter types and NoData. 'rows' or the ParameterDescription and NoData bytes, or null when
 * pgmaitre cannot be sure (what it returns, or a parameter type the server inferred).
 */
export function abortedDescribe(frame: Buffer, sql: string): 'rows' | Buffer | null {
  let first = 0;
  let returning = false;
  try {
    if (!lex(sql, paramTokens)) return null;
    first = paramTokens.kwAt(0);
    for (let i = 0; i < paramTokens.count; i++) {
      const k = paramTokens.kwAt(i);
      if (k === K.returning) returning = true;
      // (SELECT INTO creates a table: no rows; a statement of several: not described here.)
      if (k === K.into && first !== K.insert) return null;
      if (paramTokens.kind[i] === Tok.Semi && i < paramTokens.count - 1) return null;
    }
  } finally {
    paramTokens.reset('');
  }
  if (ROW_FIRST.has(first) || (returning && DML_FIRST.has(first))) return 'rows';
  if (!(DML_FIRST.has(first) || first === K.set || first === K.reset)) return null;
  const params = statementParameters(frame, sql);
  const nameEnd = frame.indexOf(0, 5);
  const at = frame.indexOf(0, nameEnd + 1) + 1;
  const declared = frame.readInt16BE(at);
  if (params !== declared) return null;
  const t = Buffer.alloc(7 + 4 * declared);
  t[0] = 0x74;
  t.writeInt32BE(6 + 4 * declared, 1);
  t.writeInt16BE(declared, 5);
  for (let i = 0; i < declared; i++) {
    const oid = frame.readUInt32BE(at + 2 + 4 * i);
    if (oid === 0) return null;
    t.writeUInt32BE(oid, 7 + 4 * i);
  }
  return Buffer.concat([t, NO_DATA]);
}

const NO_DATA = Buffer.from([0x6e, 0, 0, 0, 4]);
