/**
 * Client → server messages: decoders for what the proxy routes on or tracks (Query, Parse, Bind
 * names, Describe, Close, Execute, auth responses, FunctionCall), encoders for the proxy's own
 * backend sessions (login, health probes, reset) and for tests.
 *
 * The hot decoders (Query/Parse/Bind/Execute/Describe/Close) walk the body with indexOf and
 * direct reads: no reader object, no intermediate arrays, strings via buf.toString(utf8, a, b).
 * Bind parameter values are never decoded on the routing path; decodeBindFull exists for tests.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */

import { Buffer } from 'node:buffer';
import { FrontendCode } from './codes';
import { BufferReader, ProtocolDecodeError, checkFrameHeader, findNul, frameReader } from './reader';
import { BufferWriter, CopyDoneFrame, FlushFrame, SyncFrame, TerminateFrame } from './writer';

const w = new BufferWriter(4096);

/** Describe/Close target: prepared Statement or Portal. */
export type TargetKind = 'S' | 'P';

const KIND_S = 0x53;
const KIND_P = 0x50;

type Utf8Slicer = Buffer & { utf8Slice(start: number, end: number): string };
const HAS_UTF8_SLICE = typeof (Buffer.prototype as Partial<Utf8Slicer>).utf8Slice === 'function';

/**
 * buf.toString('utf8', start, end) for a range the decoder has checked (within the frame): what
 * toString() ends up calling, without its argument checks and encoding lookup (~10 % of the time
 * the session core spent reading a pgbench -S request, issue 17, item 9).
 */
function utf8(buf: Buffer, start: number, end: number): string {
  if (end <= start) return '';
  return HAS_UTF8_SLICE ? (buf as Utf8Slicer).utf8Slice(start, end) : buf.toString('utf8', start, end);
}

function trailing(pos: number, end: number, what: string): void {
  if (pos !== end) throw new ProtocolDecodeError(`${what}: ${end - pos} unexpected trailing byte(s)`);
}

// ---------------------------------------------------------------------------------------------
// Query / Parse / Bind / Execute / Describe / Close
// ---------------------------------------------------------------------------------------------

/** Encode Query ('Q'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-QUERY */
export function encodeQuery(sql: string): Buffer {
  return w.cstring(sql).frame(FrontendCode.Query);
}

/** Decode Query ('Q') → SQL text. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-QUERY */
export function decodeQuery(buf: Buffer, start: number, end: number): string {
  const body = checkFrameHeader(buf, start, end, FrontendCode.Query, 'Query');
  const nul = findNul(buf, body, end, 'Query');
  trailing(nul + 1, end, 'Query');
  return utf8(buf, body, nul);
}

/** Encode Parse ('P'); parameter type OIDs default to none (server infers). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARSE */
export function encodeParse(name: string, sql: string, paramTypes: readonly number[] = []): Buffer {
  w.cstring(name).cstring(sql).int16(paramTypes.length);
  for (const oid of paramTypes) w.int32(oid);
  return w.frame(FrontendCode.Parse);
}

/** Decoded Parse. */
export interface ParseMessage {
  readonly name: string;
  readonly sql: string;
  readonly paramTypes: number[];
}

/** Decode Parse ('P') → statement name ('' = unnamed), SQL, parameter type OIDs. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARSE */
export function decodeParse(buf: Buffer, start: number, end: number): ParseMessage {
  const body = checkFrameHeader(buf, start, end, FrontendCode.Parse, 'Parse');
  const nameEnd = findNul(buf, body, end, 'Parse name');
  const sqlEnd = findNul(buf, nameEnd + 1, end, 'Parse query');
  let pos = sqlEnd + 1;
  if (end - pos < 2) throw new ProtocolDecodeError('Parse: truncated parameter count');
  const n = buf.readInt16BE(pos);
  pos += 2;
  if (n < 0 || end - pos !== n * 4) throw new ProtocolDecodeError(`Parse: ${n} parameter types do not fit the ${end - pos} remaining bytes`);
  const paramTypes = new Array<number>(n);
  for (let i = 0; i < n; i++, pos += 4) paramTypes[i] = buf.readUInt32BE(pos);
  return {
    name: nameEnd === body ? '' : utf8(buf, body, nameEnd),
    sql: utf8(buf, nameEnd + 1, sqlEnd),
    paramTypes,
  };
}

