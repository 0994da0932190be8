/**
 * Routes a session's requests to backend nodes, in order.
 *
 * Each complete request (frames up to Sync/Query/FunctionCall, or Flush) is planned once:
 * its statements are classified, the router says primary or load-balance node for each, and
 * the request goes whole to one node (the primary as soon as one statement needs it). Named and
 * unnamed statements and portals are tracked: a Bind/Describe goes where its statement can be
 * used, an Execute where its portal lives, and a statement needed on a node that never saw its
 * Parse is re-parsed there first, with the answer swallowed. Session state (SET, RESET, DISCARD,
 * DEALLOCATE) is sent to every node the session holds, answers from the other nodes swallowed,
 * and replayed on nodes joined later.
 *
 * Responses must reach the client in request order, so a request only goes to a node different
 * from the previous one when every other node has answered; after a Flush the session sticks to
 * its node until the next Sync. Anything that needs waiting (a node's connection being opened,
 * a function's volatility looked up, an admin command, earlier answers) blocks the queue; the
 * client socket is paused meanwhile by the session.
 */
import type { Classifier, QueryClass } from '../classify/types';
import { encodeClose, encodeQuery, encodeSync } from '../protocol/frontend';
import { encodeNoticeResponse } from '../protocol/backend';
import { TxStatus } from '../protocol/codes';
import { noteDispatched, noteTransactionEnd, newRouteState, routeStatement, type RouteState } from '../router/router';
import { selectLoadBalanceNode } from '../router/lb-select';
import { lbCandidates } from './lb-candidates';
import type { ServerConnection } from '../backend/server-connection';
import { LogEvent, logLine, type LogFlags, type Logger } from '../log/logger';
import type { AdminSession } from '../admin/types';
import type { FrontendContext } from './context';
import { readRequest, type Request, type RequestContents } from './request';
import { ReadYourWrites } from './read-your-writes';
import { adminReply, errorReply } from './local-replies';
import { countStatement } from './statement-counters';
import { nodeLatency } from '../admin/latency';

/** What the dispatcher needs from its session. */
export interface DispatchHost {
  readonly ctx: FrontendContext;
  readonly conns: ReadonlyMap<number, ServerConnection>;
  readonly pid: number;
  readonly user: string;
  readonly database: string;
  readonly applicationName: string;
  /** Opens (or borrows) a connection to a node for this session; null when that is impossible. */
  connectNode(nodeId: number): Promise<ServerConnection | null>;
  /** Writes pgmaitre's own bytes to the client (only at message boundaries). */
  writeClient(buf: Buffer): void;
  /** Pauses reading from the client until `resume`. */
  pauseClient(): void;
  resumeClient(): void;
  adminSession(): AdminSession;
  /** The session's effective settings (PGPOOL SET overrides, else the live config). */
  readonly logFlags: LogFlags;
  readonly log: Logger;
  readonly noticePerNode: boolean;
  readonly classifier: Classifier;
  /** True once the session ended: nothing more is planned or sent. */
  readonly closed: boolean;
}

interface TrackedStatement {
  frame: Buffer;
  readonly sql: string;
  cls: QueryClass;
  readonly nodes: Set<number>;
}

interface Inflight {
  readonly req: Request;
  /** ReadyForQuery still expected for this request. */
  syncsLeft: number;
  /** Read-only, outside a transaction, nothing else attached: may run again elsewhere. */
  readonly retryable: boolean;
}

/** How long a node whose login failed is left alone by this session. */
const RETRY_NODE_AFTER_MS = 5000;
const PRIMARY_RETRY_AFTER_MS = 1000;

interface Side {
  readonly conn: ServerConnection;
  readonly buf: Buffer;
  readonly syncs: number;
}

type Plan =
  | { readonly type: 'forward'; readonly conn: ServerConnection; readonly node: number; readonly contents: RequestContents;
      readonly classes: readonly (QueryClass | null)[]; readonly sides: readonly Side[]; readonly broadcast: readonly ServerConnection[];
      readonly broadcastKinds: readonly string[]; readonly reason: string }
  | { readonly type: 'admin'; readonly sql: string }
  | { readonly type: 'error'; readonly code: string; readonly message: string; readonly hint: string };

const SYNC = encodeSync();

