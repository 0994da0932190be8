/**
 * Server → client messages: encoders for what pgmaitre itself answers to clients (auth, errors,
 * admin result sets), decoders for what it must track from backends (auth, ParameterStatus,
 * BackendKeyData, ReadyForQuery, ErrorResponse/NoticeResponse, NotificationResponse).
 *
 * Decoders take `(buf, start, end)` where `buf[start]` is the type byte and `end` is the frame end;
 * they validate the header and throw ProtocolDecodeError on any malformed input. Row data is
 * relayed as bytes by the proxy; `decodeDataRow` exists for cold paths (health probes) and tests.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */

import { Buffer } from 'node:buffer';
import { AuthCode, BackendCode, Limits, TxStatus } from './codes';
import { ErrorFieldCode, ErrorFieldNameByByte, ErrorFieldOrder, type ErrorFieldsInput, type PgErrorFields } from './error-fields';
import { ProtocolDecodeError, frameReader } from './reader';
import { AuthOkFrame, BufferWriter, EmptyQueryResponseFrame, ReadyForQueryFrames } from './writer';

const w = new BufferWriter(4096);

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

/** Decoded Authentication* request ('R'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONOK */
export type AuthenticationMessage =
  | { readonly type: 'AuthenticationOk' }
  | { readonly type: 'AuthenticationCleartextPassword' }
  | { readonly type: 'AuthenticationMD5Password'; readonly salt: Buffer }
  | { readonly type: 'AuthenticationSASL'; readonly mechanisms: string[] }
  | { readonly type: 'AuthenticationSASLContinue'; readonly data: Buffer }
  | { readonly type: 'AuthenticationSASLFinal'; readonly data: Buffer }
  | { readonly type: 'AuthenticationUnsupported'; readonly code: number };

/** Encode an Authentication* request ('R'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONOK */
export function encodeAuthentication(msg: Exclude<AuthenticationMessage, { type: 'AuthenticationUnsupported' }>): Buffer {
  switch (msg.type) {
    case 'AuthenticationOk':
      return Buffer.from(AuthOkFrame);
    case 'AuthenticationCleartextPassword':
      w.int32(AuthCode.CleartextPassword);
      break;
    case 'AuthenticationMD5Password':
      if (msg.salt.length !== 4) throw new RangeError('MD5 salt must be 4 bytes');
      w.int32(AuthCode.MD5Password).bytes(msg.salt);
      break;
    case 'AuthenticationSASL':
      w.int32(AuthCode.SASL);
      for (const m of msg.mechanisms) w.cstring(m);
      w.int8(0);
      break;
    case 'AuthenticationSASLContinue':
      w.int32(AuthCode.SASLContinue).bytes(msg.data);
      break;
    case 'AuthenticationSASLFinal':
      w.int32(AuthCode.SASLFinal).bytes(msg.data);
      break;
    default: {
      const never: never = msg;
      throw new TypeError(`unknown authentication message ${(never as { type: string }).type}`);
    }
  }
  return w.frame(BackendCode.Authentication);
}

/** Decode an Authentication* request ('R'); unknown sub-codes (GSS, SSPI, ...) become AuthenticationUnsupported. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONOK */
export function decodeAuthentication(buf: Buffer, start: number, end: number): AuthenticationMessage {
  const r = frameReader(buf, start, end, BackendCode.Authentication, 'Authentication');
  const code = r.int32();
  switch (code) {
    case AuthCode.Ok:
      r.expectEnd('AuthenticationOk');
      return { type: 'AuthenticationOk' };
    case AuthCode.CleartextPassword:
      r.expectEnd('AuthenticationCleartextPassword');
      return { type: 'AuthenticationCleartextPassword' };
    case AuthCode.MD5Password: {
      const salt = Buffer.from(r.bytes(4));
      r.expectEnd('AuthenticationMD5Password');
      return { type: 'AuthenticationMD5Password', salt };
    }
    case AuthCode.SASL: {
      const mechanisms: string[] = [];
      for (;;) {
        if (r.remaining < 1) throw new ProtocolDecodeError('AuthenticationSASL: missing list terminator');
        if (buf[r.pos] === 0) {
          r.skip(1);
          break;
        }
        mechanisms.push(r.cstring());
      }
      r.expectEnd('AuthenticationSASL');
      return { type: 'AuthenticationSASL', mechanisms };
    }
    case AuthCode.SASLContinue:
      return { type: 'AuthenticationSASLContinue', data: Buffer.from(r.bytes(r.remaining)) };
    case AuthCode.SASLFinal:
      return { type: 'AuthenticationSASLFinal', data: Buffer.from(r.bytes(r.remaining)) };
    default:
      return { type: 'AuthenticationUnsupported', code };
  }
}