/**
 * Encode Bind ('B'). Strings are sent as text, Buffers as binary (format codes are emitted only
 * when some parameter is binary); `resultFormats` defaults to "all text".
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BIND
 */
export function encodeBind(portal: string, statement: string, params: readonly (string | Buffer | null)[] = [], resultFormats: readonly number[] = []): Buffer {
  w.cstring(portal).cstring(statement);
  let anyBinary = false;
  for (const p of params) if (Buffer.isBuffer(p)) anyBinary = true;
  if (anyBinary) {
    w.int16(params.length);
    for (const p of params) w.int16(Buffer.isBuffer(p) ? 1 : 0);
  } else {
    w.int16(0);
  }
  w.int16(params.length);
  for (const p of params) {
    if (p === null) w.int32(-1);
    else if (Buffer.isBuffer(p)) w.int32(p.length).bytes(p);
    else {
      const at = w.reserveInt32();
      w.string(p);
      w.fillInt32(at, w.offset - at - 4);
    }
  }
  w.int16(resultFormats.length);
  for (const f of resultFormats) w.int16(f);
  return w.frame(FrontendCode.Bind);
}

/** Bind names only: what routing needs. */
export interface BindMessage {
  readonly portal: string;
  readonly statement: string;
}

/** Decode Bind ('B') portal and statement names only; parameter bytes are left alone. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BIND */
export function decodeBind(buf: Buffer, start: number, end: number): BindMessage {
  const body = checkFrameHeader(buf, start, end, FrontendCode.Bind, 'Bind');
  const portalEnd = findNul(buf, body, end, 'Bind portal');
  const stmtEnd = findNul(buf, portalEnd + 1, end, 'Bind statement');
  return {
    portal: portalEnd === body ? '' : utf8(buf, body, portalEnd),
    statement: stmtEnd === portalEnd + 1 ? '' : utf8(buf, portalEnd + 1, stmtEnd),
  };
}

/** Fully decoded Bind (tests and diagnostics). */
export interface BindMessageFull extends BindMessage {
  readonly paramFormats: number[];
  readonly params: (Buffer | null)[];
  readonly resultFormats: number[];
}

/** Decode Bind ('B') completely, parameter values as Buffer views (tests/diagnostics, not the routing path). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BIND */
export function decodeBindFull(buf: Buffer, start: number, end: number): BindMessageFull {
  const r = frameReader(buf, start, end, FrontendCode.Bind, 'Bind');
  const portal = r.cstring();
  const statement = r.cstring();
  const paramFormats = int16List(r, 'Bind parameter formats');
  const nParams = r.int16();
  if (nParams < 0) throw new ProtocolDecodeError(`Bind: negative parameter count ${nParams}`);
  const params: (Buffer | null)[] = [];
  for (let i = 0; i < nParams; i++) {
    const len = r.int32();
    if (len === -1) params.push(null);
    else if (len < 0) throw new ProtocolDecodeError(`Bind: invalid parameter length ${len}`);
    else params.push(r.bytes(len));
  }
  const resultFormats = int16List(r, 'Bind result formats');
  r.expectEnd('Bind');
  return { portal, statement, paramFormats, params, resultFormats };
}

function int16List(r: BufferReader, what: string): number[] {
  const n = r.int16();
  if (n < 0) throw new ProtocolDecodeError(`${what}: negative count ${n}`);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(r.int16());
  return out;
}

function encodeTarget(code: number, kind: TargetKind, name: string): Buffer {
  return w.int8(kind.charCodeAt(0)).cstring(name).frame(code);
}

