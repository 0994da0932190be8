/**
 * One session's side of the query cache (core/cache-port.ts's CachePort): decides whether a
 * request can be answered from the cache, collects the answer of one it may store, and turns
 * what the session sent into invalidations applied when its transaction ends.
 *
 * Requests served or stored: a lone simple Query, or Parse? Bind Describe? Execute Sync of one
 * statement into the unnamed portal with no row limit (pgbench -M extended/prepared, drivers'
 * unnamed statements). The key: user, database, the session's settings (startup parameters,
 * SETs, search_path), the request's shape (which messages, so the answer replays exactly), the
 * SQL, the parameter types, the Bind message's parameters and formats, and the generations of
 * everything read (query-cache.ts).
 *
 * Hits, fastest first (shmem): quick() — a request whose exact bytes hit before, found in the
 * process's index of hot requests by a hash of its bytes (HotEntry: every check early() makes,
 * made again on what the hit depended on, no key built), or a new parameter of the session's last
 * prepared hit — before the request is framed or decoded (session pooling); early() — a text
 * already known, before the planner; consult() — after the planner (and the only way with
 * memcached or the change stream).
 *
 * Transactions: an answer read inside a transaction is stored at COMMIT, dropped at ROLLBACK or
 * after an error; once the transaction wrote, nothing is served or collected until it ends; in a
 * REPEATABLE READ or SERIALIZABLE transaction nothing is served (a direct connection would read
 * its own snapshot). Invalidations of the transaction's writes are applied at the ReadyForQuery
 * that ends it; the session's next request waits for them (memcached), so it never reads a
 * cached answer older than its own last write.
 */
import { TxStatus, FrontendCode } from '../protocol/codes';
import type { QueryClass } from '../classify/types';
import type { Classifier } from '../classify/types';
import type { VolatilityLookup } from '../core/routing-context';
import { CacheStep, type CachePort, type CacheView } from '../core/cache-port';
import type { ParseRef, RequestInfo } from '../core/request';
import { invalidationOf, relationVerdict, textVerdict, type Invalidation, type TableLists, type TextVerdict } from './cacheable';
import { QueryCache, type GenCell } from './query-cache';
import type { ShmemEntry } from './shmem-store';

const SNAPSHOT_ISOLATION = /isolation\s+level\s+(repeatable\s+read|serializable)/i;
const SNAPSHOT_DEFAULT = /repeatable|serializable/i;

/** Messages an answer may hold to be stored (anything else — a notice, an error, a NOTIFY, a suspended portal — is not). */
const STORABLE = new Uint8Array(256);
for (const c of '12tnTDC') STORABLE[c.charCodeAt(0)] = 1;
const Z = 0x5a;
/** ReadyForQuery 'I': the end of a stored answer. */
const RFQ_IDLE = Buffer.from([Z, 0, 0, 0, 5, TxStatus.Idle]);

/** A text's relations resolved under one database and search_path (see consult). */
interface Resolution {
  readonly db: string;
  readonly sp: string;
  /** The catalog's version and the cache's epoch it was made at. */
  readonly version: number;
  readonly epoch: number;
  /** When the first of the catalog's facts it used expires (ms since epoch). */
  readonly until: number;
  /** Not cacheable (a relation unknown to the catalog, a view, a temporary table...). */
  readonly pass: boolean;
  /** Its generations' names; shmem: their cells. */
  readonly names: readonly string[];
  readonly cells: readonly GenCell[] | null;
  /** shmem: the generations' part of a key (gensOf), and the counters it was made from. */
  gens: string;
  gensAt: number[] | null;
}

/** What shape() tells of a request. */
interface Shape {
  readonly shape: string;
  readonly sql: string;
  readonly types: string;
  /** The Bind message's bytes after the statement name (formats, values, result formats), latin1. */
  readonly params: string;
  readonly cls: QueryClass | undefined;
  /** The session's Parse frame of the statement bound (null: the request parses it): shmemKey's memo. */
  readonly frame: Buffer | null;
}

/**
 * A request known to hit (hot(), SessionCache.hotHit): its exact bytes, and everything its hit
 * depended on, checked again before each use — the same user, database and settings (prefix),
 * the text's verdict and resolution still the current ones, the generations of what it read
 * unchanged, the answer still in the store and not expired, and the statement it binds still
 * the same text. Equal bytes under all of that mean the same key as early() would build.
 */
interface HotEntry {
  /** The request (a copy: reads may be views of a shared buffer). */
  readonly bytes: Buffer;
  readonly prefix: string;
  readonly memo: TextMemo;
  readonly res: Resolution;
  /** gensOf(res) when it was stored. */
  readonly gens: string;
  readonly entry: ShmemEntry;
  /**
   * The statement the session must have as `stmt` for the hit to stand, as its Parse frame (one
   * buffer per content in the process: canonicalFrame), or null (a Query): the statement a Bind
   * of a statement parsed before binds; for a request beginning with a Parse of the unnamed
   * statement, that Parse (the session's unnamed statement must be it: its first hit recorded it).
   */
  readonly stmt: string;
  readonly frame: Buffer | null;
}

interface Pending {
  readonly key: string;
  readonly value: Buffer;
}

/** What the session and the cache need to know of one login. */
export interface SessionCacheIdentity {
  readonly user: string;
  readonly database: string;
  readonly startupParams: Readonly<Record<string, string>>;
}

