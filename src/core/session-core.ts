/**
 * The session core: the one owner of a client session's requests, from "a client frame arrived"
 * to "its answer left". It does no I/O (see ports.ts and core-host.ts): the client session feeds it
 * client frames and backend chunks, and it writes through the ports.
 *
 * Life of one Query: onFrame() assembles frames into a Request (cut at Query/Sync/FunctionCall,
 * Flush, CopyDone/CopyFail) → endOfInput() → drive(): the planner (planner.ts) classifies and
 * picks the node → the request (after any side request the node needs first: session state
 * replayed, a statement re-parsed) is batched for that node's Link with an Expect → flush() writes
 * each node's batch once → the backend's chunk comes back through onBackendData(): the Link's
 * scanner forwards the client's ranges untouched and in order, swallows side answers, and
 * completes Expects → settle() applies what completed (transaction end, SETs committed,
 * statements confirmed) → drive() again for whatever was waiting.
 *
 * Ordering: answers must reach the client in request order, so a request goes to a node only
 * when no other node owes the client an answer; pgmaitre's own replies (errors, admin results)
 * are written only when no node owes anything, after every forwarded byte. After a Flush the
 * session stays on its node until Sync. Anything that needs waiting (a connection being opened, a
 * function's volatility looked up, an admin command) blocks the queue.
 *
 * Backpressure: the client is not read while the queued requests exceed a bound or a backend
 * socket is above its high-water mark; backends are not read while the client's socket is.
 */
import { FrontendCode, TxStatus } from '../protocol/codes';
import { encodeClose, encodeFlush, encodeQuery, encodeSync } from '../protocol/frontend';
import { encodeErrorResponse, encodeNoticeResponse } from '../protocol/backend';
import { clientErrors } from '../errors/client-errors';
import { ADVISORY_LOCK_FUNCTIONS, executeName, sessionEffects, type SessionEffect } from '../classify/session-effects';
import { skipFiller } from '../classify/filler';
import type { QueryClass } from '../classify/types';
import { newRouteState, noteDispatched, noteTransactionEnd, type RouteState } from '../router/router';
import { LogEvent, logLine } from '../log/logger';
import { Expect, ExpectKind, Link, Term, type Goodbye } from './link';
import { newRequest, releaseRequest, Request, RequestInfo } from './request';
import { Planner, PlanType, type Plan, type PlannerView } from './planner';
import { Statements, type ProtocolStatement, type SqlStatement } from './statements';
import { SessionState } from './session-state';
import { ReadYourWrites } from './read-your-writes';
import { errorReply } from './local-replies';
import { encodeCommandComplete, encodeReadyForQuery } from '../protocol/backend';
import {
  encodeParseAs, parseDefinition, prepareDefinition, renameSqlStatement, rewriteRequest, serverStatementName, type NameMap,
} from './statement-names';
import { countStatement } from './statement-counters';
import type { BackendPort, ClientPort, ForwardSink } from './ports';
import { BackendMessageLog } from '../log/backend-messages';
import { LinkRefused, type CoreHost } from './core-host';
import { CacheStep, type CachePort, type CacheView } from './cache-port';
import { IdentityCheck, noteTermination, TERMINATING_FUNCTIONS } from './identity-check';
import { Fate, leaseFate, Pins, TEMP_PROBE, type LeaseSession } from './tx-pooling';
import { lossVerdict } from './recovery';
import { emptyArray } from '../util/arrays';

/** Requests queued beyond this many bytes stop the client from being read. */
const QUEUE_HIGH_WATER = 256 * 1024;

const SYNC = encodeSync();
const FLUSH = encodeFlush();
const SHUTDOWN_CODES = new Set(['57P01', '57P02']);

/** What a completed client request must still do (allocated only for the rare requests that need it). */
interface Token {
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
  /**
   * Transaction pooling: client statement names this request defines, with the index of their
   * Parse among the request's completions (a Parse that failed or was skipped defines nothing).
   */
  defined: { name: string; index: number }[] | null;
  /** Transaction pooling: client statements this request closes (they stay if the Close failed or was skipped). */
  closed: { name: string; st: ProtocolStatement; index: number }[] | null;
  /** Transaction pooling: DISCARD ALL / DEALLOCATE ALL reached the server (its statements go when it succeeds). */
  clears: 'all' | 'statements' | null;
}

/** A cleanup side request's note: it clears the connection's statements (DISCARD/DEALLOCATE ALL). */
interface ClearsToken {
  readonly clears: 'all' | 'statements';
}

/** The temporary-relation probe's note (tx-pooling.ts). */
interface ProbeToken {
  readonly generation: number;
}

/** A side request's note: the statement re-parsed or re-prepared (by node, or by server name on a leased connection). */
interface ReparseToken {
  readonly st: ProtocolStatement | { readonly nodes: Set<number> };
  readonly server: string | null;
}

const PARSE_COMPLETE = Buffer.from([0x31, 0, 0, 0, 4]);
/** ReadyForQuery's header (its status byte follows). */
const RFQ = Buffer.from([0x5a, 0, 0, 0, 5]);
const EMPTY_QUERY = encodeQuery('');
/**
 * Puts a shared connection's open transaction in the failed state when pgmaitre answers an error
 * itself inside it (PostgreSQL aborts the transaction on any error): swallowed, it fails at once.
 */
const ABORT_TX = encodeQuery("DO $pgmaitre$BEGIN RAISE EXCEPTION 'pgmaitre: an error answered by the pooler aborts this transaction'; END$pgmaitre$");

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

const ADVISORY_UNLOCK_ALL = 'pg_advisory_unlock_all';

/** What pooledLocal did with a request: nothing (it goes on), answered it, or it waits for answers owed before it. */
const Local = { No: 0, Answered: 1, Wait: 2 } as const;
type Local = (typeof Local)[keyof typeof Local];

const IN_FAILED_TX: [string, string] = ['25P02', 'current transaction is aborted, commands ignored until end of transaction block'];

/** An exception escaped the core's data path (a bug): the session ends with FATAL XX000. */
export class CoreFault extends Error {
  override name = 'CoreFault';
}

/** See the file header. */
export class SessionCore implements ForwardSink, PlannerView, LeaseSession {
  readonly route: RouteState = newRouteState();
  readonly statements = new Statements();
  readonly state = new SessionState();
  readonly ryw: ReadYourWrites;
  private readonly planner: Planner;
  private readonly info = new RequestInfo();
  private backendLog: BackendMessageLog | null = null;
  /** drive() calls in progress (a step can drive again, e.g. after a local answer). */
  private driving = 0;
  private readonly links: (Link | undefined)[] = [];
  private readonly queue: Request[] = [];
  private queuedBytes = 0;
  // Request assembly: ranges of client bytes not yet cut into a request.
  private rBuf: Buffer[] = [];
  private rStart: number[] = [];
  private rEnd: number[] = [];
  private rCount = 0;
  private rCompletions = 0;
  /** Bytes in the ranges above: counted in pacing, and cut early beyond QUEUE_HIGH_WATER. */
  private rBytes = 0;
  /** The link in COPY IN that takes the client's copy frames directly, and those frames. */
  private copyTarget: Link | null = null;
  private copyParts: Buffer[] = [];
  stickyNode = -1;
  lastNode = -1;
  lbNode = -1;
  /** Node whose backend pid the client was given (its login connection). */
  identityNode = -1;
  /** Asynchronous operations the queue waits for. */
  private blocked = 0;
  private closed = false;
  /** The transaction saw an error (a COMMIT will roll it back). */
  private txFailed = false;
  /** Node where SETs of the current transaction were staged. */
  private stagedNode = -1;
  /** SQL of the BEGIN that opened the current explicit transaction (replayed on a node joined inside it). */
  private beginSql = 'BEGIN';
  /** Links with batched output. */
  private readonly dirty: Link[] = [];
  /** The client's socket is above its high-water mark: backends are paused. */
  private clientFull = false;
  private clientPaused = false;
  private backendFull = 0;
  /** Transaction pooling: why the session keeps its connections ('' = it does not). */
  private pinnedFor = '';
  /** Transaction pooling: what keeps this session on its connections (tx-pooling.ts). */
  readonly pins = new Pins();
  /** openLink() refused the connection the head request waits for (it gets this error). */
  private refused: LinkRefused | null = null;
  /** Links whose cancel request is on its way (until the server took it): their connection is not given back meanwhile. */
  private readonly cancelling = new Map<Link, Promise<void>>();
  /** Transaction pooling: the request being sent redefines these statement names (42P05 from the server). */
  private dupParses: Set<string> | null = null;
  /** ...of which the request's Parses really were refused (not closed before them). */
  private readonly dupRefused = new Set<string>();
  /** Links whose session-state replay failed: their settings are unknown (reset when given back). */
  private readonly stateLost = new Set<Link>();
  /** The query cache's hook (null when memory_cache_enabled = off), and what it reads of the session. */
  private readonly cache: CachePort | null;
  private readonly cacheView: CacheView | null;
  /** Node whose answer the cache collects (-1: none), and the node whose chunk is being scanned (-1: none). */
  private collectNode = -1;
  private feedNode = -1;
  /**
   * Answers held back until the cache's invalidation of a commit went through (cache-port.ts:
   * holdAnswers): the client learns of its write only once no cached answer can contradict it.
   */
  private held: Buffer[] | null = null;
  /** Session pooling: is the client's own backend alive before a request goes elsewhere (identity-check.ts)? */
  private readonly identity = new IdentityCheck();

  constructor(readonly host: CoreHost, private readonly client: ClientPort) {
    this.ryw = new ReadYourWrites(() => host.lsn);
    this.planner = new Planner(this);
    this.cache = host.cache ?? null;
    this.cacheView = this.cache === null ? null : this.makeCacheView();
  }

