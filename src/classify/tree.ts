/**
 * Classification from libpg-query's parse tree (the real PostgreSQL 15 grammar).
 *
 * Used when the lexer is not certain. The top-level node type gives the kind; for queries
 * (SELECT, and the query inside EXPLAIN / PREPARE / COPY) a deep walk finds anything that
 * makes it unfit for a standby: data-modifying statements at any depth (writable CTEs), locking
 * clauses, INTO, and calls to built-in writer functions; it also gathers every FuncCall and
 * RangeVar name. Unknown node types are 'utility' or 'ddl' and never read-only.
 */
import { isWriterFunction } from './functions';
import { ADMIN_SHOW } from './fast-path';
import { addUnique, type Collector, type StmtVerdict } from './verdict';
import type { QueryKind } from './types';

/** A libpg-query JSON node: `{ TypeName: { ...fields } }` or a plain field object. */
type Json = { [key: string]: unknown };

interface QueryFacts {
  write: boolean;
  locking: boolean;
  writerFn: boolean;
  into: Json | undefined;
}

const isObj = (x: unknown): x is Json => typeof x === 'object' && x !== null;

const v = (kind: QueryKind, readOnly: boolean): StmtVerdict => ({ kind, readOnly, needParser: false });

function strings(list: unknown): string[] {
  const out: string[] = [];
  if (!Array.isArray(list)) return out;
  for (const item of list) {
    if (isObj(item) && isObj(item.String) && typeof item.String.sval === 'string') out.push(item.String.sval);
  }
  return out;
}

function rangeVarName(rv: Json): string {
  const rel = typeof rv.relname === 'string' ? rv.relname : '';
  return typeof rv.schemaname === 'string' ? `${rv.schemaname}.${rel}` : rel;
}

/** Deep walk: collects names and the facts that forbid a standby. */
function walk(node: unknown, facts: QueryFacts, out: Collector): void {
  if (Array.isArray(node)) {
    for (const n of node) walk(n, facts, out);
    return;
  }
  if (!isObj(node)) return;
  for (const key in node) {
    const val = node[key];
    switch (key) {
      case 'FuncCall':
        if (isObj(val)) {
          const name = strings(val.funcname).join('.');
          if (name) {
            addUnique(out.functions, name);
            if (isWriterFunction(name)) facts.writerFn = true;
          }
        }
        break;
      case 'RangeVar':
        if (isObj(val)) addUnique(out.relations, rangeVarName(val));
        break;
      case 'relation': case 'rel':
        // DML targets and INTO are bare RangeVar objects, without the type wrapper.
        if (isObj(val) && typeof val.relname === 'string') addUnique(out.relations, rangeVarName(val));
        break;
      case 'InsertStmt': case 'UpdateStmt': case 'DeleteStmt': case 'MergeStmt':
        facts.write = true;
        break;
      case 'lockingClause':
        if (Array.isArray(val) && val.length > 0) facts.locking = true;
        break;
      case 'intoClause':
        if (isObj(val)) facts.into = val;
        break;
      default:
        break;
    }
    if (typeof val === 'object' && val !== null) walk(val, facts, out);
  }
}

/** Walks a query node and returns its verdict as a statement of its own. */
function classifyQuery(query: unknown, out: Collector): StmtVerdict {
  const facts: QueryFacts = { write: false, locking: false, writerFn: false, into: undefined };
  walk(query, facts, out);
  if (facts.write) out.flags.writableCte = true;
  if (facts.locking) out.flags.forUpdate = true;
  if (facts.into) {
    out.flags.selectInto = true;
    const rel = facts.into.rel;
    if (isObj(rel) && rel.relpersistence === 't') {
      out.flags.createsTemp = true;
      return v('temp_table', false);
    }
    return v('write', false);
  }
  if (facts.write || facts.locking) return v('write', false);
  return v('read', !facts.writerFn);
}

function defElemArgIsFalse(arg: unknown): boolean {
  if (!isObj(arg)) return false;
  const c = isObj(arg.A_Const) ? arg.A_Const : undefined;
  if (!c) return false;
  if (isObj(c.boolval)) return c.boolval.boolval !== true;
  if (isObj(c.ival)) return !c.ival.ival;
  if (isObj(c.sval)) return /^(false|off|0|no)$/i.test(String(c.sval.sval));
  return false;
}

/** Transaction characteristics in BEGIN / START / SET TRANSACTION (a DefElem list). */
function txOptions(list: unknown, out: Collector): void {
  if (!Array.isArray(list)) return;
  for (const item of list) {
    const d = isObj(item) && isObj(item.DefElem) ? item.DefElem : undefined;
    if (!d) continue;
    const arg = isObj(d.arg) && isObj(d.arg.A_Const) ? d.arg.A_Const : undefined;
    if (d.defname === 'transaction_isolation' && arg && isObj(arg.sval) && arg.sval.sval === 'serializable') {
      out.flags.isolationSerializable = true;
      out.flags.serializable = true;
    } else if (d.defname === 'transaction_read_only' && arg) {
      if (isObj(arg.ival) && arg.ival.ival === 1) out.flags.readOnlyTx = true;
      else out.flags.readWrite = true;
    }
  }
}