/** See the file header. */
export class SessionCache implements CachePort {
  waitFor: Promise<unknown> | null = null;
  collecting = false;
  private hit: Buffer | null = null;
  /** `hit` was built for this request (a pipeline's): it may be changed. */
  private hitOwned = false;
  /** pipelineHit()'s scratch: the stored answers of a pipeline's statements. */
  private readonly pipeValues: Buffer[] = [];
  // Collection of one answer.
  private key = '';
  private parts: Buffer[] = [];
  private bytes = 0;
  private tooBig = false;
  // Transaction.
  private txWrote = false;
  private snapshot = false;
  private rollback = false;
  private txFailed = false;
  private readonly writes: Invalidation[] = [];
  private readonly pending: Pending[] = [];
  // QueryCache.bumps when this session was last idle: answers read in a transaction are stored at
  // its COMMIT only if no invalidation came since (see synced()).
  private idleBumps: number;
  // The memcached lookup of the request at the head of the queue.
  private lookingUp: Buffer | null = null;
  private looked: { readonly data: Buffer; readonly key: string; readonly value: Buffer | undefined } | null = null;
  // Settings fingerprint, by settings version, and its interned number (shmem keys).
  private settingsAt = -1;
  private settings = '';
  private prefix = '';
  /** The settings version `prefix` was made at, and the search_path then (part of it: hotHit reads it here, not from the session's maps). */
  private prefixAt = -1;
  private prefixSp = '';
  /** `prefix` as a number: the seed of hashOf() (requests of other settings land elsewhere in the index). */
  private prefixSeed = 0;
  /** The process's index of hot requests (hotIndex()). */
  private readonly hot: HotIndex;
  /** The request quick() was last asked about and could not answer: early() indexes it if it hits. */
  private quickMissed: Buffer | null = null;
  /** hotHit(): the session's statement frame last found equal to a HotEntry's frame, and that frame. */
  private sameOwn: Buffer | null = null;
  private sameCanonical: Buffer | null = null;
  private sessionSnapshot: boolean;
  // The change stream's fence (memqcache_logical_invalidation): the request it was awaited for, and its answer.
  private fencedFor: Buffer | null = null;
  // The parameter types of the last named statement bound, by its Parse frame.
  private typesOf: Buffer | null = null;
  private types = '';
  // shmemKey()'s memo of the last prepared statement keyed: its Parse frame, the shape, the session's prefix, its interned number.
  private stmtFrame: Buffer | null = null;
  private stmtShape = '';
  private stmtPrefix = '';
  private stmtId = '';
  // quick()'s statement: the last one a prepared hit bound (its name, the name's bytes, its Parse frame).
  private quickName = '';
  private quickBytes: Buffer | null = null;
  private quickFrame: Buffer | null = null;
  // early(): the request whose miss it saw, and the key it computed.
  private earlyMiss: Buffer | null = null;
  private earlyKey = '';
  hitClass: QueryClass | null = null;
  private fenceOk = false;

  constructor(
    private readonly cache: QueryCache,
    private readonly id: SessionCacheIdentity,
    private readonly classifier: () => Classifier,
    private readonly volatility: () => VolatilityLookup,
  ) {
    this.idleBumps = cache.bumps;
    this.hot = hotIndex(cache);
    const p = id.startupParams;
    this.sessionSnapshot = SNAPSHOT_DEFAULT.test(p.default_transaction_isolation ?? '') || /default_transaction_isolation\s*=\s*\S*(repeatable|serializable)/i.test(p.options ?? '');
  }

  // ---- before sending ----------------------------------------------------------------------

  consult(data: Buffer, info: RequestInfo, view: CacheView, classes: readonly QueryClass[]): CacheStep {
    this.waitFor = null;
    this.collecting = false;
    this.hit = null;
    this.hitOwned = false;
    this.hitClass = null;
    if (info.functionCall) return CacheStep.Pass;
    const done = this.looked;
    if (done !== null && done.data === data) {
      // memcached: the lookup this request waited for came back (nothing of the session changed
      // meanwhile: its queue was blocked). Its verdict stands; only its answer is used.
      this.looked = null;
      if (done.key === '') return this.counted(CacheStep.Pass, data);
      return this.found(data, done.key, done.value);
    }
    const shape = this.shape(data, info, view);
    if (shape === null) return CacheStep.Pass;
    // The planner's class of the text (queries first, then parses), else the statement's, else classified here.
    const cls = (info.parses.length > 0 || !info.extended ? classes[0] : undefined) ?? shape.cls ?? this.classifier().classify(shape.sql);
    if (cls.kind !== 'read') return CacheStep.Pass;
    if (this.txWrote || this.txFailed || this.inSnapshotTx(view)) {
      return this.counted(CacheStep.Pass, data);
    }
    const cache = this.cache;
    const memo = memoTextVerdict(shape.sql, cls, cache.lists, this.classifier());
    const tv = memo.tv;
    if (!tv.ok) return this.counted(CacheStep.Pass, data);
    // Functions: immutable only (pg_proc, looked up once).
    if (tv.functions.length > 0) {
      const vol = this.volatility();
      const unknownFns = tv.functions.filter((f) => vol.get(f) === undefined);
      if (unknownFns.length > 0) return this.wait(vol.lookup(unknownFns));
      if (!tv.force && tv.functions.some((f) => vol.get(f) !== 'i')) return this.counted(CacheStep.Pass, data);
    }
    // Relations: the catalog's facts under the session's search_path (remembered with the text
    // while the catalog's answers stand: a hit reads no catalog map).
    const db = this.id.database;
    const sp = view.searchPath;
    let res = memo.res;
    if (res === null || !this.current(res, sp)) {
      const r = this.resolve(tv, db, sp);
      if (r === null) return this.counted(CacheStep.Pass, data);
      if (r instanceof Promise) return this.wait(r);
      memo.res = res = r;
    }
    if (res.pass) return this.counted(CacheStep.Pass, data);
    if (!cache.available()) return this.counted(CacheStep.Pass, data);
    cache.streams?.start(db);
    let key: string;
    let value: Buffer | undefined;
    if (cache.shmem !== null) {
      // shmem: the parts themselves, unhashed (the map hashes the string natively; a SHA-1 per
      // request was the largest cost of a hit). The session's user, database and settings are one
      // interned number; types and parameters carry their lengths (they may hold NUL bytes).
      if (this.earlyMiss === data) {
        // early() computed it just now and found nothing.
        key = this.earlyKey;
        value = undefined;
      } else {
        key = this.shmemKey(shape, view, res);
        value = cache.shmem.get(key);
      }
      this.earlyMiss = null;
    } else {
      if (this.lookingUp === data) return this.wait(this.waitFor ?? Promise.resolve());
      this.lookingUp = data;
      const names = res.names;
      const k = QueryCache.key([this.id.user, db, this.fingerprint(view), shape.shape, shape.sql, shape.types, shape.params]);
      return this.wait(cache.memcached!.lookup(k, names).then((r) => {
        this.lookingUp = null;
        this.looked = { data, key: `${k}|${r.gens}`, value: r.value };
      }, (e: unknown) => {
        this.lookingUp = null;
        cache.failed(e);
        this.looked = { data, key: '', value: undefined };
      }));
    }
    return this.found(data, key, value);
  }

