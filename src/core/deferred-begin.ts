/**
 * Transaction pooling: the deferred BEGIN (issue 17 item 10). psycopg2 and others send a BEGIN
 * before every transaction, and an admin command inside it must not wait for a lease: a BEGIN of
 * a session that holds no connection is answered here (deferBegin) and sent later, in front of
 * the transaction's first statement that needs a server (deferredStep). A plain COMMIT/ROLLBACK
 * before that ends the transaction here. When the transaction fails before reaching a server (no
 * primary, its lease refused), the client is in an aborted transaction, as PostgreSQL would put
 * it: its requests are refused 25P02 here (deferredRefuse) until it ends.
 */
import { Buffer } from 'node:buffer';
import { TxStatus } from '../protocol/codes';
import { encodeClose, encodeQuery, encodeSync } from '../protocol/frontend';
import { encodeCommandComplete, encodeReadyForQuery } from '../protocol/backend';
import { noteDispatched, noteTransactionEnd, type RouteState } from '../router/router';
import type { QueryClass } from '../classify/types';
import { emptyArray } from '../util/arrays';
import { ExpectKind, Term, type Link } from './link';
import { releaseRequest, type Request, type RequestInfo } from './request';
import type { Planner } from './planner';
import type { SessionState } from './session-state';
import type { ClientPort, BackendPort } from './ports';
import type { CoreHost } from './core-host';
import { ABORT_TX, errorReply } from './local-replies';
import { unnamedDropped, type NamingSession } from './connection-statements';
import { deferrableBegin, plainTransactionEnd } from './tx-pooling';
import type { ClearsToken } from './request-effects';

/** What the deferred BEGIN reads and changes of the session (SessionCore). */
export interface DeferredSession extends NamingSession {
  readonly host: Pick<CoreHost, 'routing' | 'cluster' | 'adminEnabled' | 'classifier' | 'leaseNow'>;
  readonly route: RouteState;
  readonly state: SessionState;
  readonly planner: Pick<Planner, 'recentlyFailed'>;
  readonly client: ClientPort;
  /** The BEGIN answered here while the session held no connection, not sent yet ('' = none). */
  deferredBegin: string;
  /**
   * The deferred BEGIN's transaction failed before it reached a server (no primary to start it
   * on, or its lease refused): every request but its end is refused 25P02 here, COMMIT/ROLLBACK
   * end it here.
   */
  deferredFailed: boolean;
  /** SQL of the BEGIN that opened the current explicit transaction (replayed on a node joined inside it). */
  beginSql: string;
  /** The transaction status of pgmaitre's own ReadyForQuery. */
  txStatus(): number;
  /** True when no node other than `node` (null: none) owes the client an answer. */
  allAnswered(node: number | null): boolean;
  flush(): void;
  /** Opens a link to `node` (blocking the queue meanwhile). */
  open(node: number): void;
  /** Attaches a leased connection as the session's link to `node`. */
  attach(node: number, conn: BackendPort): Link;
}

/**
 * A BEGIN of a session that holds no connection is answered here and sent later (deferredStep),
 * when it is one PostgreSQL always accepts there (deferrableBegin). False: it goes on as usual.
 */
export function deferBegin(s: DeferredSession, req: Request, sql: string, cls: QueryClass): boolean {
  const tag = deferrableBegin(sql);
  if (tag === null || s.route.inTransaction || s.txStatus() !== TxStatus.Idle || !s.allAnswered(null)) return false;
  for (const l of s.links) if (l?.conn != null) return false;
  s.flush();
  s.deferredBegin = sql;
  noteDispatched(cls, s.route, s.host.routing.router);
  s.beginSql = sql;
  s.client.write(Buffer.concat([encodeCommandComplete(tag), encodeReadyForQuery(TxStatus.InTransaction)]));
  releaseRequest(req);
  return true;
}

/**
 * A request after a BEGIN answered here (deferBegin): a plain COMMIT/ROLLBACK ends that
 * transaction here, an admin command is answered inside it (null: go on); anything else first
 * leases the primary's connection and sends the BEGIN there (after the session's own side
 * requests, as prepareLink sends them), then goes on as usual. False: wait for the lease.
 */