// ---------------------------------------------------------------------------------------------
// Session parameters and keys
// ---------------------------------------------------------------------------------------------

/** Encode ParameterStatus ('S'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARAMETERSTATUS */
export function encodeParameterStatus(name: string, value: string): Buffer {
  return w.cstring(name).cstring(value).frame(BackendCode.ParameterStatus);
}

/** Decode ParameterStatus ('S'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARAMETERSTATUS */
export function decodeParameterStatus(buf: Buffer, start: number, end: number): { name: string; value: string } {
  const r = frameReader(buf, start, end, BackendCode.ParameterStatus, 'ParameterStatus');
  const name = r.cstring();
  const value = r.cstring();
  r.expectEnd('ParameterStatus');
  return { name, value };
}

/**
 * Encode BackendKeyData ('K'): a 32-bit secret (protocol 3.0) or a cancel key's bytes (4 to 256,
 * protocol 3.2). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BACKENDKEYDATA
 */
export function encodeBackendKeyData(pid: number, secret: number | Uint8Array): Buffer {
  w.int32(pid);
  if (typeof secret === 'number') w.int32(secret);
  else {
    if (secret.length < 4 || secret.length > Limits.MaxCancelKey) throw new RangeError(`cancel key of ${secret.length} byte(s), must be 4 to ${Limits.MaxCancelKey}`);
    w.bytes(secret);
  }
  return w.frame(BackendCode.BackendKeyData);
}

/**
 * Decode BackendKeyData ('K'): pid, the cancel key as sent (`key`: 4 bytes in protocol 3.0, up to
 * 256 in 3.2) and, for a 4-byte key, `secret` as an unsigned 32-bit number (-1 otherwise).
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BACKENDKEYDATA
 */
export function decodeBackendKeyData(buf: Buffer, start: number, end: number): { pid: number; secret: number; key: Buffer } {
  const r = frameReader(buf, start, end, BackendCode.BackendKeyData, 'BackendKeyData');
  const pid = r.uint32();
  const n = r.remaining;
  if (n < 4 || n > Limits.MaxCancelKey) throw new ProtocolDecodeError(`BackendKeyData: cancel key of ${n} byte(s), must be 4 to ${Limits.MaxCancelKey}`);
  const key = Buffer.from(r.bytes(n));
  r.expectEnd('BackendKeyData');
  return { pid, secret: n === 4 ? key.readUInt32BE(0) : -1, key };
}

// ---------------------------------------------------------------------------------------------
// ReadyForQuery
// ---------------------------------------------------------------------------------------------

/** Transaction status as its character. */
export type TxStatusChar = 'I' | 'T' | 'E';

/** ReadyForQuery ('Z') for a status; returns a fresh copy of the precomputed frame. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-READYFORQUERY */
export function encodeReadyForQuery(status: TxStatusChar | TxStatus): Buffer {
  const key: TxStatusChar = typeof status === 'number' ? (String.fromCharCode(status) as TxStatusChar) : status;
  const frame = ReadyForQueryFrames[key];
  if (frame === undefined) throw new RangeError(`invalid transaction status ${String(status)}`);
  return Buffer.from(frame);
}

