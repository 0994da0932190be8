/**
 * Transaction pooling: what cannot go to a shared connection as the client wrote it, decided
 * before the planner sees a request. SQL-level prepared statements are renamed to server names
 * (PREPARE, EXECUTE: names from the grammar, past leading comments; statement-names.ts) or
 * answered here for the client alone (DEALLOCATE, a duplicate PREPARE, DISCARD ALL / DEALLOCATE
 * ALL, which would drop statements other clients share); a name that cannot be rewritten pins
 * the session instead (fail closed); statement pooling refuses transaction blocks. A Parse-only
 * request of statements a backend already accepted is answered here with no connection at all.
 */
import { Buffer } from 'node:buffer';
import { TxStatus } from '../protocol/codes';
import { encodeQuery } from '../protocol/frontend';
import { encodeCommandComplete, encodeParameterStatus, encodeReadyForQuery } from '../protocol/backend';
import { executeName, sessionEffects } from '../classify/session-effects';
import type { QueryClass } from '../classify/types';
import { skipFiller } from '../classify/filler';
import type { RouteState } from '../router/router';
import { Term } from './link';
import { releaseRequest, type Request, type RequestInfo } from './request';
import type { Statements } from './statements';
import type { SessionState } from './session-state';
import type { Pins } from './tx-pooling';
import type { CoreHost } from './core-host';
import { localReply, type ReplySession } from './local-replies';
import { parseDefinition, prepareDefinition, renameSqlStatement, serverStatementName } from './statement-names';

/** What pooledLocal reads and changes of the session (SessionCore). */
export interface PooledSession extends ReplySession {
  readonly host: Pick<CoreHost, 'pooling' | 'cluster' | 'log' | 'logFlags' | 'noticePerNode' | 'pid' | 'classifier' | 'knownStatement'>;
  readonly statements: Statements;
  readonly state: SessionState;
  readonly route: RouteState;
  readonly pins: Pins;
  /** Why this session keeps its connections in transaction pooling ('' when it does not). */
  pinReason(): string;
  /** The ParameterStatus values the client was given at login (null: not known). */
  readonly loginParams?: ReadonlyMap<string, string> | null;
  /** Transaction pooling: answers a BEGIN before any connection is leased, when it may (SessionCore.deferBegin). */
  deferBegin?(req: Request, sql: string, cls: QueryClass): boolean;
}

const PARSE_COMPLETE = Buffer.from([0x31, 0, 0, 0, 4]);

/**
 * Statements transaction pooling looks at before routing: a cheap first test of the first keyword
 * after white space and comments (sticky at skipFiller's index, no allocation); the classifier
 * and the grammar decide.
 */
const POOLED_SPECIAL = /(begin|start|prepare|execute|deallocate|discard)\b/iy;

function pooledSpecial(sql: string): boolean {
  POOLED_SPECIAL.lastIndex = skipFiller(sql);
  return POOLED_SPECIAL.test(sql);
}

/** What pooledLocal did with a request: nothing (it goes on), answered it, or it waits for answers owed before it. */
export const Local = { No: 0, Answered: 1, Wait: 2 } as const;
export type Local = (typeof Local)[keyof typeof Local];

const IN_FAILED_TX: [string, string] = ['25P02', 'current transaction is aborted, commands ignored until end of transaction block'];

/**
 * Transaction pooling: what cannot go to a shared connection as the client wrote it. SQL-level
 * prepared statements are renamed to server names (PREPARE, EXECUTE) or answered here
 * (DEALLOCATE, a duplicate PREPARE, DISCARD ALL / DEALLOCATE ALL, which would drop statements
 * other clients share); statement pooling refuses transaction blocks. True when the request
 * was answered here (false: it goes on to the planner, maybe rewritten).
 */
