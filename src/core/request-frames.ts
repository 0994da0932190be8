/**
 * A request's frames read as they are, with no decoding (the core's helpers on byte sequences):
 *
 * - endsWhole: the request ends with a Sync, a Query or a COPY's end, so what it does may commit
 *   (a leaving client's requests run up to the last such one: SessionCore.leave).
 * - Transaction pooling, in an aborted transaction (F21), what the server does with the request's
 *   first messages, so that statements re-parsed ahead of it do not put their own 25P02 first
 *   (SessionCore.execute and executePart, side-requests.ts): frontRefusedWhenAborted (its first
 *   message is refused 25P02), failsFirstWhenAborted (it surely fails before a re-parsed statement
 *   matters), leadingCloses and afterFirstExecute (where SessionCore.execute splits it).
 */
import { Buffer } from 'node:buffer';
import { FrontendCode } from '../protocol/codes';
import { Term } from './link';
import type { Request } from './request';
import type { Statements } from './statements';
import { describedWhenAborted, parameterCount } from './connection-statements';
import { abortedBindError, parsedWhenAborted } from './tx-pooling';

/** A request that ends with a Sync, a Query or a COPY's end: what it does may commit (SessionCore.leave). */
export function endsWhole(req: Request): boolean {
  if (req.term !== Term.None) return true;
  if (!req.copyOnly) return false;
  const d = req.data;
  let last = 0;
  for (let pos = 0; pos + 5 <= d.length; pos += 1 + d.readUInt32BE(pos + 1)) last = d[pos]!;
  return last === FrontendCode.CopyDone || last === FrontendCode.CopyFail;
}

/** The first message of `data` is refused with 25P02 in an aborted transaction (see SessionCore.frontRefused). */
export function frontRefusedWhenAborted(data: Buffer, statements: Statements): boolean {
  if (data.length < 6) return false;
  const code = data[0];
  if (code === FrontendCode.Parse) return true;
  if (code === FrontendCode.Bind) {
    const portalEnd = data.indexOf(0, 5);
    const stmtEnd = portalEnd < 0 ? -1 : data.indexOf(0, portalEnd + 1);
    const name = stmtEnd > 0 ? data.toString('utf8', portalEnd + 1, stmtEnd) : '';
    const st = stmtEnd > 0 ? statements.protocol.get(name) : undefined;
    if (st === undefined) return false;
    // (08P01 first when the parameters do not match: exec_bind_message checks them before the aborted state.)
    const params = parameterCount(st);
    if (params < 0 || parsedWhenAborted(st.sql)) return true;
    const end = 1 + data.readInt32BE(1);
    return abortedBindError(data, 0, end, name, params)?.code !== '08P01';
  }
  if (code === FrontendCode.Describe && data[5] === 0x53) {
    const end = data.indexOf(0, 6);
    const st = end > 0 ? statements.protocol.get(data.toString('utf8', 6, end)) : undefined;
    // (A statement without rows is described there, seed 60067.)
    return st !== undefined && (parsedWhenAborted(st.sql) || !Buffer.isBuffer(describedWhenAborted(st)));
  }
  return false;
}

/**
 * The end of the first Execute of `data` and the completion messages up to it, when a Bind,
 * Describe or Parse follows it ([0, 0] otherwise). See SessionCore.execute.
 */
export function afterFirstExecute(data: Buffer): [number, number] {
  let pos = 0;
  let n = 0;
  while (pos + 5 <= data.length) {
    const code = data[pos]!;
    pos += 1 + data.readUInt32BE(pos + 1);
    if (code === FrontendCode.Parse || code === FrontendCode.Bind || code === FrontendCode.Describe || code === FrontendCode.Close) n++;
    if (code !== FrontendCode.Execute) continue;
    n++;
    for (let p = pos; p + 5 <= data.length; p += 1 + data.readUInt32BE(p + 1)) {
      const c = data[p]!;
      if (c === FrontendCode.Parse || c === FrontendCode.Bind || c === FrontendCode.Describe) return [pos, n];
    }
    return [0, 0];
  }
  return [0, 0];
}

/** Where the Close frames `data` begins with end, and how many they are. */
export function leadingCloses(data: Buffer): [number, number] {
  let pos = 0;
  let n = 0;
  while (pos + 5 <= data.length && data[pos] === FrontendCode.Close) {
    pos += 1 + data.readUInt32BE(pos + 1);
    n++;
  }
  return [Math.min(pos, data.length), n];
}

/**
 * In an aborted transaction, `data` surely fails at its first message other than a Close (Close
 * is answered there), with an answer that needs no statement re-parsed: a Parse of a non-exit
 * statement (25P02), a Bind or Describe of a statement the client lacks (26000), a Bind of a
 * non-exit statement the client has whose parameter count is sure (08P01 or 25P02, answered in
 * place when the connection lacks it). See SessionCore.abortedSure.
 */
export function failsFirstWhenAborted(data: Buffer, statements: Statements): boolean {
  let pos = 0;
  let closed: string[] | null = null;
  while (pos + 6 <= data.length && data[pos] === FrontendCode.Close) {
    const next = pos + 1 + data.readInt32BE(pos + 1);
    if (data[pos + 5] === 0x53) (closed ??= []).push(data.toString('utf8', pos + 6, Math.max(pos + 6, next - 1)));
    pos = next;
  }
  if (pos + 6 > data.length) return false;
  const code = data[pos];
  const end = pos + 1 + data.readInt32BE(pos + 1);
  if (code === FrontendCode.Parse) {
    const nameEnd = data.indexOf(0, pos + 5);
    const sqlEnd = nameEnd < 0 ? -1 : data.indexOf(0, nameEnd + 1);
    return sqlEnd > 0 && sqlEnd < end && !parsedWhenAborted(data.toString('utf8', nameEnd + 1, sqlEnd));
  }
  if (code === FrontendCode.Describe && data[pos + 5] === 0x53) {
    const nameEnd = data.indexOf(0, pos + 6);
    const name = nameEnd > 0 && nameEnd < end ? data.toString('utf8', pos + 6, nameEnd) : null;
    return name !== null && !statements.protocol.has(name) && closed?.includes(name) !== true;
  }
  if (code !== FrontendCode.Bind) return false;
  const portalEnd = data.indexOf(0, pos + 5);
  const stmtEnd = portalEnd < 0 ? -1 : data.indexOf(0, portalEnd + 1);
  if (stmtEnd < 0 || stmtEnd >= end) return false;
  const name = data.toString('utf8', portalEnd + 1, stmtEnd);
  const st = statements.protocol.get(name);
  if (st === undefined) return true;
  if (closed?.includes(name) === true) return false;
  return !parsedWhenAborted(st.sql) && parameterCount(st) >= 0 && abortedBindError(data, pos, end, name, parameterCount(st)) !== null;
}
