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
 * statements confirmed) → drive() again for whatever was waiting. A read that is one Query like
 * the session's last one, when nothing that request's plan read has changed, skips framing,
 * the queue and the planner: quickForward() sends it on that plan through execute() (the
 * conditions are all in quickRefusal()).
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
 * This file is the session's own driving loop; each concern it hands work to has its own file, a
 * narrow interface of the session that SessionCore implements, and its own unit tests
 * (docs/architecture.md, "The core's rooms"): request-effects.ts (what a request does to the
 * session, sent and answered), side-requests.ts (what a link needs first),
 * connection-statements.ts (server statement names per connection), pooled-prepare.ts (SQL
 * PREPARE & co. before a shared connection), deferred-begin.ts (a BEGIN answered before any
 * lease), request-frames.ts (a request's frames, in an aborted transaction), lease-end.ts (every
 * way a lease ends), tx-pooling.ts (the policy), recovery.ts (a lost connection), cache-glue.ts
 * (the query cache), identity-check.ts, local-replies.ts (answers and admin commands). Their
 * functions take the session itself: no closure or object per request.
 */
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { FrontendCode, TxStatus } from '../protocol/codes';
import { encodeCommandComplete, encodeErrorResponse, encodeReadyForQuery } from '../protocol/backend';
import { clientErrors } from '../errors/client-errors';
import { newRouteState, type RouteState } from '../router/router';
import { LogEvent } from '../log/logger';
import { ExpectKind, Link, Term, type Expect } from './link';
import { newRequest, releaseRequest, Request, RequestInfo } from './request';
import { Planner, PlanType, type Plan, type PlannerView } from './planner';
import { Statements } from './statements';
import { SessionState } from './session-state';
import { ReadYourWrites } from './read-your-writes';
import { errorReply, localError, reportNode, runAdmin, type AdminReplySession } from './local-replies';
import { Local, pooledLocal, type PooledSession } from './pooled-prepare';
import { describeParsed, duplicateParses, evict, names, parsedDescribed, unnamedDropped } from './connection-statements';
import { afterSync, bookkeeping, cleared, completed, newToken, noteParsed, stateFailed, type ClearsToken, type EffectsSession, type Token } from './request-effects';
import { rewriteRequest } from './statement-names';
import type { BackendPort, ClientPort, ForwardSink } from './ports';
import { BackendMessageLog } from '../log/backend-messages';
import { LinkRefused, type CoreHost } from './core-host';
import type { CachePort, CacheView } from './cache-port';
import { cacheSent, cacheSettled, consultCache, earlyCacheHit, endsTransaction, makeCacheView, quickCacheHit, quickReadHit, type CacheSession } from './cache-glue';
import { IdentityCheck, identityUnsure, type IdentitySession } from './identity-check';
import { Pins, pinReasonOf } from './tx-pooling';
import { deferBegin, deferredStep, type DeferredSession } from './deferred-begin';
import { afterFirstExecute, endsWhole, failsFirstWhenAborted, frontRefusedWhenAborted, leadingCloses } from './request-frames';
import type { QueryClass } from '../classify/types';
import { broadcast, prepareLink, reparsed, type SideSession } from './side-requests';
import { cancelQueries, closeLeases, endLeases, releaseIdle, tempProbed, type LeaseEndSession } from './lease-end';
import { connectionLost, retryable, type RecoverySession } from './recovery';
import { emptyArray } from '../util/arrays';
import { copyRead } from '../util/fast-read';
import { decodeQuery } from '../protocol/frontend';

/** Requests queued beyond this many bytes stop the client from being read. */
const QUEUE_HIGH_WATER = 256 * 1024;

const PARSE_COMPLETE = Buffer.from([0x31, 0, 0, 0, 4]);
const FLUSH_MESSAGE = Buffer.from([0x48, 0, 0, 0, 4]);

