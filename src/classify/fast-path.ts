/**
 * Lexer-only classification of one statement (a token range of a TokenBuffer).
 *
 * Every verdict returned here is conservative: readOnly is true only when the tokens prove it
 * (a SELECT/VALUES/TABLE/WITH with no INSERT/UPDATE/DELETE/MERGE/INTO/FOR token, balanced
 * parentheses, and only allowlisted function calls). `needParser` says the grammar must decide
 * (unknown functions, WITH, ambiguous keywords); when it cannot be used (before init, or text
 * over the parse cap) the caller fails closed: the statement goes to the primary.
 *
 * What the lexer path reports in `relations`: for reads, every name after FROM/JOIN/TABLE and
 * after commas in a FROM list at the same depth (a superset: CTE names and a few false
 * positives such as `extract(x from col)` are included, which only biases toward the primary);
 * for INSERT/UPDATE/DELETE/MERGE/TRUNCATE/COPY, the target table only.
 */
import { K, Tok, type TokenBuffer } from './lexer';
import { isSafeFunction } from './functions';
import { addUnique, type Collector, type StmtVerdict } from './verdict';
import type { QueryKind } from './types';

/** Words that are never function names when followed by '(' (PostgreSQL reserved and col_name keywords). */
const NON_FUNCTION_WORDS: ReadonlySet<string> = new Set([
  'all', 'analyse', 'analyze', 'and', 'any', 'array', 'as', 'asc', 'asymmetric', 'both', 'case',
  'cast', 'check', 'collate', 'column', 'constraint', 'create', 'current_catalog', 'current_date',
  'current_role', 'current_time', 'current_timestamp', 'current_user', 'default', 'deferrable',
  'desc', 'distinct', 'do', 'else', 'end', 'except', 'false', 'fetch', 'for', 'foreign', 'from',
  'grant', 'group', 'having', 'in', 'initially', 'intersect', 'into', 'lateral', 'leading',
  'limit', 'localtime', 'localtimestamp', 'not', 'null', 'offset', 'on', 'only', 'or', 'order',
  'placing', 'primary', 'references', 'returning', 'select', 'session_user', 'some', 'symmetric',
  'table', 'then', 'to', 'trailing', 'true', 'union', 'unique', 'user', 'using', 'variadic',
  'when', 'where', 'window', 'with',
  'between', 'bigint', 'bit', 'boolean', 'char', 'character', 'coalesce', 'dec', 'decimal',
  'exists', 'extract', 'float', 'greatest', 'grouping', 'inout', 'int', 'integer', 'interval',
  'least', 'national', 'nchar', 'none', 'normalize', 'nullif', 'numeric', 'out', 'overlay',
  'position', 'precision', 'real', 'row', 'setof', 'smallint', 'substring', 'time', 'timestamp',
  'treat', 'trim', 'values', 'varchar', 'xmlattributes', 'xmlconcat', 'xmlelement', 'xmlexists',
  'xmlforest', 'xmlnamespaces', 'xmlparse', 'xmlpi', 'xmlroot', 'xmlserialize', 'xmltable',
]);

/** pgpool-II SHOW commands the proxy answers itself. */
export const ADMIN_SHOW: ReadonlySet<string> = new Set([
  'pool_nodes', 'pool_processes', 'pool_pools', 'pool_version', 'pool_status',
  'pool_health_check_stats', 'pool_backend_stats', 'pool_cache', 'pool_leases',
]);

const v = (kind: QueryKind, readOnly: boolean, needParser = false): StmtVerdict => ({ kind, readOnly, needParser });

/** Index of the last token of a dotted name starting at i (word/qident (. word/qident)*). */
function chainEnd(buf: TokenBuffer, i: number, b: number): number {
  let j = i;
  while (j + 2 < b && buf.kind[j + 1] === Tok.Dot) {
    const nk = buf.kind[j + 2];
    if (nk !== Tok.Word && nk !== Tok.QIdent) break;
    j += 2;
  }
  return j;
}