/** Decode ReadyForQuery ('Z') → TxStatus byte; any status other than I/T/E is a protocol violation. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-READYFORQUERY */
export function decodeReadyForQuery(buf: Buffer, start: number, end: number): TxStatus {
  if (end - start !== 6 || buf[start] !== BackendCode.ReadyForQuery || end > buf.length || buf.readInt32BE(start + 1) !== 5) {
    throw new ProtocolDecodeError('ReadyForQuery: malformed frame');
  }
  const s = buf[start + 5];
  if (s !== TxStatus.Idle && s !== TxStatus.InTransaction && s !== TxStatus.Failed) {
    throw new ProtocolDecodeError(`ReadyForQuery: invalid transaction status 0x${(s as number).toString(16)}`);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// ErrorResponse / NoticeResponse
// ---------------------------------------------------------------------------------------------

function writeErrorFields(fields: ErrorFieldsInput): void {
  w.int8(ErrorFieldCode.severity.charCodeAt(0)).cstring(fields.severity);
  w.int8(ErrorFieldCode.severityNonLocalized.charCodeAt(0)).cstring(fields.severity);
  for (const name of ErrorFieldOrder) {
    if (name === 'severity' || name === 'severityNonLocalized') continue;
    const v = (fields as Record<string, string | number | undefined>)[name];
    if (v === undefined) continue;
    w.int8(ErrorFieldCode[name].charCodeAt(0)).cstring(String(v));
  }
  w.int8(0);
}

/** Encode ErrorResponse ('E'); 'S' and 'V' both carry `severity`. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ERRORRESPONSE */
export function encodeErrorResponse(fields: ErrorFieldsInput): Buffer {
  writeErrorFields(fields);
  return w.frame(BackendCode.ErrorResponse);
}

/** Encode NoticeResponse ('N'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-NOTICERESPONSE */
export function encodeNoticeResponse(fields: ErrorFieldsInput): Buffer {
  writeErrorFields(fields);
  return w.frame(BackendCode.NoticeResponse);
}

/** Decode the fields of an ErrorResponse ('E') or NoticeResponse ('N'); unknown field codes are ignored. @see https://www.postgresql.org/docs/current/protocol-error-fields.html */
export function decodeErrorFields(buf: Buffer, start: number, end: number): PgErrorFields {
  const code = buf[start];
  const r = frameReader(buf, start, end, code === BackendCode.NoticeResponse ? BackendCode.NoticeResponse : BackendCode.ErrorResponse, 'ErrorResponse/NoticeResponse');
  const out: PgErrorFields = { severity: '', code: '', message: '' };
  for (;;) {
    const type = r.uint8();
    if (type === 0) break;
    const value = r.cstring();
    const name = ErrorFieldNameByByte[type];
    if (name !== undefined) out[name] = value;
  }
  r.expectEnd('ErrorResponse/NoticeResponse');
  return out;
}

// ---------------------------------------------------------------------------------------------
// Result sets
// ---------------------------------------------------------------------------------------------

/** One RowDescription column; defaults: typeOid 25 (text), typeSize -1, typeMod -1, format 0 (text), tableOid/columnAttr 0. */
export interface ColumnDescription {
  name: string;
  tableOid?: number;
  columnAttr?: number;
  typeOid?: number;
  typeSize?: number;
  typeMod?: number;
  format?: number;
}

function writeRowDescription(columns: readonly ColumnDescription[]): void {
  w.int16(columns.length);
  for (const c of columns) {
    w.cstring(c.name)
      .int32(c.tableOid ?? 0)
      .int16(c.columnAttr ?? 0)
      .int32(c.typeOid ?? 25)
      .int16(c.typeSize ?? -1)
      .int32(c.typeMod ?? -1)
      .int16(c.format ?? 0);
  }
}

function writeDataRow(values: readonly (string | null)[]): void {
  w.int16(values.length);
  for (const v of values) {
    if (v === null) {
      w.int32(-1);
      continue;
    }
    // Back-fill the length instead of a separate Buffer.byteLength pass over the string.
    const at = w.reserveInt32();
    w.string(v);
    w.fillInt32(at, w.offset - at - 4);
  }
}

/** Encode RowDescription ('T'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ROWDESCRIPTION */
export function encodeRowDescription(columns: readonly ColumnDescription[]): Buffer {
  writeRowDescription(columns);
  return w.frame(BackendCode.RowDescription);
}

/** Decode RowDescription ('T') with all defaults made explicit. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ROWDESCRIPTION */
export function decodeRowDescription(buf: Buffer, start: number, end: number): Required<ColumnDescription>[] {
  const r = frameReader(buf, start, end, BackendCode.RowDescription, 'RowDescription');
  const n = r.int16();
  if (n < 0) throw new ProtocolDecodeError(`RowDescription: negative column count ${n}`);
  const cols: Required<ColumnDescription>[] = [];
  for (let i = 0; i < n; i++) {
    cols.push({
      name: r.cstring(),
      tableOid: r.uint32(),
      columnAttr: r.int16(),
      typeOid: r.uint32(),
      typeSize: r.int16(),
      typeMod: r.int32(),
      format: r.int16(),
    });
  }
  r.expectEnd('RowDescription');
  return cols;
}

/** Encode a text-format DataRow ('D'); null → SQL NULL. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-DATAROW */
export function encodeDataRow(values: readonly (string | null)[]): Buffer {
  writeDataRow(values);
  return w.frame(BackendCode.DataRow);
}

/** Decode a DataRow ('D') as text; cold paths and tests only (the relay never decodes rows). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-DATAROW */
export function decodeDataRow(buf: Buffer, start: number, end: number): (string | null)[] {
  const r = frameReader(buf, start, end, BackendCode.DataRow, 'DataRow');
  const n = r.int16();
  if (n < 0) throw new ProtocolDecodeError(`DataRow: negative column count ${n}`);
  const values: (string | null)[] = [];
  for (let i = 0; i < n; i++) {
    const len = r.int32();
    if (len === -1) values.push(null);
    else if (len < 0) throw new ProtocolDecodeError(`DataRow: invalid value length ${len}`);
    else values.push(r.string(len));
  }
  r.expectEnd('DataRow');
  return values;
}

/** Encode CommandComplete ('C') with a tag such as 'SELECT 3' or 'SET'. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COMMANDCOMPLETE */
export function encodeCommandComplete(tag: string): Buffer {
  return w.cstring(tag).frame(BackendCode.CommandComplete);
}

/** Decode CommandComplete ('C') → command tag. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COMMANDCOMPLETE */
export function decodeCommandComplete(buf: Buffer, start: number, end: number): string {
  const r = frameReader(buf, start, end, BackendCode.CommandComplete, 'CommandComplete');
  const tag = r.cstring();
  r.expectEnd('CommandComplete');
  return tag;
}

/** EmptyQueryResponse ('I'); a fresh copy of the constant frame. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-EMPTYQUERYRESPONSE */
export function encodeEmptyQueryResponse(): Buffer {
  return Buffer.from(EmptyQueryResponseFrame);
}

/** RowDescription + one DataRow per row + CommandComplete, as a single Buffer (one socket write). @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SIMPLE-QUERY */
export function encodeResultSet(columns: readonly ColumnDescription[], rows: readonly (readonly (string | null)[])[], tag: string): Buffer {
  writeRowDescription(columns);
  w.append(BackendCode.RowDescription);
  for (const row of rows) {
    if (row.length !== columns.length) {
      w.reset();
      throw new RangeError(`row has ${row.length} values, expected ${columns.length}`);
    }
    writeDataRow(row);
    w.append(BackendCode.DataRow);
  }
  w.cstring(tag);
  return w.frame(BackendCode.CommandComplete);
}

// ---------------------------------------------------------------------------------------------
// NegotiateProtocolVersion, NotificationResponse
// ---------------------------------------------------------------------------------------------

/** Encode NegotiateProtocolVersion ('v'): `version` is the full (major << 16 | minor) number offered. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-NEGOTIATEPROTOCOLVERSION */
export function encodeNegotiateProtocolVersion(version: number, unsupportedOptions: readonly string[] = []): Buffer {
  w.int32(version).int32(unsupportedOptions.length);
  for (const o of unsupportedOptions) w.cstring(o);
  return w.frame(BackendCode.NegotiateProtocolVersion);
}

/** Decode NegotiateProtocolVersion ('v'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-NEGOTIATEPROTOCOLVERSION */
export function decodeNegotiateProtocolVersion(buf: Buffer, start: number, end: number): { version: number; unsupportedOptions: string[] } {
  const r = frameReader(buf, start, end, BackendCode.NegotiateProtocolVersion, 'NegotiateProtocolVersion');
  const version = r.uint32();
  const n = r.int32();
  if (n < 0) throw new ProtocolDecodeError(`NegotiateProtocolVersion: negative option count ${n}`);
  const unsupportedOptions: string[] = [];
  for (let i = 0; i < n; i++) unsupportedOptions.push(r.cstring());
  r.expectEnd('NegotiateProtocolVersion');
  return { version, unsupportedOptions };
}

/** Encode NotificationResponse ('A'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-NOTIFICATIONRESPONSE */
export function encodeNotification(pid: number, channel: string, payload: string): Buffer {
  return w.int32(pid).cstring(channel).cstring(payload).frame(BackendCode.NotificationResponse);
}

/** Decode NotificationResponse ('A'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-NOTIFICATIONRESPONSE */
export function decodeNotification(buf: Buffer, start: number, end: number): { pid: number; channel: string; payload: string } {
  const r = frameReader(buf, start, end, BackendCode.NotificationResponse, 'NotificationResponse');
  const pid = r.uint32();
  const channel = r.cstring();
  const payload = r.cstring();
  r.expectEnd('NotificationResponse');
  return { pid, channel, payload };
}