  // ---- links ---------------------------------------------------------------------------------

  link(node: number): Link | undefined {
    return this.links[node];
  }

  /** All links with a connection. */
  *connected(): IterableIterator<Link> {
    for (const l of this.links) if (l !== undefined && l.conn !== null) yield l;
  }

  /** Attaches the login connection (its pid is the client's). */
  attachLogin(node: number, conn: BackendPort): void {
    this.identityNode = node;
    this.attach(node, conn);
  }

  private attach(node: number, conn: BackendPort): Link {
    let l = this.links[node];
    if (l === undefined) this.links[node] = (l = new Link(node));
    l.reset();
    l.conn = conn;
    l.txStatus = conn.txStatus;
    l.trace = this.backendMessageTrace();
    conn.statements.cap = this.host.config.max_prepared_statements;
    l.forwardAsync = node === this.identityNode || node === this.host.cluster.primaryId();
    // A lease attached while the client's socket is full is not read until it drains (forward()
    // pauses only on the transition to full).
    if (this.clientFull) conn.pause();
    return l;
  }

  /** log_backend_messages as the session has it when a link attaches (null when 'none'). */
  private backendMessageTrace(): ((code: number, node: number) => void) | null {
    const mode = this.host.logFlags.backendMessages;
    if (mode === undefined || mode === 'none') return null;
    if (this.backendLog?.mode !== mode) this.backendLog = new BackendMessageLog(mode, this.host.log, this.host.pid);
    const bl = this.backendLog;
    return (code, node) => bl.message(code, node);
  }

  /** True when no node other than `node` (null: none) owes the client an answer. */
  allAnswered(node: number | null): boolean {
    for (const l of this.links) {
      if (l === undefined || l.node === node) continue;
      if (l.clientOwed > 0) return false;
    }
    return true;
  }

  /** A request is being answered somewhere (for client_idle_limit and SHOW POOL_PROCESSES). */
  get busy(): boolean {
    return !this.allAnswered(null) || this.queue.length > 0;
  }

  // ---- client input --------------------------------------------------------------------------

  /** One complete client frame (the framer's FrameSink). Terminate is the session's business. */
  onFrame(code: number, buf: Buffer, start: number, end: number): void {
    if (this.closed) return;
    if (this.copyTarget !== null && this.rCount === 0 && (code === FrontendCode.CopyData || code === FrontendCode.CopyDone
      || code === FrontendCode.CopyFail || code === FrontendCode.Sync || code === FrontendCode.Flush)) {
      // COPY IN streams straight to its backend (Sync and Flush are ignored by it meanwhile).
      this.copyParts.push(buf.subarray(start, end));
      if (code === FrontendCode.CopyDone || code === FrontendCode.CopyFail) {
        this.flushCopy();
        this.copyTarget = null;
      }
      return;
    }
    const n = this.rCount;
    if (n > 0 && this.rBuf[n - 1] === buf && this.rEnd[n - 1] === start) {
      this.rEnd[n - 1] = end;
    } else {
      this.rBuf[n] = buf;
      this.rStart[n] = start;
      this.rEnd[n] = end;
      this.rCount = n + 1;
    }
    this.rBytes += end - start;
    switch (code) {
      case FrontendCode.Parse:
      case FrontendCode.Bind:
      case FrontendCode.Describe:
      case FrontendCode.Execute:
      case FrontendCode.Close:
        this.rCompletions++;
        if (this.rBytes > QUEUE_HIGH_WATER) this.cutEarly();
        return;
      case FrontendCode.Sync:
        this.cut(Term.Sync, false, false);
        return;
      case FrontendCode.Query:
      case FrontendCode.FunctionCall:
        this.cut(Term.Query, false, false);
        return;
      case FrontendCode.Flush:
        this.cut(Term.None, true, false);
        return;
      case FrontendCode.CopyDone:
      case FrontendCode.CopyFail:
        this.cut(Term.None, false, this.rCompletions === 0);
        return;
      default:
        if (this.rBytes > QUEUE_HIGH_WATER) this.cutEarly();
        return;
    }
  }

  /**
   * Frames without a Sync/Flush/Query beyond QUEUE_HIGH_WATER (a long pipeline, stray CopyData):
   * sent on now, as PostgreSQL processes each message as it arrives, so that they count in
   * pacing instead of piling up here. They stay on their node until Sync, as after a Flush.
   */
  private cutEarly(): void {
    this.cut(Term.None, this.rCompletions > 0, this.rCompletions === 0);
  }

  private cut(term: Term, flush: boolean, copyOnly: boolean): void {
    const req = newRequest();
    if (this.rCount === 1) {
      req.data = this.rBuf[0]!.subarray(this.rStart[0], this.rEnd[0]);
    } else {
      const parts: Buffer[] = [];
      for (let i = 0; i < this.rCount; i++) parts.push(this.rBuf[i]!.subarray(this.rStart[i], this.rEnd[i]));
      req.data = Buffer.concat(parts);
    }
    for (let i = 0; i < this.rCount; i++) this.rBuf[i] = undefined as unknown as Buffer;
    this.rCount = 0;
    this.rBytes = 0;
    req.completions = this.rCompletions;
    this.rCompletions = 0;
    req.term = term;
    req.flush = flush;
    req.copyOnly = copyOnly;
    this.queue.push(req);
    this.queuedBytes += req.data.length;
  }

  /** The end of a client chunk: stream COPY data, then route and send complete requests. */
  endOfInput(): void {
    this.flushCopy();
    this.drive();
  }

  private flushCopy(): void {
    if (this.copyParts.length === 0) return;
    const target = this.copyTarget;
    const data = this.copyParts.length === 1 ? this.copyParts[0]! : Buffer.concat(this.copyParts);
    this.copyParts = [];
    if (target?.conn == null) return; // the copying backend is gone: its loss ends the session
    this.writeTo(target, data);
  }

  // ---- driving -------------------------------------------------------------------------------

  /** Sends every queued request that can be sent now. */
  drive(): void {
    this.driving++;
    while (!this.closed && this.blocked === 0 && this.queue.length > 0) {
      const req = this.queue[0]!;
      const bytes = req.data.length; // (step() may give the request back to the pool)
      if (!this.step(req)) break;
      this.queue.shift();
      this.queuedBytes -= bytes;
    }
    // The scratch info and plan must not keep the last request alive: a large SQL text promoted
    // to V8's old space by the next young collection waits there for a full one, and whatever an
    // idle session still references is copied by every young collection — work per request that
    // grows with the number of sessions. Not while an outer drive() (this one runs inside its
    // step) still reads them.
    if (--this.driving === 0) {
      this.info.forget();
      this.planner.plan.clear();
    }
    this.flush();
    this.releaseIdle();
    this.pacing();
  }

  /** Handles the request at the head of the queue; false when it must wait. */
  private step(req: Request): boolean {
    if (req.copyOnly) {
      // COPY data that arrived before its CopyInResponse: it follows the COPY to its node.
      const target = this.copyTarget ?? (this.lastNode >= 0 ? this.links[this.lastNode] : undefined);
      if (target?.conn != null) this.send(target, req.data);
      releaseRequest(req);
      return true;
    }
    if (this.refused !== null) {
      const r = this.refused;
      this.refused = null;
      this.flush();
      this.client.write(errorReply(r.code, r.message, r.hint, req.term === Term.None ? 0 : 1, this.txStatus()));
      releaseRequest(req);
      return true;
    }
    const info = this.info.read(req.data);
    if (this.host.pooling !== 'session') {
      const local = this.pooledLocal(req, info);
      if (local === Local.Answered) {
        if (info.queries.length > 0) this.unnamedDropped(null);
        return true;
      }
      if (local === Local.Wait) return false;
    }
    const plan = this.planner.make(req, info);
    switch (plan.type) {
      case PlanType.WaitAnswers:
        return false;
      case PlanType.Lookup:
        this.block(this.host.routing.volatility.lookup(plan.lookup.slice()), 'volatility lookup');
        return false;
      case PlanType.Admin:
        if (info.queries.length > 0) this.unnamedDropped(null);
        this.runAdmin(plan.adminSql);
        releaseRequest(req);
        return true;
      case PlanType.Error:
        if (info.queries.length > 0) this.unnamedDropped(null);
        this.flush();
        this.localError(req, plan.errorCode, plan.errorMessage, plan.errorHint);
        releaseRequest(req);
        return true;
      default:
        break;
    }
    if (this.cache !== null) {
      const answered = this.consultCache(req, info, plan);
      if (answered === true && info.queries.length > 0) this.unnamedDropped(null);
      if (answered !== null) return answered;
    }
    if (this.identityUnsure(plan.node)) return false;
    let link = this.links[plan.node];
    if (link?.conn == null) {
      // Transaction pooling: an idle connection is leased at once (no waiting on the hot path).
      const now = this.host.pooling !== 'session' ? this.host.leaseNow(plan.node) : null;
      if (now === null) {
        this.open(plan.node);
        return false;
      }
      link = this.attach(plan.node, now);
    }
    this.execute(req, info, plan, link);
    return true;
  }