  /**
   * Before the planner: a request whose text is known already (remembered with its class by an
   * earlier request), whose relations are resolved and whose answer shmem has, is a hit here —
   * no classification, no plan. Anything else returns false and goes the full way (the planner,
   * then consult(), which reuses the key of a miss computed here).
   */
  early(data: Buffer, info: RequestInfo, view: CacheView): boolean {
    this.earlyMiss = null;
    this.hitClass = null;
    const cache = this.cache;
    if (info.functionCall || !this.mayHitNow(view)) return false;
    const shape = this.shape(data, info, view);
    if (shape === null) return info.bindStatements.length > 1 && this.pipelineHit(data, info, view);
    const memo = this.knownRead(shape.sql, view);
    if (memo === null) return false;
    const key = this.shmemKey(shape, view, memo.res!);
    const entry = cache.shmem!.entry(key);
    if (entry === undefined) {
      this.earlyMiss = data;
      this.earlyKey = key;
      return false;
    }
    const value = entry.value!;
    if (this.quickMissed === data) {
      // Its next time is known from its bytes (quick()): the request alone (a lone Query, a Parse
      // of the unnamed statement first, or a Bind of a statement parsed before).
      const p = info.parses[0];
      if (shape.shape === 'Q') this.remember(data, memo, entry, '', null);
      else if (p === undefined) this.remember(data, memo, entry, info.bindStatements[0]!, shape.frame);
      else if (p.name === '' && p.start === 0) this.remember(data, memo, entry, '', data.subarray(0, p.end));
    }
    this.quickMissed = null;
    this.waitFor = null;
    this.collecting = false;
    cache.stats.selects++;
    cache.stats.hits++;
    this.hit = value;
    this.hitClass = memo.cls;
    if (shape.frame !== null && shape.frame !== this.quickFrame) {
      // A prepared statement's hit: its next ones are recognised by quick().
      const name = info.bindStatements[0]!;
      this.quickName = name;
      this.quickBytes = Buffer.from(name, 'utf8');
      this.quickFrame = shape.frame;
    }
    return true;
  }

  /**
   * Whether this session may be answered from shmem now: shmem on, no change stream, and not in a
   * transaction that wrote, failed, or reads its own snapshot (REPEATABLE READ / SERIALIZABLE).
   * One place for early() and quick().
   */
  private mayHitNow(view: CacheView): boolean {
    return this.cache.shmem !== null && this.cache.streams === null && !this.txWrote && !this.txFailed && !this.inSnapshotTx(view);
  }

  /**
   * A hit of the statement of the last prepared hit, recognised from the request's bytes before
   * anything is decoded: Bind (unnamed portal, that statement's name) [Describe of the unnamed
   * portal] Execute (unnamed portal, no row limit) Sync, the session's statement of that name
   * still the same Parse frame, and everything early() checks. Anything else: false (early() and
   * the rest of the way decide).
   */
  quick(data: Buffer, view: CacheView): boolean {
    if (!this.mayHitNow(view)) return false;
    if (this.hotHit(data, view) || this.quickPrepared(data, view)) {
      this.quickMissed = null;
      return true;
    }
    this.quickMissed = data;
    return false;
  }

  /**
   * A request whose exact bytes hit before (in any session of the process with the same user,
   * database and settings): answered from the index of hot requests, with every check early()
   * makes and none of its work (no text decoded, no key built, hashed or compared). See HotEntry.
   */
  private hotHit(data: Buffer, view: CacheView): boolean {
    const hot = this.hot.map;
    if (hot.size === 0 || data.length > HOT_MAX_BYTES) return false;
    const prefix = this.prefixOf(view);
    const h = hashOf(data, this.prefixSeed);
    const e = hot.get(h);
    if (e === undefined || e.prefix !== prefix || !sameBytes(data, e.bytes)) return false;
    const memo = e.memo;
    const res = e.res;
    const cache = this.cache;
    if (memo.res !== res || memo.lists !== cache.lists || memo.by !== this.classifier() || !this.current(res, this.prefixSp) || gensOf(res) !== e.gens) return false;
    const f = e.frame;
    if (f !== null) {
      const st = view.statement(e.stmt);
      if (st === undefined) return false;
      if (st.frame !== this.sameOwn || f !== this.sameCanonical) {
        // (Compared once per pair of buffers: frames are never changed in place.)
        if (!st.frame.equals(f)) return false;
        this.sameOwn = st.frame;
        this.sameCanonical = f;
      }
    }
    const value = cache.shmem!.live(e.entry);
    if (value === null) {
      hot.delete(h);
      return false;
    }
    this.served(value, memo.cls);
    return true;
  }

  /** Indexes a request that just hit (hotHit answers it next time); `frame`: see HotEntry. */
  private remember(data: Buffer, memo: TextMemo, entry: ShmemEntry, stmt: string, frame: Buffer | null): void {
    if (data.length > HOT_MAX_BYTES || (frame !== null && frame.length > HOT_MAX_BYTES)) return;
    const index = this.hot;
    const hot = index.map;
    const size = data.length + HOT_ENTRY_OVERHEAD;
    if (hot.size >= HOT_MAX || index.bytes + size > HOT_BYTES) {
      hot.clear();
      index.bytes = 0;
    }
    index.bytes += size;
    const res = memo.res!;
    hot.set(hashOf(data, this.prefixSeed), { bytes: Buffer.from(data), prefix: this.prefix, memo, res, gens: res.gens, entry, stmt, frame: frame === null ? null : canonicalFrame(frame) });
  }

  /** A hit found by quick(): the session's state as early() leaves it. */
  private served(value: Buffer, cls: QueryClass): void {
    this.waitFor = null;
    this.collecting = false;
    this.earlyMiss = null;
    const stats = this.cache.stats;
    stats.selects++;
    stats.hits++;
    this.hit = value;
    this.hitOwned = false;
    this.hitClass = cls;
  }

