/**
 * PCP wire format (pgpool-II's admin protocol on pcp_port), both directions:
 * a packet is one type byte, an int32 big-endian length that counts itself but not the type
 * byte, then the payload — mostly NUL-terminated strings. Replies that carry rows come as
 * "ArraySize" + n, n record packets, and a final "CommandComplete". Errors are 'E' packets
 * with PostgreSQL-style fields (S, C, M, D), each a type byte and a NUL-terminated string.
 * Pure: Buffer in, packets out; no I/O.
 */

/** Largest packet accepted (pgpool's MAX_PCP_PACKET_LENGTH). */
export const MAX_PCP_PACKET_LENGTH = 10000;

/** One decoded packet. */
export interface PcpPacket {
  readonly type: string;
  readonly payload: Buffer;
}

/** Incremental framer: push bytes, take whole packets; partial packets wait for more bytes. */
export class PcpFramer {
  private buf: Buffer = Buffer.alloc(0);

  /** Appends bytes and returns every complete packet; throws on an impossible length. */
  push(chunk: Buffer): PcpPacket[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: PcpPacket[] = [];
    while (this.buf.length >= 5) {
      const len = this.buf.readInt32BE(1);
      if (len < 4 || len >= MAX_PCP_PACKET_LENGTH * 100) throw new Error(`incorrect packet length (${len})`);
      if (this.buf.length < 1 + len) break;
      out.push({ type: String.fromCharCode(this.buf[0] ?? 0), payload: this.buf.subarray(5, 1 + len) });
      this.buf = this.buf.subarray(1 + len);
    }
    return out;
  }
}

/** Encodes a packet from raw payload parts. */
export function encodePacket(type: string, ...parts: Buffer[]): Buffer {
  const payload = Buffer.concat(parts);
  const head = Buffer.alloc(5);
  head.write(type, 0, 1, 'latin1');
  head.writeInt32BE(payload.length + 4, 1);
  return Buffer.concat([head, payload]);
}

/** NUL-terminated UTF-8 string. */
export function cstr(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
}

/** Encodes a packet whose payload is a list of NUL-terminated strings. */
export function encodeStrings(type: string, ...strings: string[]): Buffer {
  return encodePacket(type, ...strings.map(cstr));
}

/** Splits a payload into its NUL-terminated strings (a trailing unterminated part is kept). */
export function splitStrings(payload: Buffer): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < payload.length; i++) {
    if (payload[i] === 0) {
      out.push(payload.toString('utf8', start, i));
      start = i + 1;
    }
  }
  if (start < payload.length) out.push(payload.toString('utf8', start));
  return out;
}

/** An 'E' (or 'N') packet: severity, SQLSTATE, message, detail. */
export function encodeError(severity: 'ERROR' | 'FATAL', message: string, detail?: string, code = 'XX000', type = 'E'): Buffer {
  const fields = [`S${severity}`, `C${code}`, `M${message}`, ...(detail !== undefined ? [`D${detail}`] : [])];
  return encodePacket(type, ...fields.map(cstr), Buffer.from([0]));
}

/** Decodes the fields of an 'E'/'N' packet into a map of field type → value. */
export function decodeError(payload: Buffer): Map<string, string> {
  const m = new Map<string, string>();
  for (const f of splitStrings(payload)) if (f.length > 0) m.set(f[0] ?? '', f.slice(1));
  return m;
}
