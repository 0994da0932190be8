/**
 * What a statement does to the *session* beyond its own result: SET/RESET of a parameter, a SQL
 * prepared statement created or removed, LISTEN/UNLISTEN, a cursor WITH HOLD declared or closed,
 * DISCARD. The session core uses this to replay session state on other nodes (and, in
 * transaction pooling, on other connections), to route EXECUTE where its statement lives, and to
 * know what a lost connection took with it.
 *
 * Only called for statements the classifier flagged (QueryFlags.sessionEffects), never for plain
 * reads and writes, so the grammar (libpg-query) is affordable here; results are cached by text.
 * Each effect carries the exact text of its statement (stmt_location/stmt_len) so that replaying
 * it is replaying what the client said. Without the grammar (not loaded, or a syntax error) the
 * result is null: the caller fails closed.
 */
import { parseSql, parserReady } from './parser';
import { LruCache } from '../util/lru-cache';
import { skipFiller } from './filler';

/** One effect on session state, in statement order. */
export type SessionEffect =
  /** Session-level SET (value: the first argument, lower-cased; null for a list or an expression). */
  | { readonly kind: 'set'; readonly name: string; readonly value: string | null; readonly text: string }
  /** RESET name, SET name TO DEFAULT (SET SESSION AUTHORIZATION DEFAULT: name session_authorization). */
  | { readonly kind: 'reset'; readonly name: string; readonly text: string }
  | { readonly kind: 'reset_all' }
  /** SET LOCAL / SET TRANSACTION / SET CONSTRAINTS / transaction_*: lasts until the transaction ends. */
  | { readonly kind: 'set_tx'; readonly name: string; readonly value: string | null }
  | { readonly kind: 'discard'; readonly what: 'all' | 'plans' | 'sequences' | 'temp' }
  | { readonly kind: 'prepare'; readonly name: string; readonly body: string; readonly text: string }
  /** DEALLOCATE name (null: ALL). */
  | { readonly kind: 'deallocate'; readonly name: string | null }
  | { readonly kind: 'execute'; readonly name: string }
  | { readonly kind: 'listen'; readonly channel: string }
  /** UNLISTEN channel (null: *). */
  | { readonly kind: 'unlisten'; readonly channel: string | null }
  | { readonly kind: 'declare_hold'; readonly name: string }
  /** CLOSE name (null: ALL). */
  | { readonly kind: 'close_cursor'; readonly name: string | null };

/** Session-level advisory locks (the _xact_ ones end with the transaction). */
export const ADVISORY_LOCK_FUNCTIONS: ReadonlySet<string> = new Set([
  'pg_advisory_lock', 'pg_advisory_lock_shared', 'pg_try_advisory_lock', 'pg_try_advisory_lock_shared',
]);
export const ADVISORY_UNLOCK_FUNCTIONS: ReadonlySet<string> = new Set(['pg_advisory_unlock', 'pg_advisory_unlock_shared']);

/** Parameters whose SET only lasts until the end of the transaction. */
const TX_SCOPED = new Set(['transaction_isolation', 'transaction_read_only', 'transaction_deferrable']);

/** DECLARE ... WITH HOLD (CURSOR_OPT_HOLD in parsenodes.h). */
const CURSOR_OPT_HOLD = 0x20;

const cache = new LruCache<readonly SessionEffect[] | null>(2000);

/** Effects of every statement in `sql`, or null when the text cannot be parsed. */
export function sessionEffects(sql: string): readonly SessionEffect[] | null {
  const hit = cache.get(sql);
  if (hit !== undefined) return hit;
  if (!parserReady()) return null;
  let out: SessionEffect[] | null;
  try {
    out = [];
    for (const raw of parseSql(sql)) {
      const from = raw.stmt_location ?? 0;
      const text = raw.stmt_len ? sql.slice(from, from + raw.stmt_len) : sql.slice(from);
      effectsOf(raw.stmt as Node, text.trim(), out);
    }
  } catch {
    out = null;
  }
  if (sql.length <= 8192) cache.set(sql, out);
  return out;
}

type Node = Record<string, Record<string, unknown>>;

function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

/** The value of an A_Const argument, lower-cased (sval, ival, fval, boolval). */
function constValue(arg: unknown): string | null {
  const c = (arg as { A_Const?: Record<string, unknown> } | undefined)?.A_Const;
  if (c === undefined) return null;
  if (c['sval'] !== undefined) return String((c['sval'] as { sval?: string }).sval ?? '').toLowerCase();
  if (c['ival'] !== undefined) return String((c['ival'] as { ival?: number }).ival ?? 0);
  if (c['fval'] !== undefined) return String((c['fval'] as { fval?: string }).fval ?? '');
  if (c['boolval'] !== undefined) return (c['boolval'] as { boolval?: boolean }).boolval ? 'on' : 'off';
  return null;
}

