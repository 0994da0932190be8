/**
 * The only place that touches libpg-query (PostgreSQL 15's grammar compiled to WASM).
 *
 * `loadParser()` instantiates the WASM module once; afterwards `parseSql()` is synchronous.
 * Before that, `parseSql()` is unavailable and callers fail closed.
 */
import { loadModule, parseSync } from 'libpg-query';

let ready = false;
let loading: Promise<void> | undefined;

/** Loads the WASM module (idempotent). */
export function loadParser(): Promise<void> {
  if (!loading) {
    loading = loadModule().then(() => {
      ready = true;
    });
  }
  return loading;
}

/** Whether parseSql() can be called. */
export function parserReady(): boolean {
  return ready;
}

/** One parsed statement as libpg-query returns it. */
export interface RawStmt {
  stmt?: unknown;
  stmt_location?: number;
  stmt_len?: number;
}

/** Parses `sql` into raw statements; throws the grammar's error on invalid SQL. */
export function parseSql(sql: string): RawStmt[] {
  const res = parseSync(sql) as { stmts?: RawStmt[] };
  return Array.isArray(res.stmts) ? res.stmts : [];
}
