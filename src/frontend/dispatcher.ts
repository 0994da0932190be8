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
import type { QueryClass } from '../classify/types';
import { firstKeyword } from '../classify/lexer';
import { encodeClose, encodeSync } from '../protocol/frontend';
import { encodeErrorResponse, encodeNoticeResponse, encodeReadyForQuery, encodeResultSet } from '../protocol/backend';
import { TxStatus } from '../protocol/codes';
import { noteDispatched, noteTransactionEnd, newRouteState, routeStatement, type RouteState } from '../router/router';
import { selectLoadBalanceNode, type LbCandidate } from '../router/lb-select';
import type { ServerConnection } from '../backend/server-connection';
import type { NodeCounters } from '../cluster/stats';
import { LogEvent } from '../log/logger';
import type { AdminSession } from '../admin/types';
import type { FrontendContext } from './context';
import { readRequest, type Request, type RequestContents } from './request';

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
  /** True once the session ended: nothing more is planned or sent. */
  readonly closed: boolean;
  /** The node a request must go to cannot be reached: end the session (FATAL). */
  nodeUnreachable(nodeId: number): void;
}

interface TrackedStatement {
  frame: Buffer;
  readonly sql: string;
  cls: QueryClass;
  readonly nodes: Set<number>;
}

interface Side {
  readonly conn: ServerConnection;
  readonly buf: Buffer;
  readonly syncs: number;
}

type Plan =
  | { readonly type: 'forward'; readonly conn: ServerConnection; readonly node: number; readonly contents: RequestContents;
      readonly classes: readonly (QueryClass | null)[]; readonly sides: readonly Side[]; readonly broadcast: readonly ServerConnection[];
      readonly broadcastKinds: readonly string[]; readonly reason: string }
  | { readonly type: 'admin'; readonly sql: string };

