/**
 * What the query cache may keep, decided as pgpool-II decides it (pool_is_allow_to_cache and
 * friends in pool_memqcache.c), from the classifier's verdict and the statement's text — and what
 * a statement that ran must invalidate. Pure: the catalog facts (relation kinds, function
 * volatility) come from the caller.
 *
 * Cacheable: one SELECT (or WITH … SELECT) that is read-only; not SELECT INTO, FOR UPDATE/SHARE,
 * TABLESAMPLE, data-modifying WITH; no SQL value function (CURRENT_USER, CURRENT_TIMESTAMP, …),
 * no timestamptz/timetz in the text; every function immutable; every table an ordinary or
 * partitioned table that is not temporary, not a system catalog, without row security; views,
 * materialized views and unlogged tables only when cache_safe_memqcache_table_list names them;
 * cache_unsafe_memqcache_table_list always wins. `/*FORCE QUERY CACHE*\/` at the start of the text
 * caches a SELECT whatever its functions and tables (pgpool-II 4.5); `/*NO QUERY CACHE*\/` never.
 * Anything not positively known is not cacheable (fail closed).
 */
import type { QueryClass } from '../classify/types';
import { baseName, isWriterFunction, SAFE_FUNCTIONS } from '../classify/functions';

/** SQL syntax that looks like a call but is not a pg_proc function, and is immutable in itself. */
const SYNTAX_IMMUTABLE: ReadonlySet<string> = new Set(['coalesce', 'nullif', 'greatest', 'least', 'rollup', 'cube', 'grouping']);

/**
 * SQL value functions (parsed as keywords, not calls: the classifier does not list them) and
 * time zone dependent types: their result changes without any table changing.
 */
const NOT_CACHEABLE_TEXT = /\b(current_(date|time|timestamp|role|user|catalog|schema)|localtime(stamp)?|session_user|user|timestamptz|timetz|with\s+time\s+zone|tablesample)\b/i;

const FORCE = /^\s*\/\*\s*FORCE QUERY CACHE\s*\*\//i;
const NO_CACHE = /^\s*\/\*\s*NO QUERY CACHE\s*\*\//i;

/** The catalog's facts about one relation a SELECT reads (see catalog.ts). */
export interface RelationFacts {
  /** pg_class.relkind: 'r' table, 'p' partitioned, 'v' view, 'm' materialized view, 'f' foreign... */
  readonly kind: string;
  /** pg_class.relpersistence: 'p' permanent, 'u' unlogged, 't' temporary. */
  readonly persistence: string;
  /** In pg_catalog, information_schema or pg_toast. */
  readonly system: boolean;
  readonly rowSecurity: boolean;
}

/** Compiled cache_safe/unsafe_memqcache_table_list. */
export interface TableLists {
  readonly safe: readonly RegExp[];
  readonly unsafe: readonly RegExp[];
}