/** The per-session request router; see the file header. */
export class RequestDispatcher {
  private readonly queue: Request[] = [];
  private blocked = false;
  private waitingForAnswers = false;
  readonly route: RouteState = newRouteState();
  private readonly statements = new Map<string, TrackedStatement>();
  private readonly portals = new Map<string, number>();
  private sticky: ServerConnection | null = null;
  private lastTarget: ServerConnection | null = null;
  /** Session-state requests (SET, RESET...) to replay on nodes joined later, with their sync counts. */
  private sessionSets: { buf: Buffer; syncs: number }[] = [];
  /** SQL of the BEGIN that opened the current explicit transaction (replayed on a node joined inside it). */
  private beginSql = 'BEGIN';
  /** Session's load-balance node (-1 until chosen). */
  lbNode = -1;
  // Output batching: consecutive requests to one node go out in one write.
  private outConn: ServerConnection | null = null;
  private outParts: Buffer[] = [];
  private outSyncs = 0;
  private outExtended = false;

  // Requests sent to non-primary nodes and not yet fully answered, for transparent retry.
  private readonly inflight = new Map<ServerConnection, Inflight[]>();
  /** Nodes whose connection failed recently: when, and which node was the primary then. */
  private readonly failedAt = new Map<number, { at: number; primary: number }>();
  private readonly ryw = new ReadYourWrites(() => this.host.ctx.lsn);

  constructor(private readonly host: DispatchHost) {}

  /** Node currently taking writes (the cluster's primary), or -1. */
  private get primaryNode(): number {
    return this.host.ctx.cluster.primaryId();
  }

  /** Queued requests not yet sent. */
  get pending(): number {
    return this.queue.length;
  }

  /** Adds a complete request; call drive() after a batch of them. */
  enqueue(req: Request): void {
    this.queue.push(req);
  }

  /** A backend answered a sync point. */
  onReadyForQuery(conn: ServerConnection): void {
    if (conn.outstanding <= conn.discardZ && conn.busySince > 0) {
      nodeLatency(conn.nodeId).observe((performance.now() - conn.busySince) / 1000);
      conn.busySince = 0;
    }
    const list = this.inflight.get(conn);
    const head = list?.[0];
    if (head !== undefined && --head.syncsLeft <= 0) list!.shift();
    if (conn.outstanding <= 0) {
      if (conn.nodeId === this.primaryNode) {
        if (conn.txStatus === TxStatus.Idle) {
          noteTransactionEnd(this.route);
          this.ryw.onPrimaryIdle(conn.nodeId);
        } else {
          this.route.inTransaction = true;
        }
      }
      if (conn.txStatus === TxStatus.Idle) for (const [p, n] of this.portals) if (n === conn.nodeId) this.portals.delete(p);
      // The primary's transaction ended: end the part a standby still holds (its snapshot would
      // otherwise stay open there, and the next read would run inside that stale transaction).
      if (conn.nodeId === this.primaryNode && conn.txStatus === TxStatus.Idle) {
        for (const other of this.host.conns.values()) {
          const side = other === conn ? null : this.txSide(other);
          if (side !== null) side.conn.writeDiscarded(side.buf, side.syncs);
        }
      }
    }
    if (this.waitingForAnswers) {
      this.waitingForAnswers = false;
      this.blocked = false;
      this.drive();
    }
  }

  /** A node's connection was lost: its statements and portals are gone with it. */
  forgetNode(nodeId: number): void {
    for (const st of this.statements.values()) st.nodes.delete(nodeId);
    for (const [p, n] of this.portals) if (n === nodeId) this.portals.delete(p);
    if (this.lastTarget?.nodeId === nodeId) this.lastTarget = null;
    if (this.sticky?.nodeId === nodeId) this.sticky = null;
    if (this.lbNode === nodeId) this.lbNode = -1;
    this.failedAt.set(nodeId, { at: Date.now(), primary: this.primaryNode });
  }

  /**
   * A backend connection was lost. Returns true when the session can go on: nothing was in
   * flight there, or only read-only requests outside a transaction none of whose answer reached
   * the client yet — those are queued again, first, and run on another node.
   */
  connectionLost(conn: ServerConnection): boolean {
    const list = this.inflight.get(conn) ?? [];
    this.inflight.delete(conn);
    const clientWaiting = conn.outstanding > conn.discardZ;
    if (clientWaiting && (list.length === 0 || list.some((r) => !r.retryable) || conn.forwardedPartialAnswer)) return false;
    if (conn.nodeId === this.primaryNode && this.route.inTransaction) return false;
    this.forgetNode(conn.nodeId);
    if (this.outConn === conn) {
      this.outConn = null;
      this.outParts = [];
      this.outSyncs = 0;
    }
    if (list.length > 0) {
      this.queue.unshift(...list.map((r) => r.req));
      this.host.ctx.log.info({ event: 'read_retry', pid: this.host.pid, node_id: conn.nodeId, requests: list.length },
        `node ${conn.nodeId} went away before answering; re-running ${list.length} read(s) elsewhere`);
    }
    return true;
  }