  /**
   * Transaction pooling: what cannot go to a shared connection as the client wrote it. SQL-level
   * prepared statements are renamed to server names (PREPARE, EXECUTE) or answered here
   * (DEALLOCATE, a duplicate PREPARE, DISCARD ALL / DEALLOCATE ALL, which would drop statements
   * other clients share); statement pooling refuses transaction blocks. True when the request
   * was answered here (false: it goes on to the planner, maybe rewritten).
   */
  private pooledLocal(req: Request, info: RequestInfo): Local {
    if (info.queries.length === 0 && info.parses.length === 0) return Local.No;
    if (info.queries.length === 0 && req.term === Term.Sync && this.parseOnlyKnown(req, info)) return Local.Answered;
    let special = false;
    for (const q of info.queries) if (pooledSpecial(q)) special = true;
    for (const p of info.parses) if (pooledSpecial(p.sql)) special = true;
    if (!special) return Local.No;
    const single = info.queries.length === 1 && !info.extended ? info.queries[0]! : null;
    const cls = single === null ? null : this.host.classifier.classify(single);
    if (single === null || cls === null || cls.statements !== 1) {
      // PREPARE/EXECUTE/DEALLOCATE among other statements or through the extended protocol:
      // the names cannot be rewritten safely; this session keeps its connection from now on.
      for (const sql of [...info.queries, ...info.parses.map((p) => p.sql)]) {
        const k = this.host.classifier.classify(sql).kind;
        if (k === 'prepare' || k === 'execute' || k === 'deallocate') this.pins.forced ||= 'SQL PREPARE/EXECUTE/DEALLOCATE in a multi-statement query or the extended protocol';
        if (k === 'begin' && this.host.pooling === 'statement') return this.local(this.localReply(req, null, ['0A000', 'transaction blocks are not allowed in statement pool mode']));
      }
      return Local.No;
    }
    switch (cls.kind) {
      case 'begin':
        if (this.host.pooling === 'statement' && !this.allAnswered(null)) return Local.Wait;
        if (this.host.pooling === 'statement') return this.local(this.localReply(req, null, ['0A000', 'transaction blocks are not allowed in statement pool mode']));
        return Local.No;
      case 'prepare': {
        if (this.pins.forced !== '') return Local.No;
        const e = sessionEffects(single);
        const name = e?.[0]?.kind === 'prepare' ? e[0].name : null;
        if (name === null) return Local.No;
        if (this.statements.sql.has(name) || this.statements.protocol.has(name)) {
          if (!this.allAnswered(null)) return Local.Wait;
          if (this.txStatus() === TxStatus.Failed) return this.local(this.localReply(req, null, IN_FAILED_TX));
          return this.local(this.localReply(req, null, ['42P05', `prepared statement "${name}" already exists`]));
        }
        const server = serverStatementName('pgmq_', prepareDefinition(single));
        const renamed = renameSqlStatement(single, server, name);
        if (renamed === null) {
          // The grammar's name is not where the text can be rewritten: never send it unrenamed
          // to a shared connection; this session keeps its connection instead (fail closed).
          this.pins.forced ||= 'a PREPARE whose name cannot be rewritten';
          return Local.No;
        }
        req.pooledData = encodeQuery(renamed);
        req.pooledPrepare = server;
        req.pooledRenamed = true;
        return Local.No;
      }
      case 'execute': {
        if (this.pins.forced !== '') return Local.No;
        const name = executeName(single);
        const st = name === null ? undefined : this.statements.sql.get(name);
        const renamed = st === undefined ? null : renameSqlStatement(single, st.server, name!);
        if (renamed !== null) {
          req.pooledData = encodeQuery(renamed);
          req.pooledRenamed = true;
        }
        return Local.No;
      }
      case 'deallocate': {
        if (this.pins.forced !== '') return Local.No;
        const e = sessionEffects(single);
        if (e?.[0]?.kind !== 'deallocate') return Local.No;
        // Answered here in order, as the server would: nothing is owed before it, and an aborted
        // transaction refuses it (25P02) and keeps the statements.
        if (!this.allAnswered(null)) return Local.Wait;
        if (this.txStatus() === TxStatus.Failed) return this.local(this.localReply(req, null, IN_FAILED_TX));
        const name = e[0].name;
        if (name === null) {
          this.statements.clearAll(true);
          return this.local(this.localReply(req, 'DEALLOCATE ALL', null));
        }
        if (!this.statements.sql.delete(name) && !this.statements.protocol.delete(name)) {
          return this.local(this.localReply(req, null, ['26000', `prepared statement "${name}" does not exist`]));
        }
        return this.local(this.localReply(req, 'DEALLOCATE', null));
      }
      case 'discard': {
        const e = sessionEffects(single);
        if (e?.[0]?.kind !== 'discard' || e[0].what !== 'all' || this.route.inTransaction || this.pinReason() !== '') return Local.No;
        if (!this.allAnswered(null)) return Local.Wait;
        // The session's own state goes; the shared connection keeps what other clients use.
        this.statements.clearAll(true);
        this.state.stage(e);
        this.state.commit(null, this);
        this.route.tempTables.clear();
        return this.local(this.localReply(req, 'DISCARD ALL', null));
      }
      default:
        return Local.No;
    }
  }

  private local(answered: boolean): Local {
    return answered ? Local.Answered : Local.Wait;
  }

  /**
   * Parse(s) + Sync of statements a backend already accepted for this (user, database,
   * search_path), outside a transaction: answered here, no connection needed. Clients that
   * prepare synchronously while their other connections sit in transactions (pgbench -M prepared
   * on a small pool) would otherwise wait for a connection those transactions hold.
   */
  private parseOnlyKnown(req: Request, info: RequestInfo): boolean {
    if (info.bindStatements.length + info.statementRefs.length + info.portalRefs.length > 0 || info.functionCall) return false;
    if (this.route.inTransaction || req.completions !== info.parses.length || !this.allAnswered(null)) return false;
    const ctx = this.state.searchPath;
    const servers: string[] = [];
    for (const p of info.parses) {
      if (p.name === '' || this.statements.protocol.has(p.name) || this.statements.sql.has(p.name)) return false;
      const server = serverStatementName('pgm_', parseDefinition(req.data.subarray(p.start, p.end)));
      if (!this.host.knownStatement(ctx, server)) return false;
      servers.push(server);
    }
    const primary = this.host.cluster.primaryId();
    for (let i = 0; i < info.parses.length; i++) {
      const p = info.parses[i]!;
      const cls = this.host.classifier.classify(p.sql);
      this.statements.parsed(p.name, req.data.subarray(p.start, p.end), p.sql, cls, primary);
      this.statements.protocol.get(p.name)!.server = servers[i]!;
    }
    this.flush();
    const out: Buffer[] = [];
    for (let i = 0; i < info.parses.length; i++) out.push(PARSE_COMPLETE);
    out.push(encodeReadyForQuery(this.txStatus()));
    this.client.write(Buffer.concat(out));
    releaseRequest(req);
    return true;
  }

  /**
   * An ERROR answered here (after flush). Transaction pooling, inside a transaction of a shared
   * connection whose status is certain: the server's transaction is failed too (ABORT_TX, its
   * answer swallowed) and the reply, ReadyForQuery 'E', follows it in place, as PostgreSQL would
   * abort it; a later COMMIT then rolls back.
   */
  private localError(req: Request, code: string, message: string, hint: string | undefined): void {
    const syncs = req.term === Term.None ? 0 : 1;
    const l = this.host.pooling === 'session' ? undefined : this.links[this.host.cluster.primaryId()];
    if (l?.conn == null || l.txStatus !== TxStatus.InTransaction || l.unsynced || l.syncOwed > 0) {
      this.client.write(errorReply(code, message, hint, syncs, this.txStatus()));
      return;
    }
    l.expect(ExpectKind.Tx, true, 0, Term.Query);
    this.send(l, ABORT_TX);
    l.txStatus = TxStatus.Failed;
    l.synthetic(errorReply(code, message, hint, syncs, TxStatus.Failed), this);
  }

  /** Answers a request here (a command tag, or an ERROR), in order: false (wait) while a node owes answers. */
  private localReply(req: Request, tag: string | null, error: [string, string] | null): boolean {
    if (!this.allAnswered(null)) return false;
    this.flush();
    const syncs = req.term === Term.None ? 0 : 1;
    if (error !== null) {
      this.localError(req, error[0], error[1], undefined);
    } else {
      this.client.write(Buffer.concat([encodeCommandComplete(tag!), ...(syncs ? [encodeReadyForQuery(this.txStatus())] : [])]));
    }
    releaseRequest(req);
    return true;
  }

  /** Why this session keeps its connections in transaction pooling ('' when it does not). */
  pinReason(): string {
    const p = this.pins;
    if (p.forced !== '') return p.forced;
    const st = this.state;
    if (st.listening.size > 0) return 'LISTEN';
    if (st.advisoryHeld) return 'a session advisory lock';
    if (st.holdCursors.size > 0) return 'a cursor WITH HOLD';
    if (p.temp) return 'a temporary table';
    return '';
  }

  /** LeaseSession: the link in COPY IN. */
  get copyLink(): Link | null {
    return this.copyTarget;
  }

  /** LeaseSession: a cancel for `link`'s backend is on its way. */
  cancelInFlight(link: Link): boolean {
    return this.cancelling.size > 0 && this.cancelling.has(link);
  }

  /**
   * Transaction pooling: gives back every connection whose transaction is over (leaseFate says
   * Clean: nothing owed, idle, no extended-protocol sequence open, no cancel in flight, not pinned
   * by state that lives only there); probes whether the temporary relations that pin it are gone.
   */
  private releaseIdle(): void {
    if (this.host.pooling === 'session' || this.closed) return;
    const pin = this.pinReason();
    if (pin !== '') {
      if (this.pinnedFor === '') {
        this.pinnedFor = pin;
        this.host.pinned(pin);
      }
      if (this.pins.tempProbeDue && this.pins.forced === '' && pin === 'a temporary table') this.probeTemp();
      return;
    }
    if (this.pinnedFor !== '') {
      this.pinnedFor = '';
      this.host.pinned('');
    }
    for (const l of this.links) {
      if (l === undefined || l.conn === null) continue;
      if (leaseFate(l, this, false) !== Fate.Clean) continue;
      this.giveBack(l, Fate.Clean, '');
    }
  }