function relPersistenceTemp(rel: unknown, out: Collector): boolean {
  if (!isObj(rel)) return false;
  addUnique(out.relations, rangeVarName(rel));
  if (rel.relpersistence !== 't') return false;
  out.flags.createsTemp = true;
  return true;
}

const DDL_PREFIX = /^(Create|Alter|Drop|Rename|Comment|Grant|Define|Index|View|Rule|Reassign|Sec|Refresh|Import|CompositeType)/;

/** Classifies one top-level statement node. */
export function classifyStmt(stmt: unknown, out: Collector): StmtVerdict {
  if (!isObj(stmt)) return v('unknown', false);
  const type = Object.keys(stmt)[0] ?? '';
  const body = stmt[type];
  const b: Json = isObj(body) ? body : {};
  switch (type) {
    case 'SelectStmt':
      return classifyQuery(stmt, out);
    case 'InsertStmt': case 'UpdateStmt': case 'DeleteStmt': case 'MergeStmt': case 'TruncateStmt':
      classifyQuery(b, out);
      return v('write', false);
    case 'CopyStmt': {
      if (isObj(b.relation)) addUnique(out.relations, rangeVarName(b.relation));
      if (b.is_from === true) return v('copy_from', false);
      const inner = b.query !== undefined ? classifyQuery(b.query, out) : v('read', true);
      const toClient = b.filename === undefined && b.is_program !== true;
      return v('copy_to', toClient && inner.readOnly);
    }
    case 'ExplainStmt': {
      if (Array.isArray(b.options)) {
        for (const o of b.options) {
          if (isObj(o) && isObj(o.DefElem) && o.DefElem.defname === 'analyze' && !defElemArgIsFalse(o.DefElem.arg)) {
            out.flags.explainAnalyze = true;
          }
        }
      }
      const inner = classifyStmt(b.query, out);
      return v('explain', inner.readOnly);
    }
    case 'PrepareStmt': {
      const inner = classifyStmt(b.query, out);
      return v('prepare', inner.readOnly);
    }
    case 'ExecuteStmt': return v('execute', false);
    case 'TransactionStmt':
      switch (b.kind) {
        case 'TRANS_STMT_BEGIN': case 'TRANS_STMT_START':
          txOptions(b.options, out);
          return v('begin', false);
        case 'TRANS_STMT_COMMIT': return v('commit', false);
        case 'TRANS_STMT_ROLLBACK': return v('rollback', false);
        case 'TRANS_STMT_SAVEPOINT': return v('savepoint', false);
        case 'TRANS_STMT_RELEASE': return v('release', false);
        case 'TRANS_STMT_ROLLBACK_TO': return v('rollback_to', false);
        default: return v('two_phase', false);
      }
    case 'VariableSetStmt':
      if (b.kind === 'VAR_RESET' || b.kind === 'VAR_RESET_ALL') return v('reset', false);
      if (b.name === 'TRANSACTION' || b.name === 'SESSION CHARACTERISTICS') txOptions(b.args, out);
      return v('set', false);
    case 'VariableShowStmt': {
      const name = typeof b.name === 'string' ? b.name.toLowerCase() : '';
      if (ADMIN_SHOW.has(name)) {
        out.admin = { command: 'SHOW ' + name.toUpperCase(), args: '' };
        return v('admin', false);
      }
      return v('show', true);
    }
    case 'DiscardStmt': return v('discard', false);
    case 'DeallocateStmt': return v('deallocate', false);
    case 'LockStmt': classifyQuery(b, out); return v('lock', false);
    case 'ListenStmt': return v('listen', false);
    case 'UnlistenStmt': return v('unlisten', false);
    case 'NotifyStmt': return v('notify', false);
    case 'DeclareCursorStmt': classifyQuery(b.query, out); return v('cursor', false);
    case 'FetchStmt': case 'ClosePortalStmt': return v('cursor', false);
    case 'CallStmt': classifyQuery(b, out); return v('call', false);
    case 'DoStmt': return v('write', false);
    case 'VacuumStmt': case 'ClusterStmt': case 'ReindexStmt': case 'CheckPointStmt':
      return v('vacuum', false);
    case 'CreateStmt':
      return v(relPersistenceTemp(b.relation, out) ? 'temp_table' : 'ddl', false);
    case 'CreateTableAsStmt':
      return v(isObj(b.into) && relPersistenceTemp(b.into.rel, out) ? 'temp_table' : 'ddl', false);
    case 'ViewStmt':
      return v(relPersistenceTemp(b.view, out) ? 'temp_table' : 'ddl', false);
    case 'CreateSeqStmt':
      return v(relPersistenceTemp(b.sequence, out) ? 'temp_table' : 'ddl', false);
    case 'LoadStmt': return v('utility', false);
    default:
      return v(DDL_PREFIX.test(type) ? 'ddl' : 'utility', false);
  }
}