  /**
   * True when the session can carry on without `conn` (a non-primary node going away): nothing
   * in flight there, or only reads that can run again elsewhere, none of whose answer started.
   */
  canRetry(conn: ServerConnection): boolean {
    const list = this.inflight.get(conn) ?? [];
    return conn.nodeId !== this.primaryNode && list.every((r) => r.retryable) && !conn.forwardedPartialAnswer;
  }

  // ---- planning ---------------------------------------------------------------------------

  private plan(req: Request): Plan | null {
    const { ctx } = this.host;
    const routing = ctx.routing;
    const contents = readRequest(req.data);
    const classes: (QueryClass | null)[] = [];
    let toPrimary = contents.functionCall;
    let toBalance = false;
    // A request is broadcast when every statement in it is session state (SET, RESET, ...),
    // whether it came as a simple Query or through Parse/Bind/Execute (pgjdbc sends SET so).
    let broadcast = req.syncs > 0 && !req.flush;
    let reason = contents.functionCall ? 'function call' : '';
    const needLookup: string[] = [];
    const consider = (cls: QueryClass, broadcastOk: boolean): void => {
      const r = routeStatement(cls, this.route, routing.router);
      if (r.to === 'lookup') {
        needLookup.push(...r.functions);
        return;
      }
      if (r.to === 'primary') {
        toPrimary = true;
        reason ||= r.reason;
      } else {
        toBalance = true;
        reason ||= r.reason;
      }
      if (!(r.broadcast && broadcastOk)) broadcast = false;
    };
    for (const sql of contents.queries) {
      const cls = this.host.classifier.classify(sql);
      if (cls.kind === 'admin' && contents.queries.length === 1 && !contents.extended && ctx.admin !== null) {
        if (!this.allAnswered(null)) return this.waitForAnswers();
        return { type: 'admin', sql };
      }
      classes.push(cls);
      consider(cls, true);
    }
    for (const p of contents.parses) {
      const cls = this.host.classifier.classify(p.sql);
      classes.push(cls);
      consider(cls, true);
    }
    for (const b of contents.binds) {
      if (contents.parses.some((p) => p.name === b.statement)) continue;
      const st = this.statements.get(b.statement);
      if (st === undefined) toPrimary = true;
      else consider(st.cls, true);
    }
    if (classes.length === 0) broadcast = false;
    if (needLookup.length > 0) {
      this.block(routing.volatility.lookup(needLookup));
      return null;
    }
    const primaryConn = this.host.conns.get(this.primaryNode);
    if (primaryConn?.txStatus === TxStatus.Failed) toPrimary = true;

    // Choose the node.
    let node: number;
    if (this.sticky !== null && contents.queries.length === 0) {
      node = this.sticky.nodeId;
      reason = 'same node until Sync (after Flush)';
    } else {
      let portalNode: number | undefined;
      for (const p of contents.portalRefs) if ((portalNode = this.portals.get(p)) !== undefined) break;
      if (portalNode !== undefined && !contents.binds.some((b) => contents.portalRefs.includes(b.portal))) {
        node = portalNode;
        reason ||= 'where the portal lives';
      } else if (toPrimary) {
        node = this.primaryNode;
      } else if (toBalance) {
        node = this.readNode();
        if (ctx.config.read_your_writes && node !== this.primaryNode && !this.ryw.freshEnough(node)) {
          node = this.primaryNode >= 0 ? this.primaryNode : node;
          reason = 'read-your-writes: the standby has not replayed this session\'s last commit yet';
        }
      } else if (contents.statementRefs.length > 0) {
        const st = this.statements.get(contents.statementRefs[0]!);
        const last = this.lastTarget?.nodeId;
        node = st === undefined ? this.primaryNode
          : last !== undefined && st.nodes.has(last) ? last
          : st.nodes.has(this.primaryNode) ? this.primaryNode : [...st.nodes][0] ?? this.primaryNode;
        reason ||= 'where the statement lives';
      } else {
        node = this.lastTarget?.nodeId ?? this.primaryNode;
        reason ||= 'same node as the previous request';
      }
    }

    // Answers come back in order: another node must have answered everything first.
    if (!this.allAnswered(node) || (this.host.noticePerNode && !this.allAnswered(null))) return this.waitForAnswers();
    if (node < 0 || (this.host.conns.get(node) === undefined && node === this.primaryNode && this.recentlyFailed(node, true))) {
      // No primary (down, or being failed over): this request fails, the session lives.
      return { type: 'error', code: '57P03', message: 'no primary node is available',
        hint: 'reads still work; writes will again once a primary is up (see SHOW POOL_NODES)' };
    }
    const conn = this.host.conns.get(node);
    if (conn === undefined) {
      this.block(this.host.connectNode(node).then((c) => {
        if (c === null) this.forgetNode(node);
        else this.failedAt.delete(node);
        if (c === null) return;
        if (this.sessionSets.length > 0) {
          c.writeDiscarded(Buffer.concat(this.sessionSets.map((x) => x.buf)), this.sessionSets.reduce((n, x) => n + x.syncs, 0));
        }
        // A node joined inside an explicit transaction (a read balanced there under
        // load_balance_in_transaction) must be inside it too: otherwise the read runs in its own
        // transaction and the client sees ReadyForQuery 'I' in the middle of its transaction.
        if (c !== null && this.route.inTransaction && routing.router.loadBalanceInTransaction) {
          c.writeDiscarded(encodeQuery(this.beginSql), 1);
        }
      }));
      return null;
    }

    const sides: Side[] = [];
    // A node other than the primary follows the primary's explicit transaction (see txSide).
    const tx = this.sticky === null && node !== this.primaryNode ? this.txSide(conn) : null;
    if (tx !== null) sides.push(tx);
    // Statements bound or described here but parsed on another node: re-parse them first.
    if (this.sticky === null && (contents.binds.length > 0 || contents.statementRefs.length > 0)) {
      const needed = new Set([...contents.binds.map((b) => b.statement), ...contents.statementRefs]);
      for (const name of needed) {
        if (contents.parses.some((p) => p.name === name)) continue;
        const st = this.statements.get(name);
        if (st !== undefined && !st.nodes.has(node)) sides.push({ conn, buf: Buffer.concat([st.frame, SYNC]), syncs: 1 });
      }
    }
    const others = broadcast ? [...this.host.conns.values()].filter((c) => c !== conn && c.outstanding === c.discardZ) : [];
    const broadcastKinds = broadcast ? classes.map((c) => c?.kind ?? 'unknown') : [];
    return { type: 'forward', conn, node, contents, classes, sides, broadcast: others, broadcastKinds, reason };
  }

