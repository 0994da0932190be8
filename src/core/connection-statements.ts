/**
 * This session's statements on its connections: under which server name each of the client's
 * statements is on a shared connection (transaction pooling; the names themselves are made by
 * statement-names.ts, the connection's own registry is protocol/server-statements.ts), which
 * names a request redefines (the server refuses them, 42P05, in place), which statements go
 * beyond max_prepared_statements (closed, least recently used first), and who owns the unnamed
 * statement of each connection (a simple Query drops it).
 */
import { Buffer } from 'node:buffer';
import { encodeClose, encodeDescribe, encodeFlush, encodeSync } from '../protocol/frontend';
import { ExpectKind, Term, type Expect, type Link } from './link';
import type { Request, RequestInfo } from './request';
import type { ProtocolStatement, SqlStatement, Statements } from './statements';
import { parseDefinition, serverStatementName, type NameMap } from './statement-names';
import { abortedBindError, abortedDescribe, parsedWhenAborted, statementParameters } from './tx-pooling';
import { encodeErrorResponse } from '../protocol/backend';
import { TxStatus } from '../protocol/codes';

/** What these functions read and change of the session (SessionCore). */
export interface NamingSession {
  readonly statements: Statements;
  readonly links: readonly (Link | undefined)[];
  /** Transaction pooling: the request being sent redefines these statement names (42P05 from the server). */
  dupParses: Set<string> | null;
  /** ...of which the request's Parses really were refused (not closed before them). */
  readonly dupRefused: Set<string>;
  /**
   * Transaction pooling, F21: the request being sent may meet an aborted transaction: 'known'
   * (the leased connection's transaction is failed, no ReadyForQuery owed before the request) or
   * 'maybe' (inside a transaction, behind requests not answered yet); '' otherwise. Then a Parse
   * of a statement the connection has is not answered here: see names().
   */
  readonly abortedTx?: '' | 'known' | 'maybe';
  /**
   * In an aborted transaction, the request's first message is refused with 25P02 (a Parse, or a
   * Bind/Describe of a statement the client has): a re-parse ahead of it may fail there too (see
   * side-requests.ts). False for a Close, or a Bind of a statement the client lacks (26000 first).
   * request-frames.ts: frontRefusedWhenAborted.
   */
  readonly frontRefused?: boolean;
  /**
   * Known aborted transaction: the request surely fails at a message whose answer needs no
   * statement re-parsed (after Closes only: a Parse, a Bind or Describe of a statement the client
   * lacks, a Bind answered here); no re-parse is sent, it would put its own 25P02 first (seeds
   * 40136, 40153). request-frames.ts: failsFirstWhenAborted.
   */
  readonly abortedSure?: boolean;
  /** Statements whose Bind in the request being sent pgmaitre answers itself, in place (side-requests.ts refusedHere). */
  refusedBinds?: Set<string> | null;
  /** The session's routing state: whether a transaction block is open (its portals outlive a Sync). */
  readonly route?: { readonly inTransaction: boolean };
  /** Batches `buf` for `link`. */
  send(link: Link, buf: Buffer): void;
}

const SYNC = encodeSync();
const FLUSH = encodeFlush();

/**
 * Transaction pooling: Parses of a name this client has defined and not closed before them.
 * PostgreSQL answers them 42P05 (and skips to Sync); a shared connection would not know the
 * name, so the Parse is sent under the existing statement's server name (made sure to exist
 * there first), and the server itself refuses it, in place.
 */
export function duplicateParses(s: NamingSession, info: RequestInfo): Set<string> | null {
  let out: Set<string> | null = null;
  for (const p of info.parses) {
    if (p.name === '' || !s.statements.protocol.has(p.name)) continue;
    (out ??= new Set()).add(p.name);
  }
  return out;
}


/** Closes the statements beyond max_prepared_statements on `link`'s connection (least recently used first). */
export function evict(s: NamingSession, link: Link): void {
  const names = link.conn!.statements.evict();
  if (names === null) return;
  const frames: Buffer[] = names.map((n) => encodeClose('S', n));
  // Inside an open extended-protocol sequence a Sync would end it: Flush instead.
  frames.push(link.unsynced ? FLUSH : SYNC);
  link.expect(ExpectKind.Cleanup, true, names.length, link.unsynced ? Term.None : Term.Sync);
  s.send(link, Buffer.concat(frames));
}