  /** quick() for the statement of the last prepared hit with parameters not indexed yet (see quick()). */
  private quickPrepared(data: Buffer, view: CacheView): boolean {
    const frame = this.quickFrame;
    const cache = this.cache;
    if (frame === null) return false;
    const len = data.length;
    // Bind: code, length, '' (portal), the statement's name, NUL, then formats, values, result formats.
    const nb = this.quickBytes!;
    const nameEnd = 6 + nb.length;
    if (len < nameEnd + 1 + 10 + 5 || data[0] !== FrontendCode.Bind || data[5] !== 0) return false;
    const bEnd = 1 + data.readInt32BE(1);
    if (bEnd <= nameEnd || bEnd > len || data[nameEnd] !== 0) return false;
    for (let i = 0; i < nb.length; i++) if (data[6 + i] !== nb[i]) return false;
    let pos = bEnd;
    let seq = 2;
    if (pos + 7 <= len && data[pos] === FrontendCode.Describe) {
      if (data.readInt32BE(pos + 1) !== 6 || data[pos + 5] !== 0x50 || data[pos + 6] !== 0) return false;
      seq = seq * 8 + 4;
      pos += 7;
    }
    if (pos + 10 + 5 !== len || data[pos] !== FrontendCode.Execute || data.readInt32BE(pos + 1) !== 9 || data[pos + 5] !== 0 || data.readInt32BE(pos + 6) !== 0) return false;
    seq = seq * 8 + 5;
    pos += 10;
    if (data[pos] !== FrontendCode.Sync || data.readInt32BE(pos + 1) !== 4) return false;
    const st = view.statement(this.quickName);
    if (st === undefined || st.frame !== frame) return false;
    const memo = this.knownRead(st.sql, view);
    if (memo === null) return false;
    if (frame !== this.typesOf) {
      this.typesOf = frame;
      this.types = parseTypes(frame, 0, frame.length);
    }
    const shape = SHAPES.get(seq * 8 + 6);
    if (shape === undefined) return false;
    const entry = cache.shmem!.entry(this.shmemKey({ shape, sql: st.sql, types: this.types, params: latin1(data, nameEnd + 1, bEnd), cls: memo.cls, frame }, view, memo.res!));
    if (entry === undefined) return false;
    this.remember(data, memo, entry, this.quickName, frame);
    this.served(entry.value!, memo.cls);
    return true;
  }

  /**
   * A text early() may answer: known to the cache as a read with no function, its relations
   * resolved and current (memo.res set); null otherwise.
   */
  private knownRead(sql: string, view: CacheView): TextMemo | null {
    const memo = verdicts.get(sql);
    if (memo === undefined || memo.cls.kind !== 'read' || memo.lists !== this.cache.lists || memo.by !== this.classifier()) return null;
    const tv = memo.tv;
    if (!tv.ok || tv.functions.length > 0) return null;
    const res = memo.res;
    if (res === null || res.pass || !this.current(res, view.searchPath)) return null;
    return memo;
  }

  /**
   * early() for a pipeline (pgbench's \startpipeline, a driver's batch): two or more
   * [Parse of the unnamed statement] Bind [Describe] Execute of the unnamed portal without a row
   * limit, then one Sync.
   * When every statement's answer is in the cache — under the key the same statement sent alone
   * has, so the two fill each other — the answer is theirs in order with one ReadyForQuery (one
   * write). When one is not, the pipeline goes the full way: sent whole, nothing stored from it
   * (consult() stores lone statements only).
   */
  private pipelineHit(data: Buffer, info: RequestInfo, view: CacheView): boolean {
    if (info.queries.length > 0 || info.closedStatements.length > 0 || info.bindStatements.length > PIPELINE_MAX) return false;
    const shmem = this.cache.shmem!;
    const values = this.pipeValues;
    values.length = 0;
    let bytes = 0;
    let seq = 0;
    let tokens = 0;
    let params: string | null = null;
    let parsed = 0; // Parses seen (info.parses in order)
    let bound = 0;
    let segParse: ParseRef | null = null;
    let pos = 0;
    while (pos + 5 <= data.length) {
      const code = data[pos]!;
      const end = pos + 1 + data.readInt32BE(pos + 1);
      if (++tokens > 5) return false;
      switch (code) {
        case FrontendCode.Parse:
          if (seq !== 0) return false;
          segParse = info.parses[parsed++] ?? null;
          // Named statements are left to the backend here (a second Parse of a name in one pipeline is its error to give).
          if (segParse === null || segParse.name !== '') return false;
          seq = 1;
          break;
        case FrontendCode.Bind: {
          if (data[pos + 5] !== 0) return false; // a named portal
          let stmtEnd = pos + 6;
          while (stmtEnd < end && data[stmtEnd] !== 0) stmtEnd++;
          if (stmtEnd >= end) return false;
          params = latin1(data, stmtEnd + 1, end);
          bound++;
          seq = seq * 8 + 2;
          break;
        }
        case FrontendCode.Describe:
          if (data[pos + 5] === 0x50 && data[pos + 6] !== 0) return false;
          seq = seq * 8 + (data[pos + 5] === 0x53 ? 3 : 4);
          break;
        case FrontendCode.Execute: {
          if (data[pos + 5] !== 0 || end - pos < 10 || data.readInt32BE(pos + 6) !== 0) return false; // named portal or a row limit
          const shapeName = SHAPES.get((seq * 8 + 5) * 8 + 6);
          if (shapeName === undefined || params === null) return false;
          const name = info.bindStatements[bound - 1]!;
          let sql: string;
          let types: string;
          let frame: Buffer | null = null;
          // The statement bound: this segment's Parse, else the pipeline's last Parse of that name, else the session's.
          let p: ParseRef | null = segParse;
          if (p === null) for (let i = parsed - 1; i >= 0 && p === null; i--) if (info.parses[i]!.name === name) p = info.parses[i]!;
          if (p !== null) {
            if (p.name !== name) return false;
            sql = p.sql;
            types = parseTypes(data, p.start, p.end);
          } else {
            const st = view.statement(name);
            if (st === undefined) return false;
            sql = st.sql;
            if (st.frame !== this.typesOf) {
              this.typesOf = st.frame;
              this.types = parseTypes(st.frame, 0, st.frame.length);
            }
            types = this.types;
            frame = st.frame;
          }
          const memo = this.knownRead(sql, view);
          if (memo === null) return false;
          const value = shmem.get(this.shmemKey({ shape: shapeName, sql, types, params, cls: memo.cls, frame }, view, memo.res!));
          if (value === undefined) return false;
          values.push(value);
          bytes += value.length - RFQ_IDLE.length;
          seq = 0;
          tokens = 0;
          params = null;
          segParse = null;
          break;
        }
        case FrontendCode.Sync:
          if (end !== data.length || seq !== 0) return false;
          break;
        default:
          return false;
      }
      pos = end;
    }
    const n = values.length;
    if (n < 2 || n !== info.bindStatements.length || data[data.length - 5] !== FrontendCode.Sync) {
      values.length = 0;
      return false;
    }
    // Each stored answer whole (Uint8Array.set: Buffer.copy's checks cost more than these few
    // bytes), its ReadyForQuery overwritten by the next answer: the last one's, 'I', ends the pipeline's.
    const out = Buffer.allocUnsafe(bytes + RFQ_IDLE.length);
    let at = 0;
    for (let i = 0; i < n; i++) {
      const v = values[i]!;
      out.set(v, at);
      at += v.length - RFQ_IDLE.length;
    }
    values.length = 0;
    this.waitFor = null;
    this.collecting = false;
    const stats = this.cache.stats;
    stats.selects += n;
    stats.hits += n;
    this.hit = out;
    this.hitOwned = true;
    return true;
  }

