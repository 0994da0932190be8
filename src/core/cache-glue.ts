/**
 * The session's side of the query cache (src/cache/; the hook itself is cache-port.ts): asking it
 * before a planned request is sent (a hit is answered here, a miss it may store is sent to the
 * primary and its answer collected), telling it what a request sent and how its transaction
 * ended, and holding back the answers that follow a committed write until the cache's
 * invalidation went through (the client learns of its write only once no cached answer can
 * contradict it). The per-chunk checks stay in SessionCore.forward(), on fields it owns.
 */
import { FrontendCode, TxStatus } from '../protocol/codes';
import type { QueryClass } from '../classify/types';
import { ExpectKind, Term, type Expect, type Link } from './link';
import { releaseRequest, type Request, type RequestInfo } from './request';
import type { Plan, Planner } from './planner';
import type { Statements } from './statements';
import type { SessionState } from './session-state';
import type { ClientPort } from './ports';
import type { CoreHost } from './core-host';
import { CacheStep, type CachePort, type CacheView } from './cache-port';
import { unnamedDropped, type NamingSession } from './connection-statements';

/** What the cache glue reads and changes of the session (SessionCore). */
export interface CacheSession {
  readonly host: Pick<CoreHost, 'cluster' | 'classifier'>;
  /** The query cache's hook (null when memory_cache_enabled = off), and what it reads of the session. */
  readonly cache: CachePort | null;
  readonly cacheView: CacheView | null;
  /** Node whose answer the cache collects (-1: none). */
  collectNode: number;
  /**
   * Answers held back until the cache's invalidation of a commit went through (cache-port.ts:
   * holdAnswers): the client learns of its write only once no cached answer can contradict it.
   */
  held: Buffer[] | null;
  /** The client's socket is above its high-water mark: backends are paused. */
  clientFull: boolean;
  readonly closed: boolean;
  readonly stickyNode: number;
  /** The text of the BEGIN of the client's current transaction (CacheView.beginSql). */
  readonly beginSql: string;
  readonly links: readonly (Link | undefined)[];
  readonly client: ClientPort;
  readonly statements: Statements;
  readonly state: SessionState;
  readonly planner: Pick<Planner, 'recentlyFailed'>;
  connected(): IterableIterator<Link>;
  allAnswered(node: number | null): boolean;
  txStatus(): number;
  flush(): void;
  /** Waits for `p` with the queue blocked, then drives again. */
  block(p: Promise<unknown>, what: string): void;
}

/**
 * Whether the cache may answer (or collect) the next request: every earlier request answered, and
 * no extended-protocol sequence left open without a Sync on any backend. After an unsynced
 * sequence the backend is inside its implicit transaction — or, after an error there, discards
 * every message up to the next Sync and answers that Sync alone — so the next request's answer is
 * the backend's to give: a hit would answer rows PostgreSQL skips, and would keep that Sync (the
 * commit of what the sequence wrote) from ever reaching the backend.
 */
function atRest(s: CacheSession): boolean {
  for (const l of s.links) {
    if (l !== undefined && (l.clientOwed > 0 || l.unsynced)) return false;
  }
  return true;
}

/**
 * The query cache's turn before the planner (cache-port.ts' early()): true when the request was
 * answered from the cache, with no plan made.
 */
export function earlyCacheHit(s: CacheSession, req: Request, info: RequestInfo): boolean {
  if (req.term === Term.None || !atRest(s)) return false;
  if (!s.cache!.early(req.data, info, s.cacheView!)) return false;
  answerHit(s, req, info, null);
  return true;
}

/**
 * The query cache's turn before the request is even decoded (SessionCore.step, session pooling):
 * a hit recognised from its bytes (SessionCache.quick: a request whose exact bytes hit before, or
 * a prepared statement's) is answered here — no RequestInfo, no shape walk, no key built. What a
 * hit through early() does to the session's statements is done here too: a Query drops the
 * unnamed statement; a Parse of the unnamed statement (quick() checked it is the one the session
 * has) leaves it on no backend.
 */
export function quickCacheHit(s: CacheSession & NamingSession, req: Request): boolean {
  if ((req.term !== Term.Sync && req.term !== Term.Query) || !quickReadHit(s, req.data)) return false;
  releaseRequest(req);
  return true;
}

/**
 * quickCacheHit() for `data`, a client's request whole (SessionCore.quickRead: a read, before it
 * is framed; it may be a view of a shared read buffer, valid during the call only).
 */
export function quickReadHit(s: CacheSession & NamingSession, data: Buffer): boolean {
  if (!atRest(s) || !s.cache!.quick(data, s.cacheView!)) return false;
  s.flush();
  s.client.write(s.cache!.hitAnswer(s.txStatus()));
  const first = data[0];
  if (first === FrontendCode.Query) unnamedDropped(s, null);
  else if (first === FrontendCode.Parse) {
    const st = s.statements.protocol.get('');
    if (st !== undefined && st.nodes.size > 0) st.nodes.clear();
  }
  return true;
}

