/**
 * Answers pgmaitre writes itself instead of a backend: an ERROR for a request it cannot run
 * (no primary), and admin command results (SHOW POOL_*, PGPOOL ...) as text columns with type
 * OID 0 like pgpool. Each ends with ReadyForQuery carrying the session's transaction status.
 */
import { encodeErrorResponse, encodeReadyForQuery, encodeResultSet } from '../protocol/backend';
import type { AdminError, ResultSet } from '../admin/types';

/** ErrorResponse + one ReadyForQuery per Sync of the request. */
export function errorReply(code: string, message: string, hint: string | undefined, syncs: number, status: number): Buffer {
  const parts = [encodeErrorResponse({ severity: 'ERROR', code, message, ...(hint ? { hint } : {}) })];
  for (let i = 0; i < syncs; i++) parts.push(encodeReadyForQuery(status));
  return Buffer.concat(parts);
}

/** An admin command's answer: its rows (or its error) + ReadyForQuery. */
export function adminReply(res: ResultSet | AdminError, status: number): Buffer {
  if ('error' in res) {
    return Buffer.concat([
      encodeErrorResponse({ severity: 'ERROR', code: res.error.code, message: res.error.message,
        ...(res.error.detail ? { detail: res.error.detail } : {}), ...(res.error.hint ? { hint: res.error.hint } : {}) }),
      encodeReadyForQuery(status),
    ]);
  }
  const cols = res.columns.map((name) => ({ name, typeOid: 0 }));
  return Buffer.concat([encodeResultSet(cols, res.rows, res.tag ?? `SELECT ${res.rows.length}`), encodeReadyForQuery(status)]);
}