/** See the file header. */
export class SessionCore implements ForwardSink, PlannerView, PooledSession, EffectsSession, LeaseEndSession, CacheSession, SideSession, IdentitySession, DeferredSession, RecoverySession, AdminReplySession {
  readonly route: RouteState = newRouteState();
  readonly statements = new Statements();
  readonly state = new SessionState();
  readonly ryw: ReadYourWrites;
  readonly planner: Planner;
  private readonly info = new RequestInfo();
  /** The scratch info and plan hold a request's (drive() lets go of them; see there). */
  private scratchUsed = false;
  private backendLog: BackendMessageLog | null = null;
  /** drive() calls in progress (a step can drive again, e.g. after a local answer). */
  private driving = 0;
  // Members that are not private are read, some set, by the modules beside the core through
  // their narrow session interfaces (see the file header), not by the socket side.
  /** The session's link per node. */
  readonly links: (Link | undefined)[] = [];
  readonly queue: Request[] = [];
  queuedBytes = 0;
  // Request assembly: ranges of client bytes not yet cut into a request.
  private rBuf: Buffer[] = [];
  private rStart: number[] = [];
  private rEnd: number[] = [];
  private rCount = 0;
  private rCompletions = 0;
  /** Bytes in the ranges above: counted in pacing, and cut early beyond QUEUE_HIGH_WATER. */
  private rBytes = 0;
  /** The link in COPY IN that takes the client's copy frames directly, and those frames. */
  copyTarget: Link | null = null;
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
  /** Links whose cancel request is on its way (lease-end.ts, LeaseEndSession). */
  readonly cancelling = new Map<Link, Promise<void>>();
  /** Waits (block()) at whose end pgmaitre writes an answer of its own (an admin command's). */
  private answering = 0;
  /**
   * A request was answered here with an ERROR (a cancelled one, cancel()) and no Sync came after
   * it yet: the client's messages are discarded up to its next Sync, answered ReadyForQuery, as
   * PostgreSQL discards them after an error in the extended protocol.
   */
  private skipToSync = false;
  // Transaction pooling, the request being sent (NamingSession, connection-statements.ts, says
  // what each means): names it redefines (42P05 from the server), Binds answered here, and
  // whether it may meet an aborted transaction (F21).
  dupParses: Set<string> | null = null;
  readonly dupRefused = new Set<string>();
  refusedBinds: Set<string> | null = null;
  abortedTx: '' | 'known' | 'maybe' = '';
  frontRefused = false;
  abortedSure = false;
  /** Transaction pooling: a BEGIN answered here, not sent yet, and whether its transaction failed (deferred-begin.ts). */
  deferredBegin = '';
  deferredFailed = false;
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
  feedNode = -1;
  /** Answers held back until the cache's invalidation of a commit went through (cache-glue.ts, CacheSession). */
  held: Buffer[] | null = null;
  /** Transaction pooling: the ParameterStatus values the client was given at login (a DISCARD ALL answered here reports resets). */
  loginParams: ReadonlyMap<string, string> | null = null;
  /** Session pooling: is the client's own backend alive before a request goes elsewhere (identity-check.ts)? */
  readonly identity = new IdentityCheck();
  /**
   * The quick forward path (quickForward): the session's last request, when it was a lone read
   * Query sent on the full path, as its plan stood (quickCls null: there is none), and what that
   * plan read. Any request that reaches step() clears it first; only the full path sets it.
   */
  private quickCls: QueryClass | null = null;
  private quickNode = -1;
  private quickReason = '';
  private quickRetryable = false;
  /** Session pooling: the connection it went to (transaction pooling leases one per request). */
  private quickConn: BackendPort | null = null;
  private quickPrimary = -1;
  private quickStatus = '';
  private quickRole = '';
  private quickRouting: unknown = null;
  private quickConfig: unknown = null;
  private quickClassifier: unknown = null;
  private quickStateVersion = -1;
  private quickLb = -1;
  private quickRoute = 0;
  /** The text quickRefusal decoded (quickForward takes it). */
  private quickSql = '';
  /** Requests sent by quickForward (read by tests and bench/micro/session-scaling.ts). */
  quickForwards = 0;

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

  /**
   * Logged in without a connection (transaction pooling): `node` answers for the client's
   * identity, and its link is made now, empty, as it is after every lease ends. A session's first
   * request then takes the path its later ones take (a link that exists, without a connection):
   * with the link made at the first lease, a server that had met only clients that connect per
   * request had its code optimized for "no link yet", and deoptimized it at the first client that
   * sent a second request (issue 21 item 5).
   */
  loginNode(node: number): void {
    this.identityNode = node;
    if (this.links[node] === undefined) this.links[node] = new Link(node);
  }

