/**
 * Untyped startup-phase packets: StartupMessage, SSLRequest, GSSENCRequest, CancelRequest.
 *
 * These have no type byte: int32 length (including itself), then an int32 "protocol version"
 * whose special values (1234.5678/5679/5680) identify the request kinds. The framer delivers
 * the whole packet; this module validates it the way the PostgreSQL postmaster does
 * (ProcessStartupPacket): major version 3, name/value pairs ended by a NUL, a `user` present.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE
 */

import { Buffer } from 'node:buffer';
import { Limits, StartupCode } from './codes';
import { ProtocolDecodeError, findNul } from './reader';

/** A startup packet PostgreSQL itself refuses (not a malformed one): its own FATAL applies (errors/client-errors.ts' startupRefusal). */
export class StartupRefused extends ProtocolDecodeError {
  constructor(
    message: string,
    /** 'protocol': an unsupported major version (0A000); 'user': no user name (28000). */
    readonly reason: 'protocol' | 'user',
    readonly major = 3,
    readonly minor = 0,
  ) {
    super(message);
  }
}
import { BufferWriter } from './writer';
import { encodeNegotiateProtocolVersion } from './backend';

const w = new BufferWriter(512);

/** Protocol version requested by a StartupMessage. */
export interface ProtocolVersion {
  readonly major: number;
  readonly minor: number;
}

/** A decoded startup-phase packet. @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP */
export type StartupPacket =
  | { readonly type: 'Startup'; readonly protocol: ProtocolVersion; readonly params: Record<string, string> }
  | { readonly type: 'SSLRequest' }
  | { readonly type: 'GSSENCRequest' }
  /**
   * `key` is the cancel key as sent: 4 bytes in protocol 3.0, 4 to 256 in 3.2 (PostgreSQL 18);
   * `secret` is a 4-byte key as a number (what pgmaitre issues), -1 for any other length.
   */
  | { readonly type: 'CancelRequest'; readonly pid: number; readonly secret: number; readonly key: Buffer }
  | { readonly type: 'Unknown'; readonly code: number };

/**
 * Decode a startup-phase packet in `buf[start, end)` (starting at its int32 length). Throws
 * ProtocolDecodeError on a length mismatch, protocol major ≠ 3, an unterminated or odd list of
 * parameter strings, or a missing `user`. Only 4-byte (protocol 3.0) cancel secrets are accepted.
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE
 */
export function decodeStartupPacket(buf: Buffer, start: number, end: number): StartupPacket {
  if (start < 0 || end > buf.length || end - start < 8) throw new ProtocolDecodeError('startup packet shorter than 8 bytes');
  const len = buf.readInt32BE(start);
  if (len !== end - start) throw new ProtocolDecodeError(`startup packet length field ${len} does not match packet size ${end - start}`);
  if (len > Limits.MaxStartupPacket) throw new ProtocolDecodeError(`startup packet too long (${len} bytes)`);
  const code = buf.readUInt32BE(start + 4);

  switch (code) {
    case StartupCode.SSLRequest:
      if (len !== 8) throw new ProtocolDecodeError('SSLRequest: length must be 8');
      return { type: 'SSLRequest' };
    case StartupCode.GSSENCRequest:
      if (len !== 8) throw new ProtocolDecodeError('GSSENCRequest: length must be 8');
      return { type: 'GSSENCRequest' };
    case StartupCode.CancelRequest: {
      const keyLen = len - 12;
      if (keyLen < 4 || keyLen > Limits.MaxCancelKey) {
        throw new ProtocolDecodeError(`CancelRequest: cancel key of ${keyLen} byte(s), must be 4 to ${Limits.MaxCancelKey}`);
      }
      const key = Buffer.from(buf.subarray(start + 12, end));
      return { type: 'CancelRequest', pid: buf.readUInt32BE(start + 8), secret: keyLen === 4 ? key.readUInt32BE(0) : -1, key };
    }
  }

  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major === 1234) return { type: 'Unknown', code };
  if (major !== 3) throw new StartupRefused(`unsupported frontend protocol ${major}.${minor}: server supports 3.0`, 'protocol', major, minor);

  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  let pos = start + 8;
  for (;;) {
    if (pos >= end) throw new ProtocolDecodeError('StartupMessage: missing final NUL terminator');
    if (buf[pos] === 0) {
      pos++;
      break;
    }
    const nameEnd = findNul(buf, pos, end, 'StartupMessage parameter name');
    const name = buf.toString('utf8', pos, nameEnd);
    pos = nameEnd + 1;
    if (pos >= end || (buf[pos] === 0 && pos === end - 1)) {
      // A name followed only by the list terminator: odd number of strings.
      throw new ProtocolDecodeError(`StartupMessage: parameter "${name}" has no value`);
    }
    const valueEnd = findNul(buf, pos, end, 'StartupMessage parameter value');
    params[name] = buf.toString('utf8', pos, valueEnd);
    pos = valueEnd + 1;
  }
  if (pos !== end) throw new ProtocolDecodeError(`StartupMessage: ${end - pos} byte(s) after the parameter list terminator`);
  if (params['user'] === undefined || params['user'] === '') {
    throw new StartupRefused('StartupMessage: no PostgreSQL user name specified in startup packet', 'user');
  }
  return { type: 'Startup', protocol: { major, minor }, params: { ...params } };
}