  /**
   * What a non-primary connection needs before a read joins it, when its transaction state is
   * known (nothing outstanding): BEGIN when the session is inside an explicit transaction and
   * reads are balanced in transactions (the BEGIN was not broadcast to it: it travelled with
   * other statements, or this node joined later), ROLLBACK when the session is not in a
   * transaction but this node still is (its COMMIT travelled with other statements to the
   * primary alone). Standbys only ever read, so ROLLBACK ends their part as well as COMMIT would.
   */
  private txSide(conn: ServerConnection): Side | null {
    if (conn.outstanding !== 0) return null;
    const wantTx = this.route.inTransaction && this.host.ctx.routing.router.loadBalanceInTransaction;
    if (wantTx && conn.txStatus === TxStatus.Idle) return { conn, buf: encodeQuery(this.beginSql), syncs: 1 };
    if (!this.route.inTransaction && conn.txStatus !== TxStatus.Idle) return { conn, buf: encodeQuery('ROLLBACK'), syncs: 1 };
    return null;
  }

  /** True when every held connection except the one for `node` has answered all client requests. */
  private allAnswered(node: number | null): boolean {
    if (this.host.conns.size === 1 && node !== null && this.host.conns.has(node)) return true;
    for (const c of this.host.conns.values()) {
      if (c.nodeId !== node && c.outstanding > c.discardZ) return false;
      if (c.nodeId !== node && this.outConn === c) return false;
    }
    return true;
  }

  private waitForAnswers(): null {
    this.flushOut();
    this.waitingForAnswers = true;
    this.blocked = true;
    return null;
  }

  private block(p: Promise<unknown>): void {
    this.flushOut();
    this.blocked = true;
    p.catch(() => {}).finally(() => {
      this.blocked = false;
      this.drive();
    });
  }

  /**
   * True while a node that failed is left alone: 5 s for reads; for writes only 1 s, and only as
   * long as the same node is the primary (a node promoted since is tried at once).
   */
  private recentlyFailed(node: number, forWrite = false): boolean {
    const f = this.failedAt.get(node);
    if (f === undefined) return false;
    if (forWrite) return f.primary === node && Date.now() - f.at < PRIMARY_RETRY_AFTER_MS;
    return Date.now() - f.at < RETRY_NODE_AFTER_MS;
  }