function effectsOf(stmt: Node | undefined, text: string, out: SessionEffect[]): void {
  if (stmt === undefined) return;
  const type = Object.keys(stmt)[0];
  const b = type === undefined ? {} : stmt[type]!;
  switch (type) {
    case 'VariableSetStmt': {
      const kind = str(b['kind']);
      const name = (str(b['name']) ?? '').toLowerCase();
      const args = (b['args'] as unknown[] | undefined) ?? [];
      if (kind === 'VAR_RESET_ALL') {
        out.push({ kind: 'reset_all' });
      } else if (kind === 'VAR_SET_MULTI') {
        // SET TRANSACTION ... / SET SESSION CHARACTERISTICS AS TRANSACTION ... (DefElem list)
        const session = name === 'session characteristics';
        for (const a of args) {
          const d = (a as { DefElem?: { defname?: string; arg?: unknown } }).DefElem;
          if (d?.defname === undefined) continue;
          const value = constValue(d.arg);
          if (session) out.push({ kind: 'set', name: `default_${d.defname}`, value, text });
          else out.push({ kind: 'set_tx', name: d.defname, value });
        }
      } else if (b['is_local'] === true || TX_SCOPED.has(name)) {
        out.push({ kind: 'set_tx', name, value: kind === 'VAR_SET_VALUE' && args.length === 1 ? constValue(args[0]) : null });
      } else if (kind === 'VAR_RESET' || kind === 'VAR_SET_DEFAULT') {
        out.push({ kind: 'reset', name, text });
      } else if (kind === 'VAR_SET_VALUE') {
        out.push({ kind: 'set', name, value: args.length === 1 ? constValue(args[0]) : null, text });
      } else {
        // SET ... FROM CURRENT: the value is whatever it is now: replaying the text is exact.
        out.push({ kind: 'set', name, value: null, text });
      }
      return;
    }
    case 'ConstraintsSetStmt':
      out.push({ kind: 'set_tx', name: 'constraints', value: null });
      return;
    case 'DiscardStmt': {
      const t = str(b['target']);
      out.push({ kind: 'discard', what: t === 'DISCARD_ALL' ? 'all' : t === 'DISCARD_PLANS' ? 'plans' : t === 'DISCARD_SEQUENCES' ? 'sequences' : 'temp' });
      return;
    }
    case 'PrepareStmt': {
      const m = /\bAS\b/i.exec(text.replace(/"(?:[^"]|"")*"|'(?:[^']|'')*'/g, (q) => ' '.repeat(q.length)));
      out.push({ kind: 'prepare', name: str(b['name']) ?? '', body: m === null ? '' : text.slice(m.index + 2).trim(), text });
      return;
    }
    case 'DeallocateStmt':
      out.push({ kind: 'deallocate', name: str(b['name']) });
      return;
    case 'ExecuteStmt':
      out.push({ kind: 'execute', name: str(b['name']) ?? '' });
      return;
    case 'ListenStmt':
      out.push({ kind: 'listen', channel: str(b['conditionname']) ?? '' });
      return;
    case 'UnlistenStmt':
      out.push({ kind: 'unlisten', channel: str(b['conditionname']) });
      return;
    case 'DeclareCursorStmt':
      if (((b['options'] as number | undefined) ?? 0) & CURSOR_OPT_HOLD) out.push({ kind: 'declare_hold', name: str(b['portalname']) ?? '' });
      return;
    case 'ClosePortalStmt':
      out.push({ kind: 'close_cursor', name: str(b['portalname']) });
      return;
    case 'ExplainStmt':
      effectsOf(b['query'] as Node | undefined, text, out);
      return;
    default:
      return;
  }
}

const EXECUTE_NAME = /execute\s+(?:"((?:[^"]|"")+)"|([A-Za-z_\u0080-\uffff][\w$\u0080-\uffff]*))\s*(?:\(|;|$)/iy;

/**
 * Name of the prepared statement an `EXECUTE name ...` runs, without the grammar (EXECUTE is
 * frequent; its parameters change every time): an identifier, folded to lower case unless quoted.
 * Null when the text is not a single EXECUTE.
 */
export function executeName(sql: string): string | null {
  EXECUTE_NAME.lastIndex = skipFiller(sql);
  const m = EXECUTE_NAME.exec(sql);
  if (m === null) return null;
  return m[1] !== undefined ? m[1].replace(/""/g, '"') : m[2]!.toLowerCase();
}