function decodeTarget(buf: Buffer, start: number, end: number, code: number, what: string): { kind: TargetKind; name: string } {
  const body = checkFrameHeader(buf, start, end, code, what);
  if (end - body < 2) throw new ProtocolDecodeError(`${what}: truncated body`);
  const k = buf[body];
  if (k !== KIND_S && k !== KIND_P) throw new ProtocolDecodeError(`${what}: invalid target kind 0x${(k as number).toString(16)}`);
  const nul = findNul(buf, body + 1, end, what);
  trailing(nul + 1, end, what);
  return { kind: k === KIND_S ? 'S' : 'P', name: nul === body + 1 ? '' : buf.toString('utf8', body + 1, nul) };
}

/** Encode Describe ('D') of a statement ('S') or portal ('P'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-DESCRIBE */
export function encodeDescribe(kind: TargetKind, name: string): Buffer {
  return encodeTarget(FrontendCode.Describe, kind, name);
}

/** Decode Describe ('D'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-DESCRIBE */
export function decodeDescribe(buf: Buffer, start: number, end: number): { kind: TargetKind; name: string } {
  return decodeTarget(buf, start, end, FrontendCode.Describe, 'Describe');
}

/** Encode Close ('C') of a statement ('S') or portal ('P'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-CLOSE */
export function encodeClose(kind: TargetKind, name: string): Buffer {
  return encodeTarget(FrontendCode.Close, kind, name);
}

/** Decode Close ('C'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-CLOSE */
export function decodeClose(buf: Buffer, start: number, end: number): { kind: TargetKind; name: string } {
  return decodeTarget(buf, start, end, FrontendCode.Close, 'Close');
}

/** Encode Execute ('E'); maxRows 0 = no limit. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-EXECUTE */
export function encodeExecute(portal = '', maxRows = 0): Buffer {
  return w.cstring(portal).int32(maxRows).frame(FrontendCode.Execute);
}

/** Decode Execute ('E'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-EXECUTE */
export function decodeExecute(buf: Buffer, start: number, end: number): { portal: string; maxRows: number } {
  const body = checkFrameHeader(buf, start, end, FrontendCode.Execute, 'Execute');
  const nul = findNul(buf, body, end, 'Execute');
  if (end - nul - 1 !== 4) throw new ProtocolDecodeError('Execute: expected int32 row limit after portal name');
  return { portal: nul === body ? '' : buf.toString('utf8', body, nul), maxRows: buf.readInt32BE(nul + 1) };
}

/** Sync ('S'); a fresh copy of the constant frame. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-SYNC */
export function encodeSync(): Buffer {
  return Buffer.from(SyncFrame);
}

/** Flush ('H'); a fresh copy of the constant frame. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-FLUSH */
export function encodeFlush(): Buffer {
  return Buffer.from(FlushFrame);
}

/** Terminate ('X'); a fresh copy of the constant frame. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-TERMINATE */
export function encodeTerminate(): Buffer {
  return Buffer.from(TerminateFrame);
}

// ---------------------------------------------------------------------------------------------
// Authentication responses (all 'p'; which one it is depends on the auth exchange state)
// ---------------------------------------------------------------------------------------------

/** Encode PasswordMessage ('p'): cleartext password or 'md5…' response. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PASSWORDMESSAGE */
export function encodePassword(password: string): Buffer {
  return w.cstring(password).frame(FrontendCode.Password);
}

/** Decode PasswordMessage ('p') → cleartext or md5 string. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PASSWORDMESSAGE */
export function decodePassword(buf: Buffer, start: number, end: number): string {
  const r = frameReader(buf, start, end, FrontendCode.Password, 'PasswordMessage');
  const s = r.cstring();
  r.expectEnd('PasswordMessage');
  return s;
}

