/**
 * Routing decisions: given a classified statement and the session's routing state, may it run on
 * the session's load-balance node, or must it go to the primary? Pure: no I/O, no sockets.
 *
 * Fail closed: anything not positively read-only goes to the primary. Rules (pgpool-II's, with
 * one deliberate default of ours):
 * - By default every statement of an explicit transaction goes to the primary (one snapshot, no
 *   read-then-update on a lagging standby). With load_balance_in_transaction = on, reads inside a
 *   transaction are balanced as pgpool-II does, under disable_load_balance_on_write:
 *   'transaction' (after a write, the rest of the transaction reads the primary), 'trans_transaction'
 *   (that lasts for the following explicit transactions too), 'always' (after any write, the rest of
 *   the session reads the primary, in or out of transactions), 'off', and 'dml_adaptive' (after a
 *   write to a table, reads of that table and of the objects related to it in
 *   dml_adaptive_object_relationship_list go to the primary for the rest of the transaction).
 * - SERIALIZABLE transactions, BEGIN READ WRITE, temporary tables (and statements touching them),
 *   volatile functions, and statements the classifier could not parse go to the primary.
 * - Session-state statements (SET, RESET, DISCARD, DEALLOCATE ALL) go to every node the session
 *   holds. Transaction control goes there too when reads may run inside transactions
 *   (load_balance_in_transaction = on); otherwise a transaction never touches a standby, so
 *   opening one there would only cost a round trip.
 */
import type { QueryClass } from '../classify/types';
import { SAFE_FUNCTIONS } from '../classify/functions';

/** The router's view of pgmaitre's configuration (reloadable). */
export interface RouterConfig {
  readonly loadBalanceMode: boolean;
  readonly loadBalanceInTransaction: boolean;
  readonly disableLoadBalanceOnWrite: 'transaction' | 'trans_transaction' | 'always' | 'off' | 'dml_adaptive';
  /** dml_adaptive_object_relationship_list: written object → objects whose reads must follow. */
  readonly dmlRelations: ReadonlyMap<string, readonly string[]>;
  /** Function volatility when known: 'v' volatile, 's' stable, 'i' immutable; undefined = not looked up yet. */
  readonly volatility: (fn: string) => 'v' | 's' | 'i' | undefined;
  /** True when write_function_list or read_only_function_list is set (then no pg_proc lookups). */
  readonly functionListsSet: boolean;
}

/** What the router remembers per session. Mutated only by `noteDispatched`/`noteTransactionEnd`. */
export interface RouteState {
  /** An explicit transaction is open (predicted from dispatched statements, corrected by ReadyForQuery). */
  inTransaction: boolean;
  /** A write happened in the current explicit transaction. */
  wroteInTransaction: boolean;
  /** A write happened in an earlier explicit transaction of this session (trans_transaction). */
  wroteInEarlierTransaction: boolean;
  /** A write happened anywhere in this session ('always'). */
  wroteInSession: boolean;
  /** Tables written in the current transaction (dml_adaptive). */
  readonly writtenInTransaction: Set<string>;
  /** Temporary tables this session created: statements touching them go to the primary. */
  readonly tempTables: Set<string>;
  /** The current transaction is SERIALIZABLE or READ WRITE-declared. */
  primaryOnlyTransaction: boolean;
  /** SET default_transaction_isolation / SESSION CHARACTERISTICS made every transaction serializable. */
  serializableDefault: boolean;
}

/** Fresh state for a new session. */
export function newRouteState(): RouteState {
  return {
    inTransaction: false, wroteInTransaction: false, wroteInEarlierTransaction: false, wroteInSession: false,
    writtenInTransaction: new Set(), tempTables: new Set(), primaryOnlyTransaction: false, serializableDefault: false,
  };
}

/** Where one statement goes. `lookup` lists functions whose volatility must be fetched first. */
export type StatementRoute =
  | { readonly to: 'primary' | 'balance'; readonly reason: string; readonly broadcast: boolean }
  | { readonly to: 'lookup'; readonly functions: readonly string[] };

const SESSION_STATE = new Set(['set', 'reset', 'discard', 'deallocate']);
const TX_CONTROL = new Set(['begin', 'commit', 'rollback', 'savepoint', 'release', 'rollback_to']);