export function pooledLocal(s: PooledSession, req: Request, info: RequestInfo): Local {
  if (info.queries.length === 0 && info.parses.length === 0) return Local.No;
  if (info.queries.length === 0 && req.term === Term.Sync && parseOnlyKnown(s, req, info)) return Local.Answered;
  let special = false;
  // (Indexed: a for...of here made an array iterator per request, transaction pooling only.)
  for (let i = 0; i < info.queries.length; i++) if (pooledSpecial(info.queries[i]!)) special = true;
  for (let i = 0; i < info.parses.length; i++) if (pooledSpecial(info.parses[i]!.sql)) special = true;
  if (!special) return Local.No;
  const single = info.queries.length === 1 && !info.extended ? info.queries[0]! : null;
  const cls = single === null ? null : s.host.classifier.classify(single);
  if (single === null || cls === null || cls.statements !== 1) {
    // PREPARE/EXECUTE/DEALLOCATE among other statements or through the extended protocol:
    // the names cannot be rewritten safely; this session keeps its connection from now on.
    for (const sql of [...info.queries, ...info.parses.map((p) => p.sql)]) {
      const k = s.host.classifier.classify(sql).kind;
      if (k === 'prepare' || k === 'execute' || k === 'deallocate') s.pins.forced ||= 'SQL PREPARE/EXECUTE/DEALLOCATE in a multi-statement query or the extended protocol';
      if (k === 'begin' && s.host.pooling === 'statement') return local(localReply(s, req, null, ['0A000', 'transaction blocks are not allowed in statement pool mode']));
    }
    return Local.No;
  }
  switch (cls.kind) {
    case 'begin':
      if (s.host.pooling === 'statement' && !s.allAnswered(null)) return Local.Wait;
      if (s.host.pooling === 'statement') return local(localReply(s, req, null, ['0A000', 'transaction blocks are not allowed in statement pool mode']));
      return s.deferBegin?.(req, single, cls) === true ? Local.Answered : Local.No;
    case 'prepare': {
      const e = sessionEffects(single);
      const name = e?.[0]?.kind === 'prepare' ? e[0].name : null;
      if (name === null) return Local.No;
      // (Also when pinned: its earlier PREPARE may be on the server under a server name only, seeds 31049/40075.)
      if (s.statements.sql.has(name) || s.statements.protocol.has(name)) {
        if (!s.allAnswered(null)) return Local.Wait;
        if (s.txStatus() === TxStatus.Failed) return local(localReply(s, req, null, IN_FAILED_TX));
        return local(localReply(s, req, null, ['42P05', `prepared statement "${name}" already exists`]));
      }
      if (s.pins.forced !== '') return Local.No;
      if (s.txStatus() === TxStatus.Failed) {
        // An aborted transaction refuses it (25P02), also where the shared connection has its
        // statement already and the PREPARE would be answered in place (seed 60044).
        if (!s.allAnswered(null)) return Local.Wait;
        if (s.txStatus() === TxStatus.Failed) return local(localReply(s, req, null, IN_FAILED_TX));
      }
      const server = serverStatementName('pgmq_', prepareDefinition(single));
      const renamed = renameSqlStatement(single, server, name);
      if (renamed === null) {
        // The grammar's name is not where the text can be rewritten: never send it unrenamed
        // to a shared connection; this session keeps its connection instead (fail closed).
        s.pins.forced ||= 'a PREPARE whose name cannot be rewritten';
        return Local.No;
      }
      req.pooledData = encodeQuery(renamed);
      req.pooledPrepare = server;
      req.pooledRenamed = true;
      return Local.No;
    }
    case 'execute': {
      if (s.pins.forced !== '') return Local.No;
      const name = executeName(single);
      const st = name === null ? undefined : s.statements.sql.get(name);
      const renamed = st === undefined ? null : renameSqlStatement(single, st.server, name!);
      if (renamed !== null) {
        req.pooledData = encodeQuery(renamed);
        req.pooledRenamed = true;
      }
      return Local.No;
    }
    case 'deallocate': {
      const e = sessionEffects(single);
      if (e?.[0]?.kind !== 'deallocate') return Local.No;
      if (s.pins.forced !== '') {
        // Pinned, names go to the connection as written; but a statement the client made before
        // that is there under a server name only (a renamed PREPARE, any Parse): answered here
        // too, or the server would not know the name (seed 94093).
        const name = e[0].name;
        const st = name === null ? undefined : s.statements.sql.get(name);
        if (name === null || (st !== undefined && st.nodes.size > 0) || (st === undefined && !s.statements.protocol.has(name))) return Local.No;
      }
      // Answered here in order, as the server would: nothing is owed before it, and an aborted
      // transaction refuses it (25P02) and keeps the statements.
      if (!s.allAnswered(null)) return Local.Wait;
      if (s.txStatus() === TxStatus.Failed) return local(localReply(s, req, null, IN_FAILED_TX));
      const name = e[0].name;
      if (name === null) {
        s.statements.clearAll(true);
        return local(localReply(s, req, 'DEALLOCATE ALL', null));
      }
      if (!s.statements.sql.delete(name) && !s.statements.protocol.delete(name)) {
        return local(localReply(s, req, null, ['26000', `prepared statement "${name}" does not exist`]));
      }
      return local(localReply(s, req, 'DEALLOCATE', null));
    }
    case 'discard': {
      const e = sessionEffects(single);
      if (e?.[0]?.kind !== 'discard' || e[0].what !== 'all' || s.route.inTransaction || s.pinReason() !== '') return Local.No;
      if (!s.allAnswered(null)) return Local.Wait;
      // The reported parameters the client SET go back to their login values: PostgreSQL says so
      // with a ParameterStatus after the CommandComplete (seed 31155).
      const reported = reportedResets(s);
      // The session's own state goes; the shared connection keeps what other clients use.
      s.statements.clearAll(true);
      s.state.stage(e);
      s.state.commit(null, s);
      s.route.tempTables.clear();
      if (reported.length === 0) return local(localReply(s, req, 'DISCARD ALL', null));
      s.flush();
      s.client.write(Buffer.concat([encodeCommandComplete('DISCARD ALL'), ...reported, encodeReadyForQuery(s.txStatus())]));
      releaseRequest(req);
      return Local.Answered;
    }
    default:
      return Local.No;
  }
}