/** pgpool-II's lists are regular expressions matched against the whole table name (schema-qualified or not). */
export function compileTableLists(safe: readonly string[], unsafe: readonly string[]): TableLists {
  const re = (s: string): RegExp | null => {
    try {
      return new RegExp(`^(?:${s})$`, 'i');
    } catch {
      return new RegExp(`^${s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'i');
    }
  };
  return {
    safe: safe.filter((s) => s !== '').map(re).filter((r): r is RegExp => r !== null),
    unsafe: unsafe.filter((s) => s !== '').map(re).filter((r): r is RegExp => r !== null),
  };
}

function listed(list: readonly RegExp[], name: string): boolean {
  if (list.length === 0) return false;
  const bare = name.replace(/"/g, '');
  const dot = bare.lastIndexOf('.');
  const last = dot >= 0 ? bare.slice(dot + 1) : bare;
  return list.some((r) => r.test(bare) || r.test(last));
}

/** The first verdict on a statement, before the catalog is asked. */
export type TextVerdict =
  | { readonly ok: false; readonly why: string }
  | { readonly ok: true; readonly force: boolean; readonly relations: readonly string[]; readonly functions: readonly string[] };

/** Decides from the text and the classifier's verdict alone (no catalog). */
export function textVerdict(sql: string, cls: QueryClass, lists: TableLists): TextVerdict {
  if (NO_CACHE.test(sql)) return { ok: false, why: 'NO QUERY CACHE comment' };
  if (cls.kind !== 'read' || cls.statements !== 1) return { ok: false, why: 'not a single SELECT' };
  const f = cls.flags;
  if (f.forUpdate === true || f.selectInto === true || f.writableCte === true || f.createsTemp === true) {
    return { ok: false, why: 'SELECT INTO, FOR UPDATE/SHARE or a data-modifying WITH' };
  }
  for (const r of cls.relations) if (listed(lists.unsafe, r)) return { ok: false, why: `table ${r} is in cache_unsafe_memqcache_table_list` };
  const force = FORCE.test(sql);
  if (force) return { ok: true, force, relations: cls.relations, functions: [] };
  if (!cls.readOnly && f.needsVolatilityCheck !== true) return { ok: false, why: 'not read-only' };
  if (NOT_CACHEABLE_TEXT.test(sql)) return { ok: false, why: 'a SQL value function, TABLESAMPLE or a time zone dependent type' };
  const functions: string[] = [];
  for (const fn of cls.functions) {
    const b = baseName(fn);
    if (SYNTAX_IMMUTABLE.has(b)) continue;
    if (isWriterFunction(fn)) return { ok: false, why: `calls ${fn}()` };
    functions.push(fn);
  }
  return { ok: true, force, relations: cls.relations, functions };
}

/** Decides once the catalog answered: null when cacheable, else why not. */
export function relationVerdict(name: string, facts: RelationFacts | null, lists: TableLists): string | null {
  if (facts === null) return `${name} is not a table the catalog knows`;
  if (facts.system) return `${name} is a system catalog`;
  if (facts.persistence === 't') return `${name} is a temporary table`;
  if (facts.rowSecurity) return `${name} has row level security`;
  const safe = listed(lists.safe, name);
  if (facts.kind === 'r' || facts.kind === 'p') {
    if (facts.persistence === 'u' && !safe) return `${name} is unlogged (not in cache_safe_memqcache_table_list)`;
    return null;
  }
  if ((facts.kind === 'v' || facts.kind === 'm') && safe) return null;
  return `${name} is a ${facts.kind === 'v' ? 'view' : facts.kind === 'm' ? 'materialized view' : 'relation of another kind'} (not in cache_safe_memqcache_table_list)`;
}

/** What a statement that ran invalidates. */
export type Invalidation =
  /** Nothing (a read, transaction control, session state...). */
  | { readonly kind: 'none' }
  /** These tables (and what the catalog says they drag along). */
  | { readonly kind: 'tables'; readonly relations: readonly string[]; readonly ddl: boolean }
  /** Everything of the database (fail closed): a DDL without a table, a volatile function, ALTER ROLE, REVOKE, CALL... */
  | { readonly kind: 'all'; readonly why: string };

const NO_DATA: ReadonlySet<string> = new Set([
  'begin', 'commit', 'rollback', 'savepoint', 'release', 'rollback_to', 'set', 'reset', 'discard', 'deallocate',
  'prepare', 'listen', 'unlisten', 'notify', 'show', 'lock', 'copy_to', 'empty', 'admin', 'vacuum', 'cursor', 'temp_table',
]);

const NONE: Invalidation = { kind: 'none' };

/**
 * What `cls` (a statement that succeeded) invalidates. Reads invalidate nothing unless they call
 * a function that may write (not a known built-in, and not immutable/stable per `volatility`).
 */
export function invalidationOf(cls: QueryClass, volatility: (fn: string) => string | undefined): Invalidation {
  if (cls.kind === 'read' || (cls.kind === 'explain' && cls.flags.explainAnalyze !== true)) {
    for (const fn of cls.functions) {
      const b = baseName(fn);
      if (SAFE_FUNCTIONS.has(b) || SYNTAX_IMMUTABLE.has(b) || isWriterFunction(fn)) continue;
      const v = volatility(fn);
      if (v !== 'i' && v !== 's') return { kind: 'all', why: `${fn}() may write` };
    }
    if (cls.readOnly || cls.kind === 'explain') return NONE;
    if (cls.relations.length === 0) return { kind: 'all', why: 'a read that writes somewhere' };
    return { kind: 'tables', relations: cls.relations, ddl: false };
  }
  if (NO_DATA.has(cls.kind) && cls.statements === 1) return NONE;
  if ((cls.kind === 'write' || cls.kind === 'copy_from' || cls.kind === 'explain' || cls.kind === 'ddl') && cls.relations.length > 0) {
    return { kind: 'tables', relations: cls.relations, ddl: cls.kind === 'ddl' };
  }
  return { kind: 'all', why: `${cls.kind} statement` };
}
