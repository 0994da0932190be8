/**
 * What a request does to the session: recorded when it is sent, applied when the server answered.
 *
 * bookkeeping() runs once a request is sent: routing state (noteDispatched), the per-node
 * statement counters, the client's statement registry (Parse, Bind, Close; statements.ts), SQL
 * PREPARE/DEALLOCATE/DISCARD, advisory locks and pins, and returns a Token (allocated only for
 * the rare requests that need one) of what must still happen when its answer comes: SETs and
 * LISTEN staged in SessionState only if it succeeded, savepoints, tentative server statements
 * confirmed or dropped, names a failed Parse did not define, Closes that were skipped.
 * completed() applies a Token; afterSync() ends a transaction at ReadyForQuery (SETs committed,
 * standbys' transactions ended); stateFailed() ends the session whose settings could not be
 * replayed on a connection (that connection's applied state is unknown from then on).
 */
import { Buffer } from 'node:buffer';
import { TxStatus } from '../protocol/codes';
import { encodeClose, encodeQuery, encodeSync } from '../protocol/frontend';
import { clientErrors } from '../errors/client-errors';
import type { ErrorFieldsInput } from '../protocol/error-fields';
import { ADVISORY_LOCK_FUNCTIONS, type SessionEffect } from '../classify/session-effects';
import type { QueryClass } from '../classify/types';
import { noteDispatched, noteTransactionEnd, type RouteState } from '../router/router';
import { LogEvent } from '../log/logger';
import { ExpectKind, Link, Term, type Expect } from './link';
import type { Request, RequestInfo } from './request';
import type { Plan } from './planner';
import type { ProtocolStatement, SqlStatement } from './statements';
import type { SessionState } from './session-state';
import type { ReadYourWrites } from './read-your-writes';
import { userFunction, type Pins } from './tx-pooling';
import type { CoreHost } from './core-host';
import type { BackendPort } from './ports';
import { prepareDefinition, serverStatementName } from './statement-names';
import { countStatement } from './statement-counters';
import { noteTermination, TERMINATING_FUNCTIONS } from './identity-check';
import { serverNameOf, type NamingSession } from './connection-statements';

/** What these functions read and change of the session (SessionCore). */
export interface EffectsSession extends NamingSession {
  readonly host: CoreHost;
  readonly route: RouteState;
  readonly state: SessionState;
  readonly ryw: ReadYourWrites;
  readonly pins: Pins;
  /** The transaction saw an error (a COMMIT will roll it back). */
  txFailed: boolean;
  /** Node where SETs of the current transaction were staged (-1: none). */
  stagedNode: number;
  /** SQL of the BEGIN that opened the current explicit transaction (replayed on a node joined inside it). */
  beginSql: string;
  /** Links whose session-state replay failed: their settings are unknown (reset when given back). */
  readonly stateLost: Set<Link>;
  /** All links with a connection. */
  connected(): IterableIterator<Link>;
  /** Links by node (undefined where none was made). */
  readonly links: readonly (Link | undefined)[];
  /** Writes a FATAL to the client and ends the session. */
  fail(fields: ErrorFieldsInput): void;
}

const SYNC = encodeSync();

/** What a completed client request must still do (allocated only for the rare requests that need it). */
export interface Token {
  effects: SessionEffect[] | null;
  /** ROLLBACK/ABORT: the transaction's staged changes go. */
  rollback: boolean;
  savepoint: string | null;
  rollbackTo: string | null;
  release: string | null;
  /** SQL prepared statements this request registered (removed again if it failed). */
  prepared: string[] | null;
  /** Transaction pooling: server statements this request parses (tentative until it succeeded). */
  parsed: string[] | null;
  /** The completion index of each `parsed` name's Parse in the request (-1: not known). */
  parsedAt: number[] | null;
  /**
   * Transaction pooling: client statement names this request defines, with the index of their
   * Parse among the request's completions (a Parse that failed or was skipped defines nothing).
   */
  defined: { name: string; index: number; st?: ProtocolStatement }[] | null;
  /** Transaction pooling: client statements this request closes (they stay if the Close failed or was skipped). */
  closed: { name: string; st: ProtocolStatement; index: number }[] | null;
  /** The session's statements before a single DISCARD ALL / DEALLOCATE removed them (restored if it fails). */
  undo: { protocol: Map<string, ProtocolStatement>; sql: Map<string, SqlStatement> } | null;
  /** Transaction pooling: DISCARD ALL / DEALLOCATE ALL reached the server (its statements go when it succeeds). */
  clears: 'all' | 'statements' | null;
}


