/**
 * Per-node statement counters (SHOW POOL_NODES select_cnt, SHOW POOL_BACKEND_STATS), bumped once
 * per executed statement: a simple Query, or a Bind of a prepared statement.
 */
import type { QueryClass } from '../classify/types';
import { firstKeyword } from '../classify/lexer';
import type { NodeCounters } from '../cluster/stats';

const READ_KINDS = new Set(['read', 'show', 'explain', 'copy_to']);

/** Counts one execution of a statement of class `cls` on a node. */
export function countStatement(c: NodeCounters, cls: QueryClass, sql: string): void {
  if (READ_KINDS.has(cls.kind) && cls.readOnly) {
    c.select_cnt++;
  } else if (cls.kind === 'ddl' || cls.kind === 'temp_table') {
    c.ddl_cnt++;
  } else if (cls.kind === 'write') {
    const kw = firstKeyword(sql);
    if (kw === 'insert') c.insert_cnt++;
    else if (kw === 'update') c.update_cnt++;
    else if (kw === 'delete') c.delete_cnt++;
    else c.other_cnt++;
  } else {
    c.other_cnt++;
  }
}