  /** The node reads go to now: the session's load-balance node while it is usable, else a new pick. */
  readNode(): number {
    const { ctx } = this.host;
    const routing = ctx.routing;
    const primaryId = this.primaryNode;
    // Fast path (every read of a session-level balanced session): the chosen node is still fine.
    if (!routing.statementLevel && this.lbNode >= 0) {
      const n = ctx.cluster.node(this.lbNode);
      if (n !== undefined && (n.status === 'up' || n.status === 'waiting') && (n.id === primaryId || (n.role === 'standby' && !routing.lag(n.id).lagging))
        && !this.recentlyFailed(n.id)) return this.lbNode;
    }
    const candidates = lbCandidates(ctx, primaryId, (id) => this.recentlyFailed(id));
    const current = candidates.find((c) => c.id === this.lbNode);
    if (!routing.statementLevel && current !== undefined && current.usable && !current.lagging) return this.lbNode;
    const pick = selectLoadBalanceNode(candidates, this.host, routing.prefs, primaryId);
    if (!routing.statementLevel) this.lbNode = pick;
    return pick;
  }

  // ---- execution --------------------------------------------------------------------------

  private execute(plan: Extract<Plan, { type: 'forward' }>): void {
    const { conn, node, contents, classes } = plan;
    const { ctx } = this.host;
    if (plan.sides.length > 0) {
      this.flushOut();
      for (const s of plan.sides) s.conn.writeDiscarded(s.buf, s.syncs);
    }
    if (plan.broadcast.length > 0) {
      const frames = this.currentData!;
      this.flushOut();
      for (const other of plan.broadcast) other.writeDiscarded(frames, this.currentSyncs);
    }
    if (plan.broadcastKinds.some((k) => k === 'set' || k === 'reset')) {
      this.sessionSets.push({ buf: Buffer.from(this.currentData!), syncs: this.currentSyncs });
    }
    if (this.host.noticePerNode || this.host.logFlags.perNodeStatement) this.reportNode(node, conn, contents, plan.reason);
    if (this.outConn !== conn) this.flushOut();
    if (node !== this.primaryNode && this.currentSyncs > 0) {
      const retryable = !this.route.inTransaction && !this.currentFlush && plan.broadcast.length === 0
        && classes.every((c) => c !== null && c.readOnly) && !contents.functionCall;
      let list = this.inflight.get(conn);
      if (list === undefined) this.inflight.set(conn, (list = []));
      list.push({ req: { data: this.currentData!, syncs: this.currentSyncs, flush: this.currentFlush }, syncsLeft: this.currentSyncs, retryable });
    }
    if (node === this.primaryNode && ctx.config.read_your_writes && classes.some((c) => c !== null && !c.readOnly && c.kind !== 'show')) {
      this.ryw.noteWrite();
    }
    this.outConn = conn;
    this.outParts.push(this.currentData!);
    this.outSyncs += this.currentSyncs;
    this.outExtended = contents.extended;

    // Bookkeeping after sending.
    const counters = ctx.cluster.node(node)?.counters;
    let i = 0;
    for (const sql of contents.queries) {
      const cls = classes[i++];
      if (cls == null) continue;
      noteDispatched(cls, this.route, ctx.routing.router);
      if (cls.kind === 'begin') this.beginSql = cls.statements === 1 ? sql : 'BEGIN';
      if (counters !== undefined) countStatement(counters, cls, sql);
      if (cls.kind === 'discard' || cls.kind === 'deallocate') {
        if (/\ball\b/i.test(sql)) {
          this.statements.clear();
          if (cls.kind === 'discard') this.sessionSets = [];
        }
      }
    }
    for (const p of contents.parses) {
      const cls = classes[i++]!;
      noteDispatched(cls, this.route, ctx.routing.router);
      if (cls.kind === 'begin') this.beginSql = cls.statements === 1 ? p.sql : 'BEGIN';
      const frame = this.currentData!.subarray(p.start, p.end);
      this.statements.set(p.name, { frame: p.name === '' ? frame : Buffer.from(frame), sql: p.sql, cls, nodes: new Set([node]) });
    }
    // Each Bind is one execution of its statement: that is what the per-node counters count.
    for (const b of contents.binds) {
      const st = this.statements.get(b.statement);
      if (st !== undefined) {
        st.nodes.add(node);
        if (counters !== undefined) countStatement(counters, st.cls, st.sql);
        if (!contents.parses.some((p) => p.name === b.statement)) noteDispatched(st.cls, this.route, ctx.routing.router);
      }
      this.portals.set(b.portal, node);
    }
    for (const s of contents.statementRefs) this.statements.get(s)?.nodes.add(node);
    for (const name of contents.closedStatements) {
      const st = this.statements.get(name);
      this.statements.delete(name);
      if (st === undefined) continue;
      for (const other of st.nodes) {
        const oc = this.host.conns.get(other);
        if (other !== node && oc !== undefined && oc.outstanding === oc.discardZ) {
          this.flushOut();
          oc.writeDiscarded(Buffer.concat([encodeClose('S', name), SYNC]), 1);
        }
      }
    }
    this.lastTarget = conn;
    this.sticky = this.currentFlush && this.currentSyncs === 0 ? conn : this.currentSyncs > 0 ? null : this.sticky;
  }