/** A cleanup side request's note: it clears the connection's statements (DISCARD/DEALLOCATE ALL). */
export interface ClearsToken {
  readonly clears: 'all' | 'statements';
}


const ADVISORY_UNLOCK_ALL = 'pg_advisory_unlock_all';

/**
 * The token of the request bookkeeping() is recording, made by tok() on first need. A module
 * variable and one function for every request, not a closure over a local made per request (a
 * context and a closure, 96 bytes per request: issue 17, item 9). bookkeeping() saves and
 * restores it, so that a bookkeeping() run from inside another (it calls nothing that sends
 * today) would keep its own.
 */
let building: Token | null = null;
const tok = (): Token => (building ??= newToken());

/** Registry, routing state and counters once a request is sent; returns its completion token. */
export function bookkeeping(s: EffectsSession, req: Request, info: RequestInfo, plan: Plan, node: number): Token | null {
  const outer = building;
  building = null;
  try {
    recordSent(s, req, info, plan, node);
    return building;
  } finally {
    building = outer;
  }
}

/** bookkeeping()'s work; tok() makes the token. */
function recordSent(s: EffectsSession, req: Request, info: RequestInfo, plan: Plan, node: number): void {
  const routerCfg = s.host.routing.router;
  const counters = s.host.cluster.node(node)?.counters;
  // Transaction pooling: where this request's last Parse of each name starts.
  let seenHere = null as Map<string, number> | null;
  let i = 0;
  const queries = info.queries;
  for (let q = 0; q < queries.length; q++) {
    const sql = queries[q]!;
    const cls = plan.classes[i++]!;
    dispatched(s, cls, sql, tok);
    if (counters !== undefined) countStatement(counters, cls, sql);
  }
  for (const p of info.parses) {
    const cls = plan.classes[i++]!;
    dispatched(s, cls, p.sql, tok);
    if (s.host.pooling !== 'session' && p.name !== '') {
      // Refused by the server (42P05: redefined without Close): the old definition stays. (Not
      // a Parse of that name after a Close of it: it was sent under a server name of its own,
      // tentative there until the request is answered; seed 70077.)
      if (s.dupRefused.has(p.name) && closeBetween(req.data, p.name, 0, p.start) < 0) continue;
      const before = seenHere?.get(p.name);
      const prev = s.statements.protocol.get(p.name);
      if (before !== undefined || prev !== undefined) {
        // Parsed earlier in this request: refused (42P05) unless a Close of the name came in
        // between; then this Parse redefines it (seeds 31030/31095: Bind/Describe ran the old one).
        // The same for a name the client had, closed earlier in this request (seed 31146).
        const close = closeBetween(req.data, p.name, before ?? 0, p.start);
        if (close < 0 && before !== undefined) continue;
        if (close >= 0 && prev !== undefined) {
          // If the request fails before that Close, the earlier definition stays.
          s.statements.protocol.delete(p.name);
          (tok().closed ??= []).push({ name: p.name, st: prev, index: completionIndex(req.data, close) });
        }
      }
      (seenHere ??= new Map()).set(p.name, p.start);
    }
    let def: { name: string; index: number; st?: ProtocolStatement } | null = null;
    if (s.host.pooling !== 'session' && (p.name === '' || !s.statements.protocol.has(p.name))) {
      const index = completionIndex(req.data, p.start);
      const prev = p.name === '' ? s.statements.protocol.get('') : undefined;
      if (prev !== undefined && tok().defined?.some((d) => d.name === '') !== true) {
        // If the request fails before its first unnamed Parse, the client's unnamed statement stays (seed 31082);
        // not when that Parse fails itself (PostgreSQL dropped the old one first), nor after a
        // `Close S ''` before it (seed 132154).
        const close = closeBetween(req.data, '', 0, p.start);
        (tok().closed ??= []).push({ name: '', st: prev, index: close >= 0 ? completionIndex(req.data, close) : index - 1 });
      }
      (tok().defined ??= []).push(def = { name: p.name, index });
    }
    s.statements.parsed(p.name, req.data.subarray(p.start, p.end), p.sql, cls, node);
    // (A named definition is a new entry: its failure drops that entry only, and marks it gone,
    // so that no restore of a Close brings it back; seed 31086.)
    if (def !== null) {
      def.st = s.statements.protocol.get(p.name);
      if (p.name !== '' && def.st !== undefined) def.st.tentative = true;
    }
    if (p.name !== '' && s.host.pooling !== 'session') {
      // Only the Parses that reached the server are tentative there (names() began them).
      const server = serverNameOf(s, p.name)!;
      if (s.links[node]?.conn?.statements.pending(server)) noteParsed(tok(), server, completionIndex(req.data, p.start));
    }
  }
  // Each Bind is one execution of its statement: that is what the per-node counters count.
  for (let b = 0; b < info.bindStatements.length; b++) {
    const name = info.bindStatements[b]!;
    const st = s.statements.protocol.get(name);
    if (st !== undefined) {
      st.nodes.add(node);
      if (counters !== undefined) countStatement(counters, st.cls, st.sql);
      if (!info.parsesStatement(name)) noteDispatched(st.cls, s.route, routerCfg);
    }
    s.statements.portals.set(info.bindPortals[b]!, node);
  }
  for (const name of info.statementRefs) s.statements.protocol.get(name)?.nodes.add(node);
  for (const name of info.closedStatements) {
    // Close then Parse of one name in one request: the Parse (registered above) stands.
    if (info.parsesStatement(name) && lastParseAfterClose(req.data, name)) continue;
    const st = s.statements.closed(name);
    if (st === undefined) continue;
    if (s.host.pooling !== 'session') (tok().closed ??= []).push({ name, st, index: closeIndex(req.data, name) });
    for (const other of st.nodes) {
      if (other !== node) s.links[other]?.cleanup.push({ buf: Buffer.concat([encodeClose('S', name), SYNC]), completions: 1, term: Term.Sync });
    }
  }
  if (plan.effects !== null) {
    // A single DISCARD ALL or DEALLOCATE that the server refuses (25P02 in an aborted transaction,
    // 26000) removes nothing: what it removed here comes back then (seed 93047). (Among other
    // statements of a query, whether it ran is not known: it is taken as done.)
    const e = plan.effects.length === 1 && info.queries.length === 1 && plan.classes.length === 1 ? plan.effects[0]! : null;
    if (e !== null && (e.kind === 'deallocate' || (e.kind === 'discard' && e.what === 'all'))) {
      tok().undo = { protocol: new Map(s.statements.protocol), sql: new Map(s.statements.sql) };
    }
    effectsSent(s, plan.effects, node, tok, req.pooledRenamed);
  }
}


