/**
 * Side requests: what a link needs before the client's request can run there, sent ahead of it
 * with their answers swallowed (Expects of their own kinds, link.ts). In order: cleanup of what
 * was closed or discarded elsewhere; a Close of statements a failed request may or may not have
 * created on a shared connection; the session's settings replayed where they differ
 * (session-state.ts); BEGIN or ROLLBACK so that a standby follows the primary's explicit
 * transaction; statements bound or described here but parsed elsewhere (or, leased, not known to
 * be on this connection) re-parsed, under their server names on a shared connection; SQL
 * prepared statements re-prepared. Also broadcast(): transaction control reaching every node in
 * a transaction balanced across nodes.
 */
import { Buffer } from 'node:buffer';
import { TxStatus } from '../protocol/codes';
import { encodeClose, encodeFlush, encodeQuery, encodeSync } from '../protocol/frontend';
import type { RouteState } from '../router/router';
import { ExpectKind, Term, type Expect, type Link } from './link';
import type { Request, RequestInfo } from './request';
import type { Plan } from './planner';
import type { ProtocolStatement } from './statements';
import type { SessionState } from './session-state';
import { parsedWhenAborted, type Pins } from './tx-pooling';
import type { CoreHost } from './core-host';
import type { ClearsToken } from './request-effects';
import { encodeParseAs, parseDefinition, renameSqlStatement } from './statement-names';
import { describedWhenAborted, hasStatement, parameterCount, serverNameOf, type NamingSession } from './connection-statements';
import { emptyArray } from '../util/arrays';

/** What the side requests read and change of the session (SessionCore). */
export interface SideSession extends NamingSession {
  readonly host: Pick<CoreHost, 'pooling' | 'routing' | 'statementCache' | 'knownStatement'>;
  readonly state: SessionState;
  readonly route: RouteState;
  readonly pins: Pins;
  /** After a Flush the session stays on this node until Sync (-1: none). */
  readonly stickyNode: number;
  /** SQL of the BEGIN that opened the current explicit transaction. */
  readonly beginSql: string;
  connected(): IterableIterator<Link>;
}

/** A side request's note: the statement re-parsed or re-prepared (by node, or by server name on a leased connection). */
export interface ReparseToken {
  readonly st: ProtocolStatement | { readonly nodes: Set<number> };
  readonly server: string | null;
}

const SYNC = encodeSync();
const FLUSH = encodeFlush();
const EMPTY_QUERY = encodeQuery('');
/** Close of the unnamed statement (Close S ''). */
const CLOSE_UNNAMED = encodeClose('S', '');

/**
 * The text of the request's Parse of `name` ('' when none). (Not `parses.find((p) => p.name ===
 * name)` in prepareLink's loop: the closure over `name` gave each turn of the loop a context.)
 */
function parsedText(info: RequestInfo, name: string): string {
  for (let i = 0; i < info.parses.length; i++) if (info.parses[i]!.name === name) return info.parses[i]!.sql;
  return '';
}

