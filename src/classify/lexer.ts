/**
 * Single-pass SQL lexer for the classifier's fast path.
 *
 * It follows PostgreSQL's scanner (scan.l) where the boundaries matter for safety: `--` line
 * comments, nested `/* *\/` comments, '...' strings with '' (standard_conforming_strings on),
 * E'...' strings with backslash escapes, B''/X''/N''/U&'' strings, $tag$ dollar quotes,
 * "quoted" identifiers with "", identifiers that may contain `$`, $n parameters, and operators
 * that stop where a comment starts. Tokens are three numbers in reusable typed arrays (kind,
 * start, end), so lexing allocates nothing per character and nothing per token once the arrays
 * have grown; text is sliced out only for the few tokens the classifier keeps (names).
 *
 * Keywords are compared case-insensitively in place (`kwAt`), never by lower-casing a copy.
 */

/** Token kinds. */
export const Tok = {
  Word: 0,
  QIdent: 1,
  String: 2,
  Number: 3,
  Param: 4,
  Op: 5,
  LParen: 6,
  RParen: 7,
  Comma: 8,
  Semi: 9,
  Dot: 10,
  TypeCast: 11,
  LBracket: 12,
  RBracket: 13,
  Colon: 14,
} as const;
export type TokKind = (typeof Tok)[keyof typeof Tok];

/**
 * Keywords the classifier branches on (ids are small integers; 0 = not one of these).
 * Adding one here is enough for `kwAt` to recognise it.
 */
const KEYWORDS = [
  '', 'select', 'with', 'values', 'table', 'insert', 'update', 'delete', 'merge', 'truncate',
  'create', 'alter', 'drop', 'grant', 'revoke', 'comment', 'security', 'refresh', 'reassign',
  'import', 'begin', 'start', 'commit', 'end', 'rollback', 'abort', 'savepoint', 'release',
  'prepare', 'execute', 'deallocate', 'set', 'reset', 'discard', 'show', 'lock', 'copy',
  'listen', 'notify', 'unlisten', 'declare', 'fetch', 'move', 'close', 'explain', 'call', 'do',
  'vacuum', 'analyze', 'analyse', 'cluster', 'reindex', 'checkpoint', 'load', 'pgpool',
  'into', 'for', 'from', 'join', 'where', 'group', 'having', 'order', 'limit', 'offset',
  'union', 'intersect', 'except', 'window', 'returning', 'on', 'using', 'as', 'only', 'lateral',
  'temp', 'temporary', 'global', 'local', 'unlogged', 'if', 'not', 'exists', 'transaction',
  'isolation', 'level', 'serializable', 'read', 'write', 'session', 'characteristics', 'to',
  'stdout', 'stdin', 'program', 'prepared', 'atomic', 'view', 'sequence', 'recursive', 'or',
  'replace', 'materialized', 'verbose', 'by', 'filter', 'over', 'within', 'partition',
  'grouping', 'sets', 'work', 'chain', 'and', 'no', 'key', 'share', 'all', 'rule',
] as const;
type KwName = Exclude<(typeof KEYWORDS)[number], ''>;

/** Keyword ids by name: `K.select`, `K.from`, ... */
export const K = Object.freeze(
  Object.fromEntries(KEYWORDS.map((k, i) => [k, i]).filter(([k]) => k !== '')),
) as { readonly [P in KwName]: number };

const MAX_KW_LEN = 16;
const kwByLen: number[][] = Array.from({ length: MAX_KW_LEN + 1 }, () => []);
for (let id = 1; id < KEYWORDS.length; id++) kwByLen[(KEYWORDS[id] as string).length]?.push(id);

const enum Ch {
  Tab = 9, Nl = 10, Vt = 11, Ff = 12, Cr = 13, Space = 32, Bang = 33, DQuote = 34, Hash = 35,
  Dollar = 36, Pct = 37, Amp = 38, Quote = 39, LParen = 40, RParen = 41, Star = 42, Plus = 43,
  Comma = 44, Minus = 45, Dot = 46, Slash = 47, D0 = 48, D9 = 57, Colon = 58, Semi = 59,
  Lt = 60, Eq = 61, Gt = 62, Question = 63, At = 64, A = 65, Z = 90, LBracket = 91,
  Backslash = 92, RBracket = 93, Caret = 94, Underscore = 95, Backtick = 96, a = 97, z = 122,
  Pipe = 124, Tilde = 126,
}