/** Encode a StartupMessage (default protocol 3.0). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE */
export function encodeStartupMessage(params: Readonly<Record<string, string>>, protocol: ProtocolVersion = { major: 3, minor: 0 }): Buffer {
  w.int16(protocol.major).int16(protocol.minor);
  for (const [name, value] of Object.entries(params)) w.cstring(name).cstring(value);
  w.int8(0);
  return w.startupFrame();
}

/**
 * Encode a CancelRequest for a backend: pid and its cancel key, a 32-bit secret (protocol 3.0)
 * or the key's bytes (4 to 256, protocol 3.2). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-CANCELREQUEST
 */
export function encodeCancelRequest(pid: number, secret: number | Uint8Array): Buffer {
  w.int32(StartupCode.CancelRequest).int32(pid);
  if (typeof secret === 'number') w.int32(secret);
  else {
    if (secret.length < 4 || secret.length > Limits.MaxCancelKey) throw new RangeError(`cancel key of ${secret.length} byte(s), must be 4 to ${Limits.MaxCancelKey}`);
    w.bytes(secret);
  }
  return w.startupFrame();
}

/** Encode an SSLRequest. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-SSLREQUEST */
export function encodeSSLRequest(): Buffer {
  return w.int32(StartupCode.SSLRequest).startupFrame();
}

/** Encode a GSSENCRequest. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-GSSENCREQUEST */
export function encodeGSSENCRequest(): Buffer {
  return w.int32(StartupCode.GSSENCRequest).startupFrame();
}

/**
 * What a StartupMessage's `replication` parameter asks for, read as the PostgreSQL server reads
 * it: `database` (exactly) is a logical-replication walsender, a true boolean a physical one, a
 * false boolean (or no parameter) an ordinary backend; anything else the server refuses (22023).
 * Booleans follow the server's parse_bool: true/false, yes/no, on/off, 1/0, any case, and unique
 * prefixes of the words (`t`, `fa`, `of`; `o` alone is neither).
 * @see https://www.postgresql.org/docs/current/protocol-replication.html
 */
export type ReplicationMode = 'physical' | 'logical' | 'invalid';

/** The replication mode a startup packet's parameters ask for, or null for an ordinary connection. */
export function replicationMode(params: Readonly<Record<string, string>>): ReplicationMode | null {
  const v = params['replication'];
  if (v === undefined) return null;
  if (v === 'database') return 'logical';
  const b = parseServerBool(v);
  return b === null ? 'invalid' : b ? 'physical' : null;
}

function parseServerBool(value: string): boolean | null {
  const v = value.toLowerCase();
  if (v === '') return null;
  const prefixOf = (word: string, minLength = 1): boolean => v.length >= minLength && word.startsWith(v);
  if (prefixOf('true') || prefixOf('yes') || v === 'on' || v === '1') return true;
  if (prefixOf('false') || prefixOf('no') || prefixOf('off', 2) || v === '0') return false;
  return null;
}

/** A `_pq_.` startup parameter: a protocol option, not a setting (negotiated away, never sent on). */
export function isProtocolOption(name: string): boolean {
  return name.startsWith('_pq_.');
}

/** Protocol version 3.0 as NegotiateProtocolVersion carries it (major << 16 | minor). */
const PROTOCOL_3_0 = 3 << 16;

/**
 * A 3.0 PostgreSQL's answer to a StartupMessage asking for a newer minor version (3.2: PostgreSQL
 * 18's libpq) or protocol options: NegotiateProtocolVersion with the newest minor version it
 * speaks (3.0) and the options it does not know (every `_pq_.` one, in the order sent), sent
 * before authentication; null when there is nothing to negotiate.
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 */
export function negotiateProtocol(startup: { readonly protocol: ProtocolVersion; readonly params: Readonly<Record<string, string>> }): Buffer | null {
  const options = Object.keys(startup.params).filter(isProtocolOption);
  if (startup.protocol.minor === 0 && options.length === 0) return null;
  return encodeNegotiateProtocolVersion(PROTOCOL_3_0, options);
}