  /**
   * In a REPEATABLE READ or SERIALIZABLE transaction: it reads its own snapshot, so it is neither
   * served nor stored (an answer read after another client's commit would be filed as current).
   * Its BEGIN's text is the view's too: transaction pooling answers a BEGIN before it has a
   * connection and sends it later, without sent() seeing it.
   */
  private inSnapshotTx(view: CacheView): boolean {
    if (view.txStatus() === TxStatus.Idle) return false;
    return this.snapshot || this.sessionSnapshot || SNAPSHOT_ISOLATION.test(view.beginSql)
      || SNAPSHOT_DEFAULT.test(view.parameters.get('default_transaction_isolation') ?? '');
  }

  /** Whether a resolution still stands for this session (same database and search_path, catalog unchanged, not expired). */
  private current(res: Resolution, sp: string): boolean {
    const cache = this.cache;
    return res.db === this.id.database && res.sp === sp && res.version === cache.catalog.version && res.epoch === cache.epoch && Date.now() < res.until;
  }

  /** The session's user, database and settings as one interned number (recomputed when the settings change). */
  private prefixOf(view: CacheView): string {
    const v = view.settingsVersion;
    if (this.prefixAt !== v || this.prefix === '') {
      this.prefix = this.cache.intern(`${this.id.user}\u0000${this.id.database}\u0000${this.fingerprint(view)}`);
      this.prefixSeed = parseInt(this.prefix, 36) | 0;
      this.prefixSp = view.searchPath;
      this.prefixAt = v;
    }
    return this.prefix;
  }

  /**
   * shmem's key: the parts themselves, unhashed (the map hashes the string natively; a SHA-1 per
   * request was the largest cost of a hit). The session's user, database and settings are one
   * interned number; types and parameters carry their lengths (they may hold NUL bytes); then the generations.
   */
  private shmemKey(shape: Shape, view: CacheView, res: Resolution): string {
    this.prefixOf(view);
    const types = shape.types;
    const params = shape.params;
    const frame = shape.frame;
    if (frame !== null) {
      // A statement the session prepared (pgbench -M prepared): everything but the parameters
      // and the generations is one interned number per statement, shape and settings, so a hit
      // builds, hashes and compares a key of a few dozen bytes instead of one holding the SQL.
      // ('\u0001' after it: never a key of the long form, whose interned number is followed by '\u0000'.)
      if (frame !== this.stmtFrame || shape.shape !== this.stmtShape || this.prefix !== this.stmtPrefix) {
        this.stmtFrame = frame;
        this.stmtShape = shape.shape;
        this.stmtPrefix = this.prefix;
        this.stmtId = this.cache.intern(`${this.prefix}\u0000${shape.shape}\u0000${shape.sql}\u0000${types.length}:${types}`);
      }
      return `${this.stmtId}\u0001${params.length}:${params}${gensOf(res)}`;
    }
    return `${this.prefix}\u0000${shape.shape}\u0000${shape.sql}\u0000${types.length}:${types}${params.length}:${params}${gensOf(res)}`;
  }

  /**
   * The relations of a text resolved under (db, sp): their generations, or pass (one is unknown
   * to the catalog, or not cacheable), or a catalog lookup to wait for; null: not cacheable now.
   */
  private resolve(tv: TextVerdict & { readonly ok: true }, db: string, sp: string): Resolution | Promise<unknown> | null {
    const cache = this.cache;
    const cat = cache.catalog;
    const version = cat.version;
    const oids: number[] = [];
    let unknownRels: string[] | null = null;
    let until = Infinity;
    let pass = false;
    for (const r of tv.relations) {
      const facts = cat.known(db, sp, r);
      if (facts === undefined) {
        (unknownRels ??= []).push(r);
        continue;
      }
      until = Math.min(until, cat.expiresAt(db, sp, r));
      if (facts === null || (!tv.force && relationVerdict(r, facts, cache.lists) !== null)) {
        pass = true;
        continue;
      }
      oids.push(facts.oid);
    }
    if (unknownRels !== null) return pass ? null : cat.lookup(db, sp, unknownRels);
    const names = QueryCache.genNames(db, oids);
    return { db, sp, version, epoch: cache.epoch, until, pass, names, cells: cache.shmem !== null ? cache.cells(names) : null, gens: '', gensAt: null };
  }

