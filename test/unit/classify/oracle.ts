/**
 * Independent read-only oracle for tests: walks libpg-query's parse tree without using any
 * classifier code. A string is read-only iff every statement is a SELECT (or SHOW, EXPLAIN of
 * one, PREPARE of one, COPY of one TO STDOUT) with no data-modifying statement anywhere, no
 * locking clause, no INTO, and no call to a well-known writer function.
 */
import { loadModule, parseSync } from 'libpg-query';

export const loadOracle = (): Promise<void> => loadModule();

const WRITER = /^(nextval|setval|lastval|currval|pg_(try_)?advisory_.*|txid_current.*|pg_current_xact_id.*|set_config|pg_notify|lo_.*|lowrite|dblink.*|pg_current_wal_.*|pg_switch_wal|pg_terminate_backend|pg_cancel_backend|pg_sleep.*)$/;

type Node = { [k: string]: unknown };

function anyBad(node: unknown): boolean {
  if (Array.isArray(node)) return node.some(anyBad);
  if (typeof node !== 'object' || node === null) return false;
  for (const [key, val] of Object.entries(node as Node)) {
    if (key === 'InsertStmt' || key === 'UpdateStmt' || key === 'DeleteStmt' || key === 'MergeStmt') return true;
    if (key === 'lockingClause' && Array.isArray(val) && val.length > 0) return true;
    if (key === 'intoClause') return true;
    if (key === 'FuncCall') {
      const names = ((val as Node).funcname as Node[]).map((n) => (n.String as Node).sval as string);
      if (WRITER.test(names[names.length - 1] ?? '')) return true;
    }
    if (anyBad(val)) return true;
  }
  return false;
}

function stmtReadOnly(stmt: unknown): boolean {
  const node = stmt as Node;
  const type = Object.keys(node)[0] as string;
  const body = node[type] as Node;
  switch (type) {
    case 'SelectStmt': return !anyBad(node);
    case 'VariableShowStmt': return true;
    case 'ExplainStmt': return stmtReadOnly(body.query);
    case 'PrepareStmt': return stmtReadOnly(body.query);
    case 'CopyStmt':
      return body.is_from !== true && body.filename === undefined && body.is_program !== true &&
        (body.query === undefined || stmtReadOnly(body.query));
    default: return false;
  }
}

/** true/false, or 'invalid' when PostgreSQL's grammar rejects the text. */
export function oracle(sql: string): boolean | 'invalid' {
  let tree: { stmts?: { stmt: unknown }[] };
  if (sql.trim() === '') return true; // libpg-query rejects empty input; PostgreSQL answers EmptyQueryResponse
  try {
    tree = parseSync(sql);
  } catch {
    return 'invalid';
  }
  return (tree.stmts ?? []).every((s) => stmtReadOnly(s.stmt));
}