  // The request being planned and executed (set by drive()).
  private currentData: Buffer | null = null;
  private currentSyncs = 0;
  private currentFlush = false;

  /** Writes the batched requests to their node. */
  private flushOut(): void {
    const conn = this.outConn;
    if (conn === null) return;
    const parts = this.outParts;
    const buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    const syncs = this.outSyncs;
    this.outConn = null;
    this.outParts = [];
    this.outSyncs = 0;
    if (syncs > 0 && conn.busySince === 0) conn.busySince = performance.now();
    if (!conn.write(buf, syncs, this.outExtended)) {
      this.host.pauseClient();
      conn.socket.once('drain', () => this.host.resumeClient());
    }
  }

  private reportNode(node: number, conn: ServerConnection, contents: RequestContents, reason: string): void {
    const sqls = [...contents.queries, ...contents.parses.map((p) => p.sql)];
    if (sqls.length === 0) for (const b of contents.binds) sqls.push(`EXECUTE ${b.statement || '<unnamed>'}`);
    for (const sql of sqls) {
      const text = `DB node id: ${node} backend pid: ${conn.backendPid} statement: ${sql}`;
      if (this.host.logFlags.perNodeStatement) logLine(this.host.log, { event: LogEvent.NodeStatement, pid: this.host.pid, node_id: node, reason }, text);
      if (this.host.noticePerNode) this.host.writeClient(encodeNoticeResponse({ severity: 'NOTICE', code: '00000', message: text }));
    }
  }

  /** Answers a request with pgmaitre's own ERROR (one ReadyForQuery per Sync in it). */
  private replyError(plan: Extract<Plan, { type: 'error' }>): void {
    this.flushOut();
    this.host.writeClient(errorReply(plan.code, plan.message, plan.hint, this.currentSyncs, this.txStatus()));
  }

  /** Runs an admin command (blocks the queue meanwhile) and writes its answer. */
  private runAdmin(sql: string): void {
    const { ctx } = this.host;
    this.blocked = true;
    const status = this.txStatus();
    Promise.resolve()
      .then(() => ctx.admin!.run(sql, this.host.adminSession()))
      .then((res) => this.host.writeClient(adminReply(res, status)), (e: unknown) => {
        ctx.log.error({ err: e, event: 'admin_failed' }, 'admin command failed');
        this.host.writeClient(errorReply('XX000', `admin command failed: ${(e as Error)?.message ?? e}`, undefined, 1, status));
      })
      .finally(() => {
        this.blocked = false;
        this.drive();
      });
  }

  /** The transaction status to report in pgmaitre's own ReadyForQuery: the primary's. */
  private txStatus(): number {
    return this.host.conns.get(this.primaryNode)?.txStatus ?? TxStatus.Idle;
  }

  /** Sends every queued request that can be sent now; pauses the client while blocked. */
  drive(): void {
    if (this.host.closed) return;
    while (!this.blocked && this.queue.length > 0) {
      const req = this.queue[0]!;
      this.currentData = req.data;
      this.currentSyncs = req.syncs;
      this.currentFlush = req.flush;
      const plan = this.plan(req);
      if (plan === null) break;
      this.queue.shift();
      if (plan.type === 'admin') this.runAdmin(plan.sql);
      else if (plan.type === 'error') this.replyError(plan);
      else this.execute(plan);
    }
    this.currentData = null;
    this.flushOut();
    if (this.blocked || this.queue.length > 0) this.host.pauseClient();
    else this.host.resumeClient();
  }
}