/** Server names of this session's statements on `link`'s connection (transaction pooling). */
export function names(s: NamingSession, link: Link): NameMap {
  const reg = link.conn!.statements;
  const local = new Map<string, string>();
  let closed: Set<string> | null = null;
  let used: Set<string> | null = null;
  return {
    parsed: (name, definition) => {
      // A name the client still has (from before, or parsed earlier in this request, not closed
      // in between): the Parse goes under that statement's server name, and the server refuses it (42P05).
      const earlier = local.get(name);
      if (earlier !== undefined) return { server: earlier, had: false };
      if (s.dupParses?.has(name) === true && closed?.has(name) !== true) {
        s.dupRefused.add(name);
        return { server: serverNameOf(s, name)!, had: false };
      }
      const server = serverStatementName('pgm_', definition);
      local.set(name, server);
      // Tentative until the server answered (confirmed or dropped in completed()).
      const had = reg.has(server);
      if (!had && reg.unsure.has(server)) {
        // A failed request may have created it, and its Close has not gone yet (inside an open
        // Flush sequence): closed first, so that the server does not refuse the Parse (42P05).
        link.expect(ExpectKind.Cleanup, true, 1, Term.None);
        s.send(link, encodeClose('S', server));
      }
      if (!had) reg.begin(server);
      else if ((s.abortedTx === 'known' || s.abortedTx === 'maybe' || unsyncedMaybeAborted(s, link)) && (!reg.pending(server) || (s.abortedTx !== 'known' && reg.pendingBefore(server))) && !parsedWhenAborted(definition.toString('utf8', 0, Math.max(0, definition.indexOf(0))))) {
        // In an aborted transaction PostgreSQL refuses the Parse (25P02) before it looks at the
        // name, except for transaction-exit statements (pgjdbc's prepared ROLLBACK), answered
        // here as usual. The statement is closed first, so the server's answer is right either
        // way, and so is its answer to a Bind of the refused name in a later batch (26000, not
        // 25P02: known aborted, the server kept the statement before, seed 173404); so too when
        // an earlier request's Parse of it is still unanswered (it may fail there, 25P02, and
        // PostgreSQL would refuse this one too: an answer in place would be followed by 26000 at
        // its Bind, seed 173407). A Parse of it earlier in this request is in order before this
        // one (this one is skipped if that one fails): answered in place.
        // (Not known aborted when a message of this request ahead of the Parse names the statement:
        // a Close sent ahead of the request would change that message's answer, 26000 for 25P02.)
        if (s.abortedTx !== 'known' || used?.has(server) !== true) {
          link.expect(ExpectKind.Cleanup, true, 1, Term.None);
          s.send(link, encodeClose('S', server));
          // (Unsure until answered: skipped after an earlier error of the same sequence, the
          // Close is skipped too and the statement is still there, seed 173404 client 3.)
          reg.unsure.add(server);
          reg.begin(server);
        }
        return { server, had: false };
      }
      if (had && reg.pendingBefore(server) && !link.unsynced && s.route?.inTransaction === false && s.abortedTx !== 'known') {
        // Parsed by an earlier request the server has not answered yet (a pipeline of Sync-ended
        // batches, seed 173404; not this request: its own earlier Parse, or a re-parse it needs,
        // is in order before it, and answering in place is right there): it may still fail there, and then PostgreSQL would run this Parse
        // (42P01...), not answer ParseComplete. Closed first and parsed again: the server's answer
        // is right either way. (Only where no portal can outlive the earlier request's Sync: a
        // Close of a statement closes the portals made from it.)
        link.expect(ExpectKind.Cleanup, true, 1, Term.None);
        s.send(link, encodeClose('S', server));
        reg.begin(server);
        return { server, had: false };
      }
      return { server, had };
    },
    serverName: (name) => {
      const server = local.get(name) ?? serverNameOf(s, name);
      // (Known aborted: the server names used ahead of a Parse, see parsed above.)
      if (s.abortedTx === 'known' && server !== undefined) (used ??= new Set()).add(server);
      return server;
    },
    describeAnswered: (name) => {
      if (s.refusedBinds?.has(name) !== true) return null;
      const st = s.statements.protocol.get(name)!;
      const d = describedWhenAborted(st);
      if (d === null) return null;
      if (d !== 'rows') return { bytes: d, error: false };
      return { bytes: encodeErrorResponse({ severity: 'ERROR', code: '25P02', message: 'current transaction is aborted, commands ignored until end of transaction block' }), error: true };
    },
    bindRefused: (name, data, start, end) => {
      if (s.refusedBinds?.has(name) !== true) return null;
      const st = s.statements.protocol.get(name)!;
      const err = abortedBindError(data, start, end, name, parameterCount(st));
      return err === null ? null : encodeErrorResponse({ severity: 'ERROR', code: err.code, message: err.message });
    },
    closing: (name) => {
      local.delete(name);
      (closed ??= new Set()).add(name);
    },
  };
}


/**
 * Inside an open extended-protocol sequence (link.unsynced: an earlier part ended with Flush),
 * behind a Sync not answered yet, in a transaction (SessionCore leaves abortedTx '' there): the
 * transaction may be aborted when the sequence began, and PostgreSQL would then refuse a Parse
 * (25P02) even though a message of the sequence before it (a Close) succeeded; seed 173401. An
 * error inside the sequence itself skips the Parse anyway, whatever is sent.
 */