/** Server statement `server` is parsed by the request (its Parse is message `index` of it; -1: not known). */
export function noteParsed(t: Token, server: string, index: number): void {
  (t.parsed ??= []).push(server);
  (t.parsedAt ??= []).push(index);
}


/** Routing state, transaction bookkeeping and advisory locks for one statement sent. */
export function dispatched(s: EffectsSession, cls: QueryClass, sql: string, tok: () => Token): void {
  noteDispatched(cls, s.route, s.host.routing.router);
  switch (cls.kind) {
    case 'begin':
      s.beginSql = cls.statements === 1 ? sql : 'BEGIN';
      break;
    case 'rollback':
      tok().rollback = true;
      break;
    case 'savepoint':
      tok().savepoint = savepointName(sql);
      break;
    case 'rollback_to':
      tok().rollbackTo = savepointName(sql);
      break;
    case 'release':
      tok().release = savepointName(sql);
      break;
    default:
      break;
  }
  // (Indexed: for...of over a class's frozen arrays made an iterator per statement.)
  const fs = cls.functions;
  for (let k = 0; k < fs.length; k++) {
    const f = fs[k]!;
    if (TERMINATING_FUNCTIONS.has(f)) noteTermination();
    if (ADVISORY_LOCK_FUNCTIONS.has(f)) s.state.advisoryHeld = true;
    else if (f === ADVISORY_UNLOCK_ALL) s.state.advisoryHeld = false;
  }
  if (s.host.pooling !== 'session') {
    s.pins.noteStatement(cls, sql);
    // A function whose body changes session state (looked up with its volatility): pinned, failing closed.
    const vol = s.host.routing.volatility;
    if (s.pins.forced === '' && vol.sessionEffect !== undefined) {
      for (const f of cls.functions) {
        const e = userFunction(f) ? vol.sessionEffect(f) : undefined;
        if (e !== undefined && e !== '') {
          s.pins.forced = `${e} (${f})`;
          break;
        }
      }
    }
  }
}


