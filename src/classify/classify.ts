/**
 * classify(sql) → QueryClass: what a query string is and whether a read-only standby may run it.
 *
 * Pipeline (every client query passes here, synchronously):
 *  1. LRU cache by exact text (only texts ≤ maxParseLength, only results the parser produced),
 *     then the lexer's verdicts by shape (lexer.ts shapeHash: texts that differ only by the
 *     digits of their numbers; only texts without quotes, dollars, backslashes or comments, only
 *     when primary_routing_query_pattern_list is empty, admin commands never).
 *  2. Lexer fast path (lexer.ts + fast-path.ts): splits statements on top-level ';' and decides
 *     most statements alone: BEGIN/COMMIT/SET/SHOW/INSERT/UPDATE/DELETE/DDL by their keywords,
 *     and plain SELECTs whose function calls are all on the built-in allowlist (functions.ts).
 *  3. libpg-query when the lexer is not certain (unknown functions, WITH, INSERT/UPDATE/DELETE/
 *     INTO/FOR tokens inside a SELECT, unusual syntax). A grammar error → kind 'unknown',
 *     readOnly false.
 *  4. Options and comment rules (options.ts), which can only turn readOnly from true to false.
 *
 * FAIL CLOSED: readOnly is true only when the text is positively known to be read-only.
 * If the parser is not loaded yet (before initClassifier() resolves) or the text is longer than
 * maxParseLength (default 8 KB), the lexer's conservative verdict stands: parsing a 200 KB
 * statement would block the event loop for every other session (libpg-query is synchronous
 * WASM and also builds a JSON tree proportional to the input), while a lexer pass is a linear
 * scan of a few hundred µs at worst. The lexer's verdict is read-only only for statements it
 * can prove read-only from tokens alone (see fast-path.ts); anything else goes to the primary.
 *
 * Multi-statement strings ('a; b'): readOnly only if every statement is; `kind` is the kind of
 * the first non-empty statement; `statements` counts non-empty statements; functions, relations
 * and flags are the union over all statements.
 */
import { TokenBuffer, Tok, lex, sameShape, sameShapeFrom, shapeHash, shapePrefixLength } from './lexer';
import { classifyRange } from './fast-path';
import { classifyStmt } from './tree';
import { loadParser, parseSql, parserReady } from './parser';
import { LruCache } from '../util/lru-cache';
import { compileOptions, functionVerdict, matchesPrimaryRouting, type CompiledOptions } from './options';
import { newCollector, type Collector, type StmtVerdict } from './verdict';
import type {
  Classifier, ClassifierStats, ClassifyOptions, ParsedBy, QueryClass, QueryFlags, QueryKind, ShapeHint,
} from './types';

const DEFAULT_CACHE_SIZE = 10_000;

/** Statement kinds that change session state (see session-effects.ts): flagged for the session core. */
const SESSION_KINDS: ReadonlySet<QueryKind> = new Set(['set', 'reset', 'discard', 'deallocate', 'prepare', 'execute', 'listen', 'unlisten', 'cursor']);
const DEFAULT_MAX_PARSE_LENGTH = 8192;

/** Shared token storage: classification is synchronous and never re-entered. */
const tokens = new TokenBuffer(256);

/** Loads the WASM grammar; classify() is fully functional (not only fail-closed) after it resolves. */
export function initClassifier(): Promise<void> {
  return loadParser();
}

interface Base {
  kind: QueryKind;
  readOnly: boolean;
  statements: number;
  col: Collector;
  parsedBy: ParsedBy;
  parseError?: string;
  /** The verdict needed the parser but it could not be used. */
  failedClosed: boolean;
  /** The lexer's verdict is conservative; the grammar should decide. */
  needParser?: boolean;
}

/** Lexer pass over every statement; returns undefined if the lexer itself failed (unterminated quote/comment). */
function lexerPass(sql: string): Base | undefined {
  if (!lex(sql, tokens)) return undefined;
  const col = newCollector();
  let kind: QueryKind | undefined;
  let readOnly = true;
  let needParser = false;
  let statements = 0;
  let depth = 0;
  let start = 0;
  const n = tokens.count;
  for (let i = 0; i <= n; i++) {
    const k = i < n ? tokens.kind[i] : Tok.Semi;
    if (k === Tok.LParen) depth++;
    else if (k === Tok.RParen) depth--;
    else if (k === Tok.Semi) {
      // A ';' inside parentheses (CREATE RULE ... DO (a; b)) needs the grammar to split.
      if (depth !== 0 && i < n) needParser = true;
      if (i > start) {
        const verdict: StmtVerdict = classifyRange(tokens, start, i, col);
        if (SESSION_KINDS.has(verdict.kind)) col.flags.sessionEffects = true;
        statements++;
        if (kind === undefined) kind = verdict.kind;
        readOnly = readOnly && verdict.readOnly;
        needParser = needParser || verdict.needParser;
      }
      start = i + 1;
    }
  }
  if (needParser) readOnly = false;
  return {
    kind: kind ?? 'empty', readOnly: statements === 0 ? true : readOnly, statements, col,
    parsedBy: 'lexer', failedClosed: false, needParser,
  };
}