/** The dotted name i..j as PostgreSQL resolves it ('schema.name'). */
function chainName(buf: TokenBuffer, i: number, j: number): string {
  if (i === j) return buf.ident(i);
  let s = buf.ident(i);
  for (let t = i + 2; t <= j; t += 2) s += '.' + buf.ident(t);
  return s;
}

const isName = (buf: TokenBuffer, i: number, b: number): boolean =>
  i < b && (buf.kind[i] === Tok.Word || buf.kind[i] === Tok.QIdent);

/** Reads a (possibly qualified) relation name at i into relations; returns the next index. */
function takeRelation(buf: TokenBuffer, i: number, b: number, out: Collector): number {
  if (!isName(buf, i, b)) return i;
  const j = chainEnd(buf, i, b);
  addUnique(out.relations, chainName(buf, i, j));
  return j + 1;
}

/** Index of the ')' matching the '(' at i, or -1. */
function matchParen(buf: TokenBuffer, i: number, b: number): number {
  let depth = 0;
  for (let t = i; t < b; t++) {
    const k = buf.kind[t];
    if (k === Tok.LParen) depth++;
    else if (k === Tok.RParen && --depth === 0) return t;
  }
  return -1;
}

/** SELECT / VALUES / TABLE / WITH, possibly parenthesised. */
function scanSelect(buf: TokenBuffer, a: number, b: number, out: Collector, startsWithWith: boolean): StmtVerdict {
  let depth = 0;
  let fromMask = 0;
  let expectRel = false;
  let unknownFn = false;
  let writeWord = false;
  let oddFor = false;
  let locking = false;
  let into = false;
  let intoTemp = false;
  for (let i = a; i < b; i++) {
    const k = buf.kind[i];
    if (k === Tok.LParen) {
      if (++depth > 30) return v('read', false, true);
      fromMask &= ~(1 << depth);
      expectRel = false;
      continue;
    }
    if (k === Tok.RParen) {
      fromMask &= ~(1 << depth);
      if (--depth < 0) return v('read', false, true);
      expectRel = false;
      continue;
    }
    if (k === Tok.Comma) {
      if (fromMask & (1 << depth)) expectRel = true;
      continue;
    }
    if (k !== Tok.Word && k !== Tok.QIdent) {
      expectRel = false;
      continue;
    }
    const id = k === Tok.Word ? buf.kwAt(i) : 0;
    if (id !== 0) {
      switch (id) {
        case K.insert: case K.update: case K.delete: case K.merge:
          writeWord = true;
          continue;
        case K.into: {
          into = true;
          let t = i + 1;
          const nk = buf.kwAt(t);
          if (nk === K.temp || nk === K.temporary || nk === K.unlogged || nk === K.local || nk === K.global) {
            if (nk !== K.unlogged) intoTemp = true;
            t++;
            const nk2 = buf.kwAt(t);
            if (nk2 === K.temp || nk2 === K.temporary) { intoTemp = true; t++; }
            if (buf.kwAt(t) === K.table) t++;
          } else if (nk === K.table) t++;
          if (isName(buf, t, b) && buf.kwAt(t) !== K.from) i = takeRelation(buf, t, b, out) - 1;
          continue;
        }
        case K.for: {
          const n1 = buf.kwAt(i + 1);
          const n2 = buf.kwAt(i + 2);
          if (n1 === K.update || n1 === K.share || (n1 === K.no && n2 === K.key) || (n1 === K.key && n2 === K.share)) {
            locking = true;
            i += n1 === K.no ? 3 : n1 === K.key ? 2 : 1;
          } else oddFor = true;
          continue;
        }
        case K.from: case K.join:
          fromMask |= 1 << depth;
          expectRel = true;
          continue;
        case K.table:
          expectRel = true;
          continue;
        case K.where: case K.group: case K.having: case K.order: case K.limit: case K.offset:
        case K.union: case K.intersect: case K.except: case K.window: case K.fetch: case K.returning:
          fromMask &= ~(1 << depth);
          expectRel = false;
          continue;
        case K.on: case K.using:
          expectRel = false;
          continue;
        case K.only: case K.lateral:
          continue;
        default:
          break;
      }
    }
    const j = chainEnd(buf, i, b);
    const callsNext = j + 1 < b && buf.kind[j + 1] === Tok.LParen;
    if (expectRel && !callsNext) {
      addUnique(out.relations, chainName(buf, i, j));
      expectRel = false;
      i = j;
      continue;
    }
    expectRel = false;
    if (callsNext && isCall(buf, a, i, j, k)) {
      const fn = chainName(buf, i, j);
      addUnique(out.functions, fn);
      if (!isSafeFunction(fn)) unknownFn = true;
    }
    i = j;
  }
  // Unbalanced parentheses or a dangling FROM/JOIN: malformed, let the grammar say so.
  if (depth !== 0 || expectRel) return v('read', false, true);
  if (into) {
    out.flags.selectInto = true;
    if (intoTemp) out.flags.createsTemp = true;
  }
  if (locking) out.flags.forUpdate = true;
  if (writeWord) return v('write', false, true);
  const unsure = startsWithWith || oddFor || unknownFn;
  if (into) return v(intoTemp ? 'temp_table' : 'write', false, unsure);
  if (locking) return v('write', false, unsure);
  // `FOR` that is not a locking clause (substring(x for n), ...): only the grammar can tell.
  if (oddFor) return v('read', false, true);
  return v('read', true, unsure);
}

