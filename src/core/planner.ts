/**
 * Where one client request goes: its statements are classified, the router (router/router.ts)
 * says primary or load-balance node for each, and the request goes whole to one node — the
 * primary as soon as one statement needs it. Named statements and portals decide for requests
 * that only use them (Bind/Describe/Execute go where their statement or portal is). Pure
 * decisions over the session's state: the planner writes nothing and sends nothing; the session
 * core (session-core.ts) acts on the Plan.
 */
import type { QueryClass, ShapeHint } from '../classify/types';
import { ADVISORY_LOCK_FUNCTIONS, executeName, sessionEffects, type SessionEffect } from '../classify/session-effects';
import { baseName, isSafeFunction } from '../classify/functions';
import { routeStatement, type RouteState } from '../router/router';
import { selectLoadBalanceNode } from '../router/lb-select';
import { TxStatus } from '../protocol/codes';
import type { RequestInfo, Request } from './request';
import type { Statements, SqlStatement } from './statements';
import type { SessionState } from './session-state';
import { userFunction } from './tx-pooling';
import type { CoreHost } from './core-host';
import type { ReadYourWrites } from './read-your-writes';
import { Term, type Link } from './link';
import { emptyArray } from '../util/arrays';

/** Functions whose answer depends on the client's own backend: they run on the primary. */
const IDENTITY_FUNCTIONS: ReadonlySet<string> = new Set([
  'pg_backend_pid', 'pg_listening_channels', 'pg_my_temp_schema', 'pg_notification_queue_usage',
  'pg_current_xact_id_if_assigned', 'txid_current_if_assigned', 'pg_trigger_depth',
]);

/**
 * Views whose contents belong to one server or one backend: a standby's answer would differ from
 * the primary's (its own sessions, locks, statistics, no prepared transactions, not this client's
 * prepared statements or cursors). Reads of them run on the primary, as a direct connection's do.
 */
const NODE_LOCAL_RELATIONS: ReadonlySet<string> = new Set([
  'pg_locks', 'pg_prepared_xacts', 'pg_prepared_statements', 'pg_cursors', 'pg_replication_slots',
  'pg_replication_origin_status', 'pg_backend_memory_contexts', 'pg_shmem_allocations',
]);

/** SHOW of settings a standby reports differently (it is always read-only, in hot standby). */
const NODE_LOCAL_SHOW = /\b(transaction_read_only|in_hot_standby)\b/i;

/**
 * Every node-local relation's name starts with pg_ (pg_stat*, NODE_LOCAL_RELATIONS): whether `r`
 * contains "pg_" in any case (what /pg_/i tested, without a regular expression run per relation).
 */
export function maybeNodeLocal(r: string): boolean {
  for (let i = r.indexOf('_', 2); i >= 2; i = r.indexOf('_', i + 1)) {
    if ((r.charCodeAt(i - 2) | 0x20) === 0x70 && (r.charCodeAt(i - 1) | 0x20) === 0x67) return true;
  }
  return false;
}