  /**
   * Session pooling, a request for `node`: while a termination sent through pgmaitre may have hit
   * the client's own backend, a Sync goes there first and the request waits for its answer.
   */
  private identityUnsure(node: number): boolean {
    const own = this.links[this.identityNode];
    if (this.host.pooling !== 'session' || own?.conn == null) return false;
    if (this.identity.pending) {
      if (own.owed > 0) return true;
      this.identity.pending = false;
    }
    if (node === this.identityNode || !this.identity.due() || own.owed > 0 || own.unsynced) return false;
    own.expect(ExpectKind.Cleanup, true, 0, Term.Sync);
    this.send(own, SYNC);
    this.identity.pending = true;
    return true;
  }

  /** Ends `link`'s lease with `fate` (Clean, Reset or Close: see tx-pooling.ts). */
  private giveBack(l: Link, fate: Fate, why: string): void {
    const conn = l.conn!;
    l.conn = null;
    l.reset();
    this.stateLost.delete(l);
    this.host.closeLink(conn, fate !== Fate.Close, why, fate === Fate.Reset);
  }

  /**
   * Transaction pooling: the session is pinned only by temporary relations and a statement that
   * may have dropped them ran: ask the primary's connection whether any is left (a row: yes).
   */
  private probeTemp(): void {
    const l = this.links[this.host.cluster.primaryId()];
    if (l?.conn == null || l.owed > 0 || !l.quiet || l.unsynced || l.txStatus !== TxStatus.Idle) return;
    this.pins.tempProbeDue = false;
    l.unnamedOwn = false;
    const e = l.expect(ExpectKind.Probe, true, 0, Term.Query);
    e.token = { generation: this.pins.tempGeneration } satisfies ProbeToken;
    this.send(l, encodeQuery(TEMP_PROBE));
    this.flush();
  }

  /** Opens a link to `node` (blocking the queue meanwhile). */
  private open(node: number): void {
    this.block(this.host.openLink(node).catch((e: unknown) => {
      if (!(e instanceof LinkRefused)) throw e;
      this.refused = e; // the request waiting for it gets this error (see step)
      return null;
    }).then((conn) => {
      if (this.refused !== null) return;
      if (conn === null) {
        this.forgetNode(node);
        return;
      }
      if (this.closed) {
        this.host.closeLink(conn, true, '');
        return;
      }
      this.planner.failedAt.delete(node);
      this.attach(node, conn);
    }), `connect to node ${node}`);
  }

  /**
   * Waits for `p` with the queue blocked, then drives again. This is where asynchronous waits
   * re-enter the core: a rejection is a bug (expected failures resolve: openLink gives null or
   * LinkRefused, lookups fail closed), so it ends this session with FATAL XX000 (crash()).
   */
  private block(p: Promise<unknown>, what: string): void {
    this.flush();
    this.blocked++;
    this.pacing();
    p.then(() => {
      this.blocked--;
      this.guard(() => this.drive());
    }, (e: unknown) => {
      this.blocked--;
      this.crash(e, what);
    });
  }