export function deferredStep(s: DeferredSession, req: Request, info: RequestInfo): boolean | null {
  const single = info.queries.length === 1 && !info.extended && req.term === Term.Query ? info.queries[0]! : null;
  if (single !== null) {
    const end = plainTransactionEnd(single);
    if (end !== null) {
      s.deferredBegin = '';
      const failed = s.deferredFailed;
      s.deferredFailed = false;
      noteTransactionEnd(s.route);
      unnamedDropped(s, null);
      s.flush();
      s.client.write(Buffer.concat([encodeCommandComplete(failed ? 'ROLLBACK' : end), encodeReadyForQuery(TxStatus.Idle)]));
      releaseRequest(req);
      return true;
    }
    if (s.host.adminEnabled && s.host.classifier.classify(single).kind === 'admin') return null;
  }
  const primary = s.host.cluster.primaryId();
  let link = s.links[primary];
  const noPrimary = link?.conn == null && (primary < 0 || s.planner.recentlyFailed(primary, true));
  // The aborted transaction refuses a simple Query here; an extended-protocol request (a ROLLBACK
  // among them) goes to a server whose transaction is aborted first (below), when there is one.
  if (s.deferredFailed && (!info.extended || noPrimary)) {
    return deferredRefuse(s, req, info, '25P02', 'current transaction is aborted, commands ignored until end of transaction block', undefined);
  }
  if (noPrimary) {
    // No primary to start the transaction on (none, or its connection just failed): the request
    // fails as a write with no primary does, and the transaction with it. Opening again at once
    // would come back here at once, a loop that starved the whole process.
    s.deferredFailed = true;
    return deferredRefuse(s, req, info, '57P03', 'no primary node is available', 'the transaction cannot start; end it with ROLLBACK (see SHOW POOL_NODES)');
  }
  if (link?.conn == null) {
    const now = s.host.leaseNow(primary);
    if (now === null) {
      s.open(primary);
      return false;
    }
    link = s.attach(primary, now);
  }
  const conn = link.conn!;
  // What prepareLink sends first on a connection (cleanup, unsure statements, the session's
  // settings): before the BEGIN, so that they stay outside the transaction.
  for (const c of link.cleanup) {
    const e = link.expect(ExpectKind.Cleanup, true, c.completions, c.term);
    if (c.clears !== undefined) e.token = { clears: c.clears } satisfies ClearsToken;
    s.send(link, c.buf);
  }
  emptyArray(link.cleanup);
  if (conn.statements.unsure.size > 0) {
    const frames: Buffer[] = [];
    for (const name of conn.statements.unsure) frames.push(encodeClose('S', name));
    frames.push(encodeSync());
    link.expect(ExpectKind.Cleanup, true, conn.statements.unsure.size, Term.Sync);
    s.send(link, Buffer.concat(frames));
    conn.statements.unsure.clear();
  }
  const replay = s.state.replayFor(conn, s);
  if (replay.length > 0) {
    link.expect(ExpectKind.State, true, 0, Term.Query);
    s.send(link, encodeQuery(replay.join('; ')));
  }
  link.unnamedOwn = false;
  link.expect(ExpectKind.Tx, true, 0, Term.Query).errorsToClient = true;
  s.send(link, encodeQuery(s.deferredBegin));
  link.txStatus = TxStatus.InTransaction;
  if (s.deferredFailed) {
    // The client's transaction is aborted (see deferredFailed): the server's becomes so too.
    link.expect(ExpectKind.Tx, true, 0, Term.Query);
    s.send(link, ABORT_TX);
    link.txStatus = TxStatus.Failed;
    s.deferredFailed = false;
  }
  s.deferredBegin = '';
  return null;
}

/** A request of the deferred BEGIN's failed transaction refused here, in order (see deferredFailed). */
function deferredRefuse(s: DeferredSession, req: Request, info: RequestInfo, code: string, message: string, hint: string | undefined): boolean {
  if (!s.allAnswered(null)) return false;
  if (info.queries.length > 0) unnamedDropped(s, null);
  s.flush();
  s.client.write(errorReply(code, message, hint, req.term === Term.None ? 0 : 1, TxStatus.Failed));
  releaseRequest(req);
  return true;
}