/** PREPARE/DEALLOCATE/DISCARD take effect in the registry at once; SETs when the request succeeds. */
export function effectsSent(s: EffectsSession, effects: readonly SessionEffect[], node: number, tok: () => Token, renamed: boolean): void {
  const t = tok();
  t.effects = effects as SessionEffect[];
  const pooled = s.host.pooling !== 'session';
  for (const e of effects) {
    switch (e.kind) {
      case 'prepare':
      case 'execute':
      case 'deallocate':
        // A SQL statement name that reached a shared connection as the client wrote it (inside
        // a multi-statement query, through the extended protocol): the session keeps its
        // connection from now on, so that the name means the same there (fail closed).
        if (pooled && !renamed && e.kind !== 'deallocate') s.pins.forced ||= 'SQL PREPARE/EXECUTE that cannot be renamed (multi-statement query or extended protocol)';
        if (pooled && e.kind === 'deallocate' && e.name === null) t.clears ??= 'statements';
        break;
      default:
        break;
    }
    switch (e.kind) {
      case 'prepare': {
        const cls = s.host.classifier.classify(e.text);
        if (s.statements.prepared(e.name, e.text, cls, node, serverStatementName('pgmq_', prepareDefinition(e.text)))) {
          (t.prepared ??= []).push(e.name);
          // Renamed: no connection has it under the client's name (a session pinned later
          // re-prepares it so; the server names are in each connection's registry).
          if (pooled && renamed) s.statements.sql.get(e.name)!.nodes.clear();
        }
        break;
      }
      case 'deallocate':
        if (e.name === null) {
          s.statements.clearAll(true);
          everywhereElse(s, node, 'DEALLOCATE ALL', 'statements');
        } else {
          const st = s.statements.sql.get(e.name) ?? s.statements.protocol.get(e.name);
          s.statements.sql.delete(e.name);
          s.statements.protocol.delete(e.name);
          for (const other of st?.nodes ?? []) {
            if (other !== node) s.links[other]?.cleanup.push({ buf: encodeQuery(`DEALLOCATE ${quoteIdent(e.name)}`), completions: 0, term: Term.Query });
          }
        }
        break;
      case 'discard':
        if (e.what === 'all') {
          s.statements.clearAll(true);
          everywhereElse(s, node, 'DISCARD ALL', 'all');
          if (pooled) t.clears = 'all';
        } else if (e.what === 'temp') {
          s.route.tempTables.clear();
          s.pins.tempDiscarded();
        }
        break;
      default:
        break;
    }
  }
}


/** Queues `sql` (swallowed) on every other link before its next request. */
export function everywhereElse(s: EffectsSession, node: number, sql: string, clears: 'all' | 'statements'): void {
  for (const l of s.connected()) if (l.node !== node) l.cleanup.push({ buf: encodeQuery(sql), completions: 0, term: Term.Query, clears });
}