  /** Runs `fn` (a socket or timer event entering the core); a throw ends this session only. */
  guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.crash(e, 'session core');
    }
  }

  /**
   * An exception escaped the core's data path: a bug. This session only ends, with FATAL XX000;
   * the error is logged once with its stack; its connections are closed (their state is
   * unknown), never given back. Every other session goes on.
   */
  crash(e: unknown, where: string): void {
    if (this.closed) return;
    const err = e instanceof Error ? e : new Error(String(e));
    this.host.log.error({ event: 'session_crash', pid: this.host.pid, where, err: { message: err.message, stack: err.stack } },
      `internal error in session ${this.host.pid} (${where}): ${err.message}; ending this session only`);
    try {
      this.client.write(encodeErrorResponse(clientErrors.internalFatal()));
    } catch {
      // the client's socket may be what failed; the session ends anyway
    }
    this.closed = true;
    for (const l of this.links) {
      if (l?.conn == null) continue;
      const conn = l.conn;
      l.conn = null;
      try {
        l.reset();
      } finally {
        this.host.closeLink(conn, false, `session ${this.host.pid} ended after an internal error`);
      }
    }
    for (const r of this.queue) releaseRequest(r);
    this.queue.length = 0;
    this.host.end(`internal error: ${err.message}`);
  }

  /** Sends a planned request (and what its node needs first). */
  private execute(req: Request, info: RequestInfo, plan: Plan, link: Link): void {
    const node = plan.node;
    const primary = this.host.cluster.primaryId();
    const pooled = this.host.pooling !== 'session';
    if (pooled) {
      link.conn!.statements.nextRequest();
      this.dupParses = info.parses.length > 0 ? this.duplicateParses(info) : null;
    }
    this.prepareLink(link, info, plan, node !== primary);
    if (pooled && info.parses.length > 0 && info.parsesStatement('')) link.unnamedOwn = true;
    if (plan.broadcastTx) this.broadcast(req, link);
    if (this.host.noticePerNode || this.host.logFlags.perNodeStatement) this.reportNode(node, link, info, plan.reason);
    if (link.clientOwed === 0 && req.term !== Term.None) link.busySince = performance.now();
    let retry = plan.retryable;
    if (this.cache !== null) this.cacheSent(info, plan);
    // Shared connections: the client's statement names become server names (statement-names.ts),
    // resolved before this request's own Close/DEALLOCATE change the registry (bookkeeping).
    const segments = pooled && (info.parses.length + info.bindStatements.length + info.statementRefs.length > 0)
      ? rewriteRequest(req.data, this.names(link)) : null;
    let token = this.bookkeeping(req, info, plan, node);
    if (info.queries.length > 0) this.unnamedDropped(link);
    if (link.conn !== null) this.noteStatement(link.conn, info);
    let preparedHere = false;
    if (req.pooledPrepare !== null) {
      preparedHere = link.conn!.statements.has(req.pooledPrepare);
      if (!preparedHere) {
        link.conn!.statements.begin(req.pooledPrepare);
        ((token ??= newToken()).parsed ??= []).push(req.pooledPrepare);
      }
    }
    if (pooled) this.evict(link);
    if (segments !== null) {
      if (segments.length > 1) {
        retry = false;
        // The answer is checked against the last segment only: any error drops what the request defined.
        if (token?.defined != null) for (const d of token.defined) d.index = Number.MAX_SAFE_INTEGER;
        if (token?.closed != null) for (const d of token.closed) d.index = -1;
      }
      for (let i = 0; i < segments.length; i++) {
        const seg = segments[i]!;
        const last = i === segments.length - 1;
        if (seg.buf.length > 0 || (last && req.term !== Term.None)) {
          const e = link.expect(ExpectKind.Client, false, seg.completions, last ? req.term : Term.None);
          if (last) {
            e.token = token;
            if (retry) e.retry = req;
          }
          this.send(link, seg.buf);
        }
        if (seg.parseCompleteAfter) link.synthetic(PARSE_COMPLETE, this);
      }
    } else if (preparedHere) {
      // The shared connection has this statement already: PREPARE is answered in place.
      retry = false;
      link.synthetic(Buffer.concat([encodeCommandComplete('PREPARE'), encodeReadyForQuery(link.txStatus)]), this);
    } else {
      const e = link.expect(ExpectKind.Client, false, req.completions, req.term);
      if (retry) e.retry = req;
      e.token = token;
      this.send(link, req.pooledData ?? req.data);
    }
    if (req.term !== Term.None) link.unsynced = false;
    else if (info.extended || req.flush) link.unsynced = true;
    if (node === primary && plan.writes && this.host.config.read_your_writes) this.ryw.noteWrite();
    this.lastNode = node;
    this.stickyNode = req.flush && req.term === Term.None ? node : req.term !== Term.None ? -1 : this.stickyNode;
    this.dupParses = null;
    this.dupRefused.clear();
    if (!retry) releaseRequest(req);
  }

  /**
   * Transaction pooling: Parses of a name this client has defined and not closed before them.
   * PostgreSQL answers them 42P05 (and skips to Sync); a shared connection would not know the
   * name, so the Parse is sent under the existing statement's server name (made sure to exist
   * there first), and the server itself refuses it, in place.
   */
  private duplicateParses(info: RequestInfo): Set<string> | null {
    let out: Set<string> | null = null;
    for (const p of info.parses) {
      if (p.name === '' || !this.statements.protocol.has(p.name)) continue;
      (out ??= new Set()).add(p.name);
    }
    return out;
  }

  /** Closes the statements beyond max_prepared_statements on `link`'s connection (least recently used first). */
  private evict(link: Link): void {
    const names = link.conn!.statements.evict();
    if (names === null) return;
    const frames: Buffer[] = names.map((n) => encodeClose('S', n));
    // Inside an open extended-protocol sequence a Sync would end it: Flush instead.
    frames.push(link.unsynced ? FLUSH : SYNC);
    link.expect(ExpectKind.Cleanup, true, names.length, link.unsynced ? Term.None : Term.Sync);
    this.send(link, Buffer.concat(frames));
  }

  /** Server names of this session's statements on `link`'s connection (transaction pooling). */
  private names(link: Link): NameMap {
    const reg = link.conn!.statements;
    const local = new Map<string, string>();
    let closed: Set<string> | null = null;
    return {
      parsed: (name, definition) => {
        // A name the client still has (from before, or parsed earlier in this request, not closed
        // in between): the Parse goes under that statement's server name, and the server refuses it (42P05).
        const earlier = local.get(name);
        if (earlier !== undefined) return { server: earlier, had: false };
        if (this.dupParses?.has(name) === true && closed?.has(name) !== true) {
          this.dupRefused.add(name);
          return { server: this.serverNameOf(name)!, had: false };
        }
        const server = serverStatementName('pgm_', definition);
        local.set(name, server);
        // Tentative until the server answered (confirmed or dropped in completed()).
        const had = reg.has(server);
        if (!had) reg.begin(server);
        return { server, had };
      },
      serverName: (name) => local.get(name) ?? this.serverNameOf(name),
      closing: (name) => {
        local.delete(name);
        (closed ??= new Set()).add(name);
      },
    };
  }

  /**
   * A simple Query drops the unnamed statement (exec_simple_query), after the request's own
   * Parses: the client has none any more. `sent`: the link the Query went to (its connection has
   * none either); on the others, the connection may still hold it (transaction pooling: another
   * client's, or this one's), so a later Bind '' is made to fail there as it would directly.
   */
  private unnamedDropped(sent: Link | null): void {
    this.statements.protocol.delete('');
    for (let i = 0; i < this.links.length; i++) {
      const l = this.links[i];
      if (l !== undefined) l.unnamedOwn = l === sent;
    }
  }

  /** The server name of a protocol statement of this session (computed once). */
  private serverNameOf(name: string): string | undefined {
    const st = this.statements.protocol.get(name);
    if (st === undefined) return undefined;
    return (st.server ??= serverStatementName('pgm_', parseDefinition(st.frame)));
  }

  /** Does `link`'s connection have statement `st` (session pooling: by node; leased: by server name)? */
  private hasStatement(link: Link, st: ProtocolStatement | SqlStatement, server: string | null): boolean {
    return server === null ? st.nodes.has(link.node) : link.conn!.statements.has(server);
  }

  /** Side requests a link needs before the client's request: cleanup, session state, transaction, statements. */
  private prepareLink(link: Link, info: RequestInfo, plan: Plan, notPrimary: boolean): void {
    const conn = link.conn!;
    const pooled = this.host.pooling !== 'session';
    /** Nothing in flight there before this request's own side requests. */
    const idle = link.owed === 0;
    if (!link.unsynced) {
      for (const c of link.cleanup) {
        if (c.term === Term.Query) link.unnamedOwn = false;
        const e = link.expect(ExpectKind.Cleanup, true, c.completions, c.term);
        if (c.clears !== undefined) e.token = { clears: c.clears } satisfies ClearsToken;
        this.send(link, c.buf);
      }
      emptyArray(link.cleanup);
      const unsure = conn.statements.unsure;
      if (unsure.size > 0) {
        // Statements a failed request may or may not have created: make sure they do not exist.
        const frames: Buffer[] = [];
        for (const name of unsure) frames.push(encodeClose('S', name));
        frames.push(SYNC);
        link.expect(ExpectKind.Cleanup, true, unsure.size, Term.Sync);
        this.send(link, Buffer.concat(frames));
        unsure.clear();
      }
      const replay = this.state.replayFor(conn, this);
      if (link.cleanup.length > 0 || replay.length > 0) link.unnamedOwn = false; // (a Query drops the unnamed statement)
      if (replay.length > 0) {
        link.expect(ExpectKind.State, true, 0, Term.Query);
        this.send(link, encodeQuery(replay.join('; ')));
      }
      if (notPrimary && this.stickyNode < 0 && idle) {
        // A node other than the primary follows the primary's explicit transaction: BEGIN when the
        // session is inside one and reads are balanced in transactions, ROLLBACK when the session
        // left it but this node is still in it (standbys only read: ROLLBACK ends them as COMMIT would).
        const wantTx = this.route.inTransaction && this.host.routing.router.loadBalanceInTransaction;
        let sql = '';
        if (wantTx && link.txStatus === TxStatus.Idle) sql = this.beginSql;
        else if (!this.route.inTransaction && link.txStatus !== TxStatus.Idle) sql = 'ROLLBACK';
        if (sql !== '') {
          link.unnamedOwn = false;
          link.expect(ExpectKind.Tx, true, 0, Term.Query);
          this.send(link, encodeQuery(sql));
          link.txStatus = sql === 'ROLLBACK' ? TxStatus.Idle : TxStatus.InTransaction;
        }
      }
    }
    // Statements bound or described here but parsed on another node (or, leased, not known to be
    // on this connection): re-parse them first.
    const dups = this.dupParses === null ? null : [...this.dupParses];
    const bound = info.bindStatements.length + info.statementRefs.length;
    const names = bound + (dups?.length ?? 0);
    let unnamedDropped = false;
    if (names > 0) {
      const sticky = this.stickyNode === link.node;
      for (let i = 0; i < names; i++) {
        // (Names redefined by this request must exist for the server to refuse the Parse, even mid-sequence.)
        if (i < bound && sticky) continue;
        const name = i >= bound ? dups![i - bound]! : i < info.bindStatements.length ? info.bindStatements[i]! : info.statementRefs[i - info.bindStatements.length]!;
        if (i < bound && info.parsesStatement(name)) continue;
        // The client's own unnamed Parse (or its failure) is what the connection has: as directly.
        if (pooled && name === '' && link.unnamedOwn) continue;
        const st = this.statements.protocol.get(name);
        if (st === undefined) {
          if (pooled && name === '' && !link.unsynced && !unnamedDropped) {
            // The client has no unnamed statement, but another client's may be on this connection:
            // a simple Query drops it (exec_simple_query), so the Bind '' fails as it would directly (26000).
            unnamedDropped = true;
            link.expect(ExpectKind.Cleanup, true, 0, Term.Query);
            this.send(link, EMPTY_QUERY);
            link.unnamedOwn = true; // none, as the client has none
          }
          continue;
        }
        // The unnamed statement is never mapped to a named one (the Bind '' stays as it is): on
        // a shared connection whatever another client parsed last may be there, so the client's
        // own unnamed Parse is sent again, as it wrote it.
        const server = pooled && name !== '' ? this.serverNameOf(name)! : null;
        if (pooled && name === '') {
          // (re-parsed below)
        } else if (this.hasStatement(link, st, server)) {
          if (server !== null) this.host.statementCache(true);
          continue;
        }
        if (server !== null) this.host.statementCache(false);
        // Leased: no Sync between the re-parse and the request (an error there reaches the client
        // and skips its request, as the Parse it stands for would). Session pooling: in its own
        // Sync, except inside an open extended-protocol sequence (Parse + Flush).
        const inline = pooled || link.unsynced;
        const e = inline ? link.expect(ExpectKind.Reparse, true, 1, Term.None) : link.expect(ExpectKind.Reparse, true, 1, Term.Sync);
        e.errorsToClient = inline;
        e.token = { st, server } satisfies ReparseToken;
        const parse = server === null ? st.frame : encodeParseAs(server, parseDefinition(st.frame));
        this.send(link, link.unsynced ? Buffer.concat([parse, FLUSH]) : inline ? parse : Buffer.concat([parse, SYNC]));
        if (server === null) st.nodes.add(link.node);
        else conn.statements.begin(server);
        if (pooled && name === '') link.unnamedOwn = true;
      }
    }
    if (!link.unsynced) {
      for (const st of plan.sqlNeeded) {
        const server = pooled && this.pins.forced === '' ? st.server : null;
        if (this.hasStatement(link, st, server)) continue;
        const text = server === null ? st.text : renameSqlStatement(st.text, server);
        if (text === null) continue; // not renamable: the EXECUTE fails as it would without it
        const e = link.expect(ExpectKind.Reparse, true, 0, Term.Query);
        e.token = { st, server } satisfies ReparseToken;
        this.send(link, encodeQuery(text));
        if (server === null) st.nodes.add(link.node);
        else conn.statements.begin(server);
      }
    }
  }

  /** Transaction control or session state inside a transaction balanced across nodes: every node in it gets it. */
  private broadcast(req: Request, target: Link): void {
    for (const l of this.connected()) {
      if (l === target || l.owed > 0 || l.unsynced || l.txStatus === TxStatus.Idle) continue;
      l.expect(ExpectKind.Tx, true, req.completions, req.term);
      this.send(l, req.data);
    }
  }

  private send(link: Link, buf: Buffer): void {
    if (link.out.length === 0) this.dirty.push(link);
    link.out.push(buf);
  }

  /** Writes each link's batched requests (one write per link). */
  private flush(): void {
    for (const link of this.dirty) {
      const out = link.out;
      if (out.length === 0) continue;
      const buf = out.length === 1 ? out[0]! : Buffer.concat(out);
      emptyArray(out);
      if (link.conn !== null) this.writeTo(link, buf);
    }
    emptyArray(this.dirty);
  }

  private writeTo(link: Link, buf: Buffer): void {
    const conn = link.conn!;
    if (conn.write(buf) || link.full) return;
    link.full = true;
    this.backendFull++;
    this.pacing();
    conn.onceDrained(() => {
      link.full = false;
      this.backendFull--;
      this.pacing();
    });
  }

  /**
   * Reads the client only while its requests can go somewhere: not while a backend socket is full
   * or more than QUEUE_HIGH_WATER bytes of requests wait here. A request waiting (for a lease, a
   * connection, a lookup) does not stop the reading by itself: the byte bound holds what may
   * queue meanwhile, and pausing a socket read through util/fast-read.ts costs a readStop and a
   * readStart (epoll_ctl calls, a stream resume on the next tick). With transaction pooling and
   * more clients than connections nearly every request waits for its lease, so that pause and
   * resume per request made the CPU per transaction jump once clients outnumbered
   * default_pool_size (test/unit/core/per-session-cost.test.ts counts them).
   */
  private pacing(): void {
    const stop = this.backendFull > 0 || this.queuedBytes + this.rBytes > QUEUE_HIGH_WATER;
    if (stop && !this.clientPaused) {
      this.clientPaused = true;
      this.host.pauseClient();
    } else if (!stop && this.clientPaused && !this.closed) {
      this.clientPaused = false;
      this.host.resumeClient();
    }
  }

  // ---- after sending ---------------------------------------------------------------------------

  /** Registry, routing state and counters once a request is sent; returns its completion token. */
  private bookkeeping(req: Request, info: RequestInfo, plan: Plan, node: number): Token | null {
    const routerCfg = this.host.routing.router;
    const counters = this.host.cluster.node(node)?.counters;
    let token: Token | null = null;
    const tok = (): Token => (token ??= newToken());
    let seenHere = null as Set<string> | null;
    let i = 0;
    for (const sql of info.queries) {
      const cls = plan.classes[i++]!;
      this.dispatched(cls, sql, tok);
      if (counters !== undefined) countStatement(counters, cls, sql);
    }
    for (const p of info.parses) {
      const cls = plan.classes[i++]!;
      this.dispatched(cls, p.sql, tok);
      if (this.host.pooling !== 'session' && p.name !== '') {
        // Refused by the server (42P05: redefined without Close): the old definition stays.
        if (this.dupRefused.has(p.name) || seenHere?.has(p.name) === true) continue;
        (seenHere ??= new Set()).add(p.name);
      }
      if (this.host.pooling !== 'session' && (p.name === '' || !this.statements.protocol.has(p.name))) {
        (tok().defined ??= []).push({ name: p.name, index: completionIndex(req.data, p.start) });
      }
      this.statements.parsed(p.name, req.data.subarray(p.start, p.end), p.sql, cls, node);
      if (p.name !== '' && this.host.pooling !== 'session') {
        // Only the Parses that reached the server are tentative there (names() began them).
        const server = this.serverNameOf(p.name)!;
        if (this.links[node]?.conn?.statements.pending(server)) (tok().parsed ??= []).push(server);
      }
    }
    // Each Bind is one execution of its statement: that is what the per-node counters count.
    for (let b = 0; b < info.bindStatements.length; b++) {
      const name = info.bindStatements[b]!;
      const st = this.statements.protocol.get(name);
      if (st !== undefined) {
        st.nodes.add(node);
        if (counters !== undefined) countStatement(counters, st.cls, st.sql);
        if (!info.parsesStatement(name)) noteDispatched(st.cls, this.route, routerCfg);
      }
      this.statements.portals.set(info.bindPortals[b]!, node);
    }
    for (const name of info.statementRefs) this.statements.protocol.get(name)?.nodes.add(node);
    for (const name of info.closedStatements) {
      // Close then Parse of one name in one request: the Parse (registered above) stands.
      if (info.parsesStatement(name) && lastParseAfterClose(req.data, name)) continue;
      const st = this.statements.closed(name);
      if (st === undefined) continue;
      if (this.host.pooling !== 'session') (tok().closed ??= []).push({ name, st, index: closeIndex(req.data, name) });
      for (const other of st.nodes) {
        if (other !== node) this.links[other]?.cleanup.push({ buf: Buffer.concat([encodeClose('S', name), SYNC]), completions: 1, term: Term.Sync });
      }
    }
    if (plan.effects !== null) this.effectsSent(plan.effects, node, tok, req.pooledRenamed);
    return token;
  }

  /** Routing state, transaction bookkeeping and advisory locks for one statement sent. */
  private dispatched(cls: QueryClass, sql: string, tok: () => Token): void {
    noteDispatched(cls, this.route, this.host.routing.router);
    switch (cls.kind) {
      case 'begin':
        this.beginSql = cls.statements === 1 ? sql : 'BEGIN';
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
    for (const f of cls.functions) {
      if (TERMINATING_FUNCTIONS.has(f)) noteTermination();
      if (ADVISORY_LOCK_FUNCTIONS.has(f)) this.state.advisoryHeld = true;
      else if (f === ADVISORY_UNLOCK_ALL) this.state.advisoryHeld = false;
    }
    if (this.host.pooling !== 'session') this.pins.noteStatement(cls, sql);
  }

  /** PREPARE/DEALLOCATE/DISCARD take effect in the registry at once; SETs when the request succeeds. */
  private effectsSent(effects: readonly SessionEffect[], node: number, tok: () => Token, renamed: boolean): void {
    const t = tok();
    t.effects = effects as SessionEffect[];
    const pooled = this.host.pooling !== 'session';
    for (const e of effects) {
      switch (e.kind) {
        case 'prepare':
        case 'execute':
        case 'deallocate':
          // A SQL statement name that reached a shared connection as the client wrote it (inside
          // a multi-statement query, through the extended protocol): the session keeps its
          // connection from now on, so that the name means the same there (fail closed).
          if (pooled && !renamed && e.kind !== 'deallocate') this.pins.forced ||= 'SQL PREPARE/EXECUTE that cannot be renamed (multi-statement query or extended protocol)';
          if (pooled && e.kind === 'deallocate' && e.name === null) t.clears ??= 'statements';
          break;
        default:
          break;
      }
      switch (e.kind) {
        case 'prepare': {
          const cls = this.host.classifier.classify(e.text);
          if (this.statements.prepared(e.name, e.text, cls, node, serverStatementName('pgmq_', prepareDefinition(e.text)))) (t.prepared ??= []).push(e.name);
          break;
        }
        case 'deallocate':
          if (e.name === null) {
            this.statements.clearAll(true);
            this.everywhereElse(node, 'DEALLOCATE ALL', 'statements');
          } else {
            const st = this.statements.sql.get(e.name) ?? this.statements.protocol.get(e.name);
            this.statements.sql.delete(e.name);
            this.statements.protocol.delete(e.name);
            for (const other of st?.nodes ?? []) {
              if (other !== node) this.links[other]?.cleanup.push({ buf: encodeQuery(`DEALLOCATE ${quoteIdent(e.name)}`), completions: 0, term: Term.Query });
            }
          }
          break;
        case 'discard':
          if (e.what === 'all') {
            this.statements.clearAll(true);
            this.everywhereElse(node, 'DISCARD ALL', 'all');
            if (pooled) t.clears = 'all';
          } else if (e.what === 'temp') {
            this.route.tempTables.clear();
            this.pins.tempDiscarded();
          }
          break;
        default:
          break;
      }
    }
  }

  /** Queues `sql` (swallowed) on every other link before its next request. */
  private everywhereElse(node: number, sql: string, clears: 'all' | 'statements'): void {
    for (const l of this.connected()) if (l.node !== node) l.cleanup.push({ buf: encodeQuery(sql), completions: 0, term: Term.Query, clears });
  }

  // ---- backend input -------------------------------------------------------------------------

  /** ForwardSink: a range of a backend chunk for the client. */
  forward(buf: Buffer, start: number, end: number): void {
    if (this.closed) return;
    if (this.collectNode >= 0 && (this.feedNode === this.collectNode || this.feedNode < 0)) this.cache!.collect(buf, start, end);
    if (this.held !== null || (this.cache?.holdAnswers === true && this.endsTransaction(this.feedNode))) {
      (this.held ??= []).push(Buffer.from(buf.subarray(start, end)));
      return;
    }
    if (!this.client.write(start === 0 && end === buf.length ? buf : buf.subarray(start, end)) && !this.clientFull) {
      this.clientFull = true;
      for (const l of this.connected()) l.conn!.pause();
    }
  }

  /** The client's socket drained: backends may be read again. */
  onClientDrain(): void {
    if (!this.clientFull) return;
    this.clientFull = false;
    for (const l of this.connected()) l.conn!.resume();
  }

  /** A chunk from a backend connection of this session. */
  onBackendData(node: number, chunk: Buffer): void {
    const link = this.links[node];
    if (link === undefined || link.conn === null) return;
    this.feedNode = node;
    link.feed(chunk, this);
    this.feedNode = -1;
    if (link.broken) {
      this.host.log.warn({ event: LogEvent.BackendError, node_id: node, pid: this.host.pid }, 'protocol violation from the server (bad message length)');
      this.host.closeLink(link.conn, false, 'protocol violation from server');
      this.onBackendClosed(node, 'protocol violation from server');
      return;
    }
    if (link.goodbye !== null && link.owed === 0) {
      // A FATAL nothing asked for (pg_terminate_backend, shutdown): the connection is over now,
      // not when its socket closes; the session's fate is decided at once.
      this.onBackendClosed(node, `server sent FATAL ${link.goodbye.code}`);
      return;
    }
    if (link.copyStarted) {
      link.copyStarted = false;
      this.copyTarget = link;
    }
    const completed = link.completedClient;
    link.completedClient = 0;
    if (link.done.length > 0) this.settle(link);
    if (link.clientOwed === 0 && link.busySince > 0) {
      this.host.observeLatency(node, (performance.now() - link.busySince) / 1000);
      link.busySince = 0;
    }
    if (completed > 0 || link.owed === 0) this.drive();
  }

  /** Applies what the completed expects of `link` mean. */
  private settle(link: Link): void {
    const primary = this.host.cluster.primaryId();
    for (const e of link.done) {
      switch (e.kind) {
        case ExpectKind.Client:
          if (e.token !== null) this.completed(link, e, e.token as Token);
          if (this.cache !== null) this.cacheSettled(link, e);
          if (e.sync && e.status !== 0) this.afterSync(link, e, primary);
          if (e.retry !== null) releaseRequest(e.retry as Request);
          break;
        case ExpectKind.Reparse: {
          const t = e.token as ReparseToken;
          if (!e.errored && !e.skipped) {
            if (t.server !== null) {
              link.conn?.statements.confirm(t.server);
              this.host.knownStatement(this.state.searchPath, t.server, true);
            }
          } else if (t.server === null) {
            t.st.nodes.delete(link.node);
          } else {
            link.conn?.statements.failed(t.server, true); // one Parse (or PREPARE) that failed created nothing
          }
          break;
        }
        case ExpectKind.State:
          if (e.errored || e.skipped) this.stateFailed(link);
          break;
        case ExpectKind.Cleanup:
          if (e.token !== null && !e.errored && !e.skipped && link.conn !== null) this.cleared(link.conn, (e.token as ClearsToken).clears);
          break;
        case ExpectKind.Probe:
          // No temporary relation left (and none created since the probe was sent): the pin lifts.
          if (!e.errored && !e.skipped && e.rows === 0 && (e.token as ProbeToken).generation === this.pins.tempGeneration) {
            this.pins.tempDiscarded();
            this.route.tempTables.clear();
          }
          break;
        default:
          break;
      }
      Link.release(e);
    }
    emptyArray(link.done);
  }

  /** A client request completed: apply its session effects if it succeeded. */
  private completed(link: Link, e: Expect, t: Token): void {
    const conn = link.conn;
    if (t.parsed !== null && conn !== null) {
      // Tentative server statements become facts, or go: a request that was skipped created
      // nothing; one that failed may have created some of them (closed before the next use).
      for (const server of t.parsed) {
        if (e.errored || e.skipped) conn.statements.failed(server, e.skipped);
        else {
          conn.statements.confirm(server);
          this.host.knownStatement(this.state.searchPath, server, true);
        }
      }
    }
    if (t.defined !== null && (e.errored || e.skipped)) {
      // A Parse that failed, or came after the error, defined nothing (the client may Parse the name again).
      for (const d of t.defined) {
        if (e.skipped || e.failedAt <= d.index) this.statements.protocol.delete(d.name);
      }
    }
    if (t.closed !== null && (e.errored || e.skipped)) {
      // A Close the server skipped (an error before it) closed nothing: the client still has the statement.
      for (const d of t.closed) {
        if (!(e.skipped || e.failedAt <= d.index) || this.statements.protocol.has(d.name)) continue;
        // ...unless what it was to close is what a failed Parse of this request defined: nothing to keep.
        if (t.defined?.some((p) => p.name === d.name && p.index < d.index && (e.skipped || e.failedAt <= p.index)) === true) continue;
        this.statements.protocol.set(d.name, d.st);
      }
    }
    if (t.clears !== null && conn !== null && !e.errored && !e.skipped) {
      this.cleared(conn, t.clears);
      if (t.clears === 'all') this.pins.discarded();
    }
    if (e.errored || e.skipped) {
      for (const name of t.prepared ?? []) this.statements.sql.delete(name);
      if (t.effects !== null) this.stageImmediate(t.effects);
      return;
    }
    if (t.effects !== null) {
      this.state.stage(t.effects);
      if (this.state.pending) this.stagedNode = link.node;
    }
    if (t.savepoint !== null) this.state.savepoint(t.savepoint);
    if (t.rollbackTo !== null) this.state.rollbackTo(t.rollbackTo);
    if (t.release !== null) this.state.release(t.release);
    if (t.rollback) this.state.discard();
  }

  /**
   * DISCARD ALL or DEALLOCATE ALL ran on `conn`: no statement is left there; after DISCARD ALL its
   * settings are the defaults again (unknown to the replay: the next lessee resets and replays all).
   */
  private cleared(conn: BackendPort, what: 'all' | 'statements'): void {
    conn.statements.clear();
    if (what === 'all') {
      conn.applied = null;
      conn.appliedVersion = -1;
      conn.appliedOwner = null;
    }
  }

  /** LISTEN and friends of a failed multi-statement request may have happened: count them (safe side). */
  private stageImmediate(effects: readonly SessionEffect[]): void {
    const pins = effects.filter((x) => x.kind === 'listen' || x.kind === 'declare_hold');
    if (pins.length > 0) this.state.stage(pins);
  }

  /** A ReadyForQuery answered a client request on `link`. */
  private afterSync(link: Link, e: Expect, primary: number): void {
    const status = e.status;
    if (status === TxStatus.Idle) {
      if (link.node === this.stagedNode || (this.stagedNode < 0 && this.state.pending)) {
        if (this.txFailed) this.state.discard();
        else this.state.commit(link.conn, this);
        this.stagedNode = -1;
      }
      this.statements.transactionEnded(link.node);
    }
    if (link.node !== primary) return;
    if (status === TxStatus.Idle) {
      if (link.owed === 0) this.ryw.onPrimaryIdle(link.node);
      noteTransactionEnd(this.route);
      this.txFailed = false;
      // The primary's transaction ended: end the part a standby still holds (its snapshot would
      // otherwise stay open there, and the next read would run inside that stale transaction).
      // (An indexed loop: the connected() generator allocated an iterator per transaction.)
      for (const other of this.links) {
        if (other === undefined || other.conn === null || other === link || other.owed > 0 || other.unsynced || other.txStatus === TxStatus.Idle) continue;
        other.expect(ExpectKind.Tx, true, 0, Term.Query);
        this.send(other, encodeQuery('ROLLBACK'));
        other.txStatus = TxStatus.Idle;
      }
    } else {
      this.route.inTransaction = true;
      if (status === TxStatus.Failed) this.txFailed = true;
    }
  }

  /** Session state could not be replayed on a node: its answers would be wrong there. */
  private stateFailed(link: Link): void {
    // What the connection has applied is unknown now (the replay was recorded as sent).
    if (link.conn !== null) {
      link.conn.applied = null;
      link.conn.appliedVersion = -1;
      link.conn.appliedOwner = null;
    }
    this.stateLost.add(link);
    this.host.log.error({ event: LogEvent.BackendError, node_id: link.node, pid: this.host.pid },
      `could not apply this session's settings on node ${link.node}; closing the session rather than answering with different settings`);
    this.fail(clientErrors.sessionStateLost(link.node));
  }

  // ---- a backend connection is lost ------------------------------------------------------------

  /** The backend connection of `node` closed or failed. */
  onBackendClosed(node: number, reason: string): void {
    const link = this.links[node];
    if (link === undefined || link.conn === null || this.closed) return;
    const conn = link.conn;
    const goodbye = link.goodbye;
    const owed = link.drain();
    const unsynced = link.unsynced;
    if (link.done.length > 0) this.settle(link);
    if (this.collectNode === node) {
      this.collectNode = -1;
      this.cache!.collected(0, false);
    }
    this.releaseHeld();
    link.reset();
    link.conn = null;
    this.host.closeLink(conn, false, reason);
    if (this.copyTarget === link) this.copyTarget = null;
    this.host.log.warn({ event: LogEvent.BackendError, node_id: node, pid: this.host.pid, reason, goodbye: goodbye?.code }, 'backend connection lost');
    // failover_on_backend_error is about a connection lost without a word; a FATAL goodbye
    // (57P01/57P02: pg_terminate_backend, a server shutdown) counts only with failover_on_backend_shutdown.
    const code = goodbye?.code ?? '';
    if (code === '' || (SHUTDOWN_CODES.has(code) && this.host.config.failover_on_backend_shutdown)) this.host.backendError(node, reason);
    const primary = this.host.cluster.primaryId();
    const clientOwed = owed.filter((e) => !e.swallow);
    const { verdict, retry } = lossVerdict({
      owed: clientOwed, unsynced, code,
      isPrimary: node === primary || node === this.identityNode,
      holdsSession: this.route.inTransaction || this.state.holdsUnreplayable || this.route.tempTables.size > 0 || this.pins.temp,
    });
    this.forgetNode(node);
    if (verdict === 'end') {
      for (const e of owed) Link.release(e);
      this.lost(node, goodbye);
      return;
    }
    if (retry) {
      // Nothing of the client's was lost: its reads run again elsewhere, first.
      const reqs = clientOwed.map((e) => e.retry as Request);
      for (let i = reqs.length - 1; i >= 0; i--) {
        this.queue.unshift(reqs[i]!);
        this.queuedBytes += reqs[i]!.data.length;
      }
      this.host.log.info({ event: 'read_retry', pid: this.host.pid, node_id: node, requests: reqs.length },
        `node ${node} went away before answering; re-running ${reqs.length} read(s) elsewhere`);
    }
    for (const e of owed) Link.release(e);
    if (verdict === 'ask') {
      // FATAL 57P01 on an idle connection: pg_terminate_backend() of this client's backend (end
      // the session, as PostgreSQL would), or the server shutting down (go on elsewhere)?
      this.block(this.host.nodeAccepting(node).then((accepting) => {
        if (accepting) this.lost(node, goodbye);
      }), `check whether node ${node} is shutting down`);
      return;
    }
    this.drive();
  }

  /**
   * Ends the session after losing `node`, as PostgreSQL would: the client sees the backend's own
   * FATAL (once: not again when it came with an answer), or ours when the backend said nothing.
   */
  private lost(node: number, goodbye: Goodbye | null): void {
    if (goodbye === null) this.client.write(encodeErrorResponse(clientErrors.backendLost(node)));
    else if (!goodbye.forwarded && goodbye.frame !== null) this.client.write(goodbye.frame);
    this.end(`backend node ${node} lost${goodbye ? ` (${goodbye.code})` : ''}`);
  }

  /** A node's connection is gone: its statements and portals with it. */
  private forgetNode(node: number): void {
    this.statements.forgetNode(node);
    if (this.lastNode === node) this.lastNode = -1;
    if (this.stickyNode === node) this.stickyNode = -1;
    if (this.lbNode === node) this.lbNode = -1;
    this.planner.failedAt.set(node, { at: Date.now(), primary: this.host.cluster.primaryId() });
  }

  private fail(fields: Parameters<typeof encodeErrorResponse>[0]): void {
    this.client.write(encodeErrorResponse(fields));
    this.end(`${fields.code}: ${fields.message}`);
  }

  private end(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.host.end(reason);
  }

  // ---- query cache (src/cache/; the hook is cache-port.ts) -----------------------------------

  /**
   * The query cache's turn for a planned request: true/false as step() returns (answered from the
   * cache / wait for a lookup), or null to send it. A miss it may store is sent to the primary (the
   * cache is filled from the primary only: a standby's answer may predate a committed write) and
   * its answer collected.
   */
  private consultCache(req: Request, info: RequestInfo, plan: Plan): boolean | null {
    const cache = this.cache!;
    if (req.term === Term.None || !this.allAnswered(null)) return null;
    switch (cache.consult(req.data, info, this.cacheView!)) {
      case CacheStep.Wait:
        this.block(cache.waitFor!, 'query cache lookup');
        return false;
      case CacheStep.Hit: {
        this.flush();
        const answer = cache.hitAnswer();
        const out = Buffer.allocUnsafe(answer.length + 6);
        answer.copy(out, 0);
        out.set(RFQ, answer.length);
        out[answer.length + 5] = this.txStatus();
        this.client.write(out);
        for (const p of info.parses) {
          // The client now has this statement: later Binds re-parse it where they run.
          this.statements.parsed(p.name, Buffer.from(req.data.subarray(p.start, p.end)), p.sql, this.host.classifier.classify(p.sql), -1);
          this.statements.protocol.get(p.name)?.nodes.delete(-1);
        }
        releaseRequest(req);
        return true;
      }
      default:
        break;
    }
    if (!cache.collecting) return null;
    const primary = this.host.cluster.primaryId();
    if (plan.node !== primary) {
      if (primary >= 0 && this.stickyNode < 0 && this.allAnswered(primary) && (this.links[primary]?.conn != null || !this.planner.recentlyFailed(primary, true))) {
        plan.node = primary;
        plan.retryable = false;
        plan.reason = 'query cache: filled from the primary only';
      } else {
        cache.collected(0, false);
        return null;
      }
    }
    this.collectNode = plan.node;
    return null;
  }

  /** Tells the cache what a request sent (before bookkeeping: a Close in it would hide its statement). */
  private cacheSent(info: RequestInfo, plan: Plan): void {
    const bound: QueryClass[] = [];
    for (const name of info.bindStatements) {
      if (info.parsesStatement(name)) continue;
      const st = this.statements.protocol.get(name);
      if (st !== undefined) bound.push(st.cls);
    }
    const sqls = info.parses.length === 0 ? info.queries : [...info.queries, ...info.parses.map((p) => p.sql)];
    this.cache!.sent(plan.classes, sqls, bound, this.cacheView!);
    if (this.collectNode >= 0 && !this.cache!.collecting) this.collectNode = -1;
  }

  /**
   * The chunk being scanned on `node` holds a ReadyForQuery 'I' that ended a client request (the
   * link completed it before forwarding its range): what is forwarded from here waits for the
   * invalidation of the session's writes.
   */
  private endsTransaction(node: number): boolean {
    const l = node >= 0 ? this.links[node] : undefined;
    if (l === undefined) return false;
    for (const e of l.done) if (e.kind === ExpectKind.Client && e.sync && e.status === TxStatus.Idle) return true;
    return false;
  }

  /** A client request completed on `link`: the collected answer, and transaction ends. */
  private cacheSettled(link: Link, e: Expect): void {
    const cache = this.cache!;
    if (link.node === this.collectNode && (e.errored || e.skipped || e.sync)) {
      this.collectNode = -1;
      cache.collected(e.status, !e.errored && !e.skipped && e.status !== 0);
    }
    if (e.sync && e.status !== 0) {
      const wait = cache.synced(e.status);
      if (wait === null) this.releaseHeld();
      else this.block(wait.finally(() => this.releaseHeld()), 'query cache invalidation');
    }
  }

  /** Writes the answers held back for an invalidation (in order, before anything else). */
  private releaseHeld(): void {
    const h = this.held;
    if (h === null) return;
    this.held = null;
    if (this.closed || h.length === 0) return;
    if (!this.client.write(h.length === 1 ? h[0]! : Buffer.concat(h)) && !this.clientFull) {
      this.clientFull = true;
      for (const l of this.connected()) l.conn!.pause();
    }
  }

  private makeCacheView(): CacheView {
    const st = this.statements;
    const state = this.state;
    return {
      statementClass: (name) => st.protocol.get(name)?.cls,
      statement: (name) => st.protocol.get(name),
      txStatus: () => this.txStatus(),
      get searchPath() { return state.searchPath; },
      get parameters() { return state.parameters; },
      get settingsVersion() { return state.version; },
    };
  }

  // ---- local replies ---------------------------------------------------------------------------

  /** Runs an admin command (blocks the queue meanwhile) and writes its answer. */
  private runAdmin(sql: string): void {
    const status = this.txStatus();
    this.block(this.host.runAdmin(sql, status).then((reply) => {
      if (!this.closed) this.client.write(reply);
    }), 'admin command');
  }

  /** The transaction status of pgmaitre's own ReadyForQuery: the primary's. */
  txStatus(): number {
    const l = this.links[this.host.cluster.primaryId()] ?? this.links[this.identityNode];
    return l?.txStatus ?? TxStatus.Idle;
  }

  /** Records the request's last statement on the connection: a reference to text already decoded. */
  private noteStatement(conn: BackendPort, info: RequestInfo): void {
    const q = info.queries;
    const p = info.parses;
    const b = info.bindStatements;
    if (p.length > 0) conn.lastStatement = p[p.length - 1]!.sql;
    else if (q.length > 0) conn.lastStatement = q[q.length - 1]!;
    else if (b.length > 0) {
      const sql = this.statements.protocol.get(b[b.length - 1]!)?.sql;
      if (sql !== undefined) conn.lastStatement = sql;
    }
  }

  private reportNode(node: number, link: Link, info: RequestInfo, reason: string): void {
    const sqls = [...info.queries, ...info.parses.map((p) => p.sql)];
    if (sqls.length === 0) for (const s of info.bindStatements) sqls.push(`EXECUTE ${s || '<unnamed>'}`);
    for (const sql of sqls) {
      const text = `DB node id: ${node} backend pid: ${link.conn?.backendPid ?? 0} statement: ${sql}`;
      if (this.host.logFlags.perNodeStatement) logLine(this.host.log, { event: LogEvent.NodeStatement, pid: this.host.pid, node_id: node, reason }, text);
      if (this.host.noticePerNode) this.client.write(encodeNoticeResponse({ severity: 'NOTICE', code: '00000', message: text }));
    }
  }

  // ---- cancel and close ------------------------------------------------------------------------

  /** Forwards a CancelRequest to the backend running this session's query, if any. */
  cancel(): void {
    for (const l of this.connected()) {
      if (l.clientOwed === 0 || this.cancelling.has(l)) continue;
      // Until the server took the cancel, this connection is not given back (transaction pooling):
      // a cancel must only ever reach this client's query.
      const conn = l.conn!;
      const taken = this.host.cancelBackend(l.node, conn.backendPid, conn.backendSecret).catch(() => {});
      this.cancelling.set(l, taken);
      void taken.then(() => {
        this.cancelling.delete(l);
        if (!this.closed) this.guard(() => this.drive());
      });
    }
  }

  /**
   * The session ends (client gone, shutdown, FATAL): every lease ends, each connection's fate
   * decided by leaseFate (tx-pooling.ts): back clean, back after DISCARD ALL (the session held
   * state there: advisory locks, LISTEN, temporary tables...), or closed (a request in flight, a
   * transaction open: a query still running is cancelled first). A connection whose cancel is
   * on its way is held until the server took it, then decided again.
   */
  close(): void {
    const cancelled = new Set<number>();
    for (const l of this.connected()) {
      const conn = l.conn!;
      const fate = leaseFate(l, this, true, this.stateLost.has(l));
      if (fate === Fate.Close && l.clientOwed > 0 && !cancelled.has(l.node)) {
        cancelled.add(l.node);
        void this.host.cancelBackend(l.node, conn.backendPid, conn.backendSecret);
      }
      if (fate === Fate.Hold) {
        // Decided once the server took the cancel: by then the connection is either at rest or not.
        const pinned = this.host.pooling !== 'session' && this.pinReason() !== '';
        const lost = this.stateLost.has(l);
        const restNow = l.owed === 0 && l.quiet && !l.unsynced && l.txStatus === TxStatus.Idle && this.copyTarget !== l;
        l.conn = null;
        l.reset();
        void this.cancelling.get(l)!.then(() => {
          // Not at rest: closed for the same reason as without a cancel (a transaction open or a
          // request in flight), only later.
          this.host.closeLink(conn, restNow, restNow ? '' : 'client left with a transaction open or a request in flight (closed once its cancel reached the server)', restNow && (pinned || lost));
        });
        continue;
      }
      const why = fate === Fate.Close ? 'client left with a transaction open or a request in flight' : '';
      this.giveBack(l, fate, why);
    }
    this.closed = true;
    for (const r of this.queue) releaseRequest(r);
    this.queue.length = 0;
  }

  /** Chooses the session's load-balance node now (SHOW POOL_PROCESSES shows it from the start). */
  pickReadNode(): void {
    this.planner.readNode();
  }

  /** Backend connections held, for SHOW POOL_PROCESSES and friends. */
  backends(): BackendPort[] {
    return [...this.connected()].map((l) => l.conn!);
  }
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

function newToken(): Token {
  return { effects: null, rollback: false, savepoint: null, rollbackTo: null, release: null, prepared: null, parsed: null, defined: null, closed: null, clears: null };
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

