/**
 * Answers pgmaitre writes itself instead of a backend: an ERROR for a request it cannot run
 * (no primary), and admin command results (SHOW POOL_*, PGPOOL ...) as text columns with type
 * OID 0 like pgpool. Each ends with ReadyForQuery carrying the session's transaction status.
 * localReply/localError write them in order for a session (only when no node owes the client an
 * answer); inside a shared connection's transaction an error fails the server's transaction too.
 * runAdmin runs an admin command for a session (the queue blocked meanwhile) and writes its answer.
 */
import { Buffer } from 'node:buffer';
import { encodeCommandComplete, encodeErrorResponse, encodeNoticeResponse, encodeReadyForQuery, encodeResultSet } from '../protocol/backend';
import { encodeQuery } from '../protocol/frontend';
import { TxStatus } from '../protocol/codes';
import { LogEvent, logLine } from '../log/logger';
import type { AdminError, ResultSet } from '../admin/types';
import { ExpectKind, Term, type Link } from './link';
import { releaseRequest, type Request, type RequestInfo } from './request';
import type { ClientPort, ForwardSink } from './ports';
import type { CoreHost } from './core-host';

/** ErrorResponse + one ReadyForQuery per Sync of the request. */
export function errorReply(code: string, message: string, hint: string | undefined, syncs: number, status: number): Buffer {
  const parts = [encodeErrorResponse({ severity: 'ERROR', code, message, ...(hint ? { hint } : {}) })];
  for (let i = 0; i < syncs; i++) parts.push(encodeReadyForQuery(status));
  return Buffer.concat(parts);
}

/** An admin command's answer: its rows (or its error) + ReadyForQuery. */
export function adminReply(res: ResultSet | AdminError, status: number): Buffer {
  if ('error' in res) {
    return Buffer.concat([
      encodeErrorResponse({ severity: 'ERROR', code: res.error.code, message: res.error.message,
        ...(res.error.detail ? { detail: res.error.detail } : {}), ...(res.error.hint ? { hint: res.error.hint } : {}) }),
      encodeReadyForQuery(status),
    ]);
  }
  const cols = res.columns.map((name) => ({ name, typeOid: 0 }));
  return Buffer.concat([encodeResultSet(cols, res.rows, res.tag ?? `SELECT ${res.rows.length}`), encodeReadyForQuery(status)]);
}

/** What the session's local answers read and write of it (SessionCore). */
export interface ReplySession extends ForwardSink {
  readonly host: Pick<CoreHost, 'pooling' | 'cluster' | 'log' | 'logFlags' | 'noticePerNode' | 'pid'>;
  readonly links: readonly (Link | undefined)[];
  readonly client: ClientPort;
  /** True when no node other than `node` (null: none) owes the client an answer. */
  allAnswered(node: number | null): boolean;
  /** The transaction status of pgmaitre's own ReadyForQuery. */
  txStatus(): number;
  /** Batches `buf` for `link` (written by flush()). */
  send(link: Link, buf: Buffer): void;
  /** Writes each link's batched requests. */
  flush(): void;
}

/**
 * Puts a shared connection's open transaction in the failed state when pgmaitre answers an error
 * itself inside it (PostgreSQL aborts the transaction on any error): swallowed, it fails at once.
 */
export const ABORT_TX = encodeQuery("DO $pgmaitre$BEGIN RAISE EXCEPTION 'pgmaitre: an error answered by the pooler aborts this transaction'; END$pgmaitre$");

/**
 * An ERROR answered here (after flush). Transaction pooling, inside a transaction of a shared
 * connection whose status is certain: the server's transaction is failed too (ABORT_TX, its
 * answer swallowed) and the reply, ReadyForQuery 'E', follows it in place, as PostgreSQL would
 * abort it; a later COMMIT then rolls back. `inSession`: in session pooling too (a cancelled
 * statement, SessionCore.cancel: it must abort the transaction as PostgreSQL's would).
 */
export function localError(s: ReplySession, req: Request, code: string, message: string, hint: string | undefined, inSession = false): void {
  const syncs = req.term === Term.None ? 0 : 1;
  const l = s.host.pooling === 'session' && !inSession ? undefined : s.links[s.host.cluster.primaryId()];
  // (pgmaitre's own side requests still owed do not make the status uncertain: the ones that
  // change it set txStatus when sent, as a deferred BEGIN does.)
  if (l?.conn == null || l.txStatus !== TxStatus.InTransaction || l.unsynced || l.clientOwed > 0) {
    s.client.write(errorReply(code, message, hint, syncs, s.txStatus()));
    return;
  }
  // (A setting the aborted transaction had changed is reported back at the error: see keepParams.)
  l.expect(ExpectKind.Tx, true, 0, Term.Query).keepParams = true;
  s.send(l, ABORT_TX);
  l.txStatus = TxStatus.Failed;
  l.synthetic(errorReply(code, message, hint, syncs, TxStatus.Failed), s);
}

/** Answers a request here (a command tag, or an ERROR), in order: false (wait) while a node owes answers. */
export function localReply(s: ReplySession, req: Request, tag: string | null, error: [string, string] | null): boolean {
  if (!s.allAnswered(null)) return false;
  s.flush();
  const syncs = req.term === Term.None ? 0 : 1;
  if (error !== null) {
    localError(s, req, error[0], error[1], undefined);
  } else {
    s.client.write(Buffer.concat([encodeCommandComplete(tag!), ...(syncs ? [encodeReadyForQuery(s.txStatus())] : [])]));
  }
  releaseRequest(req);
  return true;
}

/** What runAdmin reads of the session (SessionCore). */
export interface AdminReplySession extends ReplySession {
  readonly host: Pick<CoreHost, 'pooling' | 'cluster' | 'log' | 'logFlags' | 'noticePerNode' | 'pid' | 'runAdmin'>;
  readonly closed: boolean;
  /** Waits for `p` with the queue blocked, then drives again (`answers`: `p` writes an answer). */
  block(p: Promise<unknown>, what: string, answers?: boolean): void;
}

/** Runs an admin command (blocks the queue meanwhile) and writes its answer. */
export function runAdmin(s: AdminReplySession, sql: string): void {
  const status = s.txStatus();
  s.block(s.host.runAdmin(sql, status).then((reply) => {
    if (!s.closed) s.client.write(reply);
  }), 'admin command', true);
}

/** log_per_node_statement / notice_per_node_statement: which node and backend ran the request's statements. */
export function reportNode(s: ReplySession, node: number, link: Link, info: RequestInfo, reason: string): void {
  const sqls = [...info.queries, ...info.parses.map((p) => p.sql)];
  if (sqls.length === 0) for (const st of info.bindStatements) sqls.push(`EXECUTE ${st || '<unnamed>'}`);
  for (const sql of sqls) {
    const text = `DB node id: ${node} backend pid: ${link.conn?.backendPid ?? 0} statement: ${sql}`;
    if (s.host.logFlags.perNodeStatement) logLine(s.host.log, { event: LogEvent.NodeStatement, pid: s.host.pid, node_id: node, reason }, text);
    if (s.host.noticePerNode) s.client.write(encodeNoticeResponse({ severity: 'NOTICE', code: '00000', message: text }));
  }
}