/** Grammar pass: authoritative. */
function parserPass(sql: string): Base {
  const col = newCollector();
  let stmts;
  try {
    stmts = parseSql(sql);
  } catch (err) {
    return {
      kind: 'unknown', readOnly: false, statements: 0, col, parsedBy: 'parser',
      parseError: (err as Error).message || String(err), failedClosed: false,
    };
  }
  let kind: QueryKind | undefined;
  let readOnly = true;
  for (const s of stmts) {
    const verdict = classifyStmt(s.stmt, col);
    if (SESSION_KINDS.has(verdict.kind)) col.flags.sessionEffects = true;
    if (kind === undefined) kind = verdict.kind;
    readOnly = readOnly && verdict.readOnly;
  }
  return { kind: kind ?? 'empty', readOnly, statements: stmts.length, col, parsedBy: 'parser', failedClosed: false };
}

/** A text and the lexer's verdict on it, kept for the texts of its shape. */
interface ShapeEntry {
  readonly sql: string;
  readonly cls: QueryClass;
}

/** Creates a classifier with its own compiled options and cache. */
export function createClassifier(opts: ClassifyOptions = {}): Classifier {
  const o: CompiledOptions = compileOptions(opts);
  const maxParse = opts.maxParseLength ?? DEFAULT_MAX_PARSE_LENGTH;
  const cache = new LruCache<QueryClass>(opts.cacheSize ?? DEFAULT_CACHE_SIZE);
  /**
   * The lexer's verdicts by shape (see the header): shapeHash → a text of that shape and its
   * verdict (a hash shared by two shapes keeps the later one). Oldest first out when full: a hit
   * moves nothing (the LRU's delete and insert per hit made V8 rehash the Map). Null when
   * primary_routing_query_pattern_list reads the whole text.
   */
  const shapes = o.primaryRouting.length === 0 ? new Map<number, ShapeEntry>() : null;
  const shapeCap = Math.max(0, opts.cacheSize ?? DEFAULT_CACHE_SIZE);
  /** The last shape any caller of classifyLike() met (see there). */
  const shared: ShapeHint = { sql: '', prefix: '', cls: null, by: null };
  let hits = 0;
  let misses = 0;
  let lexerDecided = 0;
  let parsed = 0;
  let failedClosed = 0;

  function finish(sql: string, base: Base): QueryClass {
    const col = base.col;
    const flags: QueryFlags = { ...col.flags, parsedBy: base.parsedBy };
    if (base.parseError !== undefined) flags.parseError = base.parseError;
    let readOnly = base.readOnly;
    let reason: string | undefined;
    if (readOnly && base.statements > 0) {
      const fv = functionVerdict(col.functions, o);
      if (fv === 'check') flags.needsVolatilityCheck = true;
      else if (fv !== '') reason = fv;
      if (reason === undefined) {
        if (tokens.noLoadBalance) reason = 'NO LOAD BALANCE comment';
        else if (!o.allowSqlComments && tokens.leadingComment) reason = 'allow_sql_comments is off and the query starts with a comment';
        else if (!o.ignoreLeadingWhiteSpace && tokens.leadingSpace) reason = 'ignore_leading_white_space is off and the query starts with white space';
        else if (!o.standardConformingStrings && tokens.backslashInString) reason = 'backslash in a literal with standard_conforming_strings off';
        else if (matchesPrimaryRouting(sql, o)) reason = 'primary_routing_query_pattern_list';
      }
      if (reason !== undefined) {
        readOnly = false;
        flags.primaryReason = reason;
        delete flags.needsVolatilityCheck;
      }
    }
    const out: { -readonly [P in keyof QueryClass]: QueryClass[P] } = {
      kind: base.kind, readOnly, statements: base.statements,
      functions: col.functions, relations: col.relations, flags,
    };
    if (col.admin) out.admin = col.admin;
    return out;
  }

  function classify(sql: string): QueryClass {
    const res = classifyText(sql, null);
    // The shared token buffer must not keep the text alive: a large one (a V8 large object) would
    // be promoted by the next young collection and wait in old space for a full one.
    tokens.src = '';
    return res;
  }

  /**
   * See Classifier.classifyLike. A text with the same shape as a text the lexer decided gets the
   * same verdict (the premise of the shape cache), and sameShape() of a text that has a shape is
   * true only for a text that has one too, with the same hash: so this answers what the shape
   * cache would (and what the lexer would, should that entry have been evicted since).
   */
  function classifyLike(sql: string, hint: ShapeHint): QueryClass {
    // A caller with no shape of this classifier yet (a new session's first text) is served by the
    // last shape any caller met: a client that connects per request sends one text per session,
    // and its first text took the hash and the Map lookup every time, then a code path the
    // sessions' later texts never took (issue 21 item 5).
    const h = hint.by === self ? hint : shared; // (by is set with cls, by remember())
    const last = h.cls;
    // (The part before the first digit is compared natively: startsWith, then the loop on the rest.)
    if (last !== null && sql.length <= maxParse
      && (h.sql === sql || (sql.startsWith(h.prefix) && sameShapeFrom(h.sql, sql, h.prefix.length)))) {
      hits++;
      if (h !== hint) {
        hint.sql = h.sql;
        hint.prefix = h.prefix;
        hint.cls = last;
        hint.by = self;
      }
      return last;
    }
    const res = classifyText(sql, hint);
    tokens.src = '';
    return res;
  }

  function classifyText(sql: string, hint: ShapeHint | null): QueryClass {
    const cacheable = sql.length <= maxParse;
    if (cacheable && cache.size > 0) {
      const hit = cache.get(sql);
      if (hit !== undefined) {
        hits++;
        return hit;
      }
    }
    const shape = shapes !== null && cacheable ? shapeHash(sql) : -1;
    if (shape >= 0) {
      const hit = shapes!.get(shape);
      if (hit !== undefined && (hit.sql === sql || sameShape(hit.sql, sql))) {
        hits++;
        if (hint !== null) remember(hint, hit);
        return hit.cls;
      }
    }
    const lexed = lexerPass(sql);
    if (lexed !== undefined && lexed.needParser !== true) {
      lexerDecided++;
      if (shape < 0 || lexed.col.admin !== undefined || shapeCap === 0) return finish(sql, lexed);
      const res = freeze(finish(sql, lexed));
      if (shapes!.size >= shapeCap && !shapes!.has(shape)) shapes!.delete(shapes!.keys().next().value as number);
      const entry = { sql, cls: res };
      shapes!.set(shape, entry);
      if (hint !== null) remember(hint, entry);
      return res;
    }
    if (cacheable && parserReady()) {
      misses++;
      parsed++;
      // The lexer flags (leading comment, ...) must come from this text: lexerPass ran on it,
      // or lexing failed, in which case the parser reports the error and readOnly is false anyway.
      const res = freeze(finish(sql, parserPass(sql)));
      cache.set(sql, res);
      return res;
    }
    failedClosed++;
    if (lexed === undefined) {
      return finish(sql, {
        kind: 'unknown', readOnly: false, statements: 0, col: newCollector(), parsedBy: 'lexer',
        parseError: 'unterminated quoted string, identifier or comment', failedClosed: true,
      });
    }
    return finish(sql, { ...lexed, failedClosed: true });
  }

  function remember(hint: ShapeHint, e: ShapeEntry): void {
    if (hint.sql !== e.sql) {
      if (shared.sql === e.sql) hint.prefix = shared.prefix;
      else {
        const k = shapePrefixLength(e.sql);
        hint.prefix = k === e.sql.length ? e.sql : e.sql.slice(0, k);
      }
    }
    hint.sql = e.sql;
    hint.cls = e.cls;
    hint.by = self;
    if (hint !== shared) {
      shared.sql = hint.sql;
      shared.prefix = hint.prefix;
      shared.cls = hint.cls;
      shared.by = self;
    }
  }

  const self: Classifier = {
    classify,
    classifyLike,
    stats: (): ClassifierStats => ({
      hits, misses, size: cache.size, capacity: cache.capacity, lexerDecided, parsed, failedClosed,
    }),
  };
  return self;
}

function freeze(q: QueryClass): QueryClass {
  Object.freeze(q.functions);
  Object.freeze(q.relations);
  Object.freeze(q.flags);
  if (q.admin) Object.freeze(q.admin);
  return Object.freeze(q);
}

let defaultClassifier: Classifier | undefined;
const byOptions = new WeakMap<ClassifyOptions, Classifier>();

/**
 * Classifies with a classifier built for `opts` (memoised per options object; pass the same
 * object each time, or better hold a createClassifier() result).
 */
export function classify(sql: string, opts?: ClassifyOptions): QueryClass {
  if (opts === undefined) {
    defaultClassifier ??= createClassifier();
    return defaultClassifier.classify(sql);
  }
  let c = byOptions.get(opts);
  if (!c) {
    c = createClassifier(opts);
    byOptions.set(opts, c);
  }
  return c.classify(sql);
}

/** Cache and path counters of the default classifier (the one classify(sql) without options uses). */
export function classifierStats(): ClassifierStats {
  defaultClassifier ??= createClassifier();
  return defaultClassifier.stats();
}