/** Side requests a link needs before the client's request: cleanup, session state, transaction, statements. */
export function prepareLink(s: SideSession, link: Link, info: RequestInfo, plan: Plan, notPrimary: boolean, data?: Buffer): void {
  const conn = link.conn!;
  const pooled = s.host.pooling !== 'session';
  /** Nothing in flight there before this request's own side requests. */
  const idle = link.owed === 0;
  if (!link.unsynced) {
    for (const c of link.cleanup) {
      if (c.term === Term.Query) link.unnamedOwn = false;
      const e = link.expect(ExpectKind.Cleanup, true, c.completions, c.term);
      if (c.clears !== undefined) e.token = { clears: c.clears } satisfies ClearsToken;
      s.send(link, c.buf);
    }
    emptyArray(link.cleanup);
    const unsure = conn.statements.unsure;
    if (unsure.size > 0) {
      // Statements a failed request may or may not have created: make sure they do not exist.
      const frames: Buffer[] = [];
      for (const name of unsure) frames.push(encodeClose('S', name));
      frames.push(SYNC);
      link.expect(ExpectKind.Cleanup, true, unsure.size, Term.Sync);
      s.send(link, Buffer.concat(frames));
      unsure.clear();
    }
    const replay = s.state.replayFor(conn, s);
    if (link.cleanup.length > 0 || replay.length > 0) link.unnamedOwn = false; // (a Query drops the unnamed statement)
    if (replay.length > 0) {
      link.expect(ExpectKind.State, true, 0, Term.Query);
      s.send(link, encodeQuery(replay.join('; ')));
    }
    if (notPrimary && s.stickyNode < 0 && idle) {
      // A node other than the primary follows the primary's explicit transaction: BEGIN when the
      // session is inside one and reads are balanced in transactions, ROLLBACK when the session
      // left it but this node is still in it (standbys only read: ROLLBACK ends them as COMMIT would).
      const wantTx = s.route.inTransaction && s.host.routing.router.loadBalanceInTransaction;
      let sql = '';
      if (wantTx && link.txStatus === TxStatus.Idle) sql = s.beginSql;
      else if (!s.route.inTransaction && link.txStatus !== TxStatus.Idle) sql = 'ROLLBACK';
      if (sql !== '') {
        link.unnamedOwn = false;
        link.expect(ExpectKind.Tx, true, 0, Term.Query);
        s.send(link, encodeQuery(sql));
        link.txStatus = sql === 'ROLLBACK' ? TxStatus.Idle : TxStatus.InTransaction;
      }
    }
  }
  // Statements bound or described here but parsed on another node (or, leased, not known to be
  // on this connection): re-parse them first.
  const dups = s.dupParses === null ? null : [...s.dupParses];
  const bound = info.bindStatements.length + info.statementRefs.length;
  const names = bound + (dups?.length ?? 0);
  let unnamedDropped = false;
  if (names > 0) {
    const sticky = s.stickyNode === link.node;
    for (let i = 0; i < names; i++) {
      // (Names redefined by this request must exist for the server to refuse the Parse, even mid-sequence.)
      // (Nor is the unnamed statement another client may have left there, even mid-sequence.)
      const name = i >= bound ? dups![i - bound]! : i < info.bindStatements.length ? info.bindStatements[i]! : info.statementRefs[i - info.bindStatements.length]!;
      if (s.abortedSure === true && pooled) {
        // In a known aborted transaction, a request that surely fails first needs no re-parse (it
        // would be refused 25P02 ahead of that failure, seeds 40136/40153); a Bind of the
        // client's statement is answered here, in place; dropping another client's unnamed
        // statement still is needed, for the 26000.
        const known = s.statements.protocol.get(name);
        if (i < info.bindStatements.length && known !== undefined && refusedHere(s, known, name, info)) (s.refusedBinds ??= new Set()).add(name);
        if (known !== undefined || i >= bound) continue;
      }
      // Session pooling: inside an open Flush sequence the statement is where the sequence began.
      // Not so on a shared connection (seed 31030 client 3: the client's statement, not referenced
      // by the sequence's first request, was lost to another client's DISCARD ALL): checked there
      // too, a re-parse mid-sequence is a Parse + Flush (below).
      if (i < bound && sticky && !pooled) continue;
      // A Close needs no statement there: on a shared connection it is pointed at a name that never
      // exists (statement-names.ts), or closes whatever unnamed statement is there; a re-parse would
      // only put its error (25P02 in an aborted transaction) ahead of the CloseComplete (F23 shape,
      // seeds 20261277/20261284).
      if (pooled && i >= info.bindStatements.length && i < bound && info.onlyClosed(name)) continue;
      // (A Bind '' ahead of the request's own unnamed Parse binds the one the client had, seed 31082.)
      if (i < bound && (pooled && name === '' && data !== undefined ? info.parsesBeforeUse(name, data) : info.parsesStatement(name))) continue;
      // In an aborted transaction the server refuses the duplicate Parse (25P02) whatever the
      // name: a re-parse first puts that error at the front of the request, which is right only
      // when its first message is refused too (not a Close, F23; nor a Bind of a statement the
      // client lacks, 26000 first, seed 20261214).
      if (i >= bound && s.abortedTx === 'known' && s.frontRefused !== true && !parsedWhenAborted(parsedText(info, name))) {
        // (Its Binds and Describes ahead of that Parse are then answered here, in place: seed 60067.)
        const had = s.statements.protocol.get(name);
        if (pooled && had !== undefined && !hasStatement(link, had, serverNameOf(s, name) ?? null) && refusedHere(s, had, name, info)) (s.refusedBinds ??= new Set()).add(name);
        continue;
      }
      // The client's own unnamed Parse (or its failure) is what the connection has: as directly.
      if (pooled && name === '' && link.unnamedOwn) continue;
      const st = s.statements.protocol.get(name);
      if (st === undefined) {
        if (pooled && name === '' && !unnamedDropped) {
          // The client has no unnamed statement, but another client's may be on this connection:
          // a simple Query drops it (exec_simple_query), so the Bind '' fails as it would directly (26000).
          // Inside an open extended sequence (Flush), where a Query would end it, a Close of the
          // unnamed statement does (Close is not refused in an aborted transaction either).
          unnamedDropped = true;
          if (link.unsynced) {
            link.expect(ExpectKind.Cleanup, true, 1, Term.None);
            s.send(link, CLOSE_UNNAMED);
          } else {
            link.expect(ExpectKind.Cleanup, true, 0, Term.Query);
            s.send(link, EMPTY_QUERY);
          }
          link.unnamedOwn = true; // none, as the client has none
        }
        continue;
      }
      // The unnamed statement is never mapped to a named one (the Bind '' stays as it is): on
      // a shared connection whatever another client parsed last may be there, so the client's
      // own unnamed Parse is sent again, as it wrote it.
      const server = pooled && name !== '' ? serverNameOf(s, name)! : null;
      if (pooled && name === '') {
        // (re-parsed below)
      } else if (hasStatement(link, st, server)) {
        if (server !== null) s.host.statementCache(true);
        continue;
      }
      if (i < bound && pooled && refusedHere(s, st, name, info)) {
        // Known aborted transaction: the re-parse would be refused (25P02) ahead of the request,
        // where PostgreSQL answers the Bind in its place, checking the parameter count first
        // (08P01). pgmaitre answers it there (connection-statements.ts names(): bindRefused).
        (s.refusedBinds ??= new Set()).add(name);
        continue;
      }
      if (server !== null) s.host.statementCache(false);
      // Leased: no Sync between the re-parse and the request (an error there reaches the client
      // and skips its request, as the Parse it stands for would). Session pooling: in its own
      // Sync, except inside an open extended-protocol sequence (Parse + Flush).
      const inline = pooled || link.unsynced;
      const e = inline ? link.expect(ExpectKind.Reparse, true, 1, Term.None) : link.expect(ExpectKind.Reparse, true, 1, Term.Sync);
      e.errorsToClient = inline;
      e.token = { st, server } satisfies ReparseToken;
      const parse = server === null ? st.frame : encodeParseAs(server, parseDefinition(st.frame));
      s.send(link, link.unsynced ? Buffer.concat([parse, FLUSH]) : inline ? parse : Buffer.concat([parse, SYNC]));
      if (server === null) st.nodes.add(link.node);
      else conn.statements.begin(server);
      if (pooled && name === '') link.unnamedOwn = true;
    }
  }
  if (!link.unsynced) {
    for (const st of plan.sqlNeeded) {
      const server = pooled && s.pins.forced === '' ? st.server : null;
      if (hasStatement(link, st, server)) continue;
      const text = server === null ? st.text : renameSqlStatement(st.text, server);
      if (text === null) continue; // not renamable: the EXECUTE fails as it would without it
      const e = link.expect(ExpectKind.Reparse, true, 0, Term.Query);
      e.token = { st, server } satisfies ReparseToken;
      s.send(link, encodeQuery(text));
      if (server === null) st.nodes.add(link.node);
      else conn.statements.begin(server);
    }
  }
}