/** Whether the name i..j followed by '(' is a function call (not a type modifier, alias list or keyword). */
function isCall(buf: TokenBuffer, a: number, i: number, j: number, k: number): boolean {
  if (i > a) {
    const pk = buf.kind[i - 1];
    if (pk === Tok.TypeCast) return false;
    if (buf.kwAt(i - 1) === K.as) return false;
  }
  if (i !== j || k !== Tok.Word) return true;
  const id = buf.kwAt(i);
  const prevRParen = i > a && buf.kind[i - 1] === Tok.RParen;
  if ((id === K.filter || id === K.over || id === K.within) && prevRParen) return false;
  if (id === K.by) {
    const p = buf.kwAt(i - 1);
    if (i > a && (p === K.group || p === K.order || p === K.partition)) return false;
  }
  if (id === K.sets && i > a && buf.kwAt(i - 1) === K.grouping) return false;
  return !NON_FUNCTION_WORDS.has(buf.ident(i));
}

/** Scans transaction characteristics (ISOLATION LEVEL SERIALIZABLE, READ WRITE, READ ONLY). */
function txFlags(buf: TokenBuffer, a: number, b: number, out: Collector): void {
  for (let i = a; i < b; i++) {
    const id = buf.kwAt(i);
    if (id === K.serializable) {
      out.flags.isolationSerializable = true;
      out.flags.serializable = true;
    } else if (id === K.read) {
      const n = buf.kwAt(i + 1);
      if (n === K.write) out.flags.readWrite = true;
      else if (n === K.only) out.flags.readOnlyTx = true;
    }
  }
}

/** Source text of tokens a..b-1, trimmed. */
function rest(buf: TokenBuffer, a: number, b: number): string {
  if (a >= b) return '';
  return buf.src.slice(buf.start[a], buf.end[b - 1]).trim();
}