const SYNC = encodeSync();
const READ_KINDS = new Set(['read', 'show', 'explain', 'copy_to']);

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
  /** Session's load-balance node (-1 until chosen). */
  lbNode = -1;
  /** Nodes this session could not log in to: reads go elsewhere. */
  private readonly unusable = new Set<number>();
  // Output batching: consecutive requests to one node go out in one write.
  private outConn: ServerConnection | null = null;
  private outParts: Buffer[] = [];
  private outSyncs = 0;
  private outExtended = false;

  constructor(private readonly host: DispatchHost, private primaryNode: number) {}

  /** Node currently taking writes for this session. */
  get primary(): number {
    return this.primaryNode;
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
    if (conn.outstanding <= 0) {
      if (conn.nodeId === this.primaryNode) {
        if (conn.txStatus === TxStatus.Idle) noteTransactionEnd(this.route);
        else this.route.inTransaction = true;
      }
      if (conn.txStatus === TxStatus.Idle) for (const [p, n] of this.portals) if (n === conn.nodeId) this.portals.delete(p);
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
    this.unusable.add(nodeId);
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
      const cls = routing.classifier.classify(sql);
      if (cls.kind === 'admin' && contents.queries.length === 1 && !contents.extended && ctx.admin !== null) {
        if (!this.allAnswered(null)) return this.waitForAnswers();
        return { type: 'admin', sql };
      }
      classes.push(cls);
      consider(cls, true);
    }
    for (const p of contents.parses) {
      const cls = routing.classifier.classify(p.sql);
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
      const portalNode = contents.portalRefs.map((p) => this.portals.get(p)).find((n) => n !== undefined);
      if (portalNode !== undefined && !contents.binds.some((b) => contents.portalRefs.includes(b.portal))) {
        node = portalNode;
        reason ||= 'where the portal lives';
      } else if (toPrimary) {
        node = this.primaryNode;
      } else if (toBalance) {
        node = this.readNode();
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
    if (!this.allAnswered(node) || (routing.noticePerNode && !this.allAnswered(null))) return this.waitForAnswers();
    const conn = this.host.conns.get(node);
    if (conn === undefined) {
      this.block(this.host.connectNode(node).then((c) => {
        if (c === null) {
          this.forgetNode(node);
          // Reads re-plan to another node; the primary has no alternative, and retrying it at
          // once would spin forever (a microtask loop when the pool refuses immediately).
          if (node === this.primaryNode) this.host.nodeUnreachable(node);
        } else if (this.sessionSets.length > 0) {
          c.writeDiscarded(Buffer.concat(this.sessionSets.map((x) => x.buf)), this.sessionSets.reduce((n, x) => n + x.syncs, 0));
        }
      }));
      return null;
    }

    // Statements bound or described here but parsed on another node: re-parse them first.
    const sides: Side[] = [];
    if (this.sticky === null) {
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

  /** True when every held connection except the one for `node` has answered all client requests. */
  private allAnswered(node: number | null): boolean {
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

  /** The node reads go to now: the session's load-balance node while it is usable, else a new pick. */
  readNode(): number {
    const { ctx } = this.host;
    const routing = ctx.routing;
    const primaryId = this.primaryNode;
    const candidates: LbCandidate[] = ctx.cluster.nodes.map((n) => ({
      id: n.id,
      weight: n.weight,
      usable: (n.status === 'up' || n.status === 'waiting') && !this.unusable.has(n.id) && (n.id === primaryId || n.role === 'standby'),
      isPrimary: n.id === primaryId,
      lagging: n.id !== primaryId && routing.lag(n.id).lagging,
      delay: routing.lag(n.id).delay,
    }));
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
    if (ctx.routing.noticePerNode || ctx.logFlags.perNodeStatement) this.reportNode(node, conn, contents, plan.reason);
    if (this.outConn !== conn) this.flushOut();
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
      if (counters !== undefined) count(counters, cls, sql);
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
      const frame = this.currentData!.subarray(p.start, p.end);
      this.statements.set(p.name, { frame: p.name === '' ? frame : Buffer.from(frame), sql: p.sql, cls, nodes: new Set([node]) });
    }
    // Each Bind is one execution of its statement: that is what the per-node counters count.
    for (const b of contents.binds) {
      const st = this.statements.get(b.statement);
      if (st !== undefined) {
        st.nodes.add(node);
        if (counters !== undefined) count(counters, st.cls, st.sql);
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
    if (!conn.write(buf, syncs, this.outExtended)) {
      this.host.pauseClient();
      conn.socket.once('drain', () => this.host.resumeClient());
    }
  }

  private reportNode(node: number, conn: ServerConnection, contents: RequestContents, reason: string): void {
    const { ctx } = this.host;
    const sqls = [...contents.queries, ...contents.parses.map((p) => p.sql)];
    if (sqls.length === 0) for (const b of contents.binds) sqls.push(`EXECUTE ${b.statement || '<unnamed>'}`);
    for (const sql of sqls) {
      const text = `DB node id: ${node} backend pid: ${conn.backendPid} statement: ${sql}`;
      if (ctx.logFlags.perNodeStatement) ctx.log.info({ event: LogEvent.NodeStatement, pid: this.host.pid, node_id: node, reason }, text);
      if (ctx.routing.noticePerNode) this.host.writeClient(encodeNoticeResponse({ severity: 'NOTICE', code: '00000', message: text }));
    }
  }

  private runAdmin(sql: string): void {
    const { ctx } = this.host;
    this.blocked = true;
    const status = this.host.conns.get(this.primaryNode)?.txStatus ?? TxStatus.Idle;
    Promise.resolve()
      .then(() => ctx.admin!.run(sql, this.host.adminSession()))
      .then((res) => {
        if ('error' in res) {
          this.host.writeClient(Buffer.concat([
            encodeErrorResponse({ severity: 'ERROR', code: res.error.code, message: res.error.message,
              ...(res.error.detail ? { detail: res.error.detail } : {}), ...(res.error.hint ? { hint: res.error.hint } : {}) }),
            encodeReadyForQuery(status),
          ]));
        } else {
          const cols = res.columns.map((name) => ({ name, typeOid: 0 }));
          this.host.writeClient(Buffer.concat([encodeResultSet(cols, res.rows, res.tag ?? `SELECT ${res.rows.length}`), encodeReadyForQuery(status)]));
        }
      })
      .catch((e: unknown) => {
        ctx.log.error({ err: e, event: 'admin_failed' }, 'admin command failed');
        this.host.writeClient(Buffer.concat([
          encodeErrorResponse({ severity: 'ERROR', code: 'XX000', message: `admin command failed: ${(e as Error)?.message ?? e}` }),
          encodeReadyForQuery(status),
        ]));
      })
      .finally(() => {
        this.blocked = false;
        this.drive();
      });
  }

  /** Primary changed (failover): new writes go to `id`. */
  setPrimary(id: number): void {
    this.primaryNode = id;
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
      else this.execute(plan);
    }
    this.currentData = null;
    this.flushOut();
    if (this.blocked || this.queue.length > 0) this.host.pauseClient();
    else this.host.resumeClient();
  }
}

function count(c: NodeCounters, cls: QueryClass, sql: string): void {
  if (READ_KINDS.has(cls.kind) && cls.readOnly) {
    c.select_cnt++;
    return;
  }
  if (cls.kind === 'ddl' || cls.kind === 'temp_table') {
    c.ddl_cnt++;
    return;
  }
  if (cls.kind === 'write') {
    const kw = firstKeyword(sql);
    if (kw === 'insert') c.insert_cnt++;
    else if (kw === 'update') c.update_cnt++;
    else if (kw === 'delete') c.delete_cnt++;
    else c.other_cnt++;
    return;
  }
  c.other_cnt++;
}