function nodeLocal(cls: QueryClass, sql: string | null): boolean {
  const rels = cls.relations;
  for (let i = 0; i < rels.length; i++) {
    const r = rels[i]!;
    // Most relations are the application's: one test, no string built (this runs for every
    // statement; slicing and lower-casing each name was ~4 % of the session core's CPU).
    if (!maybeNodeLocal(r)) continue;
    const dot = r.lastIndexOf('.');
    const name = (dot >= 0 ? r.slice(dot + 1) : r).replace(/"/g, '').toLowerCase();
    if (name.startsWith('pg_stat') || NODE_LOCAL_RELATIONS.has(name)) return true;
  }
  return (cls.kind === 'show' || cls.functions.includes('current_setting')) && sql !== null && NODE_LOCAL_SHOW.test(sql);
}

/** Functions that keep a SELECT from being read-only (they go to the primary) but leave nothing behind. */
const NOTHING_LEFT: ReadonlySet<string> = new Set(['pg_sleep', 'pg_sleep_for', 'pg_sleep_until']);

/**
 * A single read that is not read-only only because of functions that leave nothing (pg_sleep):
 * nothing of it outlives its transaction (see Plan.lasting).
 */
function leavesNothing(cls: QueryClass): boolean {
  if (cls.kind !== 'read' || cls.statements !== 1 || cls.flags.selectInto === true || cls.flags.writableCte === true) return false;
  const fs = cls.functions;
  for (let i = 0; i < fs.length; i++) if (!NOTHING_LEFT.has(baseName(fs[i]!)) && !isSafeFunction(fs[i]!)) return false;
  return true;
}

/** Statement kinds that change no data (read-your-writes has nothing to wait for after them). */
const NOT_WRITES: ReadonlySet<string> = new Set([
  'show', 'begin', 'commit', 'rollback', 'savepoint', 'release', 'rollback_to', 'set', 'reset', 'discard',
  'deallocate', 'prepare', 'execute', 'listen', 'unlisten', 'notify', 'admin', 'empty', 'lock',
]);

/** A node whose login failed is left alone for this long (reads); a failed primary for 1 s. */
const RETRY_NODE_AFTER_MS = 5000;
const PRIMARY_RETRY_AFTER_MS = 1000;

/** What to do with the request at the head of the queue. */
export const PlanType = { Send: 0, Admin: 1, Error: 2, Lookup: 3, WaitAnswers: 4 } as const;
export type PlanType = (typeof PlanType)[keyof typeof PlanType];

/** The planner's answer (one scratch object per session, overwritten by each plan). */
export class Plan {
  type: PlanType = PlanType.Send;
  node = -1;
  reason = '';
  /** Classes of the request's queries, then of its parses, in order. */
  readonly classes: QueryClass[] = [];
  /** Session effects of the request's statements (SET, PREPARE, LISTEN...), or null. */
  effects: SessionEffect[] | null = null;
  /** Read-only, outside a transaction, nothing else attached: may run again elsewhere. */
  retryable = false;
  /** Inside a transaction balanced across nodes: the transaction's other nodes get it too. */
  broadcastTx = false;
  /** SQL prepared statements the request executes (re-prepared where missing). */
  readonly sqlNeeded: SqlStatement[] = [];
  /** Functions whose volatility must be looked up first. */
  readonly lookup: string[] = [];
  adminSql = '';
  errorCode = '';
  errorMessage = '';
  errorHint = '';
  /** A write goes to the primary (read-your-writes notes it). */
  writes = false;
  /**
   * It may leave something once its transaction commits (a write, NOTIFY, an EXECUTE): a client
   * that leaves while it runs does not have it cancelled (SessionCore.leave).
   */
  lasting = false;

  /**
   * Lets go of what the last plan referenced (its statements' classes, effects, strings). The plan
   * is one object per session: left filled, it kept each idle session's last request alive, and
   * V8's young collection copies everything reachable, so its cost grew with the number of sessions.
   */
  clear(): void {
    emptyArray(this.classes);
    this.effects = null;
    emptyArray(this.sqlNeeded);
    emptyArray(this.lookup);
    this.reason = '';
    this.adminSql = '';
    this.errorMessage = '';
    this.errorHint = '';
  }
}

/** What the planner reads from its session. */
export interface PlannerView {
  readonly host: CoreHost;
  readonly route: RouteState;
  readonly statements: Statements;
  readonly state: SessionState;
  readonly ryw: ReadYourWrites;
  /** The node of the connection that stays put until Sync (after a Flush), or -1. */
  readonly stickyNode: number;
  readonly lastNode: number;
  lbNode: number;
  link(node: number): Link | undefined;
  /** True when no node other than `node` (null: none) owes the client an answer. */
  allAnswered(node: number | null): boolean;
}

/**
 * The request binds one of the portals it refers to. (A loop, not `portalRefs.some((n) =>
 * info.bindsPortal(n))` in make(): a closure over `info` made make() allocate its context on
 * every call.)
 */
const isReadOnly = (c: QueryClass): boolean => c.readOnly;
const isSingleSetOrReset = (c: QueryClass): boolean => (c.kind === 'set' || c.kind === 'reset') && c.statements === 1;

function bindsAnyPortal(info: RequestInfo): boolean {
  for (let i = 0; i < info.portalRefs.length; i++) if (info.bindsPortal(info.portalRefs[i]!)) return true;
  return false;
}

/** Plans requests for one session; see the file header. */
export class Planner {
  readonly plan = new Plan();
  /** Nodes whose connection failed recently: when, and which node was the primary then. */
  readonly failedAt = new Map<number, { at: number; primary: number }>();

  constructor(private readonly v: PlannerView) {}

  /** Plans `req` (whose frames `info` has read). */
  make(req: Request, info: RequestInfo): Plan {
    const { host, route } = this.v;
    const p = this.freshPlan();
    // What the statements ask for, gathered by consider() (fields, not a closure made per request).
    this.toPrimary = info.functionCall;
    this.toBalance = false;
    this.reason = info.functionCall ? 'function call' : '';
    let txScoped = false;
    const primaryId = host.cluster.primaryId();
    const classifier = this.v.host.classifier;
    for (const sql of info.queries) {
      // (The session's last query text of a shape and its verdict: pgbench -S, ORM texts with
      // literals — the same text but for its numbers — are classified in one comparison.)
      const cls = classifier.classifyLike !== undefined ? classifier.classifyLike(sql, this.queryHint) : classifier.classify(sql);
      if (cls.kind === 'admin' && info.queries.length === 1 && !info.extended && host.adminEnabled) {
        if (!this.v.allAnswered(null)) return this.waitAnswers();
        p.type = PlanType.Admin;
        p.adminSql = sql;
        return p;
      }
      p.classes.push(cls);
      if (cls.kind === 'execute') p.lasting = true;
      // EXECUTE runs where its statement can: it is routed as the prepared statement's body.
      if (cls.kind === 'execute' && cls.statements === 1) this.execute(sql);
      else this.consider(cls, sql);
    }
    for (const ps of info.parses) {
      const cls = this.classifyParse(ps.sql);
      p.classes.push(cls);
      if (cls.kind === 'execute') p.lasting = true;
      if (cls.kind === 'execute' && cls.statements === 1) this.execute(ps.sql);
      // A statement's session effects (SET...) happen when it runs, not when it is parsed: a
      // Parse this request does not bind changes nothing (fuzz seed 134527).
      else this.consider(cls, ps.sql, info.bindStatements.includes(ps.name));
    }
    for (const name of info.bindStatements) {
      if (info.parsesStatement(name)) continue;
      const st = this.v.statements.protocol.get(name);
      if (st === undefined) this.toPrimary = true;
      else {
        this.consider(st.cls, null);
        // ...and a statement parsed by an earlier request has them when this one runs it.
        if (st.cls.flags.sessionEffects) this.effectsOf(st.cls, st.sql);
      }
    }
    let toPrimary = this.toPrimary;
    const toBalance = this.toBalance;
    let reason = this.reason;
    this.reason = '';
    const effects = p.effects as SessionEffect[] | null;
    if (effects !== null) {
      for (const e of effects) {
        if (e.kind !== 'set_tx') continue;
        txScoped = true;
        // A standby refuses a read-write or serializable transaction: such a transaction is the primary's.
        const rw = e.name === 'transaction_read_only' && e.value !== null && ['off', 'false', '0', 'no'].includes(e.value);
        const ser = e.name === 'transaction_isolation' && e.value === 'serializable';
        if (rw || ser) {
          toPrimary = true;
          if (route.inTransaction) route.primaryOnlyTransaction = true;
        }
      }
    }
    if (txScoped) p.broadcastTx = false;
    // DEALLOCATE name goes where the statement is (the other nodes that have it are told after).
    let deallocNode = -1;
    if (effects !== null && p.classes.length === 1 && effects.length === 1 && effects[0]!.kind === 'deallocate' && effects[0]!.name !== null) {
      const st = this.v.statements.sql.get(effects[0]!.name) ?? this.v.statements.protocol.get(effects[0]!.name);
      if (st !== undefined && !st.nodes.has(primaryId)) {
        for (const n of st.nodes) if (this.v.link(n)?.conn != null) deallocNode = n;
      }
    }
    if (p.lookup.length > 0) {
      p.type = PlanType.Lookup;
      return p;
    }
    if (this.v.link(primaryId)?.txStatus === TxStatus.Failed) toPrimary = true;
    if (toBalance && !toPrimary && this.v.state.serializableDefault) {
      toPrimary = true;
      reason = 'default_transaction_isolation is serializable: a standby cannot run it';
    }

    // Choose the node.
    let node: number;
    const sticky = this.v.stickyNode;
    if (sticky >= 0 && info.queries.length === 0) {
      node = sticky;
      reason = 'same node until Sync (after Flush)';
    } else if (deallocNode >= 0) {
      node = deallocNode;
      reason = 'where the prepared statement is';
    } else {
      let portalNode: number | undefined;
      for (const name of info.portalRefs) if ((portalNode = this.v.statements.portals.get(name)) !== undefined) break;
      if (portalNode !== undefined && !bindsAnyPortal(info)) {
        node = portalNode;
        reason ||= 'where the portal lives';
      } else if (toPrimary) {
        node = primaryId;
        // With no primary, session state (SET...) still goes where the reads go.
        if (node < 0 && info.bindStatements.length === 0 && p.classes.length > 0
          && p.classes.every(isSingleSetOrReset)) node = this.readNode();
      } else if (toBalance) {
        node = this.readNode();
        if (host.config.read_your_writes && node !== primaryId && !this.v.ryw.freshEnough(node)) {
          node = primaryId >= 0 ? primaryId : node;
          reason = 'read-your-writes: the standby has not replayed this session\'s last commit yet';
        }
      } else if (info.statementRefs.length > 0) {
        const st = this.v.statements.protocol.get(info.statementRefs[0]!);
        const last = this.v.lastNode;
        node = st === undefined ? primaryId
          : last >= 0 && st.nodes.has(last) ? last
          : st.nodes.has(primaryId) ? primaryId : st.nodes.values().next().value ?? primaryId;
        reason ||= 'where the statement lives';
      } else {
        node = this.v.lastNode >= 0 ? this.v.lastNode : primaryId;
        reason ||= 'same node as the previous request';
      }
    }
    p.node = node;
    p.reason = reason;
    // Answers come back in order: another node must have answered everything first.
    if (!this.v.allAnswered(node) || (host.noticePerNode && !this.v.allAnswered(null))) return this.waitAnswers();
    if (node < 0 || (this.v.link(node)?.conn == null && node === primaryId && this.recentlyFailed(node, true))) {
      p.type = PlanType.Error;
      p.errorCode = '57P03';
      p.errorMessage = 'no primary node is available';
      p.errorHint = 'reads still work; writes will again once a primary is up (see SHOW POOL_NODES)';
      return p;
    }
    p.retryable = node !== primaryId && req.term !== Term.None && !route.inTransaction && !req.flush && !p.broadcastTx
      && !info.functionCall && p.effects === null && p.classes.length > 0 && p.classes.every(isReadOnly);
    return p;
  }

  /**
   * SessionCore.quickForward: `sql` gets verdict `cls` (the one its last request's only query
   * got) by the classifier's shape premise, as make() would classify it: false when it does not,
   * or the classifier cannot say so in one comparison.
   */
  sameVerdict(sql: string, cls: QueryClass): boolean {
    const classifier = this.v.host.classifier;
    return classifier.classifyLike !== undefined && classifier.classifyLike(sql, this.queryHint) === cls;
  }

  /**
   * SessionCore.quickForward: the plan make() made for the session's last request, a lone read
   * Query whose verdict was `cls`, again (what it read is unchanged: see SessionCore.quickRefusal).
   */
  repeat(cls: QueryClass, node: number, reason: string, retryable: boolean): Plan {
    const p = this.freshPlan();
    p.classes.push(cls);
    p.node = node;
    p.reason = reason;
    p.retryable = retryable;
    return p;
  }

  /** The session's one plan, emptied for a request (make() and repeat() fill it). */
  private freshPlan(): Plan {
    const p = this.plan;
    p.type = PlanType.Send;
    emptyArray(p.classes);
    emptyArray(p.sqlNeeded);
    emptyArray(p.lookup);
    p.effects = null;
    p.broadcastTx = false;
    p.writes = false;
    p.lasting = false;
    return p;
  }

  /** The session's last simple-query text decided by shape, for Classifier.classifyLike. */
  private readonly queryHint: ShapeHint = { sql: '', prefix: '', cls: null, by: null };

  /** The last Parse text this session classified, its class, and the classifier that decided. */
  private parsedSql = '';
  private parsedCls: QueryClass | null = null;
  private parsedBy: unknown = null;

  /**
   * Classifies a Parse's text. Drivers parse the same text again and again (pgbench -M extended,
   * every unnamed statement of JDBC/npgsql/psycopg 3): the last text and its class are kept, so
   * a repeat costs one string comparison instead of a lexer pass (the classifier caches only the
   * grammar's verdicts). One entry per session, replaced only when the text changes: nothing new
   * stays reachable per request (test/unit/core/per-session-cost.test.ts).
   */
  private classifyParse(sql: string): QueryClass {
    const classifier = this.v.host.classifier;
    if (this.parsedCls !== null && this.parsedBy === classifier && this.parsedSql === sql) return this.parsedCls;
    const cls = classifier.classify(sql);
    this.parsedSql = sql;
    this.parsedCls = cls;
    this.parsedBy = classifier;
    return cls;
  }

  private waitAnswers(): Plan {
    this.plan.type = PlanType.WaitAnswers;
    return this.plan;
  }

  /** EXECUTE name: route as the prepared statement's body; it must exist where it runs. */
  /** consider()'s findings for the request being planned (read back by make()). */
  private toPrimary = false;
  private toBalance = false;
  private reason = '';

  /** What one statement's class asks of the node choice (make()). */
  private consider(cls: QueryClass, sql: string | null, runs = true): void {
    const { host, route } = this.v;
    const routing = host.routing;
    const p = this.plan;
    if (cls.flags.sessionEffects && sql !== null && runs) this.effectsOf(cls, sql);
    const fs = cls.functions;
    for (let i = 0; i < fs.length; i++) {
      const f = fs[i]!;
      if (IDENTITY_FUNCTIONS.has(f) || ADVISORY_LOCK_FUNCTIONS.has(f)) {
        this.toPrimary = true;
        this.reason ||= `${f}() answers for the client's own backend`;
      }
    }
    if (cls.readOnly && (cls.relations.length > 0 || cls.functions.length > 0 || cls.kind === 'show') && nodeLocal(cls, sql)) {
      this.toPrimary = true;
      this.reason ||= 'reads a view whose contents belong to the server (the primary answers, as directly)';
    }
    if (host.pooling !== 'session' && cls.functions.length > 0 && routing.volatility.sessionEffect !== undefined) {
      // Transaction pooling: whether a function changes session state is read from its body (tx-pooling.ts).
      for (let i = 0; i < fs.length; i++) if (userFunction(fs[i]!) && routing.volatility.sessionEffect(fs[i]!) === undefined) p.lookup.push(fs[i]!);
    }
    const r = routeStatement(cls, route, routing.router);
    if (r.to === 'lookup') {
      for (const f of r.functions) p.lookup.push(f);
      return;
    }
    if (r.to === 'primary') {
      this.toPrimary = true;
      if (r.broadcast && route.inTransaction && routing.router.loadBalanceInTransaction) p.broadcastTx = true;
      this.reason ||= r.reason;
    } else {
      this.toBalance = true;
      this.reason ||= r.reason;
    }
    // A class is named after its first statement: 'BEGIN; INSERT ...; COMMIT' is a 'begin' that
    // writes. Several statements that are not read-only count as a write (fail closed).
    if (!cls.readOnly && (cls.statements > 1 || !NOT_WRITES.has(cls.kind))) {
      p.writes = true;
      if (!p.lasting && !leavesNothing(cls)) p.lasting = true;
    } else if (cls.kind === 'notify' || cls.kind === 'execute' || cls.flags.needsVolatilityCheck === true) p.lasting = true;
  }

  /** EXECUTE name: routed as the prepared statement's body (consider), or to the primary when unknown here. */
  private execute(sql: string): void {
    const name = executeName(sql);
    const st = name === null ? undefined : this.v.statements.sql.get(name);
    if (st === undefined) {
      this.toPrimary = true; // unknown here: the primary answers (26000), as a direct connection would
      return;
    }
    this.consider(st.cls, null);
    this.plan.sqlNeeded.push(st);
  }

  private effectsOf(cls: QueryClass, sql: string): void {
    if (cls.kind === 'execute' && cls.statements === 1) return; // executeName() handles it
    const e = sessionEffects(sql);
    if (e === null || e.length === 0) return;
    const p = this.plan;
    if (p.effects === null) p.effects = [];
    for (const x of e) {
      p.effects.push(x);
      // (A query of several statements: a statement it executes, or prepares again, must exist
      // where it runs, so that EXECUTE runs it and a second PREPARE is refused 42P05 in place.)
      if (cls.statements > 1 && (x.kind === 'prepare' || x.kind === 'execute')) {
        const st = this.v.statements.sql.get(x.name);
        if (st !== undefined && !p.sqlNeeded.includes(st)) p.sqlNeeded.push(st);
      }
    }
  }

  /**
   * True while a node that failed is left alone: 5 s for reads; for writes only 1 s, and only as
   * long as the same node is the primary (a node promoted since is tried at once).
   */
  recentlyFailed(node: number, forWrite = false): boolean {
    const f = this.failedAt.get(node);
    if (f === undefined) return false;
    if (forWrite) return f.primary === node && Date.now() - f.at < PRIMARY_RETRY_AFTER_MS;
    return Date.now() - f.at < RETRY_NODE_AFTER_MS;
  }

  /** The node reads go to now: the session's load-balance node while it is usable, else a new pick. */
  readNode(): number {
    const { host } = this.v;
    const routing = host.routing;
    const cluster = host.cluster;
    const primaryId = cluster.primaryId();
    const lb = this.v.lbNode;
    // Fast path (every read of a session-level balanced session): the chosen node is still fine.
    if (!routing.statementLevel && lb >= 0) {
      const n = cluster.node(lb);
      if (n !== undefined && (n.status === 'up' || n.status === 'waiting') && (n.id === primaryId || (n.role === 'standby' && !routing.lag(n.id).lagging))
        && !this.recentlyFailed(n.id)) return lb;
    }
    return this.pickReadNode(primaryId, lb);
  }

  /**
   * readNode() when the session's node is not (or no longer) fine. Its own method: the closures
   * below capture `lb` and `this`, and a function with captured variables allocates its context on
   * every call, the fast path's too (~50 B per read: issue 17, item 9).
   */
  private pickReadNode(primaryId: number, lb: number): number {
    const { host } = this.v;
    const routing = host.routing;
    const candidates = host.lbCandidates(primaryId, (id) => this.recentlyFailed(id));
    const current = candidates.find((c) => c.id === lb);
    if (!routing.statementLevel && current !== undefined && current.usable && !current.lagging) return lb;
    const pick = selectLoadBalanceNode(candidates, host, routing.prefs, primaryId);
    if (!routing.statementLevel) this.v.lbNode = pick;
    return pick;
  }
}