/** Classifies the statement made of tokens [a, b) (no top-level ';' inside). */
export function classifyRange(buf: TokenBuffer, a: number, b: number, out: Collector): StmtVerdict {
  let s = a;
  while (s < b && buf.kind[s] === Tok.LParen) s++;
  const id = buf.kwAt(s);
  if (s > a && id !== K.select && id !== K.values && id !== K.with && id !== K.table) {
    return v('unknown', false, true);
  }
  switch (id) {
    case K.select: case K.values: case K.table:
      return scanSelect(buf, a, b, out, false);
    case K.with:
      return scanSelect(buf, a, b, out, true);
    case K.insert:
      takeRelation(buf, buf.kwAt(s + 1) === K.into ? s + 2 : s + 1, b, out);
      return v('write', false);
    case K.update:
      takeRelation(buf, buf.kwAt(s + 1) === K.only ? s + 2 : s + 1, b, out);
      return v('write', false);
    case K.delete: {
      let t = s + 1;
      if (buf.kwAt(t) === K.from) t++;
      if (buf.kwAt(t) === K.only) t++;
      takeRelation(buf, t, b, out);
      return v('write', false);
    }
    case K.merge:
      takeRelation(buf, buf.kwAt(s + 1) === K.into ? s + 2 : s + 1, b, out);
      return v('write', false);
    case K.truncate: {
      let t = s + 1;
      if (buf.kwAt(t) === K.table) t++;
      if (buf.kwAt(t) === K.only) t++;
      takeRelation(buf, t, b, out);
      return v('write', false);
    }
    case K.create:
      return classifyCreate(buf, s, b, out);
    case K.alter: case K.drop: case K.grant: case K.revoke: case K.comment: case K.security:
    case K.refresh: case K.reassign: case K.import:
      return v('ddl', false);
    case K.begin:
      txFlags(buf, s + 1, b, out);
      return v('begin', false);
    case K.start:
      if (buf.kwAt(s + 1) !== K.transaction) return v('unknown', false, true);
      txFlags(buf, s + 2, b, out);
      return v('begin', false);
    case K.commit: case K.end:
      return v(buf.kwAt(s + 1) === K.prepared ? 'two_phase' : 'commit', false);
    case K.rollback: case K.abort: {
      const n = buf.kwAt(s + 1);
      if (n === K.prepared) return v('two_phase', false);
      for (let t = s + 1; t < b; t++) if (buf.kwAt(t) === K.to) return v('rollback_to', false);
      return v('rollback', false);
    }
    case K.savepoint: return v('savepoint', false);
    case K.release: return v('release', false);
    case K.prepare: return classifyPrepare(buf, s, b, out);
    case K.execute: return v('execute', false);
    case K.deallocate: return v('deallocate', false);
    case K.set: {
      const n = buf.kwAt(s + 1);
      const n2 = buf.kwAt(s + 2);
      if (n === K.transaction || (n === K.session && n2 === K.characteristics) ||
          ((n === K.session || n === K.local) && n2 === K.transaction)) txFlags(buf, s + 1, b, out);
      return v('set', false);
    }
    case K.reset: return v('reset', false);
    case K.discard: return v('discard', false);
    case K.show: {
      if (isName(buf, s + 1, b) && s + 2 >= b) {
        const name = buf.ident(s + 1);
        if (ADMIN_SHOW.has(name)) {
          out.admin = { command: 'SHOW ' + name.toUpperCase(), args: '' };
          return v('admin', false);
        }
      }
      return v('show', true);
    }
    case K.pgpool: {
      const n = buf.kwAt(s + 1);
      if (n === K.show || n === K.set || n === K.reset) {
        out.admin = { command: 'PGPOOL ' + buf.text(s + 1).toUpperCase(), args: rest(buf, s + 2, b) };
        return v('admin', false);
      }
      return v('unknown', false, true);
    }
    case K.lock: return v('lock', false);
    case K.copy: return classifyCopy(buf, s, b, out);
    case K.listen: return v('listen', false);
    case K.notify: return v('notify', false);
    case K.unlisten: return v('unlisten', false);
    case K.declare: case K.fetch: case K.move: case K.close: return v('cursor', false);
    case K.explain: return classifyExplain(buf, s, b, out);
    case K.call: return v('call', false);
    case K.do: return v('write', false);
    case K.vacuum: case K.analyze: case K.analyse: case K.cluster: case K.reindex: case K.checkpoint:
      return v('vacuum', false);
    case K.load: return v('utility', false);
    default:
      return v('unknown', false, true);
  }
}