const isSpace = (c: number): boolean =>
  c === Ch.Space || c === Ch.Nl || c === Ch.Tab || c === Ch.Cr || c === Ch.Ff || c === Ch.Vt;
const isDigit = (c: number): boolean => c >= Ch.D0 && c <= Ch.D9;
const isIdentStart = (c: number): boolean =>
  (c >= Ch.a && c <= Ch.z) || (c >= Ch.A && c <= Ch.Z) || c === Ch.Underscore || c >= 128;
const isIdentCont = (c: number): boolean => isIdentStart(c) || isDigit(c) || c === Ch.Dollar;
const isOpChar = (c: number): boolean =>
  c === Ch.Plus || c === Ch.Minus || c === Ch.Star || c === Ch.Slash || c === Ch.Lt ||
  c === Ch.Gt || c === Ch.Eq || c === Ch.Tilde || c === Ch.Bang || c === Ch.At ||
  c === Ch.Hash || c === Ch.Pct || c === Ch.Caret || c === Ch.Amp || c === Ch.Pipe ||
  c === Ch.Backtick || c === Ch.Question;

/** Reusable token storage plus what the lexer noticed about the text. */
export class TokenBuffer {
  kind: Uint8Array;
  start: Int32Array;
  end: Int32Array;
  count = 0;
  src = '';
  /** Unterminated string, quoted identifier, dollar quote or comment. */
  error = false;
  /** The text starts with white space. */
  leadingSpace = false;
  /** The first thing after optional white space is a comment. */
  leadingComment = false;
  /** A leading comment reads NO LOAD BALANCE. */
  noLoadBalance = false;
  /** A backslash inside a standard '...' literal (meaningful only if standard_conforming_strings is off). */
  backslashInString = false;

  constructor(capacity = 64) {
    this.kind = new Uint8Array(capacity);
    this.start = new Int32Array(capacity);
    this.end = new Int32Array(capacity);
  }

  private grow(): void {
    const cap = this.kind.length * 2;
    const k = new Uint8Array(cap); k.set(this.kind); this.kind = k;
    const s = new Int32Array(cap); s.set(this.start); this.start = s;
    const e = new Int32Array(cap); e.set(this.end); this.end = e;
  }

  push(kind: TokKind, start: number, end: number): void {
    if (this.count === this.kind.length) this.grow();
    const n = this.count++;
    this.kind[n] = kind;
    this.start[n] = start;
    this.end[n] = end;
  }

  /** Kind of token i, or -1 past the end. */
  k(i: number): number {
    return i < this.count ? (this.kind[i] as number) : -1;
  }

  /** Keyword id of token i (0 if not a listed keyword or not a bare word). */
  kwAt(i: number): number {
    if (i >= this.count || this.kind[i] !== Tok.Word) return 0;
    const s = this.start[i] as number;
    const len = (this.end[i] as number) - s;
    if (len > MAX_KW_LEN) return 0;
    const bucket = kwByLen[len] as number[];
    const src = this.src;
    let c0 = src.charCodeAt(s);
    if (c0 >= Ch.A && c0 <= Ch.Z) c0 |= 0x20;
    outer: for (let b = 0; b < bucket.length; b++) {
      const id = bucket[b] as number;
      const kw = KEYWORDS[id] as string;
      if (kw.charCodeAt(0) !== c0) continue;
      for (let j = 1; j < len; j++) {
        let c = src.charCodeAt(s + j);
        if (c >= Ch.A && c <= Ch.Z) c |= 0x20;
        if (c !== kw.charCodeAt(j)) continue outer;
      }
      return id;
    }
    return 0;
  }

  /** Raw text of token i. */
  text(i: number): string {
    return this.src.slice(this.start[i], this.end[i]);
  }

  /** Identifier value of token i as PostgreSQL sees it: bare words folded to lower case, quotes removed. */
  ident(i: number): string {
    const t = this.text(i);
    if (this.kind[i] !== Tok.QIdent) return t.toLowerCase();
    // U&"..." keeps its escapes undecoded; good enough for names we only compare.
    const q = t.indexOf('"');
    return t.slice(q + 1, -1).replace(/""/g, '"');
  }

  reset(src: string): void {
    this.src = src;
    this.count = 0;
    this.error = false;
    this.leadingSpace = false;
    this.leadingComment = false;
    this.noLoadBalance = false;
    this.backslashInString = false;
  }
}