/** Encode SASLInitialResponse ('p'); `data` null → length -1 (no initial response). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-SASLINITIALRESPONSE */
export function encodeSASLInitialResponse(mechanism: string, data: Buffer | string | null): Buffer {
  w.cstring(mechanism);
  if (data === null) w.int32(-1);
  else {
    const b = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    w.int32(b.length).bytes(b);
  }
  return w.frame(FrontendCode.Password);
}

/** Decode SASLInitialResponse ('p') → mechanism and (copied) client-first data; absent data → empty Buffer. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-SASLINITIALRESPONSE */
export function decodeSASLInitialResponse(buf: Buffer, start: number, end: number): { mechanism: string; data: Buffer } {
  const r = frameReader(buf, start, end, FrontendCode.Password, 'SASLInitialResponse');
  const mechanism = r.cstring();
  const len = r.int32();
  if (len < -1) throw new ProtocolDecodeError(`SASLInitialResponse: invalid data length ${len}`);
  const data = len === -1 ? Buffer.alloc(0) : Buffer.from(r.bytes(len));
  r.expectEnd('SASLInitialResponse');
  return { mechanism, data };
}

/** Encode SASLResponse ('p'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-SASLRESPONSE */
export function encodeSASLResponse(data: Buffer | string): Buffer {
  return w.bytes(typeof data === 'string' ? Buffer.from(data, 'utf8') : data).frame(FrontendCode.Password);
}

/** Decode SASLResponse ('p') → (copied) mechanism-specific data. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-SASLRESPONSE */
export function decodeSASLResponse(buf: Buffer, start: number, end: number): Buffer {
  const body = checkFrameHeader(buf, start, end, FrontendCode.Password, 'SASLResponse');
  return Buffer.from(buf.subarray(body, end));
}

// ---------------------------------------------------------------------------------------------
// COPY and FunctionCall
// ---------------------------------------------------------------------------------------------

/** Encode CopyData ('d'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COPYDATA */
export function encodeCopyData(data: Buffer | string): Buffer {
  return w.bytes(typeof data === 'string' ? Buffer.from(data, 'utf8') : data).frame(FrontendCode.CopyData);
}

/** CopyDone ('c'); a fresh copy of the constant frame. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COPYDONE */
export function encodeCopyDone(): Buffer {
  return Buffer.from(CopyDoneFrame);
}

/** Encode CopyFail ('f') with an error message. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COPYFAIL */
export function encodeCopyFail(message: string): Buffer {
  return w.cstring(message).frame(FrontendCode.CopyFail);
}

/** Decode CopyFail ('f') → error message. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COPYFAIL */
export function decodeCopyFail(buf: Buffer, start: number, end: number): string {
  const r = frameReader(buf, start, end, FrontendCode.CopyFail, 'CopyFail');
  const s = r.cstring();
  r.expectEnd('CopyFail');
  return s;
}

/** Encode FunctionCall ('F'): text args (Buffer = binary), result format 0 text / 1 binary. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-FUNCTIONCALL */
export function encodeFunctionCall(oid: number, args: readonly (string | Buffer | null)[] = [], resultFormat = 0): Buffer {
  w.int32(oid);
  w.int16(args.length);
  for (const a of args) w.int16(Buffer.isBuffer(a) ? 1 : 0);
  w.int16(args.length);
  for (const a of args) {
    if (a === null) w.int32(-1);
    else {
      const b = typeof a === 'string' ? Buffer.from(a, 'utf8') : a;
      w.int32(b.length).bytes(b);
    }
  }
  w.int16(resultFormat);
  return w.frame(FrontendCode.FunctionCall);
}

/** Decode FunctionCall ('F') → function OID only (arguments are relayed, not routed on). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-FUNCTIONCALL */
export function decodeFunctionCall(buf: Buffer, start: number, end: number): { oid: number } {
  const body = checkFrameHeader(buf, start, end, FrontendCode.FunctionCall, 'FunctionCall');
  // Minimum body: oid + format count + arg count + result format.
  if (end - body < 10) throw new ProtocolDecodeError('FunctionCall: truncated body');
  return { oid: buf.readUInt32BE(body) };
}
