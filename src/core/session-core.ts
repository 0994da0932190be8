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
 *
 * This file orchestrates; each concern it hands work to has its own file, a narrow interface of
 * the session that SessionCore implements, and its own unit tests (docs/architecture.md, "The
 * core's rooms"): request-effects.ts (what a request does to the session, sent and answered),
 * side-requests.ts (what a link needs first), connection-statements.ts (server statement names
 * per connection), pooled-prepare.ts (SQL PREPARE & co. before a shared connection),
 * lease-end.ts (every way a lease ends), tx-pooling.ts and recovery.ts (the policies),
 * cache-glue.ts (the query cache), identity-check.ts, local-replies.ts. Their functions take the
 * session itself: no closure or object per request.
 */
import { FrontendCode, TxStatus } from '../protocol/codes';
import { encodeErrorResponse } from '../protocol/backend';
import { encodeClose, encodeQuery, encodeSync } from '../protocol/frontend';
import { clientErrors } from '../errors/client-errors';
import { newRouteState, noteDispatched, noteTransactionEnd, type RouteState } from '../router/router';
import { LogEvent } from '../log/logger';
import { ExpectKind, Link, Term, type Expect, type Goodbye } from './link';
import { newRequest, releaseRequest, Request, RequestInfo } from './request';
import { Planner, PlanType, type Plan, type PlannerView } from './planner';
import { Statements } from './statements';
import { SessionState } from './session-state';
import { ReadYourWrites } from './read-your-writes';
import { ABORT_TX, errorReply, localError, reportNode } from './local-replies';
import { Local, pooledLocal, type PooledSession } from './pooled-prepare';
import { describedWhenAborted, describeParsed, duplicateParses, evict, names, parameterCount, parsedDescribed, unnamedDropped } from './connection-statements';
import { afterSync, bookkeeping, cleared, completed, newToken, noteParsed, stateFailed, type ClearsToken, type EffectsSession, type Token } from './request-effects';
import { encodeCommandComplete, encodeReadyForQuery } from '../protocol/backend';
import { rewriteRequest } from './statement-names';
import type { BackendPort, ClientPort, ForwardSink } from './ports';
import { BackendMessageLog } from '../log/backend-messages';
import { LinkRefused, type CoreHost } from './core-host';
import type { CachePort, CacheView } from './cache-port';
import { cacheSent, cacheSettled, consultCache, earlyCacheHit, endsTransaction, makeCacheView, releaseHeld, type CacheSession } from './cache-glue';
import { IdentityCheck, identityUnsure, type IdentitySession } from './identity-check';
import { abortedBindError, deferrableBegin, parsedWhenAborted, Pins, pinReasonOf, plainTransactionEnd } from './tx-pooling';
import type { QueryClass } from '../classify/types';
import { broadcast, prepareLink, reparsed, type SideSession } from './side-requests';
import { cancelQueries, endLeases, releaseIdle, tempProbed, type LeaseEndSession } from './lease-end';
import { lossVerdict } from './recovery';
import { emptyArray } from '../util/arrays';

/** Requests queued beyond this many bytes stop the client from being read. */
const QUEUE_HIGH_WATER = 256 * 1024;

const SHUTDOWN_CODES = new Set(['57P01', '57P02']);

const PARSE_COMPLETE = Buffer.from([0x31, 0, 0, 0, 4]);
const FLUSH_MESSAGE = Buffer.from([0x48, 0, 0, 0, 4]);


/** An exception escaped the core's data path (a bug): the session ends with FATAL XX000. */
export class CoreFault extends Error {
  override name = 'CoreFault';
}

/** See the file header. */
export class SessionCore implements ForwardSink, PlannerView, PooledSession, EffectsSession, LeaseEndSession, CacheSession, SideSession, IdentitySession {
  readonly route: RouteState = newRouteState();
  readonly statements = new Statements();
  readonly state = new SessionState();
  readonly ryw: ReadYourWrites;
  readonly planner: Planner;
  private readonly info = new RequestInfo();
  private backendLog: BackendMessageLog | null = null;
  /** drive() calls in progress (a step can drive again, e.g. after a local answer). */
  private driving = 0;
  // Members that are not private are read, some set, by the modules beside the core through
  // their narrow session interfaces (see the file header), not by the socket side.
  /** The session's link per node. */
  readonly links: (Link | undefined)[] = [];
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
  /** The session has ended. */
  closed = false;
  /**
   * The client left (its EOF, Terminate) with requests it had sent whole: they run to their end
   * first (see leave), then this ends the session. Null otherwise.
   */
  private leaving: (() => void) | null = null;
  /** The transaction saw an error (a COMMIT will roll it back). */
  txFailed = false;
  /** Node where SETs of the current transaction were staged. */
  stagedNode = -1;
  /** SQL of the BEGIN that opened the current explicit transaction (replayed on a node joined inside it). */
  beginSql = 'BEGIN';
  /** Links with batched output. */
  private readonly dirty: Link[] = [];
  /** The client's socket is above its high-water mark: backends are paused. */
  clientFull = false;
  private clientPaused = false;
  private backendFull = 0;
  /** Transaction pooling: why the session keeps its connections ('' = it does not). */
  pinnedFor = '';
  /** Transaction pooling: what keeps this session on its connections (tx-pooling.ts). */
  readonly pins = new Pins();
  /** openLink() refused the connection the head request waits for (it gets this error). */
  private refused: LinkRefused | null = null;
  /**
   * Links whose cancel request is on its way (until the server took it): their connection is not
   * given back meanwhile, and nothing more is sent anywhere (F26: the cancel must not land on the
   * client's next statement, nor on another client's).
   */
  readonly cancelling = new Map<Link, Promise<void>>();
  /**
   * A cancel came while nothing ran at a server and this request (the queue's head then) waited
   * (for its lease, a lookup...): it is forwarded once the request was sent, as a direct connection
   * would cancel it when it runs; dropped if the request is answered here.
   */
  private cancelHead: Request | null = null;
  /** Transaction pooling: the request being sent redefines these statement names (42P05 from the server). */
  dupParses: Set<string> | null = null;
  /** ...of which the request's Parses really were refused (not closed before them). */
  readonly dupRefused = new Set<string>();
  /** Transaction pooling: statements whose Bind in the request being sent is answered here (side-requests.ts refusedHere). */
  refusedBinds: Set<string> | null = null;
  /**
   * Transaction pooling, F21: the request being sent may meet an aborted transaction: 'known'
   * (the leased connection's transaction is failed, no ReadyForQuery owed before the request) or
   * 'maybe' (inside a transaction, behind requests not answered yet); '' otherwise. Then a Parse
   * of a statement the connection has is not answered here: see names() (connection-statements.ts).
   */
  abortedTx: '' | 'known' | 'maybe' = '';
  /**
   * In an aborted transaction, the request's first message is refused with 25P02 (a Parse, or a
   * Bind/Describe of a statement the client has): a re-parse ahead of it may fail there too (see
   * side-requests.ts). False for a Close, or a Bind of a statement the client lacks (26000 first).
   */
  frontRefused = false;
  /**
   * Known aborted transaction: the request surely fails at a message whose answer needs no
   * statement re-parsed (after Closes only: a Parse, a Bind or Describe of a statement the client
   * lacks, a Bind answered here); no re-parse is sent, it would put its own 25P02 first (seeds
   * 40136, 40153). See failsFirstWhenAborted.
   */
  abortedSure = false;
  /**
   * Transaction pooling: a BEGIN answered here while the session held no connection (issue 17
   * item 10: psycopg2 sends one before every transaction, and an admin command inside must not
   * wait for a lease). Sent in front of the transaction's first statement that needs a server.
   */
  private deferredBegin = '';
  /**
   * The deferred BEGIN's transaction failed before it reached a server (no primary to start it
   * on, or its lease refused): the client is in an aborted transaction, as PostgreSQL would put
   * it; every request but its end is refused 25P02 here, COMMIT/ROLLBACK end it here.
   */
  private deferredFailed = false;
  /**
   * Transaction pooling: the request at the head of the queue, read and planned, that waits for
   * its lease (open()); with what its plan read (see resumable()). Once clients outnumber
   * default_pool_size nearly every transaction waits once, and reading and planning it again when
   * the lease came was a good part of what the wait cost (issue 17, item 9).
   */
  private parked: Request | null = null;
  private parkedNode = -1;
  private parkedPrimary = -1;
  private parkedStatus = '';
  private parkedRouting: unknown = null;
  private parkedConfig: unknown = null;
  /** Links whose session-state replay failed: their settings are unknown (reset when given back). */
  readonly stateLost = new Set<Link>();
  /** The query cache's hook (null when memory_cache_enabled = off), and what it reads of the session. */
  readonly cache: CachePort | null;
  readonly cacheView: CacheView | null;
  /** Node whose answer the cache collects (-1: none), and the node whose chunk is being scanned (-1: none). */
  collectNode = -1;
  private feedNode = -1;
  /**
   * Answers held back until the cache's invalidation of a commit went through (cache-port.ts:
   * holdAnswers): the client learns of its write only once no cached answer can contradict it.
   */
  held: Buffer[] | null = null;
  /** Transaction pooling: the ParameterStatus values the client was given at login (a DISCARD ALL answered here reports resets). */
  loginParams: ReadonlyMap<string, string> | null = null;
  /** Session pooling: is the client's own backend alive before a request goes elsewhere (identity-check.ts)? */
  readonly identity = new IdentityCheck();

  constructor(readonly host: CoreHost, readonly client: ClientPort) {
    this.ryw = new ReadYourWrites(() => host.lsn);
    this.planner = new Planner(this);
    this.cache = host.cache ?? null;
    this.cacheView = this.cache === null ? null : makeCacheView(this);
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
    if (this.closed || this.leaving !== null) return;
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
        // A Flush with a body is refused by the server (08P01), which then skips to Sync: its
        // ErrorResponse is an answer like a Parse's (what follows is skipped, nothing owed).
        if (end - start !== 5) this.rCompletions++;
        this.cut(Term.None, true, false, true);
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

  private cut(term: Term, flush: boolean, copyOnly: boolean, flushMessage = false): void {
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
    req.unflushed = term === Term.None && !flushMessage;
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
    while (!this.closed && this.blocked === 0 && this.cancelling.size === 0 && this.queue.length > 0) {
      const req = this.queue[0]!;
      const bytes = req.data.length; // (step() may give the request back to the pool)
      if (!this.step(req)) break;
      this.queue.shift();
      this.queuedBytes -= bytes;
      if (this.cancelHead === req) {
        // (req may be back in the request pool: compared by identity only, before anything new is cut)
        this.cancelHead = null;
        if (!this.allAnswered(null)) {
          this.flush();
          cancelQueries(this);
        }
      }
    }
    // The scratch info and plan must not keep the last request alive: a large SQL text promoted
    // to V8's old space by the next young collection waits there for a full one, and whatever an
    // idle session still references is copied by every young collection — work per request that
    // grows with the number of sessions. Not while an outer drive() (this one runs inside its
    // step) still reads them.
    if (--this.driving === 0 && this.parked === null) {
      this.info.forget();
      this.planner.plan.clear();
    }
    this.flush();
    releaseIdle(this);
    this.pacing();
    if (this.leaving !== null && this.driving === 0 && !this.unfinished()) {
      const done = this.leaving;
      this.leaving = null;
      done();
    }
  }

  /** Handles the request at the head of the queue; false when it must wait. */
  private step(req: Request): boolean {
    const parked = this.parked;
    this.parked = null;
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
      if (this.deferredBegin !== '') this.deferredFailed = true; // the transaction answered to the client fails with it
      this.client.write(errorReply(r.code, r.message, r.hint, req.term === Term.None ? 0 : 1, this.txStatus()));
      releaseRequest(req);
      return true;
    }
    if (parked === req && this.resumable()) {
      // Its lease came and nothing its plan read has changed: sent on that plan.
      this.execute(req, this.info, this.planner.plan, this.links[this.parkedNode]!);
      return true;
    }
    const info = this.info.read(req.data);
    if (this.deferredBegin !== '') {
      const r = this.deferredStep(req, info);
      if (r !== null) return r;
    }
    if (this.host.pooling !== 'session') {
      const local = pooledLocal(this, req, info);
      if (local === Local.Answered) {
        if (info.queries.length > 0) unnamedDropped(this, null);
        return true;
      }
      if (local === Local.Wait) return false;
    }
    if (this.cache !== null && earlyCacheHit(this, req, info)) {
      // Answered from the query cache, not planned (its text was seen before).
      if (info.queries.length > 0) unnamedDropped(this, null);
      return true;
    }
    const plan = this.planner.make(req, info);
    switch (plan.type) {
      case PlanType.WaitAnswers:
        this.flushWaited();
        return false;
      case PlanType.Lookup:
        this.block(this.host.routing.volatility.lookup(plan.lookup.slice()), 'volatility lookup');
        return false;
      case PlanType.Admin:
        if (info.queries.length > 0) unnamedDropped(this, null);
        this.runAdmin(plan.adminSql);
        releaseRequest(req);
        return true;
      case PlanType.Error:
        if (info.queries.length > 0) unnamedDropped(this, null);
        this.flush();
        localError(this, req, plan.errorCode, plan.errorMessage, plan.errorHint);
        releaseRequest(req);
        return true;
      default:
        break;
    }
    if (this.cache !== null) {
      const answered = consultCache(this, req, info, plan);
      if (answered === true && info.queries.length > 0) unnamedDropped(this, null);
      if (answered !== null) return answered;
    }
    if (identityUnsure(this, plan.node)) return false;
    let link = this.links[plan.node];
    if (link?.conn == null) {
      // Transaction pooling: an idle connection is leased at once (no waiting on the hot path).
      const now = this.host.pooling !== 'session' ? this.host.leaseNow(plan.node) : null;
      if (now === null) {
        this.open(plan.node);
        if (this.host.pooling !== 'session') this.park(req, plan.node);
        return false;
      }
      link = this.attach(plan.node, now);
    }
    this.execute(req, info, plan, link);
    return true;
  }

  /**
   * Transaction pooling: `req` waits for a lease on `node` with its info and plan made. Kept only
   * when the session holds no connection (then no server answer can change its state meanwhile:
   * client frames only queue behind it) and nothing else reads the request (the query cache).
   */
  private park(req: Request, node: number): void {
    if (this.cache !== null || this.deferredBegin !== '' || this.blocked === 0) return;
    for (const l of this.links) if (l?.conn != null) return;
    this.parked = req;
    this.parkedNode = node;
    this.parkedPrimary = this.host.cluster.primaryId();
    this.parkedStatus = this.host.cluster.node(node)?.status ?? '';
    this.parkedRouting = this.host.routing;
    this.parkedConfig = this.host.config;
  }

  /**
   * The parked request's plan still holds: its lease is attached and is the session's only
   * connection, the session state it read is as it was (see park), and so are the primary, the
   * node's status, the routing rules and the configuration. Otherwise it is planned again.
   */
  private resumable(): boolean {
    const node = this.parkedNode;
    if (this.links[node]?.conn == null || this.deferredBegin !== '') return false;
    for (const l of this.links) if (l !== undefined && l.node !== node && l.conn !== null) return false;
    return this.host.cluster.primaryId() === this.parkedPrimary && (this.host.cluster.node(node)?.status ?? '') === this.parkedStatus
      && this.host.routing === this.parkedRouting && this.host.config === this.parkedConfig;
  }

  /** Why this session keeps its connections in transaction pooling ('' when it does not). */
  pinReason(): string {
    return pinReasonOf(this.pins, this.state);
  }

  /** LeaseSession: the link in COPY IN. */
  get copyLink(): Link | null {
    return this.copyTarget;
  }

  /** LeaseSession: a cancel for `link`'s backend is on its way. */
  cancelInFlight(link: Link): boolean {
    return this.cancelling.size > 0 && this.cancelling.has(link);
  }

  /** Opens a link to `node` (blocking the queue meanwhile). */
  /**
   * Transaction pooling: a BEGIN of a session that holds no connection is answered here and sent
   * later (deferredStep), when it is one PostgreSQL always accepts there (deferrableBegin).
   */
  deferBegin(req: Request, sql: string, cls: QueryClass): boolean {
    const tag = deferrableBegin(sql);
    if (tag === null || this.route.inTransaction || this.txStatus() !== TxStatus.Idle || !this.allAnswered(null)) return false;
    for (const l of this.links) if (l?.conn != null) return false;
    this.flush();
    this.deferredBegin = sql;
    noteDispatched(cls, this.route, this.host.routing.router);
    this.beginSql = sql;
    this.client.write(Buffer.concat([encodeCommandComplete(tag), encodeReadyForQuery(TxStatus.InTransaction)]));
    releaseRequest(req);
    return true;
  }

  /**
   * A request after a BEGIN answered here (deferBegin): a plain COMMIT/ROLLBACK ends that
   * transaction here, an admin command is answered inside it (null: go on); anything else first
   * leases the primary's connection and sends the BEGIN there (after the session's own side
   * requests, as prepareLink sends them), then goes on as usual. False: wait for the lease.
   */
  private deferredStep(req: Request, info: RequestInfo): boolean | null {
    const single = info.queries.length === 1 && !info.extended && req.term === Term.Query ? info.queries[0]! : null;
    if (single !== null) {
      const end = plainTransactionEnd(single);
      if (end !== null) {
        this.deferredBegin = '';
        const failed = this.deferredFailed;
        this.deferredFailed = false;
        noteTransactionEnd(this.route);
        unnamedDropped(this, null);
        this.flush();
        this.client.write(Buffer.concat([encodeCommandComplete(failed ? 'ROLLBACK' : end), encodeReadyForQuery(TxStatus.Idle)]));
        releaseRequest(req);
        return true;
      }
      if (this.host.adminEnabled && this.host.classifier.classify(single).kind === 'admin') return null;
    }
    const primary = this.host.cluster.primaryId();
    let link = this.links[primary];
    const noPrimary = link?.conn == null && (primary < 0 || this.planner.recentlyFailed(primary, true));
    // The aborted transaction refuses a simple Query here; an extended-protocol request (a ROLLBACK
    // among them) goes to a server whose transaction is aborted first (below), when there is one.
    if (this.deferredFailed && (!info.extended || noPrimary)) {
      return this.deferredRefuse(req, info, '25P02', 'current transaction is aborted, commands ignored until end of transaction block', undefined);
    }
    if (noPrimary) {
      // No primary to start the transaction on (none, or its connection just failed): the request
      // fails as a write with no primary does, and the transaction with it. Opening again at once
      // would come back here at once, a loop that starved the whole process.
      this.deferredFailed = true;
      return this.deferredRefuse(req, info, '57P03', 'no primary node is available', 'the transaction cannot start; end it with ROLLBACK (see SHOW POOL_NODES)');
    }
    if (link?.conn == null) {
      const now = this.host.leaseNow(primary);
      if (now === null) {
        this.open(primary);
        return false;
      }
      link = this.attach(primary, now);
    }
    const conn = link.conn!;
    // What prepareLink sends first on a connection (cleanup, unsure statements, the session's
    // settings): before the BEGIN, so that they stay outside the transaction.
    for (const c of link.cleanup) {
      const e = link.expect(ExpectKind.Cleanup, true, c.completions, c.term);
      if (c.clears !== undefined) e.token = { clears: c.clears } satisfies ClearsToken;
      this.send(link, c.buf);
    }
    emptyArray(link.cleanup);
    if (conn.statements.unsure.size > 0) {
      const frames: Buffer[] = [];
      for (const name of conn.statements.unsure) frames.push(encodeClose('S', name));
      frames.push(encodeSync());
      link.expect(ExpectKind.Cleanup, true, conn.statements.unsure.size, Term.Sync);
      this.send(link, Buffer.concat(frames));
      conn.statements.unsure.clear();
    }
    const replay = this.state.replayFor(conn, this);
    if (replay.length > 0) {
      link.expect(ExpectKind.State, true, 0, Term.Query);
      this.send(link, encodeQuery(replay.join('; ')));
    }
    link.unnamedOwn = false;
    link.expect(ExpectKind.Tx, true, 0, Term.Query).errorsToClient = true;
    this.send(link, encodeQuery(this.deferredBegin));
    link.txStatus = TxStatus.InTransaction;
    if (this.deferredFailed) {
      // The client's transaction is aborted (see deferredFailed): the server's becomes so too.
      link.expect(ExpectKind.Tx, true, 0, Term.Query);
      this.send(link, ABORT_TX);
      link.txStatus = TxStatus.Failed;
      this.deferredFailed = false;
    }
    this.deferredBegin = '';
    return null;
  }

  /** A request of the deferred BEGIN's failed transaction refused here, in order (see deferredFailed). */
  private deferredRefuse(req: Request, info: RequestInfo, code: string, message: string, hint: string | undefined): boolean {
    if (!this.allAnswered(null)) return false;
    if (info.queries.length > 0) unnamedDropped(this, null);
    this.flush();
    this.client.write(errorReply(code, message, hint, req.term === Term.None ? 0 : 1, TxStatus.Failed));
    releaseRequest(req);
    return true;
  }

  private open(node: number): void {
    if (this.host.pooling !== 'session' && this.host.leaseLater !== undefined) {
      this.waitLease(node);
      return;
    }
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
   * Transaction pooling: open() through the host's callback (leaseLater), as block() waits for
   * openLink()'s promise, and the same steps when the lease comes. Once clients outnumber
   * default_pool_size nearly every transaction waits here: the promise chain (openLink, lease,
   * catch, then, block's then) cost about six promises and their closures per transaction
   * (issue 17, item 9); the callback is made once per session.
   */
  private waitLease(node: number): void {
    this.flush();
    this.blocked++;
    this.pacing();
    this.leaseNode = node;
    try {
      this.host.leaseLater!(node, this.leaseDone ??= (conn, refused) => this.leaseCame(conn, refused));
    } catch (e) {
      this.blocked--;
      this.crash(e, `connect to node ${node}`);
    }
  }

  /** The node waitLease() waits for, and its callback (made once). */
  private leaseNode = -1;
  private leaseDone: ((conn: BackendPort | null, refused: LinkRefused | null) => void) | null = null;

  private leaseCame(conn: BackendPort | null, refused: LinkRefused | null): void {
    const node = this.leaseNode;
    this.blocked--;
    try {
      if (refused !== null) this.refused = refused; // the request waiting for it gets this error (see step)
      if (this.refused === null) {
        if (conn === null) this.forgetNode(node);
        else if (this.closed) this.host.closeLink(conn, true, '');
        else {
          this.planner.failedAt.delete(node);
          this.attach(node, conn);
        }
      } else if (conn !== null) this.host.closeLink(conn, true, ''); // (never kept unattached: leased forever)
    } catch (e) {
      this.crash(e, `connect to node ${node}`);
      return;
    }
    this.guard(this.driveBound);
  }

  private readonly driveBound = (): void => this.drive();

  /**
   * Waits for `p` with the queue blocked, then drives again. This is where asynchronous waits
   * re-enter the core: a rejection is a bug (expected failures resolve: openLink gives null or
   * LinkRefused, lookups fail closed), so it ends this session with FATAL XX000 (crash()).
   */
  block(p: Promise<unknown>, what: string): void {
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
    this.parked = null;
    for (const r of this.queue) releaseRequest(r);
    this.queue.length = 0;
    this.host.end(`internal error: ${err.message}`);
  }

  /**
   * Sends a planned request (and what its node needs first). Transaction pooling, in a known
   * aborted transaction (seed 40114): the request's leading Closes, which PostgreSQL still answers
   * there, go first as a part of their own, so that a statement re-parsed for what follows them
   * (refused 25P02 itself) is answered after their CloseCompletes, where the server refuses the
   * message it stands for.
   */
  private execute(req: Request, info: RequestInfo, plan: Plan, link: Link): void {
    if (this.host.pooling !== 'session' && link.txStatus === TxStatus.Failed && link.syncOwed === 0
      && req.pooledData === null && req.pooledPrepare === null) {
      if (req.data[0] === FrontendCode.Close) {
        const [cut, closes] = leadingCloses(req.data);
        if (cut < req.data.length) this.executeHead(req, info, plan, link, cut, closes);
      }
      // An Execute there runs only a transaction-exit statement (a Bind of anything else is
      // refused): what follows it is sent as a part of its own, whose re-parses go after it, where
      // the transaction may be over (ROLLBACK, COMMIT, ROLLBACK TO), not ahead of the whole
      // request, where they would be refused 25P02.
      const [cut, completions] = afterFirstExecute(req.data);
      if (cut > 0) {
        this.executeHead(req, info, plan, link, cut, completions);
        this.exitSent = true;
      }
    }
    this.executePart(req, info, plan, link);
    this.exitSent = false;
  }

  /** Sends the first `cut` bytes of `req` (`completions` messages) as a part of their own (see execute). */
  private executeHead(req: Request, info: RequestInfo, plan: Plan, link: Link, cut: number, completions: number): void {
    const head = newRequest();
    head.data = req.data.subarray(0, cut);
    head.completions = completions;
    head.term = Term.None;
    head.flush = false;
    head.copyOnly = false;
    const retryable = plan.retryable;
    plan.retryable = false; // (a part is never run again elsewhere)
    this.executePart(head, info.read(head.data), plan, link);
    plan.retryable = retryable;
    req.data = req.data.subarray(cut);
    req.completions -= completions;
    info.read(req.data);
  }

  /** The part being sent follows an Execute in a known aborted transaction (execute): the transaction may be over. */
  private exitSent = false;

  private executePart(req: Request, info: RequestInfo, plan: Plan, link: Link): void {
    const node = plan.node;
    const primary = this.host.cluster.primaryId();
    const pooled = this.host.pooling !== 'session';
    if (pooled) {
      this.abortedTx = this.exitSent ? 'maybe' : link.txStatus === TxStatus.Failed && link.syncOwed === 0 ? 'known'
        : link.syncOwed > 0 && !link.unsynced && (link.txStatus !== TxStatus.Idle || this.route.inTransaction) ? 'maybe' : '';
      this.frontRefused = this.abortedTx === 'known' && frontRefusedWhenAborted(req.data, this.statements);
      this.abortedSure = this.abortedTx === 'known' && failsFirstWhenAborted(req.data, this.statements);
      link.conn!.statements.nextRequest();
      this.dupParses = info.parses.length > 0 ? duplicateParses(this, info) : null;
    }
    prepareLink(this, link, info, plan, node !== primary, req.data);
    if (pooled && info.parses.length > 0 && info.parsesStatement('')) link.unnamedOwn = true;
    if (plan.broadcastTx) broadcast(this, req, link);
    if (this.host.noticePerNode || this.host.logFlags.perNodeStatement) reportNode(this, node, link, info, plan.reason);
    if (link.clientOwed === 0 && req.term !== Term.None) link.busySince = performance.now();
    let retry = plan.retryable;
    if (this.cache !== null) cacheSent(this, info, plan);
    // Shared connections: the client's statement names become server names (statement-names.ts),
    // resolved before this request's own Close/DEALLOCATE change the registry (bookkeeping).
    const segments = pooled && (info.parses.length + info.bindStatements.length + info.statementRefs.length > 0)
      ? rewriteRequest(req.data, names(this, link)) : null;
    let token = bookkeeping(this, req, info, plan, node);
    if (info.queries.length > 0) unnamedDropped(this, link);
    if (link.conn !== null) this.noteStatement(link.conn, info);
    let preparedHere = false;
    if (req.pooledPrepare !== null) {
      preparedHere = link.conn!.statements.has(req.pooledPrepare);
      if (!preparedHere) {
        link.conn!.statements.begin(req.pooledPrepare);
        noteParsed(token ??= newToken(), req.pooledPrepare, -1);
      }
    }
    if (pooled) evict(this, link);
    let ends: Expect | null = null;
    if (segments !== null) {
      // Split around ParseCompletes answered in place: each part's expect knows where it starts in
      // the whole request, so an error in any part drops exactly what came at or after it (F25).
      if (segments.length > 1) retry = false;
      let parts: Expect[] | null = null;
      let start = 0;
      let hide = false;
      for (let i = 0; i < segments.length; i++) {
        const seg = segments[i]!;
        const last = i === segments.length - 1;
        if (seg.buf.length > 0 || (last && req.term !== Term.None)) {
          const e = link.expect(ExpectKind.Client, false, seg.completions, last ? req.term : Term.None);
          e.splitOffset = start;
          e.hideError = hide;
          hide = false;
          if (last) {
            ends = e;
            e.token = token;
            if (retry) retryable(e, req, plan);
          } else {
            (parts ??= []).push(e);
          }
          this.send(link, seg.buf);
        }
        start += seg.completions + (seg.parseCompleteAfter || seg.answerAfter !== undefined ? 1 : 0);
        if (seg.parseCompleteAfter) link.synthetic(PARSE_COMPLETE, this);
        if (seg.answerAfter !== undefined) link.synthetic(seg.answerAfter, this);
        if (seg.errorAfter !== undefined) {
          // A Bind answered here (its error in place); the next part starts with a Bind the
          // server refuses in its stead, so that it skips the rest to Sync as it would have.
          link.synthetic(seg.errorAfter, this);
          hide = true;
        }
      }
      if (parts !== null && ends !== null) for (const e of parts) e.splitLast = ends;
    } else if (preparedHere) {
      // The shared connection has this statement already: PREPARE is answered in place.
      retry = false;
      link.synthetic(Buffer.concat([encodeCommandComplete('PREPARE'), encodeReadyForQuery(link.txStatus)]), this);
    } else {
      const e = ends = link.expect(ExpectKind.Client, false, req.completions, req.term);
      if (retry) retryable(e, req, plan);
      e.token = token;
      this.send(link, req.pooledData ?? req.data);
    }
    if (req.term !== Term.None) link.endSequence(ends, req.term === Term.Query);
    else if (info.extended || req.flush) link.openSequence();
    if (node === primary && plan.writes && this.host.config.read_your_writes) this.ryw.noteWrite();
    if (plan.lasting) link.lasting = true;
    link.unflushed = req.unflushed;
    if (pooled && info.parses.length > 0) describeParsed(this, link, info, req);
    // A Flush with nothing before it, or a request written while the server skips to Sync after
    // an error (a Query too), owes nothing: done now (Link.settleEmpty).
    link.settleEmpty(this);
    if (link.done.length > 0) this.settle(link);
    this.lastNode = node;
    this.stickyNode = req.flush && req.term === Term.None ? node : req.term !== Term.None ? -1 : this.stickyNode;
    this.dupParses = null;
    // Set.prototype.clear() is a call into V8's runtime (C++) even on an empty set: ~1 % of the
    // busy time under pgbench -S, where the set is always empty.
    if (this.dupRefused.size > 0) this.dupRefused.clear();
    this.refusedBinds = null;
    if (!retry) releaseRequest(req);
  }

  /**
   * The head request waits for other nodes' answers: a node whose last request ended with
   * neither Sync, Query nor Flush (a CopyDone after a Parse, a long pipeline cut early) may hold
   * them unflushed in its output buffer, where they would stay, as no Sync comes there before
   * this request is sent (the hostile-input fuzz: a Parse, a stray CopyDone, then a read for the
   * standby). A Flush of pgmaitre's own has them sent; it changes nothing else on the server.
   */
  private flushWaited(): void {
    for (const l of this.links) {
      if (l === undefined || !l.unflushed || l.conn === null || l.clientOwed === 0) continue;
      l.unflushed = false;
      this.send(l, FLUSH_MESSAGE);
    }
  }

  /** Batches `buf` for `link` (written by flush()). */
  send(link: Link, buf: Buffer): void {
    if (link.out.length === 0) this.dirty.push(link);
    link.out.push(buf);
  }

  /** Writes each link's batched requests (one write per link). */
  flush(): void {
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

  // ---- backend input -------------------------------------------------------------------------

  /** ForwardSink: a range of a backend chunk for the client. */
  forward(buf: Buffer, start: number, end: number): void {
    if (this.closed) return;
    if (this.collectNode >= 0 && (this.feedNode === this.collectNode || this.feedNode < 0)) this.cache!.collect(buf, start, end);
    if (this.held !== null || (this.cache?.holdAnswers === true && endsTransaction(this, this.feedNode))) {
      (this.held ??= []).push(Buffer.from(buf.subarray(start, end)));
      return;
    }
    if (!this.client.write(start === 0 && end === buf.length ? buf : buf.subarray(start, end)) && !this.clientFull
      && this.leaving === null) {
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
    link.settleEmpty(this);
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
    if (completed > 0 || link.owed === 0 || this.leaving !== null) this.drive();
  }

  /** Applies what the completed expects of `link` mean. */
  private settle(link: Link): void {
    const primary = this.host.cluster.primaryId();
    for (const e of link.done) {
      switch (e.kind) {
        case ExpectKind.Client:
          if (e.status === TxStatus.Idle && link.owed === 0 && !link.unsynced) link.lasting = false;
          if (e.splitLast !== null && e.errored && e.splitLast.failedAtOrig < 0) e.splitLast.failedAtOrig = e.splitOffset + e.failedAt;
          if (e.token !== null) completed(this, link, e, e.token as Token);
          if (this.cache !== null) cacheSettled(this, link, e);
          if (e.sync && e.status !== 0) afterSync(this, link, e, primary);
          if (e.retry !== null) releaseRequest(e.retry as Request);
          break;
        case ExpectKind.Reparse:
          reparsed(this, link, e);
          break;
        case ExpectKind.State:
          if (e.errored || e.skipped) stateFailed(this, link);
          break;
        case ExpectKind.Cleanup:
          if (e.token !== null && !e.errored && !e.skipped && link.conn !== null) cleared(link.conn, (e.token as ClearsToken).clears);
          break;
        case ExpectKind.Probe:
          tempProbed(this, e);
          break;
        case ExpectKind.Describe:
          if (!e.skipped) parsedDescribed(e);
          break;
        default:
          break;
      }
      Link.release(e);
    }
    emptyArray(link.done);
  }

  // ---- a backend connection is lost ------------------------------------------------------------

  /** The backend connection of `node` closed or failed. */
  onBackendClosed(node: number, reason: string): void {
    const link = this.links[node];
    if (link === undefined || link.conn === null || this.closed) return;
    const conn = link.conn;
    if (link.answeredButReady()) {
      // A read answered whole but for its ReadyForQuery: the ReadyForQuery is ours (recovery.ts).
      this.feedNode = node;
      link.feed(READY_IDLE, this);
      this.feedNode = -1;
    }
    const goodbye = link.goodbye;
    const owed = link.drain();
    const unsynced = link.unsynced;
    if (link.done.length > 0) this.settle(link);
    if (this.collectNode === node) {
      this.collectNode = -1;
      this.cache!.collected(0, false);
    }
    releaseHeld(this);
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

  /** Writes a FATAL to the client and ends the session. */
  fail(fields: Parameters<typeof encodeErrorResponse>[0]): void {
    this.client.write(encodeErrorResponse(fields));
    this.end(`${fields.code}: ${fields.message}`);
  }

  private end(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.host.end(reason);
  }

  // ---- query cache (src/cache/; the hook is cache-port.ts) -----------------------------------

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
    if (this.deferredBegin !== '') return this.deferredFailed ? TxStatus.Failed : TxStatus.InTransaction;
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


  // ---- cancel and close ------------------------------------------------------------------------

  /**
   * Forwards a CancelRequest to the backend running this session's query, if any (lease-end.ts);
   * when none runs but a request waits to be sent, to its backend once it was (cancelHead).
   */
  cancel(): void {
    if (this.closed) return;
    if (!this.allAnswered(null)) cancelQueries(this);
    else if (this.queue.length > 0 && !this.queue[0]!.copyOnly) this.cancelHead = this.queue[0]!;
  }

  /**
   * The client is gone (its EOF, Terminate, a socket error). PostgreSQL runs every complete
   * message it read before the EOF, and commits what a Query or Sync there commits (seed 70118:
   * a Query that ends an unsynced Flush pipeline's implicit transaction); only then does it see
   * the EOF, which rolls back a transaction block left open. So the requests the client sent
   * whole, up to its last Sync or Query (or CopyDone), still run here (waiting for their lease if
   * they must), their answers going nowhere; what follows them, which the EOF would roll back,
   * is dropped. Only reads in flight (nothing that may leave anything at commit since the link
   * was last at rest: Link.lasting) are cancelled as before, which frees a shared connection at
   * once and changes nothing anyone can see. True when something is left to run: `done` is
   * called once it has been answered (then close()); false: close() now.
   */
  leave(done: () => void): boolean {
    if (this.closed) return false;
    if (this.leaving !== null) return true;
    for (let i = 0; i < this.rCount; i++) this.rBuf[i] = undefined as unknown as Buffer;
    this.rCount = 0;
    this.rBytes = 0;
    this.rCompletions = 0;
    let keep = this.queue.length;
    while (keep > 0 && !endsWhole(this.queue[keep - 1]!)) keep--;
    for (let i = keep; i < this.queue.length; i++) {
      const r = this.queue[i]!;
      this.queuedBytes -= r.data.length;
      if (this.parked === r) this.parked = null;
      if (this.cancelHead === r) this.cancelHead = null;
      releaseRequest(r);
    }
    this.queue.length = keep;
    if (!this.unfinished()) return false;
    this.leaving = done;
    // Its socket is gone: no drain will come, and a backend paused for it would never be read,
    // its answer never end, its lease never end (95064). What comes now is written on, unpaced.
    this.onClientDrain();
    return true;
  }

  /** The client left and something it sent whole is still to run or to be answered (see leave). */
  private unfinished(): boolean {
    if (this.copyTarget !== null || this.closed) return false; // COPY IN with no client: aborted, as at EOF
    if (this.queue.length > 0) return true;
    for (const l of this.connected()) if (l.syncOwed > 0 && l.clientOwed > 0 && l.lasting) return true;
    return false;
  }

  /** The session ends (client gone, shutdown, FATAL): every lease ends (lease-end.ts: endLeases). */
  close(): void {
    this.leaving = null;
    endLeases(this);
    this.closed = true;
    this.parked = null;
    for (const r of this.queue) releaseRequest(r);
    this.queue.length = 0;
    this.cancelHead = null;
  }

  /**
   * What the session waits for, in one line (a test that finds a slot still held prints it):
   * queued requests, async waits, and per link what is owed.
   */
  debugState(): string {
    const links = this.links.filter((l) => l !== undefined).map((l) => `node ${l!.node}${l!.conn === null ? ' (no conn)' : ''}: owed ${l!.owed}, sync ${l!.syncOwed}, client ${l!.clientOwed}${l!.lasting ? ', lasting' : ''}${l!.full ? ', full' : ''}, ${l!.debugState()}`);
    return `closed ${this.closed}, leaving ${this.leaving !== null}, queue [${this.queue.map((r) => `${String.fromCharCode(r.data[0] ?? 63)}${r.term}${r.copyOnly ? 'c' : ''}`).join(' ')}], `
      + `blocked ${this.blocked}, cancelling ${this.cancelling.size}, parked ${this.parked !== null}, copy ${this.copyTarget !== null}, client full ${this.clientFull}; ${links.join('; ')}`;
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

/** A request that ends with a Sync, a Query or a COPY's end: what it does may commit (SessionCore.leave). */
function endsWhole(req: Request): boolean {
  if (req.term !== Term.None) return true;
  if (!req.copyOnly) return false;
  const d = req.data;
  let last = 0;
  for (let pos = 0; pos + 5 <= d.length; pos += 1 + d.readUInt32BE(pos + 1)) last = d[pos]!;
  return last === FrontendCode.CopyDone || last === FrontendCode.CopyFail;
}

/** The first message of `data` is refused with 25P02 in an aborted transaction (see SessionCore.frontRefused). */
function frontRefusedWhenAborted(data: Buffer, statements: Statements): boolean {
  if (data.length < 6) return false;
  const code = data[0];
  if (code === FrontendCode.Parse) return true;
  if (code === FrontendCode.Bind) {
    const portalEnd = data.indexOf(0, 5);
    const stmtEnd = portalEnd < 0 ? -1 : data.indexOf(0, portalEnd + 1);
    const name = stmtEnd > 0 ? data.toString('utf8', portalEnd + 1, stmtEnd) : '';
    const st = stmtEnd > 0 ? statements.protocol.get(name) : undefined;
    if (st === undefined) return false;
    // (08P01 first when the parameters do not match: exec_bind_message checks them before the aborted state.)
    const params = parameterCount(st);
    if (params < 0 || parsedWhenAborted(st.sql)) return true;
    const end = 1 + data.readInt32BE(1);
    return abortedBindError(data, 0, end, name, params)?.code !== '08P01';
  }
  if (code === FrontendCode.Describe && data[5] === 0x53) {
    const end = data.indexOf(0, 6);
    const st = end > 0 ? statements.protocol.get(data.toString('utf8', 6, end)) : undefined;
    // (A statement without rows is described there, seed 60067.)
    return st !== undefined && (parsedWhenAborted(st.sql) || !Buffer.isBuffer(describedWhenAborted(st)));
  }
  return false;
}

/** Where the Close frames `data` begins with end, and how many they are. */
/**
 * The end of the first Execute of `data` and the completion messages up to it, when a Bind,
 * Describe or Parse follows it ([0, 0] otherwise). See SessionCore.execute.
 */
function afterFirstExecute(data: Buffer): [number, number] {
  let pos = 0;
  let n = 0;
  while (pos + 5 <= data.length) {
    const code = data[pos]!;
    pos += 1 + data.readUInt32BE(pos + 1);
    if (code === FrontendCode.Parse || code === FrontendCode.Bind || code === FrontendCode.Describe || code === FrontendCode.Close) n++;
    if (code !== FrontendCode.Execute) continue;
    n++;
    for (let p = pos; p + 5 <= data.length; p += 1 + data.readUInt32BE(p + 1)) {
      const c = data[p]!;
      if (c === FrontendCode.Parse || c === FrontendCode.Bind || c === FrontendCode.Describe) return [pos, n];
    }
    return [0, 0];
  }
  return [0, 0];
}

function leadingCloses(data: Buffer): [number, number] {
  let pos = 0;
  let n = 0;
  while (pos + 5 <= data.length && data[pos] === FrontendCode.Close) {
    pos += 1 + data.readUInt32BE(pos + 1);
    n++;
  }
  return [Math.min(pos, data.length), n];
}

/**
 * In an aborted transaction, `data` surely fails at its first message other than a Close (Close
 * is answered there), with an answer that needs no statement re-parsed: a Parse of a non-exit
 * statement (25P02), a Bind or Describe of a statement the client lacks (26000), a Bind of a
 * non-exit statement the client has whose parameter count is sure (08P01 or 25P02, answered in
 * place when the connection lacks it). See SessionCore.abortedSure.
 */
function failsFirstWhenAborted(data: Buffer, statements: Statements): boolean {
  let pos = 0;
  let closed: string[] | null = null;
  while (pos + 6 <= data.length && data[pos] === FrontendCode.Close) {
    const next = pos + 1 + data.readInt32BE(pos + 1);
    if (data[pos + 5] === 0x53) (closed ??= []).push(data.toString('utf8', pos + 6, Math.max(pos + 6, next - 1)));
    pos = next;
  }
  if (pos + 6 > data.length) return false;
  const code = data[pos];
  const end = pos + 1 + data.readInt32BE(pos + 1);
  if (code === FrontendCode.Parse) {
    const nameEnd = data.indexOf(0, pos + 5);
    const sqlEnd = nameEnd < 0 ? -1 : data.indexOf(0, nameEnd + 1);
    return sqlEnd > 0 && sqlEnd < end && !parsedWhenAborted(data.toString('utf8', nameEnd + 1, sqlEnd));
  }
  if (code === FrontendCode.Describe && data[pos + 5] === 0x53) {
    const nameEnd = data.indexOf(0, pos + 6);
    const name = nameEnd > 0 && nameEnd < end ? data.toString('utf8', pos + 6, nameEnd) : null;
    return name !== null && !statements.protocol.has(name) && closed?.includes(name) !== true;
  }
  if (code !== FrontendCode.Bind) return false;
  const portalEnd = data.indexOf(0, pos + 5);
  const stmtEnd = portalEnd < 0 ? -1 : data.indexOf(0, portalEnd + 1);
  if (stmtEnd < 0 || stmtEnd >= end) return false;
  const name = data.toString('utf8', portalEnd + 1, stmtEnd);
  const st = statements.protocol.get(name);
  if (st === undefined) return true;
  if (closed?.includes(name) === true) return false;
  return !parsedWhenAborted(st.sql) && parameterCount(st) >= 0 && abortedBindError(data, pos, end, name, parameterCount(st)) !== null;
}

/** The ReadyForQuery that completes a read whose node went away after answering it (outside a transaction). */
const READY_IDLE = encodeReadyForQuery(TxStatus.Idle);

/**
 * Keeps `req` with its expect while it may run again elsewhere, and says when its answer is whole
 * but for the ReadyForQuery (Link.answeredButReady): a Sync's completions are counted already; a
 * simple Query's only when it holds one statement.
 */
function retryable(e: Expect, req: Request, plan: Plan): void {
  e.retry = req;
  if (req.term !== Term.Query) e.queryLeft = 0;
  else if (plan.classes.length === 1 && plan.classes[0]!.statements === 1) e.queryLeft = 1;
}