/** Scans a '...' literal whose opening quote is at q; returns the index after it, or -1. */
function scanQuoted(src: string, q: number, backslashEscapes: boolean, buf: TokenBuffer): number {
  const n = src.length;
  let i = q + 1;
  while (i < n) {
    const c = src.charCodeAt(i);
    if (c === Ch.Quote) {
      if (src.charCodeAt(i + 1) === Ch.Quote) { i += 2; continue; }
      return i + 1;
    }
    if (c === Ch.Backslash) {
      if (backslashEscapes) { i += 2; continue; }
      buf.backslashInString = true;
    }
    i++;
  }
  return -1;
}

/** Scans a "..." identifier whose opening quote is at q; returns the index after it, or -1. */
function scanQIdent(src: string, q: number): number {
  const n = src.length;
  let i = q + 1;
  while (i < n) {
    if (src.charCodeAt(i) === Ch.DQuote) {
      if (src.charCodeAt(i + 1) === Ch.DQuote) { i += 2; continue; }
      return i + 1;
    }
    i++;
  }
  return -1;
}

/** Skips a nested block comment starting at i ("/*"); returns the index after it, or -1. */
function skipBlockComment(src: string, i: number): number {
  const n = src.length;
  let depth = 1;
  i += 2;
  while (i < n) {
    const c = src.charCodeAt(i);
    if (c === Ch.Star && src.charCodeAt(i + 1) === Ch.Slash) {
      i += 2;
      if (--depth === 0) return i;
    } else if (c === Ch.Slash && src.charCodeAt(i + 1) === Ch.Star) {
      depth++;
      i += 2;
    } else i++;
  }
  return -1;
}

/** If a dollar-quote opening tag starts at i, returns the index after its closing `$`, else -1. */
function dollarTagEnd(src: string, i: number): number {
  const n = src.length;
  let j = i + 1;
  if (j < n && src.charCodeAt(j) === Ch.Dollar) return j + 1;
  if (j >= n || !isIdentStart(src.charCodeAt(j))) return -1;
  j++;
  while (j < n) {
    const c = src.charCodeAt(j);
    if (c === Ch.Dollar) return j + 1;
    if (!isIdentStart(c) && !isDigit(c)) return -1;
    j++;
  }
  return -1;
}

const NO_LB = /^\s*no\s+load\s+balance\s*$/i;

/**
 * Tokenizes `src` into `buf` (reset first). Returns false when a quoted construct or a comment
 * is unterminated (then `buf.error` is set and the tokens are incomplete).
 */