  /** Attaches the login connection (its pid is the client's). */
  attachLogin(node: number, conn: BackendPort): void {
    this.identityNode = node;
    this.attach(node, conn);
  }

  attach(node: number, conn: BackendPort): Link {
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
      // A read of whole frames is copied by the framer into a buffer of its own: when the request
      // is all of it (one Query per read, pgbench's case), that buffer is the request, not a view.
      const b = this.rBuf[0]!;
      const start = this.rStart[0]!;
      const end = this.rEnd[0]!;
      req.data = start === 0 && end === b.length ? b : b.subarray(start, end);
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

  /**
   * A client read (`view`, valid during the call) that is, whole, one request the query cache
   * answers from its bytes, arriving when nothing else is under way (session pooling; no request
   * queued, begun, waiting or unanswered; no COPY): answered before it is framed (cache-glue.ts
   * quickReadHit). False: the read is framed as usual.
   */
  quickRead(view: Buffer): boolean {
    if (this.cache === null || this.queue.length !== 0 || this.rCount !== 0 || this.driving !== 0 || this.blocked !== 0 || this.held !== null || this.closed
      || this.leaving !== null || this.parked !== null || this.refused !== null || this.copyTarget !== null || this.cancelling.size !== 0
      || this.deferredBegin !== '' || this.host.pooling !== 'session' || this.skipToSync) return false;
    return quickReadHit(this, view);
  }

  /**
   * The quick forward path: a client read (`view`, valid during the call) that is, whole, one
   * simple Query of the same shape and verdict as the session's last request, which went to a
   * backend on the full path, when nothing that request's plan read has changed (quickRefusal
   * lists every condition): sent on that plan, with no framing, no queue, no planning. The
   * request's bytes and everything done on sending it go through executePart(), as on the full
   * path (counters, last statement, read-your-writes, the link's account, side requests); its
   * answer comes back through the full path's link scanner (Link.feed, settle). Transaction
   * pooling: only when an idle connection is leased at once (leaseNow); the lease ends as every
   * lease does, after the answer (drive: releaseIdle, tx-pooling.ts leaseFate). False: the read
   * is framed as usual.
   */
  quickForward(view: Buffer, maxMessage: number): boolean {
    if (this.quickRefusal(view, maxMessage) !== '') return false;
    const node = this.quickNode;
    let link = this.links[node]!;
    if (this.host.pooling !== 'session') {
      const conn = this.host.leaseNow(node);
      if (conn === null) {
        this.quickSql = ''; // none idle at once: the full path waits in line
        return false;
      }
      link = this.attach(node, conn);
    }
    const req = newRequest();
    req.data = copyRead(view);
    req.completions = 0;
    req.term = Term.Query;
    req.flush = false;
    req.copyOnly = false;
    req.unflushed = false;
    this.scratchUsed = true; // (the drive after its answer lets go of the scratch info and plan)
    const info = this.info.readQuery(this.quickSql);
    this.quickSql = '';
    const plan = this.planner.repeat(this.quickCls!, node, this.quickReason, this.quickRetryable);
    this.quickForwards++;
    this.execute(req, info, plan, link);
    this.flush();
    return true;
  }

  /**
   * '' when `view` may take the quick forward path, else which condition keeps it on the full
   * path. Every condition is here (test/unit/core/quick-forward.test.ts shows each one).
   */
  quickRefusal(view: Buffer, maxMessage: number): string {
    const cls = this.quickCls;
    // 1. The last request was a lone read Query sent on the full path (see noteQuick), and no
    //    request reached step() since.
    if (cls === null) return 'no template';
    // 2. The read is one whole Query frame, within max_message_size, its text one C string.
    const len = view.length;
    // (Its text ends at its last byte: decodeQuery, step 9, refuses a text with a NUL inside.)
    if (len < 6 || len - 1 > maxMessage || view[0] !== FrontendCode.Query || view.readInt32BE(1) !== len - 1 || view[len - 1] !== 0) return 'not one Query';
    // 3. The session at rest: nothing queued, half read, driving, waited for (a lease, a lookup,
    //    a connection), refused, cancelled or being cancelled, skipping to a Sync after a cancel,
    //    a cancelled request's lease still on its way, an admin answer on its way, in COPY, held
    //    back, paced, or staying on a node until Sync; the client still there.
    if (this.closed || this.leaving !== null || this.queue.length !== 0 || this.rCount !== 0 || this.driving !== 0 || this.blocked !== 0
      || this.parked !== null || this.refused !== null || this.skipToSync || this.leaseWaiting || this.leaseAbandoned || this.answering !== 0
      || this.cancelling.size !== 0 || this.copyTarget !== null
      || this.held !== null || this.clientFull || this.clientPaused || this.backendFull !== 0 || this.stickyNode !== -1) return 'not at rest';
    // 4. Every link at rest: nothing owed or half scanned, no open sequence, no COPY, nothing
    //    batched or to clean up first, outside any transaction.
    for (let i = 0; i < this.links.length; i++) {
      const l = this.links[i];
      if (l === undefined) continue;
      if (!l.quiet || l.unsynced || l.out.length !== 0 || l.cleanup.length !== 0 || l.full || l.goodbye !== null || l.txStatus !== TxStatus.Idle) return 'link busy';
    }
    // 5. Nothing that must see or show the request: the query cache, statement logging,
    //    per-node statement notices and logs.
    const host = this.host;
    const flags = host.logFlags;
    if (this.cache !== null) return 'query cache';
    if (flags.statement || flags.clientMessages || flags.perNodeStatement || host.noticePerNode) return 'logging';
    // 6. Outside any transaction, as the template was planned (routing state unchanged, no
    //    deferred BEGIN, no SET staged).
    const route = this.route;
    if (this.deferredBegin !== '' || route.inTransaction || this.txFailed || this.stagedNode !== -1 || this.state.pending) return 'transaction';
    if (this.routeBits() !== this.quickRoute) return 'routing state';
    // 7. What the plan read: the settings (reload, PGPOOL SET), the session's settings version,
    //    the primary, the node's status and role, its lag, the session's load-balance node, no
    //    node failed recently, no statement-level balancing; read_your_writes: the session wrote
    //    nothing (else its reads' node depends on what the standbys replayed since).
    if (host.routing !== this.quickRouting || host.config !== this.quickConfig || host.classifier !== this.quickClassifier
      || host.routing.statementLevel) return 'settings';
    if (host.config.read_your_writes && !this.ryw.nothingWritten) return 'read-your-writes';
    if (this.state.version !== this.quickStateVersion) return 'session settings';
    const node = this.quickNode;
    const primary = host.cluster.primaryId();
    const n = host.cluster.node(node);
    if (primary !== this.quickPrimary || n === undefined || n.status !== this.quickStatus || n.role !== this.quickRole
      || (node !== primary && host.routing.lag(node).lagging)) return 'cluster';
    if (this.lbNode !== this.quickLb || this.planner.failedAt.size !== 0) return 'load balance';
    // 8. The connection. Session pooling: the same one, and the client's own backend need not be
    //    checked first (identity-check.ts). Transaction pooling: not pinned and holding none (one
    //    is leased at once by quickForward, or the full path waits in line).
    if (host.pooling === 'session') {
      const link = this.links[node];
      if (link === undefined || link.conn === null || link.conn !== this.quickConn) return 'connection';
      if (node !== this.identityNode && (this.identity.pending || this.identity.unseen)) return 'identity check';
    } else {
      if (this.pinnedFor !== '' || this.pinReason() !== '') return 'pinned';
      for (let i = 0; i < this.links.length; i++) if (this.links[i]?.conn != null) return 'connection';
    }
    // 9. Last (it reads the text): the same shape, so the same verdict, as the template.
    let sql: string;
    try {
      sql = decodeQuery(view, 0, len);
    } catch {
      return 'not one Query';
    }
    if (!this.planner.sameVerdict(sql, cls)) return 'other statement';
    this.quickSql = sql;
    return '';
  }

  /** The routing state's flags make() reads outside a transaction (quickRefusal compares them). */
  private routeBits(): number {
    const r = this.route;
    return (r.wroteInSession ? 1 : 0) | (r.wroteInEarlierTransaction ? 2 : 0) | (r.wroteInTransaction ? 4 : 0) | (r.primaryOnlyTransaction ? 8 : 0)
      | (r.serializableDefault ? 16 : 0) | (r.tempTables.size > 0 ? 32 : 0) | (r.writtenInTransaction.size > 0 ? 64 : 0);
  }

  /**
   * After the full path sent `req` (read as `info`, planned as `plan`) to `link`: the template
   * quickForward repeats, when `req` was a lone read Query sent outside any transaction.
   * (`lone`: computed before the request was sent, which may give it back to the pool.)
   */
  private noteQuick(lone: boolean, info: RequestInfo, plan: Plan, link: Link): void {
    if (!lone || info.queries.length !== 1 || info.extended || info.functionCall || plan.type !== PlanType.Send || plan.classes.length !== 1) return;
    const cls = plan.classes[0]!;
    if (cls.kind !== 'read' || !cls.readOnly || cls.statements !== 1 || cls.functions.length !== 0 || cls.flags.sessionEffects === true
      || cls.flags.createsTemp === true || cls.flags.selectInto === true || cls.flags.writableCte === true || cls.flags.needsVolatilityCheck === true
      || plan.effects !== null || plan.broadcastTx || plan.sqlNeeded.length !== 0 || plan.lookup.length !== 0 || plan.writes || plan.lasting
      || this.route.inTransaction || link.conn === null || this.cache !== null) return;
    const host = this.host;
    const n = host.cluster.node(plan.node);
    if (n === undefined) return;
    this.quickCls = cls;
    this.quickNode = plan.node;
    this.quickReason = plan.reason;
    this.quickRetryable = plan.retryable;
    this.quickConn = host.pooling === 'session' ? link.conn : null;
    this.quickPrimary = host.cluster.primaryId();
    this.quickStatus = n.status;
    this.quickRole = n.role;
    this.quickRouting = host.routing;
    this.quickConfig = host.config;
    this.quickClassifier = host.classifier;
    this.quickStateVersion = this.state.version;
    this.quickLb = this.lbNode;
    this.quickRoute = this.routeBits();
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
    // (Discarding to Sync needs no server: not held by a wait for one.)
    while (!this.closed && (this.skipToSync || (this.blocked === 0 && this.cancelling.size === 0)) && this.queue.length > 0) {
      const req = this.queue[0]!;
      const bytes = req.data.length; // (step() may give the request back to the pool)
      if (!(this.skipToSync ? this.skipped(req) : this.step(req))) break;
      this.queue.shift();
      this.queuedBytes -= bytes;
    }
    // The scratch info and plan must not keep the last request alive: a large SQL text promoted
    // to V8's old space by the next young collection waits there for a full one, and whatever an
    // idle session still references is copied by every young collection — work per request that
    // grows with the number of sessions. Not while an outer drive() (this one runs inside its
    // step) still reads them.
    // Only when a request was read since: most drive() calls follow an answer with nothing queued,
    // and emptying the already empty scratch touched a dozen cold objects for nothing.
    if (--this.driving === 0 && this.parked === null && this.scratchUsed) {
      this.scratchUsed = false;
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

  /**
   * The head request while messages are discarded up to Sync (skipToSync): a request cut at Sync
   * ends it, answered ReadyForQuery; anything else (a Query too, as PostgreSQL does) is dropped
   * unanswered. False while the ERROR that began it is still on its way (localError's ABORT_TX).
   */
  private skipped(req: Request): boolean {
    if (!req.copyOnly && req.term === Term.Sync) {
      if (!this.allAnswered(null)) return false;
      this.skipToSync = false;
      this.flush();
      this.client.write(encodeReadyForQuery(this.txStatus()));
    }
    releaseRequest(req);
    return true;
  }

  /** Handles the request at the head of the queue; false when it must wait. */
  private step(req: Request): boolean {
    const parked = this.parked;
    this.parked = null;
    this.quickCls = null; // (noteQuick sets it again for a request it may repeat)
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
    // A prepared statement's cache hit, known from its bytes (nothing decoded; cache-glue.ts).
    if (this.cache !== null && this.deferredBegin === '' && this.host.pooling === 'session' && quickCacheHit(this, req)) return true;
    this.scratchUsed = true;
    const info = this.info.read(req.data);
    if (this.deferredBegin !== '') {
      const r = deferredStep(this, req, info);
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
        runAdmin(this, plan.adminSql);
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
    const lone = req.term === Term.Query && !req.flush && req.completions === 0 && req.pooledData === null && req.pooledPrepare === null;
    this.execute(req, info, plan, link);
    this.noteQuick(lone, info, plan, link);
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

  /** Transaction pooling: answers a BEGIN before any connection is leased, when it may (deferred-begin.ts). */
  deferBegin(req: Request, sql: string, cls: QueryClass): boolean {
    return deferBegin(this, req, sql, cls);
  }

  /** Opens a link to `node` (blocking the queue meanwhile). */
  open(node: number): void {
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
    if (this.leaseAbandoned) {
      // A wait whose request was cancelled is still on: adopted for the same node, else the new
      // one starts once it came (the host keeps one wait per session).
      if (node === this.leaseNode) this.leaseAbandoned = false;
      else this.leaseNext = node;
      return;
    }
    this.startLease(node);
  }

  private startLease(node: number): void {
    this.leaseNode = node;
    this.leaseWaiting = true;
    try {
      this.host.leaseLater!(node, this.leaseDone);
    } catch (e) {
      this.blocked--;
      this.leaseWaiting = false;
      this.crash(e, `connect to node ${node}`);
    }
  }

  /**
   * The node waitLease() waits for, and its callback (made once per session, here: an arrow over
   * `this` inside waitLease() made it allocate its context on every call, per waited transaction).
   */
  private leaseNode = -1;
  private readonly leaseDone = (conn: BackendPort | null, refused: LinkRefused | null): void => this.leaseCame(conn, refused);
  /**
   * A lease is awaited (leaseLater called, its callback not come yet); `leaseAbandoned`: the
   * request it was for was cancelled while it waited (cancel()): the queue no longer waits for it,
   * and it is given back unused when it comes, unless a request for the same node adopted it
   * meanwhile; `leaseNext`: the node a later request waits for, whose wait starts then.
   */
  private leaseWaiting = false;
  private leaseAbandoned = false;
  private leaseNext = -1;

  /** cancel(): the request at the queue's head no longer waits for its lease (see leaseAbandoned). */
  private abandonLease(): void {
    if (this.leaseNext >= 0) {
      this.leaseNext = -1; // (not started: the abandoned wait before it is still on)
      this.blocked--;
    } else if (this.leaseWaiting && !this.leaseAbandoned) {
      this.leaseAbandoned = true;
      this.blocked--;
    }
  }

  /**
   * The lease waitLease() waited for: from the pool's microtask, or from inside the give-back of
   * the session that freed the connection (NodePool.waitInLine); then the parked request is sent
   * on it at once, by this drive() (step: resumable), without being read or planned again.
   */
  private leaseCame(conn: BackendPort | null, refused: LinkRefused | null): void {
    const node = this.leaseNode;
    this.leaseWaiting = false;
    if (this.leaseAbandoned) {
      // Its request was cancelled (a refusal is nobody's now): back unused; then the next wait.
      this.leaseAbandoned = false;
      const next = this.leaseNext;
      this.leaseNext = -1;
      try {
        if (conn !== null) this.host.closeLink(conn, true, '');
      } catch (e) {
        this.crash(e, `connect to node ${node}`);
        return;
      }
      if (next >= 0 && !this.closed) this.startLease(next);
      return;
    }
    this.blocked--;
    try {
      if (refused !== null) this.refused = refused; // the request waiting for it gets this error (see step)
      if (this.refused === null) {
        if (conn === null) this.forgetNode(node);
        else if (this.closed) this.host.closeLink(conn, true, '');
        else {
          // (Map.prototype.delete is a call into V8's runtime even on an empty map: once per waited transaction)
          if (this.planner.failedAt.size > 0) this.planner.failedAt.delete(node);
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
   * Waits for `p` with the queue blocked, then drives again (`answers`: `p` writes an answer of
   * pgmaitre's own, which a cancel must not overtake). This is where asynchronous waits
   * re-enter the core: a rejection is a bug (expected failures resolve: openLink gives null or
   * LinkRefused, lookups fail closed), so it ends this session with FATAL XX000 (crash()).
   */
  block(p: Promise<unknown>, what: string, answers = false): void {
    this.flush();
    this.blocked++;
    if (answers) this.answering++;
    this.pacing();
    p.then(() => {
      this.blocked--;
      if (answers) this.answering--;
      this.guard(() => this.drive());
    }, (e: unknown) => {
      this.blocked--;
      if (answers) this.answering--;
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
    closeLeases(this, `session ${this.host.pid} ended after an internal error`);
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
    this.backendFilled(link, conn);
  }

  /**
   * A backend socket went above its high-water mark: the client is not read until it drained.
   * (Apart from writeTo(): its closure over `link` made writeTo() allocate a context per write.)
   */
  private backendFilled(link: Link, conn: BackendPort): void {
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
      // One clock read for the latency and the node's running mean (there were two).
      const now = performance.now();
      this.host.observeLatency(node, (now - link.busySince) / 1000, now);
      link.busySince = 0;
    }
    if (completed > 0 || link.owed === 0 || this.leaving !== null) this.drive();
  }

  /** Applies what the completed expects of `link` mean. */
  settle(link: Link): void {
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

  // ---- a backend connection is lost (recovery.ts) ---------------------------------------------

  /** The backend connection of `node` closed or failed. */
  onBackendClosed(node: number, reason: string): void {
    connectionLost(this, node, reason);
  }

  /** A node's connection is gone: its statements and portals with it. */
  forgetNode(node: number): void {
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

  /** Ends the session (the host ends its connections: close()). */
  end(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.host.end(reason);
  }

  // ---- local replies (local-replies.ts) --------------------------------------------------------

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
   * The client's CancelRequest. A statement running at a server: the cancel is forwarded to that
   * backend (lease-end.ts, cancelQueries). None running, but the client's next request waits here,
   * sent to no server yet (for its lease, a connection being opened, a lookup, a cancel still on
   * its way): it is cancelled here, as PostgreSQL would cancel it running — ERROR 57014, the rest
   * of its pipeline discarded up to Sync, and inside a transaction block the transaction aborted
   * (its ReadyForQuery 'E'); it never reaches a server, and what the client sends next waits as it
   * would have. Forwarding it once sent was a race (the cancel could reach the server before the
   * query, which then ran anyway). Otherwise (nothing running nor waiting, or pgmaitre's own
   * answer on its way) it is dropped, as PostgreSQL drops a cancel for an idle backend.
   */
  cancel(): void {
    if (this.closed) return;
    if (!this.allAnswered(null)) {
      cancelQueries(this);
      return;
    }
    // (Nothing is owed: the head, if any, was sent nowhere; it waits, or the queue waits for
    // something of an earlier request's that needs no answer: a lease or a lookup it no longer uses.)
    const req = this.queue[0];
    if (req === undefined || req.copyOnly || this.skipToSync || this.held !== null || this.answering > 0) return;
    this.queue.shift();
    this.queuedBytes -= req.data.length;
    if (this.parked === req) this.parked = null;
    this.abandonLease();
    this.flush();
    if (this.deferredBegin !== '') this.deferredFailed = true; // the transaction answered to the client fails with it
    localError(this, req, '57014', 'canceling statement due to user request', undefined, true);
    if (req.term === Term.None) this.skipToSync = true;
    this.host.log.info({ event: LogEvent.CancelAnswered, pid: this.host.pid }, 'cancel request answered here (57014): the statement was waiting, sent to no server');
    releaseRequest(req);
    this.guard(this.driveBound);
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
    for (const l of this.links) if (l !== undefined && l.conn !== null && l.syncOwed > 0 && l.clientOwed > 0 && l.lasting) return true;
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