/** Decides where one classified statement goes. */
export function routeStatement(cls: QueryClass, s: RouteState, cfg: RouterConfig): StatementRoute {
  if (SESSION_STATE.has(cls.kind) && cls.statements === 1) {
    return { to: 'primary', reason: `${cls.kind} goes to every node`, broadcast: true };
  }
  if (TX_CONTROL.has(cls.kind) && cls.statements === 1) {
    return { to: 'primary', reason: 'transaction control', broadcast: cfg.loadBalanceInTransaction };
  }
  if (!cfg.loadBalanceMode) return primary('load_balance_mode is off');
  if (!cls.readOnly) return primary(cls.flags.primaryReason ?? (cls.kind === 'unknown' ? 'not understood: fail closed' : `${cls.kind} statement`));
  if (s.tempTables.size > 0) for (const r of cls.relations) if (s.tempTables.has(bare(r))) return primary(`touches temporary table ${r}`);
  if (cls.flags.needsVolatilityCheck && !cfg.functionListsSet) {
    // Functions on the classifier's documented safe list are never looked up.
    const checked = cls.functions.filter((f) => !SAFE_FUNCTIONS.has(f));
    const unknown = checked.filter((f) => cfg.volatility(f) === undefined);
    if (unknown.length > 0) return { to: 'lookup', functions: unknown };
    const v = checked.find((f) => cfg.volatility(f) === 'v');
    if (v !== undefined) return primary(`calls volatile function ${v}`);
  }
  if (cfg.disableLoadBalanceOnWrite === 'always' && s.wroteInSession) return primary("a write happened in this session (disable_load_balance_on_write = 'always')");
  if (s.inTransaction) {
    if (!cfg.loadBalanceInTransaction) return primary('inside a transaction');
    if (s.primaryOnlyTransaction || s.serializableDefault) return primary('serializable or read-write transaction');
    switch (cfg.disableLoadBalanceOnWrite) {
      case 'transaction':
        if (s.wroteInTransaction) return primary('a write happened earlier in this transaction');
        break;
      case 'trans_transaction':
        if (s.wroteInTransaction || s.wroteInEarlierTransaction) return primary('a write happened in this or an earlier transaction');
        break;
      case 'dml_adaptive':
        for (const r of cls.relations) {
          if (s.writtenInTransaction.has(bare(r))) return primary(`table ${r} was written in this transaction`);
        }
        break;
      default:
        break;
    }
  }
  return READ_ONLY;
}

/** The route of a read that may go to any node: one object for all (it was made per statement). */
const READ_ONLY: StatementRoute = Object.freeze({ to: 'balance', reason: 'read-only', broadcast: false });

function primary(reason: string): StatementRoute {
  return { to: 'primary', reason, broadcast: false };
}

/** Lower-cased relation name without schema or quotes. */
function bare(rel: string): string {
  const dot = rel.lastIndexOf('.');
  return (dot >= 0 ? rel.slice(dot + 1) : rel).replace(/"/g, '').toLowerCase();
}

/** Updates the session's routing state once a statement has been sent to `toPrimary` or not. */
export function noteDispatched(cls: QueryClass, s: RouteState, cfg: RouterConfig): void {
  switch (cls.kind) {
    case 'begin':
      s.inTransaction = true;
      s.wroteInTransaction = false;
      s.writtenInTransaction.clear();
      s.primaryOnlyTransaction = Boolean(cls.flags.readWrite || cls.flags.isolationSerializable || cls.flags.serializable);
      return;
    case 'commit':
    case 'rollback':
      noteTransactionEnd(s);
      return;
    case 'set':
      if (cls.flags.isolationSerializable || cls.flags.serializable) {
        if (s.inTransaction) s.primaryOnlyTransaction = true;
        else s.serializableDefault = true;
      }
      return;
    case 'discard':
      s.tempTables.clear();
      s.serializableDefault = false;
      return;
    default:
      break;
  }
  if (cls.flags.createsTemp) for (const r of cls.relations) s.tempTables.add(bare(r));
  if (!cls.readOnly && cls.kind !== 'show' && cls.kind !== 'admin' && cls.kind !== 'empty') {
    s.wroteInSession = true;
    if (s.inTransaction) {
      s.wroteInTransaction = true;
      if (cfg.disableLoadBalanceOnWrite === 'dml_adaptive') {
        for (const r of cls.relations) {
          const name = bare(r);
          s.writtenInTransaction.add(name);
          for (const dep of cfg.dmlRelations.get(name) ?? []) s.writtenInTransaction.add(dep);
        }
      }
    }
  }
}

/** The explicit transaction ended (COMMIT/ROLLBACK dispatched, or ReadyForQuery said 'I'). */
export function noteTransactionEnd(s: RouteState): void {
  if (!s.inTransaction) return;
  if (s.wroteInTransaction) s.wroteInEarlierTransaction = true;
  s.inTransaction = false;
  s.wroteInTransaction = false;
  s.writtenInTransaction.clear();
  s.primaryOnlyTransaction = false;
}

/**
 * Parses dml_adaptive_object_relationship_list ('a:b, c:d' = writing a affects reads of b).
 * Function entries like 'f():t' keep their parentheses stripped.
 */
export function parseDmlRelations(list: readonly string[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const item of list) {
    const [from, to] = item.split(':').map((x) => x.trim().replace(/\(\)$/, '').toLowerCase());
    if (!from || !to) continue;
    const deps = m.get(from) ?? [];
    deps.push(to);
    m.set(from, deps);
  }
  return m;
}