function classifyCreate(buf: TokenBuffer, s: number, b: number, out: Collector): StmtVerdict {
  let t = s + 1;
  if (buf.kwAt(t) === K.or && buf.kwAt(t + 1) === K.replace) t += 2;
  const g = buf.kwAt(t);
  if (g === K.global || g === K.local) t++;
  const tp = buf.kwAt(t);
  const temp = tp === K.temp || tp === K.temporary;
  if (temp) t++;
  if (buf.kwAt(t) === K.unlogged) t++;
  const obj = buf.kwAt(t);
  if (buf.kwAt(t) === K.recursive) t++;
  for (let i = t; i < b; i++) if (buf.kwAt(i) === K.atomic) return v('ddl', false, true);
  if (obj === K.table || obj === K.view || obj === K.sequence || obj === K.recursive) {
    t++;
    if (obj === K.recursive) t++;
    if (buf.kwAt(t) === K.if && buf.kwAt(t + 1) === K.not && buf.kwAt(t + 2) === K.exists) t += 3;
    takeRelation(buf, t, b, out);
    if (temp) {
      out.flags.createsTemp = true;
      return v('temp_table', false);
    }
  }
  return v('ddl', false);
}

function classifyPrepare(buf: TokenBuffer, s: number, b: number, out: Collector): StmtVerdict {
  if (buf.kwAt(s + 1) === K.transaction) return v('two_phase', false);
  let t = s + 2;
  if (buf.kind[t] === Tok.LParen) {
    const e = matchParen(buf, t, b);
    if (e < 0) return v('prepare', false, true);
    t = e + 1;
  }
  if (buf.kwAt(t) !== K.as || t + 1 >= b) return v('prepare', false, true);
  const inner = classifyRange(buf, t + 1, b, out);
  return v('prepare', inner.readOnly, inner.needParser);
}

function classifyExplain(buf: TokenBuffer, s: number, b: number, out: Collector): StmtVerdict {
  let t = s + 1;
  let analyze = false;
  if (buf.kind[t] === Tok.LParen) {
    const e = matchParen(buf, t, b);
    if (e < 0) return v('explain', false, true);
    for (let i = t + 1; i < e; i++) {
      const id = buf.kwAt(i);
      if (id === K.analyze || id === K.analyse) analyze = true;
    }
    t = e + 1;
  } else {
    for (;;) {
      const id = buf.kwAt(t);
      if (id === K.analyze || id === K.analyse) { analyze = true; t++; } else if (id === K.verbose) t++;
      else break;
    }
  }
  if (analyze) out.flags.explainAnalyze = true;
  if (t >= b) return v('explain', false, true);
  const inner = classifyRange(buf, t, b, out);
  return v('explain', inner.readOnly, inner.needParser);
}

function classifyCopy(buf: TokenBuffer, s: number, b: number, out: Collector): StmtVerdict {
  let t = s + 1;
  let innerRead = true;
  let needParser = false;
  if (buf.kind[t] === Tok.LParen) {
    const e = matchParen(buf, t, b);
    if (e < 0) return v('copy_to', false, true);
    const inner = classifyRange(buf, t + 1, e, out);
    innerRead = inner.readOnly;
    needParser = inner.needParser;
    t = e + 1;
  } else {
    if (!isName(buf, t, b)) return v('unknown', false, true);
    t = takeRelation(buf, t, b, out);
    if (buf.kind[t] === Tok.LParen) {
      const e = matchParen(buf, t, b);
      if (e < 0) return v('unknown', false, true);
      t = e + 1;
    }
  }
  const dir = buf.kwAt(t);
  if (dir === K.from) return v('copy_from', false, needParser);
  if (dir !== K.to) return v('unknown', false, true);
  const target = buf.kwAt(t + 1);
  return v('copy_to', target === K.stdout && innerRead, needParser);
}