  /** The answer stored under `key` (undefined: none): a hit, or a miss whose answer is collected. */
  private found(data: Buffer, key: string, value: Buffer | undefined): CacheStep {
    const cache = this.cache;
    const db = this.id.database;
    if (value !== undefined && cache.streams !== null) {
      // memqcache_logical_invalidation: the change stream must vouch for the hit (change-stream.ts).
      if (this.fencedFor !== data) {
        const f = cache.streams.fence(db);
        if (f === false) return this.counted(CacheStep.Pass, data);
        if (f !== true) {
          // Look up again after the round (its invalidations may have moved the generations on).
          this.fencedFor = data;
          this.fenceOk = false;
          return this.wait(f.then((ok) => { this.fenceOk = ok; }));
        }
      } else {
        this.fencedFor = null;
        if (!this.fenceOk) return this.counted(CacheStep.Pass, data);
      }
    }
    this.fencedFor = null;
    cache.stats.selects++;
    if (value !== undefined) {
      cache.stats.hits++;
      this.hit = value;
      return CacheStep.Hit;
    }
    cache.stats.misses++;
    this.key = key;
    this.collecting = true;
    this.parts = [];
    this.bytes = 0;
    this.tooBig = false;
    return CacheStep.Pass;
  }

  /** A SELECT that will not be served from the cache: counted in num_selects. */
  private counted(step: CacheStep, data: Buffer): CacheStep {
    if (this.looked?.data === data) this.looked = null;
    this.cache.stats.selects++;
    return step;
  }

  private wait(p: Promise<unknown>): CacheStep {
    this.waitFor = p;
    return CacheStep.Wait;
  }

  hitAnswer(status: number): Buffer {
    const h = this.hit!;
    this.hit = null;
    const owned = this.hitOwned;
    this.hitOwned = false;
    // shmem keeps answers with ReadyForQuery 'I' at the end (collected()): written as they are
    // outside a transaction (no copy); memcached's are without it. A pipeline's answer is built
    // for it (owned): its status byte is set in place.
    if (this.cache.shmem !== null) {
      if (status === TxStatus.Idle) return h;
      if (owned) {
        h[h.length - 1] = status;
        return h;
      }
      const out = Buffer.from(h);
      out[out.length - 1] = status;
      return out;
    }
    const out = Buffer.allocUnsafe(h.length + 6);
    h.copy(out, 0);
    out.set(RFQ_IDLE, h.length);
    out[h.length + 5] = status;
    return out;
  }

  /** The session's settings as part of the key (recomputed when they change). */
  private fingerprint(view: CacheView): string {
    if (this.settingsAt !== view.settingsVersion) {
      this.settingsAt = view.settingsVersion;
      this.settings = JSON.stringify([Object.entries(this.id.startupParams).sort(), [...view.parameters].sort(), view.searchPath]);
    }
    return this.settings;
  }

  /**
   * The request's cacheable shape, or null: a lone Query; or [Parse] Bind [Describe] Execute Sync
   * of one statement into the unnamed portal, without a row limit.
   */
  private shape(data: Buffer, info: RequestInfo, view: CacheView): Shape | null {
    if (!info.extended) {
      if (info.queries.length !== 1 || data[0] !== FrontendCode.Query) return null;
      return { shape: 'Q', sql: info.queries[0]!, types: '', params: '', cls: undefined, frame: null };
    }
    if (info.queries.length > 0 || info.parses.length > 1 || info.bindStatements.length !== 1 || info.closedStatements.length > 0) return null;
    let seq = 0; // the messages as base-8 digits (SHAPE_TOKENS), looked up in SHAPES at the end
    let tokens = 0;
    let params: string | null = null;
    let pos = 0;
    while (pos + 5 <= data.length) {
      const code = data[pos]!;
      const end = pos + 1 + data.readInt32BE(pos + 1);
      switch (code) {
        case FrontendCode.Parse:
          seq = seq * 8 + 1;
          break;
        case FrontendCode.Bind: {
          if (data[pos + 5] !== 0) return null; // a named portal
          let stmtEnd = pos + 6;
          while (stmtEnd < end && data[stmtEnd] !== 0) stmtEnd++;
          if (stmtEnd >= end) return null;
          params = latin1(data, stmtEnd + 1, end);
          seq = seq * 8 + 2;
          break;
        }
        case FrontendCode.Describe:
          seq = seq * 8 + (data[pos + 5] === 0x53 ? 3 : 4);
          if (data[pos + 5] === 0x50 && data[pos + 6] !== 0) return null;
          break;
        case FrontendCode.Execute:
          if (data[pos + 5] !== 0 || end - pos < 10 || data.readInt32BE(pos + 6) !== 0) return null; // named portal or a row limit
          seq = seq * 8 + 5;
          break;
        case FrontendCode.Sync:
          if (end !== data.length) return null;
          seq = seq * 8 + 6;
          break;
        default:
          return null;
      }
      if (++tokens > 6) return null;
      pos = end;
    }
    const shape = SHAPES.get(seq);
    if (shape === undefined || params === null) return null;
    const name = info.bindStatements[0]!;
    let sql: string;
    let types: string;
    let cls: QueryClass | undefined;
    let frame: Buffer | null = null;
    const p = info.parses[0];
    if (p !== undefined) {
      if (p.name !== name) return null;
      sql = p.sql;
      types = parseTypes(data, p.start, p.end);
    } else {
      const st = view.statement(name);
      if (st === undefined) return null;
      sql = st.sql;
      // The statement's types, kept while it is the same Parse frame (pgbench -M prepared: always).
      if (st.frame !== this.typesOf) {
        this.typesOf = st.frame;
        this.types = parseTypes(st.frame, 0, st.frame.length);
      }
      types = this.types;
      cls = view.statementClass(name);
      frame = st.frame;
    }
    return { shape, sql, types, params, cls, frame };
  }

  // ---- after sending -------------------------------------------------------------------------

  get holdAnswers(): boolean {
    return this.writes.length > 0;
  }

  sent(classes: readonly QueryClass[], sqls: readonly string[], bound: readonly QueryClass[], view: CacheView): void {
    this.searchPathNow = view.searchPath;
    if (!this.cache.config.memqcache_auto_cache_invalidation) return;
    const vol = this.volatility();
    const get = (f: string): string | undefined => vol.get(f);
    const note = (cls: QueryClass, sql: string | null): void => {
      switch (cls.kind) {
        case 'begin':
        case 'set':
          if (sql !== null && SNAPSHOT_ISOLATION.test(sql)) this.snapshot = true;
          if (sql !== null && cls.kind === 'set' && /session\s+characteristics/i.test(sql) && SNAPSHOT_ISOLATION.test(sql)) this.sessionSnapshot = true;
          return;
        case 'rollback':
          this.rollback = true;
          return;
        default:
          break;
      }
      const inv = invalidationOf(cls, get);
      if (inv.kind === 'none') return;
      this.writes.push(inv);
      if (inv.kind === 'tables') this.prefetch(inv.relations, view.searchPath);
      this.txWrote = true;
      if (this.collecting) this.collecting = false; // a write in the same request: its answer is not a plain read
    };
    for (let i = 0; i < classes.length; i++) note(classes[i]!, sqls[i] ?? null);
    for (const c of bound) note(c, null);
  }