function unsyncedMaybeAborted(s: NamingSession, link: Link): boolean {
  return link.unsynced && link.syncOwed > 0 && (link.txStatus !== TxStatus.Idle || s.route?.inTransaction === true);
}


/**
 * A simple Query drops the unnamed statement (exec_simple_query), after the request's own
 * Parses: the client has none any more. `sent`: the link the Query went to (its connection has
 * none either); on the others, the connection may still hold it (transaction pooling: another
 * client's, or this one's), so a later Bind '' is made to fail there as it would directly.
 */
export function unnamedDropped(s: NamingSession, sent: Link | null): void {
  s.statements.protocol.delete('');
  for (let i = 0; i < s.links.length; i++) {
    const l = s.links[i];
    if (l !== undefined) l.unnamedOwn = l === sent;
  }
}


/** The server name of a protocol statement of this session (computed once). */
export function serverNameOf(s: NamingSession, name: string): string | undefined {
  const st = s.statements.protocol.get(name);
  if (st === undefined) return undefined;
  return (st.server ??= serverStatementName('pgm_', parseDefinition(st.frame)));
}


/** The parameter count of a protocol statement of this session (computed once; -1: not sure). */
export function parameterCount(st: ProtocolStatement): number {
  return (st.params ??= statementParameters(st.frame, st.sql));
}


/**
 * PostgreSQL's answer to a Describe of statement `st` in an aborted transaction (see
 * tx-pooling.ts abortedDescribe): from what the server answered to pgmaitre's own Describe of it
 * when it was parsed (exact: parameter types the server inferred), else from its text.
 */
export function describedWhenAborted(st: ProtocolStatement): 'rows' | Buffer | null {
  return st.described ?? abortedDescribe(st.frame, st.sql);
}


const NO_DATA = Buffer.from([0x6e, 0, 0, 0, 4]);

/**
 * Transaction pooling: after a request that parsed named statements whose description pgmaitre
 * cannot tell from their text (parameter types the server infers, a statement that may or may
 * not return rows), a Describe of each is sent behind it, its answer swallowed and kept with the
 * statement (ProtocolStatement.described), once per statement: in an aborted transaction on a
 * connection that lacks it, where it cannot be parsed again, pgmaitre answers a Describe of it
 * as PostgreSQL would (seeds 98096, 101224). Not after a request that ended with neither Sync nor
 * Flush (its answers may wait in the server's buffer: a Flush would change that), nor in a known
 * aborted transaction (the Parse is refused there). A Describe that fails (the Parse failed, or
 * was skipped) changes nothing: it is written with the client's own sequence (Flush) or after its
 * Sync (with a Sync of its own), and the server skips it, or fails it alone.
 */
export function describeParsed(s: NamingSession, link: Link, info: RequestInfo, req: Request): void {
  if (link.unflushed || link.copyIn || s.abortedTx === 'known' || !(req.term === Term.Sync || (req.term === Term.None && req.flush))) return;
  const sts: ProtocolStatement[] = [];
  const frames: Buffer[] = [];
  for (const p of info.parses) {
    if (p.name === '' || s.dupRefused.has(p.name)) continue;
    const st = s.statements.protocol.get(p.name);
    if (st === undefined || st.described !== undefined || sts.includes(st)) continue;
    if (abortedDescribe(st.frame, st.sql) !== null && parameterCount(st) >= 0) continue;
    sts.push(st);
    frames.push(encodeDescribe('S', serverNameOf(s, p.name)!));
  }
  if (sts.length === 0) return;
  frames.push(link.unsynced ? FLUSH : SYNC);
  const e = link.expect(ExpectKind.Describe, true, sts.length, link.unsynced ? Term.None : Term.Sync);
  e.token = sts;
  s.send(link, Buffer.concat(frames));
}

/** pgmaitre's own Describe (describeParsed) was answered: each statement described keeps its description. */
export function parsedDescribed(e: Expect): void {
  const sts = e.token as ProtocolStatement[];
  const got = e.described;
  if (got === null) return;
  for (let i = 0, k = 0; i + 1 < got.length && k < sts.length; i += 2, k++) {
    const t = got[i];
    const rows = got[i + 1];
    if (!Buffer.isBuffer(t) || typeof rows !== 'boolean' || t.length < 7) return;
    const st = sts[k]!;
    st.params = t.readInt16BE(5);
    st.described = rows ? 'rows' : Buffer.concat([t, NO_DATA]);
  }
}


/** Does `link`'s connection have statement `st` (session pooling: by node; leased: by server name)? */
export function hasStatement(link: Link, st: ProtocolStatement | SqlStatement, server: string | null): boolean {
  return server === null ? st.nodes.has(link.node) : link.conn!.statements.has(server);
}