/** Writes a hit's answer (one write, its ReadyForQuery included) and records the statements it parsed. */
function answerHit(s: CacheSession, req: Request, info: RequestInfo, classes: readonly QueryClass[] | null): void {
  const cache = s.cache!;
  s.flush();
  s.client.write(cache.hitAnswer(s.txStatus()));
  for (let i = 0; i < info.parses.length; i++) {
    // The client now has this statement, and no backend has it from this request: later Binds
    // re-parse it where they run.
    const p = info.parses[i]!;
    const frame = req.data.subarray(p.start, p.end);
    const prev = s.statements.protocol.get(p.name);
    if (prev !== undefined && prev.sql === p.sql) {
      // What Statements.parsed(…, -1) and then nodes.delete(-1) would leave, without the calls
      // (every hit of pgbench -M extended comes here; the Set's clear() is a call into V8's
      // runtime even on an empty set): a named statement of the same text is unchanged; the
      // same unnamed statement again (the same Parse frame) is kept as it is, on no backend.
      if (p.name !== '') continue;
      if (prev.frame.equals(frame)) {
        if (prev.nodes.size > 0) prev.nodes.clear();
        continue;
      }
    }
    const cls = classes?.[info.queries.length + i] ?? (info.parses.length === 1 ? cache.hitClass : null) ?? s.host.classifier.classify(p.sql);
    s.statements.parsed(p.name, Buffer.from(frame), p.sql, cls, -1);
    s.statements.protocol.get(p.name)?.nodes.delete(-1);
  }
  releaseRequest(req);
}

/**
 * The query cache's turn for a planned request: true/false as step() returns (answered from the
 * cache / wait for a lookup), or null to send it. A miss it may store is sent to the primary (the
 * cache is filled from the primary only: a standby's answer may predate a committed write) and
 * its answer collected.
 */
export function consultCache(s: CacheSession, req: Request, info: RequestInfo, plan: Plan): boolean | null {
  const cache = s.cache!;
  if (req.term === Term.None || !atRest(s)) return null;
  switch (cache.consult(req.data, info, s.cacheView!, plan.classes)) {
    case CacheStep.Wait:
      s.block(cache.waitFor!, 'query cache lookup');
      return false;
    case CacheStep.Hit:
      answerHit(s, req, info, plan.classes);
      return true;
    default:
      break;
  }
  if (!cache.collecting) return null;
  const primary = s.host.cluster.primaryId();
  if (plan.node !== primary) {
    if (primary >= 0 && s.stickyNode < 0 && s.allAnswered(primary) && (s.links[primary]?.conn != null || !s.planner.recentlyFailed(primary, true))) {
      plan.node = primary;
      plan.retryable = false;
      plan.reason = 'query cache: filled from the primary only';
    } else {
      cache.collected(0, false);
      return null;
    }
  }
  s.collectNode = plan.node;
  return null;
}


/** Tells the cache what a request sent (before bookkeeping: a Close in it would hide its statement). */
export function cacheSent(s: CacheSession, info: RequestInfo, plan: Plan): void {
  const bound: QueryClass[] = [];
  for (const name of info.bindStatements) {
    if (info.parsesStatement(name)) continue;
    const st = s.statements.protocol.get(name);
    if (st !== undefined) bound.push(st.cls);
  }
  const sqls = info.parses.length === 0 ? info.queries : [...info.queries, ...info.parses.map((p) => p.sql)];
  s.cache!.sent(plan.classes, sqls, bound, s.cacheView!);
  if (s.collectNode >= 0 && !s.cache!.collecting) s.collectNode = -1;
}


/**
 * The chunk being scanned on `node` holds a ReadyForQuery 'I' that ended a client request (the
 * link completed it before forwarding its range): what is forwarded from here waits for the
 * invalidation of the session's writes.
 */
export function endsTransaction(s: CacheSession, node: number): boolean {
  const l = node >= 0 ? s.links[node] : undefined;
  if (l === undefined) return false;
  for (const e of l.done) if (e.kind === ExpectKind.Client && e.sync && e.status === TxStatus.Idle) return true;
  return false;
}


/** A client request completed on `link`: the collected answer, and transaction ends. */
export function cacheSettled(s: CacheSession, link: Link, e: Expect): void {
  const cache = s.cache!;
  if (link.node === s.collectNode && (e.errored || e.skipped || e.sync)) {
    s.collectNode = -1;
    cache.collected(e.status, !e.errored && !e.skipped && e.status !== 0);
  }
  if (e.sync && e.status !== 0) {
    const wait = cache.synced(e.status);
    if (wait === null) releaseHeld(s);
    else s.block(wait.finally(() => releaseHeld(s)), 'query cache invalidation');
  }
}


/** Writes the answers held back for an invalidation (in order, before anything else). */
export function releaseHeld(s: CacheSession): void {
  const h = s.held;
  if (h === null) return;
  s.held = null;
  if (s.closed || h.length === 0) return;
  if (!s.client.write(h.length === 1 ? h[0]! : Buffer.concat(h)) && !s.clientFull) {
    s.clientFull = true;
    for (const l of s.connected()) l.conn!.pause();
  }
}


export function makeCacheView(s: CacheSession): CacheView {
  const st = s.statements;
  const state = s.state;
  return {
    statementClass: (name) => st.protocol.get(name)?.cls,
    statement: (name) => st.protocol.get(name),
    txStatus: () => s.txStatus(),
    get beginSql() { return s.beginSql; },
    get searchPath() { return state.searchPath; },
    get parameters() { return state.parameters; },
    get settingsVersion() { return state.version; },
  };
}