  collect(buf: Buffer, start: number, end: number): void {
    if (!this.collecting || this.tooBig) return;
    this.bytes += end - start;
    if (this.bytes > this.cache.config.memqcache_maxcache + 6) {
      this.tooBig = true;
      this.parts = [];
      return;
    }
    this.parts.push(Buffer.from(buf.subarray(start, end)));
  }

  collected(status: number, ok: boolean): void {
    if (!this.collecting) return;
    this.collecting = false;
    const parts = this.parts;
    this.parts = [];
    if (!ok || this.tooBig || status === TxStatus.Failed || this.txWrote) {
      this.cache.stats.notStored++;
      return;
    }
    const all = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    // The answer is everything up to its ReadyForQuery, which is left out (a hit ends with the session's own).
    let pos = 0;
    while (pos + 5 <= all.length) {
      const code = all[pos]!;
      if (code === Z) break;
      if (STORABLE[code] !== 1) {
        this.cache.stats.notStored++;
        return;
      }
      pos += 1 + all.readInt32BE(pos + 1);
    }
    if (pos > all.length || all[pos] !== Z) {
      this.cache.stats.notStored++;
      return;
    }
    // Stored with ReadyForQuery 'I' (QueryCache.store).
    const value = Buffer.allocUnsafe(pos + 6);
    all.copy(value, 0, 0, pos);
    value.set(RFQ_IDLE, pos);
    if (status === TxStatus.Idle) this.cache.store(this.key, value);
    else this.pending.push({ key: this.key, value });
  }

  synced(status: number): Promise<unknown> | null {
    if (status === TxStatus.Failed) {
      this.txFailed = true;
      return null;
    }
    if (status !== TxStatus.Idle) return null;
    // The transaction (or the statement, outside one) is over.
    // An invalidation since the transaction began (this session last idle) may have changed what
    // its answers read, unseen by it: a snapshot the cache could not see (a role's or database's
    // default_transaction_isolation, SET in a function), or a read before another client's
    // commit stored after it under the new generations. Fail closed: none of them is stored.
    const commit = !this.txFailed && !this.rollback && this.cache.bumps === this.idleBumps;
    if (commit) for (const p of this.pending) this.cache.store(p.key, p.value);
    else if (this.pending.length > 0) this.cache.stats.notStored += this.pending.length;
    this.pending.length = 0;
    this.txWrote = false;
    this.txFailed = false;
    this.rollback = false;
    this.snapshot = false;
    if (this.writes.length === 0) {
      this.idleBumps = this.cache.bumps;
      return null;
    }
    const writes = this.writes.splice(0);
    // The client's next transaction begins after this invalidation (its ReadyForQuery waits for it).
    const done = this.invalidate(writes);
    if (done === null) {
      this.idleBumps = this.cache.bumps;
      return null;
    }
    return done.finally(() => { this.idleBumps = this.cache.bumps; });
  }

  /** Starts the catalog lookups a write's invalidation will need, so that its commit does not wait for them. */
  private prefetch(names: readonly string[], sp: string): void {
    const cat = this.cache.catalog;
    const db = this.id.database;
    const missing = names.filter((n) => cat.known(db, sp, n) === undefined);
    if (missing.length > 0) {
      void cat.lookup(db, sp, missing).then(() => {
        const oids = names.map((n) => cat.known(db, sp, n)?.oid).filter((o): o is number => o !== undefined);
        if (oids.length === names.length) void cat.writeSet(db, oids);
      });
    }
  }

  /** Applies invalidations: at once when everything is known (shmem), else a promise. */
  private invalidate(writes: readonly Invalidation[]): Promise<unknown> | null {
    const cache = this.cache;
    const db = this.id.database;
    let ddl = false;
    const names: string[] = [];
    for (const w of writes) {
      if (w.kind === 'all') {
        cache.catalog.forget(); // a DDL without a table (CREATE TRIGGER...) may change what writes drag along
        return cache.bump([`d:${db}`], 'all');
      }
      if (w.kind === 'tables') {
        ddl ||= w.ddl;
        for (const r of w.relations) if (!names.includes(r)) names.push(r);
      }
    }
    if (ddl) cache.catalog.forget();
    // The common case: everything known already (prefetched when the write was sent).
    const sp0 = this.searchPathNow;
    const known = names.map((n) => cache.catalog.known(db, sp0, n));
    if (known.every((r) => r != null)) {
      const set = cache.catalog.knownWriteSet(db, known.map((r) => r!.oid));
      if (set !== undefined) return set.all ? cache.bump([`d:${db}`], 'all') : cache.bump(QueryCache.genNames(db, set.oids).slice(2), 'write');
    }
    const run = async (): Promise<unknown> => {
      const sp = this.searchPathNow;
      const missing = names.filter((n) => cache.catalog.known(db, sp, n) === undefined);
      if (missing.length > 0) await cache.catalog.lookup(db, sp, missing);
      const oids: number[] = [];
      for (const n of names) {
        const r = cache.catalog.known(db, sp, n);
        if (r == null) return cache.bump([`d:${db}`], 'all'); // dropped, renamed, or unknown: everything
        oids.push(r.oid);
      }
      const set = await cache.catalog.writeSet(db, oids);
      if (set.all) return cache.bump([`d:${db}`], 'all');
      return cache.bump(QueryCache.genNames(db, set.oids).slice(2), ddl ? 'ddl' : 'write');
    };
    return run();
  }

  /** search_path for resolving written tables (the session's when it sent them). */
  private searchPathNow = '';
}

/**
 * textVerdict, remembered by text (per process) while the classifier and the table lists stay. By
 * text rather than by the classifier's verdict object: the classifier keeps only its grammar
 * verdicts, so a plain SELECT's class is a new object on every request (pgbench -M simple's hot
 * keys: a thousand texts), and a WeakMap entry per request was work for the collector. Bounded:
 * emptied when full.
 */