export function lex(src: string, buf: TokenBuffer): boolean {
  buf.reset(src);
  const n = src.length;
  let i = 0;
  let sawSignificant = false;
  if (n > 0 && isSpace(src.charCodeAt(0))) buf.leadingSpace = true;
  while (i < n) {
    const c = src.charCodeAt(i);
    if (isSpace(c)) { i++; continue; }
    const c1 = i + 1 < n ? src.charCodeAt(i + 1) : 0;
    if (c === Ch.Minus && c1 === Ch.Minus) {
      if (!sawSignificant) buf.leadingComment = true;
      i += 2;
      while (i < n) {
        const d = src.charCodeAt(i);
        if (d === Ch.Nl || d === Ch.Cr) break;
        i++;
      }
      continue;
    }
    if (c === Ch.Slash && c1 === Ch.Star) {
      const e = skipBlockComment(src, i);
      if (e < 0) { buf.error = true; return false; }
      if (!sawSignificant) {
        buf.leadingComment = true;
        if (e - i < 64 && NO_LB.test(src.slice(i + 2, e - 2))) buf.noLoadBalance = true;
      }
      i = e;
      continue;
    }
    sawSignificant = true;
    if (isIdentStart(c)) {
      let j = i + 1;
      while (j < n && isIdentCont(src.charCodeAt(j))) j++;
      if (j === i + 1) {
        const lc = c | 0x20;
        const nx = src.charCodeAt(j);
        if (nx === Ch.Quote && (lc === 0x65 /* e */ || lc === 0x62 /* b */ || lc === 0x78 /* x */ || lc === 0x6e /* n */)) {
          const e = scanQuoted(src, j, lc === 0x65, buf);
          if (e < 0) { buf.error = true; return false; }
          buf.push(Tok.String, i, e);
          i = e;
          continue;
        }
        if (lc === 0x75 /* u */ && nx === Ch.Amp) {
          const q = src.charCodeAt(j + 1);
          if (q === Ch.Quote || q === Ch.DQuote) {
            const e = q === Ch.Quote ? scanQuoted(src, j + 1, false, buf) : scanQIdent(src, j + 1);
            if (e < 0) { buf.error = true; return false; }
            buf.push(q === Ch.Quote ? Tok.String : Tok.QIdent, i, e);
            i = e;
            continue;
          }
        }
      }
      buf.push(Tok.Word, i, j);
      i = j;
      continue;
    }
    if (isDigit(c) || (c === Ch.Dot && isDigit(c1))) {
      let j = i;
      while (j < n && isDigit(src.charCodeAt(j))) j++;
      if (src.charCodeAt(j) === Ch.Dot && src.charCodeAt(j + 1) !== Ch.Dot) {
        j++;
        while (j < n && isDigit(src.charCodeAt(j))) j++;
      }
      const ec = src.charCodeAt(j) | 0x20;
      if (ec === 0x65) {
        let k = j + 1;
        const sc = src.charCodeAt(k);
        if (sc === Ch.Plus || sc === Ch.Minus) k++;
        if (isDigit(src.charCodeAt(k))) {
          j = k;
          while (j < n && isDigit(src.charCodeAt(j))) j++;
        }
      }
      buf.push(Tok.Number, i, j);
      i = j;
      continue;
    }
    switch (c) {
      case Ch.Quote: {
        const e = scanQuoted(src, i, false, buf);
        if (e < 0) { buf.error = true; return false; }
        buf.push(Tok.String, i, e);
        i = e;
        continue;
      }
      case Ch.DQuote: {
        const e = scanQIdent(src, i);
        if (e < 0) { buf.error = true; return false; }
        buf.push(Tok.QIdent, i, e);
        i = e;
        continue;
      }
      case Ch.Dollar: {
        if (isDigit(c1)) {
          let j = i + 1;
          while (j < n && isDigit(src.charCodeAt(j))) j++;
          buf.push(Tok.Param, i, j);
          i = j;
          continue;
        }
        const tagEnd = dollarTagEnd(src, i);
        if (tagEnd < 0) { buf.push(Tok.Op, i, i + 1); i++; continue; }
        const close = src.indexOf(src.slice(i, tagEnd), tagEnd);
        if (close < 0) { buf.error = true; return false; }
        const e = close + (tagEnd - i);
        buf.push(Tok.String, i, e);
        i = e;
        continue;
      }
      case Ch.LParen: buf.push(Tok.LParen, i, i + 1); i++; continue;
      case Ch.RParen: buf.push(Tok.RParen, i, i + 1); i++; continue;
      case Ch.Comma: buf.push(Tok.Comma, i, i + 1); i++; continue;
      case Ch.Semi: buf.push(Tok.Semi, i, i + 1); i++; continue;
      case Ch.Dot: buf.push(Tok.Dot, i, i + 1); i++; continue;
      case Ch.LBracket: buf.push(Tok.LBracket, i, i + 1); i++; continue;
      case Ch.RBracket: buf.push(Tok.RBracket, i, i + 1); i++; continue;
      case Ch.Colon:
        if (c1 === Ch.Colon) { buf.push(Tok.TypeCast, i, i + 2); i += 2; continue; }
        if (c1 === Ch.Eq) { buf.push(Tok.Op, i, i + 2); i += 2; continue; }
        buf.push(Tok.Colon, i, i + 1); i++; continue;
      default:
        break;
    }
    if (isOpChar(c)) {
      let j = i + 1;
      while (j < n) {
        const d = src.charCodeAt(j);
        if (!isOpChar(d)) break;
        const d1 = src.charCodeAt(j + 1);
        if ((d === Ch.Minus && d1 === Ch.Minus) || (d === Ch.Slash && d1 === Ch.Star)) break;
        j++;
      }
      buf.push(Tok.Op, i, j);
      i = j;
      continue;
    }
    // Anything else (a stray backslash, control characters): keep it as an operator token;
    // PostgreSQL rejects it, so it can only make the statement fail.
    buf.push(Tok.Op, i, i + 1);
    i++;
  }
  return true;
}