/**
 * ParameterStatus messages for the reported parameters (those the client was given at login)
 * that the session SET, with their login values: what a reset of them reports.
 */
function reportedResets(s: PooledSession): Buffer[] {
  const login = s.loginParams;
  const out: Buffer[] = [];
  if (login == null || s.state.parameters.size === 0) return out;
  for (const [name, value] of login) {
    if (s.state.parameters.has(name.toLowerCase())) out.push(encodeParameterStatus(name, value));
  }
  return out;
}

function local(answered: boolean): Local {
  return answered ? Local.Answered : Local.Wait;
}

/**
 * Parse(s) + Sync of statements a backend already accepted for this (user, database,
 * search_path), outside a transaction: answered here, no connection needed. Clients that
 * prepare synchronously while their other connections sit in transactions (pgbench -M prepared
 * on a small pool) would otherwise wait for a connection those transactions hold.
 */
function parseOnlyKnown(s: PooledSession, req: Request, info: RequestInfo): boolean {
  if (info.bindStatements.length + info.statementRefs.length + info.portalRefs.length > 0 || info.functionCall) return false;
  if (s.route.inTransaction || req.completions !== info.parses.length || !s.allAnswered(null)) return false;
  const ctx = s.state.searchPath;
  const servers: string[] = [];
  for (const p of info.parses) {
    if (p.name === '' || s.statements.protocol.has(p.name) || s.statements.sql.has(p.name)) return false;
    const server = serverStatementName('pgm_', parseDefinition(req.data.subarray(p.start, p.end)));
    if (!s.host.knownStatement(ctx, server)) return false;
    servers.push(server);
  }
  const primary = s.host.cluster.primaryId();
  for (let i = 0; i < info.parses.length; i++) {
    const p = info.parses[i]!;
    const cls = s.host.classifier.classify(p.sql);
    s.statements.parsed(p.name, req.data.subarray(p.start, p.end), p.sql, cls, primary);
    s.statements.protocol.get(p.name)!.server = servers[i]!;
  }
  s.flush();
  const out: Buffer[] = [];
  for (let i = 0; i < info.parses.length; i++) out.push(PARSE_COMPLETE);
  out.push(encodeReadyForQuery(s.txStatus()));
  s.client.write(Buffer.concat(out));
  releaseRequest(req);
  return true;
}