const VERDICTS_MAX = 4096;
/** The most statements a pipeline answered from the cache may hold (a longer one goes the full way). */
const PIPELINE_MAX = 1000;
interface TextMemo {
  readonly cls: QueryClass;
  readonly by: Classifier;
  readonly lists: TableLists;
  readonly tv: TextVerdict;
  /** Its relations as last resolved (by any session; checked before use). */
  res: Resolution | null;
}
const verdicts = new Map<string, TextMemo>();
function memoTextVerdict(sql: string, cls: QueryClass, lists: TableLists, by: Classifier): TextMemo {
  const m = verdicts.get(sql);
  if (m !== undefined && m.lists === lists && m.by === by) return m;
  const made: TextMemo = { cls, by, lists, tv: textVerdict(sql, cls, lists), res: null };
  if (sql.length <= 8192) {
    if (verdicts.size >= VERDICTS_MAX) verdicts.clear();
    verdicts.set(sql, made);
  }
  return made;
}

/**
 * The cacheable extended-protocol shapes, [Parse] Bind [Describe] Execute Sync, as shape() codes
 * them (base-8 digits: P 1, B 2, Ds 3, Dp 4, E 5, S 6; no string built and no regular expression
 * run per request) → the shape's name in the key ('PBDpES': what pgbench -M extended sends).
 */
const SHAPE_TOKENS: Readonly<Record<string, number>> = { P: 1, B: 2, Ds: 3, Dp: 4, E: 5, S: 6 };
const SHAPES = new Map<number, string>(['PBDsES', 'PBDpES', 'BDsES', 'BDpES', 'PBES', 'BES'].map((name) => {
  let code = 0;
  for (const t of name.match(/Ds|Dp|[PBES]/g)!) code = code * 8 + SHAPE_TOKENS[t]!;
  return [code, name];
}));

/**
 * The generations' part of a shmem key (QueryCache.gensKey), kept with the resolution while its
 * counters stand: a hit converts no number to a string.
 */
function gensOf(res: Resolution): string {
  const cells = res.cells!;
  const at = res.gensAt;
  if (at !== null) {
    let same = true;
    for (let i = 0; i < cells.length; i++) if (cells[i]!.n !== at[i]) { same = false; break; }
    if (same) return res.gens;
  }
  res.gensAt = cells.map((c) => c.n);
  res.gens = QueryCache.gensKey(cells);
  return res.gens;
}

/** Bytes `start`..`end` of a buffer as a latin1 string (Buffer.prototype.latin1Slice: no view made, toString's checks skipped). */
function latin1(b: Buffer, start: number, end: number): string {
  return end <= start ? '' : (b as unknown as { latin1Slice(start: number, end: number): string }).latin1Slice(start, end);
}

/** The parameter type part (after the statement name and the SQL) of the Parse frame at `start`..`end` of `buf`, latin1. */
function parseTypes(buf: Buffer, start: number, end: number): string {
  const nameEnd = buf.indexOf(0, start + 5);
  const sqlEnd = nameEnd < 0 || nameEnd >= end ? -1 : buf.indexOf(0, nameEnd + 1);
  return sqlEnd < 0 || sqlEnd >= end ? '' : latin1(buf, sqlEnd + 1, end);
}

/**
 * The index of hot requests of each cache (SessionCache.hotHit), shared by the process's
 * sessions: a hit of one fills it for all with the same settings (pgbench's 16 clients send the
 * same 1,000 requests). Bounded (HOT_MAX entries, HOT_BYTES of requests and bookkeeping): emptied
 * when full. It holds the store's entries, whose answers it drops when they leave the store
 * (ShmemStore.live), so memqcache_total_size still bounds them.
 */
interface HotIndex {
  readonly map: Map<number, HotEntry>;
  /** Bytes counted for its entries since it was last emptied (replaced ones too: an over-count). */
  bytes: number;
}
const HOT_MAX = 8192;
const HOT_BYTES = 4 * 1024 * 1024;
/** Bytes counted per entry beside its request (the entry, the map's slot). */
const HOT_ENTRY_OVERHEAD = 160;
/** Longer requests (or statements) are not indexed (their hits go the usual way). */
const HOT_MAX_BYTES = 2048;
const hotIndexes = new WeakMap<QueryCache, HotIndex>();
function hotIndex(cache: QueryCache): HotIndex {
  let m = hotIndexes.get(cache);
  if (m === undefined) {
    m = { map: new Map(), bytes: 0 };
    hotIndexes.set(cache, m);
  }
  return m;
}

/**
 * One buffer per Parse frame content in the process (HotEntry.frame), so that hotHit compares
 * each session's statement with it once. Bounded like the index (emptied when full).
 */
const frames = new Map<string, Buffer>();
let framesBytes = 0;
function canonicalFrame(frame: Buffer): Buffer {
  const k = frame.toString('latin1');
  let c = frames.get(k);
  if (c === undefined) {
    if (frames.size >= HOT_MAX || framesBytes + frame.length * 2 > HOT_BYTES) {
      frames.clear();
      framesBytes = 0;
    }
    c = Buffer.from(frame);
    frames.set(k, c);
    framesBytes += frame.length * 2 + HOT_ENTRY_OVERHEAD;
  }
  return c;
}

/**
 * FNV-1a of a request's length and every byte (at most HOT_MAX_BYTES: a literal in the middle of a
 * long text must tell requests apart), from `seed`: no string made. Equal hashes are confirmed by
 * comparing every byte; two requests with one hash share a slot (the later replaces the other).
 */
function hashOf(b: Buffer, seed: number): number {
  const n = b.length;
  let h = Math.imul(0x811c9dc5 ^ seed, 0x01000193) ^ n;
  for (let i = 0; i < n; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h;
}

/** Whether two requests are the same bytes (up to 64, a loop: cheaper than the native call). */
function sameBytes(a: Buffer, b: Buffer): boolean {
  const n = a.length;
  if (n !== b.length) return false;
  if (n > 64) return a.equals(b);
  for (let i = n - 1; i >= 0; i--) if (a[i] !== b[i]) return false;
  return true;
}