/**
 * A Bind (and Describe) of `st` (the connection lacks it) is answered by pgmaitre in place: the
 * transaction is known aborted, `st` is not a transaction-exit statement (its re-parse would be
 * refused), its parameter count is sure, the request does not close it, and a Describe of it can
 * be answered too (connection-statements.ts describedWhenAborted).
 */
function refusedHere(s: SideSession, st: ProtocolStatement, name: string, info: RequestInfo): boolean {
  if (s.abortedTx !== 'known' || parsedWhenAborted(st.sql) || info.closedStatements.includes(name) || parameterCount(st) < 0) return false;
  // (A Describe of it is answered here too, when pgmaitre is sure what it returns; seed 60067.)
  return s.abortedSure === true || !info.statementRefs.includes(name) || describedWhenAborted(st) !== null;
}


/** Transaction control or session state inside a transaction balanced across nodes: every node in it gets it. */
export function broadcast(s: SideSession, req: Request, target: Link): void {
  for (const l of s.connected()) {
    if (l === target || l.owed > 0 || l.unsynced || l.txStatus === TxStatus.Idle) continue;
    l.expect(ExpectKind.Tx, true, req.completions, req.term);
    s.send(l, req.data);
  }
}


/** A re-parse or re-prepare was answered: the statement is there now, or (failed, skipped) it is not. */
export function reparsed(s: SideSession, link: Link, e: Expect): void {
  const t = e.token as ReparseToken;
  if (!e.errored && !e.skipped) {
    if (t.server !== null) {
      link.conn?.statements.confirm(t.server);
      s.host.knownStatement(s.state.searchPath, t.server, true);
    }
  } else if (t.server === null) {
    t.st.nodes.delete(link.node);
  } else {
    link.conn?.statements.failed(t.server, true); // one Parse (or PREPARE) that failed created nothing
  }
}
