/**
 * The session core's hook for the query cache (src/cache/session-cache.ts implements it; null when
 * memory_cache_enabled = off, which costs the core one null check per request and per forwarded
 * range). The core asks before sending a planned request, feeds it the answer of the request it
 * was told to collect, and tells it what was sent and where each request ended.
 *
 * Ordering stays the core's: a hit is written like any local reply, only when no node owes the
 * client an answer; a request is collected only when nothing else is owed on its link, so the
 * bytes forwarded from that link up to the first ReadyForQuery are its answer.
 */
import type { QueryClass } from '../classify/types';
import type { RequestInfo } from './request';

/** consult()'s answer. */
export const CacheStep = {
  /** Send it (collect its answer when `collecting`). */
  Pass: 0,
  /** Answer it with hitAnswer(). */
  Hit: 1,
  /** Wait for `waitFor` (a lookup), then ask again. */
  Wait: 2,
} as const;
export type CacheStep = (typeof CacheStep)[keyof typeof CacheStep];

/** What the cache reads from the session. */
export interface CacheView {
  /** The class of protocol statement `name` (undefined when unknown). */
  statementClass(name: string): QueryClass | undefined;
  /** The SQL and Parse frame of protocol statement `name`. */
  statement(name: string): { readonly sql: string; readonly frame: Buffer } | undefined;
  /** The primary's transaction status as the client sees it. */
  txStatus(): number;
  /**
   * The BEGIN that opened the client's current transaction (meaningful while txStatus() is not
   * Idle): in transaction pooling a BEGIN answered before any lease is sent later and never
   * passes sent(), so its isolation level is read here.
   */
  readonly beginSql: string;
  /** The search_path the client set ('' = default). */
  readonly searchPath: string;
  /** Committed SET texts (part of the key: the same text can answer differently under other settings). */
  readonly parameters: ReadonlyMap<string, string>;
  /** Version of `parameters` (changes when they do). */
  readonly settingsVersion: number;
}

/** See the file header. */
export interface CachePort {
  /**
   * Before sending a planned request (`data` its bytes, `info` its frames, `classes` the planner's
   * classes of its queries then its parses: the cache does not classify a text again).
   */
  consult(data: Buffer, info: RequestInfo, view: CacheView, classes: readonly QueryClass[]): CacheStep;
  /**
   * Before the planner: true when the request is answered from the cache without planning (its
   * text already known to the cache; then hitAnswer() as after Hit). False: plan it, then consult().
   */
  early(data: Buffer, info: RequestInfo, view: CacheView): boolean;
  /**
   * Before the request is decoded (session pooling, nothing deferred): true when its bytes are a
   * Bind/[Describe]/Execute/Sync of the statement of the session's last prepared hit, answered
   * from the cache (then hitAnswer()). False: decode it and go on (early(), the planner...).
   */
  quick(data: Buffer, view: CacheView): boolean;
  /** After a hit from early(): the class of its text (a Parse in it is recorded with it). */
  readonly hitClass: QueryClass | null;
  /** After consult() said Wait. */
  readonly waitFor: Promise<unknown> | null;
  /** The session has writes whose invalidation its next ReadyForQuery 'I' applies: what follows that ReadyForQuery waits for synced()'s promise. */
  readonly holdAnswers: boolean;
  /** After consult() said Pass: the answer is to be collected. */
  readonly collecting: boolean;
  /**
   * After consult() said Hit: the bytes to write, the answer's messages then ReadyForQuery with
   * `status` (one buffer, one write; it may be the stored answer itself: not to be changed).
   */
  hitAnswer(status: number): Buffer;
  /** The request was sent (`classes` and `sqls` of its queries then parses; `bound` of statements it binds). */
  sent(classes: readonly QueryClass[], sqls: readonly string[], bound: readonly QueryClass[], view: CacheView): void;
  /** A range of the collected request's answer. */
  collect(buf: Buffer, start: number, end: number): void;
  /** The collected request ended: ReadyForQuery's status, or ok = false (error, lost). */
  collected(status: number, ok: boolean): void;
  /** A client request ended with ReadyForQuery `status`: a promise the session waits for (shared invalidation), or null. */
  synced(status: number): Promise<unknown> | null;
}