/** A client request completed: apply its session effects if it succeeded. */
export function completed(s: EffectsSession, link: Link, e: Expect, t: Token): void {
  const conn = link.conn;
  if (t.parsed !== null && conn !== null) {
    // Tentative server statements become facts, or go: a request that was skipped created
    // nothing; one that failed may have created some of them (closed before the next use).
    // (A request split around in-place ParseCompletes whose earlier part failed: this part is
    // skipped, but the earlier part's Parses may have created their names, seed 31030.)
    const surely = e.skipped && Link.failIndex(e) < 0;
    const at = Link.failIndex(e);
    for (let i = 0; i < t.parsed.length; i++) {
      const server = t.parsed[i]!;
      // (A Parse before the message that failed was answered ParseComplete: it is there, seed 101618.)
      const before = at >= 0 && (t.parsedAt?.[i] ?? -1) >= 0 && t.parsedAt![i]! < at;
      if ((e.errored || e.skipped) && !before) conn.statements.failed(server, surely);
      else {
        conn.statements.confirm(server);
        s.host.knownStatement(s.state.searchPath, server, true);
      }
    }
  }
  // Index in the whole request of the message that failed (-1: the request was skipped).
  const failed = Link.failIndex(e);
  if (t.defined !== null && !e.errored && !e.skipped) for (const d of t.defined) if (d.st !== undefined) d.st.tentative = false;
  if (t.defined !== null && (e.errored || e.skipped)) {
    // A Parse that failed, or came after the error, defined nothing (the client may Parse the name again).
    // The unnamed statement is then the last one parsed before the error, if any (seed 92068).
    let unnamed: ProtocolStatement | undefined;
    let unnamedFailed = false;
    for (const d of t.defined) {
      if (!(failed <= d.index)) {
        if (d.st !== undefined) d.st.tentative = false;
        if (d.name === '') unnamed = d.st;
        continue;
      }
      if (d.name === '' || d.st === undefined) {
        unnamedFailed ||= d.name === '';
        // (Failed or skipped, it is no statement: a restore of an unnamed statement closed
        // after it, in a later part of the request, must not bring it back; seed 133155.)
        if (d.st !== undefined) d.st.gone = true;
        // An unnamed Parse that failed itself (not skipped after an earlier error) had dropped the
        // unnamed statement before its text was parsed, as PostgreSQL's does: none is left (seed 99250).
        if (d.name === '' && failed === d.index) unnamed = undefined;
        if (d.name !== '') s.statements.protocol.delete(d.name);
        continue;
      }
      // (Only if it is still this request's definition: a later request may have redefined the name.)
      d.st.gone = true;
      if (s.statements.protocol.get(d.name) === d.st) s.statements.protocol.delete(d.name);
    }
    if (unnamedFailed) {
      if (unnamed !== undefined) s.statements.protocol.set('', unnamed);
      else s.statements.protocol.delete('');
    }
  }
  if (t.closed !== null && (e.errored || e.skipped)) {
    // A Close the server skipped (an error before it) closed nothing: the client still has the statement.
    for (const d of t.closed) {
      // (Not a definition that itself failed meanwhile: a tentative one of an earlier request, seed 31086.)
      // (Over a definition of a later request not answered yet, pipelined while the server skipped:
      // it is skipped too, or refused, as the name still exists; seed 94080.)
      const cur = s.statements.protocol.get(d.name);
      if (!(failed <= d.index) || (cur !== undefined && (d.name === '' || cur.tentative !== true)) || d.st.gone === true) continue;
      // ...unless what it was to close is what a failed Parse of this request defined: nothing to keep.
      if (t.defined?.some((p) => p.name === d.name && p.index < d.index && failed <= p.index) === true) continue;
      s.statements.protocol.set(d.name, d.st);
    }
  }
  if (t.clears !== null && conn !== null && !e.errored && !e.skipped) {
    cleared(conn, t.clears);
    if (t.clears === 'all') s.pins.discarded();
  }
  if (e.errored || e.skipped) {
    if (t.undo !== null) {
      for (const [name, st] of t.undo.protocol) if (!s.statements.protocol.has(name)) s.statements.protocol.set(name, st);
      for (const [name, st] of t.undo.sql) if (!s.statements.sql.has(name)) s.statements.sql.set(name, st);
    }
    for (const name of t.prepared ?? []) s.statements.sql.delete(name);
    if (t.effects !== null) stageImmediate(s, t.effects);
    return;
  }
  if (t.effects !== null) {
    s.state.stage(t.effects);
    if (s.state.pending) s.stagedNode = link.node;
  }
  if (t.savepoint !== null) s.state.savepoint(t.savepoint);
  if (t.rollbackTo !== null) s.state.rollbackTo(t.rollbackTo);
  if (t.release !== null) s.state.release(t.release);
  if (t.rollback) s.state.discard();
}


/**
 * DISCARD ALL or DEALLOCATE ALL ran on `conn`: no statement is left there; after DISCARD ALL its
 * settings are the defaults again (unknown to the replay: the next lessee resets and replays all).
 */
export function cleared(conn: BackendPort, what: 'all' | 'statements'): void {
  conn.statements.clear();
  if (what === 'all') {
    conn.applied = null;
    conn.appliedVersion = -1;
    conn.appliedOwner = null;
  }
}


/** LISTEN and friends of a failed multi-statement request may have happened: count them (safe side). */
export function stageImmediate(s: EffectsSession, effects: readonly SessionEffect[]): void {
  const pins = effects.filter((x) => x.kind === 'listen' || x.kind === 'declare_hold');
  if (pins.length > 0) s.state.stage(pins);
}