/** First keyword of `sql`, lower-cased, skipping white space, comments and opening parentheses ('' if none). */
export function firstKeyword(sql: string): string {
  const n = sql.length;
  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (isSpace(c) || c === Ch.LParen) { i++; continue; }
    if (c === Ch.Minus && sql.charCodeAt(i + 1) === Ch.Minus) {
      while (i < n && sql.charCodeAt(i) !== Ch.Nl && sql.charCodeAt(i) !== Ch.Cr) i++;
      continue;
    }
    if (c === Ch.Slash && sql.charCodeAt(i + 1) === Ch.Star) {
      const e = skipBlockComment(sql, i);
      if (e < 0) return '';
      i = e;
      continue;
    }
    if (!isIdentStart(c)) return '';
    let j = i + 1;
    while (j < n && isIdentCont(sql.charCodeAt(j))) j++;
    return sql.slice(i, j).toLowerCase();
  }
  return '';
}

/**
 * Texts that differ only by the digits of their numeric literals have the same shape: they lex
 * to the same tokens but for the numbers' values, which no verdict of the fast path reads, so the
 * classifier keeps the lexer's verdicts by shape. `pgbench -S` and most ORM texts without bind
 * parameters differ only by such literals: every one went through the lexer (issue 17, item 9).
 * A digit run right after a letter, a digit, `_` or `$` belongs to a word (t1) or to a number's
 * exponent (1e5) and is compared as it is. A text with anything whose contents a digit could be
 * part of without being a number has no shape: a quote, a double quote, a dollar sign (dollar
 * quoting, parameters), a backslash or a comment.
 *
 * shapeHash() is a 30-bit hash of the shape (each number counts as one `0`), or -1 when the text
 * has none; sameShape() compares two texts that have one. Neither builds a string: the lookup
 * costs two scans of the text and a Map lookup by number. (30 bits: a small integer for V8 on
 * every build. A 32-bit unsigned hash is a heap number for half the shapes, and the first text
 * whose hash was one, after code optimized on texts whose hash was not — pgbench's own first
 * query after a warm-up of `pgbench -S` — deoptimized the classifier: issue 21 item 5.)
 */
export function shapeHash(src: string): number {
  const n = src.length;
  let h = 0x811c9dc5;
  let prev = 0;
  for (let i = 0; i < n; i++) {
    const c = src.charCodeAt(i);
    if (c === Ch.Quote || c === Ch.DQuote || c === Ch.Dollar || c === Ch.Backslash) return -1;
    if ((c === Ch.Minus && src.charCodeAt(i + 1) === Ch.Minus) || (c === Ch.Slash && src.charCodeAt(i + 1) === Ch.Star)) return -1;
    if (isDigit(c) && !isIdentCont(prev)) {
      while (i + 1 < n && isDigit(src.charCodeAt(i + 1))) i++;
      h = Math.imul(h ^ Ch.D0, 0x01000193);
      prev = Ch.D0;
      continue;
    }
    h = Math.imul(h ^ c, 0x01000193);
    prev = c;
  }
  return h & 0x3fffffff;
}

/** Whether two texts that have a shape (shapeHash ≥ 0) have the same one. */
export function sameShape(a: string, b: string): boolean {
  return sameShapeFrom(a, b, 0);
}

/** Where `s`'s first digit is (its length when none): the part a text of its shape has as it is. */
export function shapePrefixLength(s: string): number {
  let k = 0;
  while (k < s.length && !isDigit(s.charCodeAt(k))) k++;
  return k;
}

/**
 * sameShape(a, b) when the first `from` characters of both are known equal and a has no digit
 * among them (from ≤ shapePrefixLength(a)): the comparison goes on from there, as sameShape's
 * would have after them. Callers check that prefix with a native comparison (startsWith).
 */
export function sameShapeFrom(a: string, b: string, from: number): boolean {
  const n = a.length;
  const m = b.length;
  let i = from;
  let j = from;
  let prev = from > 0 ? a.charCodeAt(from - 1) : 0;
  while (i < n && j < m) {
    const c = a.charCodeAt(i);
    const d = b.charCodeAt(j);
    if (isDigit(c) && !isIdentCont(prev)) {
      if (!isDigit(d)) return false;
      while (i < n && isDigit(a.charCodeAt(i))) i++;
      while (j < m && isDigit(b.charCodeAt(j))) j++;
      prev = Ch.D0;
      continue;
    }
    if (c !== d) return false;
    prev = c;
    i++;
    j++;
  }
  return i === n && j === m;
}