/** A ReadyForQuery answered a client request on `link`. */
export function afterSync(s: EffectsSession, link: Link, e: Expect, primary: number): void {
  const status = e.status;
  if (status === TxStatus.Idle) {
    if (link.node === s.stagedNode || (s.stagedNode < 0 && s.state.pending)) {
      if (s.txFailed) s.state.discard();
      else s.state.commit(link.conn, s);
      s.stagedNode = -1;
    }
    s.statements.transactionEnded(link.node);
  }
  if (link.node !== primary) return;
  if (status === TxStatus.Idle) {
    if (link.owed === 0) s.ryw.onPrimaryIdle(link.node);
    noteTransactionEnd(s.route);
    s.txFailed = false;
    // The primary's transaction ended: end the part a standby still holds (its snapshot would
    // otherwise stay open there, and the next read would run inside that stale transaction).
    // (An indexed loop: the connected() generator allocated an iterator per transaction.)
    for (const other of s.links) {
      if (other === undefined || other.conn === null || other === link || other.owed > 0 || other.unsynced || other.txStatus === TxStatus.Idle) continue;
      other.expect(ExpectKind.Tx, true, 0, Term.Query);
      s.send(other, encodeQuery('ROLLBACK'));
      other.txStatus = TxStatus.Idle;
    }
  } else {
    s.route.inTransaction = true;
    if (status === TxStatus.Failed) s.txFailed = true;
  }
}


/** Session state could not be replayed on a node: its answers would be wrong there. */
export function stateFailed(s: EffectsSession, link: Link): void {
  // What the connection has applied is unknown now (the replay was recorded as sent).
  if (link.conn !== null) {
    link.conn.applied = null;
    link.conn.appliedVersion = -1;
    link.conn.appliedOwner = null;
  }
  s.stateLost.add(link);
  s.host.log.error({ event: LogEvent.BackendError, node_id: link.node, pid: s.host.pid },
    `could not apply this session's settings on node ${link.node}; closing the session rather than answering with different settings`);
  s.fail(clientErrors.sessionStateLost(link.node));
}


/** How many completion-producing messages (Parse, Bind, Describe, Execute, Close) come before offset `at` of a request. */
function completionIndex(data: Buffer, at: number): number {
  let n = 0;
  for (let pos = 0; pos + 5 <= data.length && pos < at; pos += 1 + data.readInt32BE(pos + 1)) {
    const c = data[pos]!;
    if (c === 0x50 || c === 0x42 || c === 0x44 || c === 0x45 || c === 0x43) n++;
  }
  return n;
}

/** The completion index of the request's last Close of statement `name` (-1 when none). */
function closeIndex(data: Buffer, name: string): number {
  let n = 0;
  let at = -1;
  for (let pos = 0; pos + 5 <= data.length; pos += 1 + data.readInt32BE(pos + 1)) {
    const c = data[pos]!;
    if (c === 0x43 && data[pos + 5] === 0x53 && data.toString('utf8', pos + 6, data.indexOf(0, pos + 6)) === name) at = n;
    if (c === 0x50 || c === 0x42 || c === 0x44 || c === 0x45 || c === 0x43) n++;
  }
  return at;
}

/** Where the request's first Close of statement `name` between offsets `from` and `to` starts (-1: none). */
function closeBetween(data: Buffer, name: string, from: number, to: number): number {
  for (let pos = from; pos + 5 <= data.length && pos < to; pos += 1 + data.readInt32BE(pos + 1)) {
    if (data[pos] === 0x43 && data[pos + 5] === 0x53 && data.toString('utf8', pos + 6, data.indexOf(0, pos + 6)) === name) return pos;
  }
  return -1;
}

/** True when the request's last Parse of statement `name` comes after its last Close of it. */
function lastParseAfterClose(data: Buffer, name: string): boolean {
  let parse = -1;
  let close = -1;
  for (let pos = 0; pos + 5 <= data.length; pos += 1 + data.readInt32BE(pos + 1)) {
    const c = data[pos]!;
    if (c === 0x50 && data.toString('utf8', pos + 5, data.indexOf(0, pos + 5)) === name) parse = pos;
    else if (c === 0x43 && data[pos + 5] === 0x53 && data.toString('utf8', pos + 6, data.indexOf(0, pos + 6)) === name) close = pos;
  }
  return parse > close;
}

export function newToken(): Token {
  return { effects: null, rollback: false, savepoint: null, rollbackTo: null, release: null, prepared: null, parsed: null, parsedAt: null, defined: null, closed: null, clears: null, undo: null };
}

/** The savepoint name of SAVEPOINT / RELEASE [SAVEPOINT] / ROLLBACK TO [SAVEPOINT] (folded as identifiers are). */
function savepointName(sql: string): string {
  const m = /([A-Za-z_\u0080-\uffff][\w$\u0080-\uffff]*|"(?:[^"]|"")+")\s*;?\s*$/.exec(sql);
  if (m === null) return '';
  const id = m[1]!;
  return id.startsWith('"') ? id.slice(1, -1).replace(/""/g, '"') : id.toLowerCase();
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

