/**
 * Transaction pooling: clients share backend connections, so the names they give their prepared
 * statements cannot be used on the server as they are (two clients' "S_1" are different
 * statements; one client's statements must exist on whichever connection it leases next).
 *
 * Each protocol-level statement gets a server-side name derived from what defines it — its SQL
 * and parameter types (the Parse body after the name) — so every client that prepares the same
 * statement shares one server statement per connection: `pgm_<hash>`. SQL-level PREPARE gets
 * `pgmq_<hash>` the same way. rewriteRequest() rebuilds a request's frames with the server names:
 * Parse/Bind/Describe renamed, Close of a statement pointed at a name that never exists (the
 * server statement stays for others; closing a missing name is not an error and still answers
 * CloseComplete), and a Parse the connection already has left out, its ParseComplete answered by
 * pgmaitre in place (the request is cut into segments around it).
 */
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { FrontendCode } from '../protocol/codes';
import { skipFiller } from '../classify/filler';

/** Server-side name of a statement defined by `body` (the Parse body after its name, or the PREPARE text after its name). */
export function serverStatementName(prefix: 'pgm_' | 'pgmq_', body: Buffer | string): string {
  return prefix + createHash('sha1').update(body).digest('hex').slice(0, 24);
}

/** The Parse frame body after the statement name (SQL and parameter types): what defines the statement. */
export function parseDefinition(frame: Buffer): Buffer {
  const nameEnd = frame.indexOf(0, 5);
  return frame.subarray(nameEnd + 1);
}

/** A statement name that never exists on a server (Close of it answers CloseComplete, closes nothing). */
export const NO_SUCH_STATEMENT = 'pgm_closed';

/** One piece of a rewritten request: bytes for the server, and how many completions they produce. */
export interface Segment {
  readonly buf: Buffer;
  readonly completions: number;
  /** pgmaitre answers ParseComplete itself after this segment (the Parse it replaced is left out). */
  readonly parseCompleteAfter: boolean;
  /**
   * pgmaitre answers the next message, a Bind, with this ErrorResponse after this segment; the
   * next segment starts with a Bind that the server refuses in its place (its error not forwarded),
   * so that the server skips the rest of the request to Sync, as it would have.
   */
  readonly errorAfter?: Buffer;
  /** pgmaitre answers the next message with these bytes after this segment (the message is left out). */
  readonly answerAfter?: Buffer;
}

/** What rewriteRequest needs to know about names. */
export interface NameMap {
  /**
   * A Parse of `clientName` defined by `definition` is in the request: its server name, and
   * whether the connection had it already (then the Parse is left out); it has it afterwards.
   */
  parsed(clientName: string, definition: Buffer): { server: string; had: boolean };
  /** Server name of a client's statement name (unknown names are kept as they are). */
  serverName(clientName: string): string | undefined;
  /** A Close of the client's statement comes next in the request (before any later Parse of it). */
  closing?(clientName: string): void;
  /**
   * pgmaitre answers the Bind of `clientName` (data[start, end)) itself, with this ErrorResponse,
   * in its place (null: the server does). See Segment.errorAfter.
   */
  bindRefused?(clientName: string, data: Buffer, start: number, end: number): Buffer | null;
  /** pgmaitre answers a Describe of statement `clientName` itself, in its place (null: the server does). */
  describeAnswered?(clientName: string): { bytes: Buffer; error: boolean } | null;
}

/** A Parse frame for statement `server` with `definition` (SQL and parameter types). */
export function encodeParseAs(server: string, definition: Buffer): Buffer {
  return frame(P, [Buffer.from(server), NUL, definition]);
}

const P = FrontendCode.Parse;
const B = FrontendCode.Bind;
const D = FrontendCode.Describe;
const C = FrontendCode.Close;
const E = FrontendCode.Execute;

function frame(code: number, body: Buffer[]): Buffer {
  let len = 4;
  for (const b of body) len += b.length;
  const head = Buffer.allocUnsafe(5);
  head[0] = code;
  head.writeInt32BE(len, 1);
  return Buffer.concat([head, ...body]);
}

const NUL = Buffer.from([0]);

/** A Bind the server always refuses (26000: the statement never exists), and nothing else. */
const REFUSED_BIND = frame(B, [NUL, Buffer.from(NO_SUCH_STATEMENT), NUL, Buffer.alloc(6)]);

/**
 * The request's frames with server-side statement names, cut into segments around each Parse
 * the connection already has. Frames without a named statement are copied as they are.
 */
export function rewriteRequest(data: Buffer, names: NameMap): Segment[] {
  const segments: Segment[] = [];
  let parts: Buffer[] = [];
  let completions = 0;
  let pos = 0;
  while (pos + 5 <= data.length) {
    const code = data[pos]!;
    const end = pos + 1 + data.readInt32BE(pos + 1);
    const whole = data.subarray(pos, end);
    switch (code) {
      case P: {
        const nameEnd = data.indexOf(0, pos + 5);
        const name = data.toString('utf8', pos + 5, nameEnd);
        if (name === '') {
          completions++;
          parts.push(whole);
          break;
        }
        const { server, had } = names.parsed(name, data.subarray(nameEnd + 1, end));
        if (had) {
          // Already there: answered in place, the segment ends before it.
          segments.push({ buf: Buffer.concat(parts), completions, parseCompleteAfter: true });
          parts = [];
          completions = 0;
        } else {
          completions++;
          parts.push(frame(P, [Buffer.from(server), NUL, data.subarray(nameEnd + 1, end)]));
        }
        break;
      }
      case B: {
        completions++;
        const portalEnd = data.indexOf(0, pos + 5);
        const stmtEnd = data.indexOf(0, portalEnd + 1);
        const name = data.toString('utf8', portalEnd + 1, stmtEnd);
        const refused = names.bindRefused?.(name, data, pos, end) ?? null;
        if (refused !== null) {
          segments.push({ buf: Buffer.concat(parts), completions: completions - 1, parseCompleteAfter: false, errorAfter: refused });
          parts = [REFUSED_BIND];
          completions = 1;
          break;
        }
        const server = name === '' ? undefined : names.serverName(name);
        if (server === undefined) parts.push(whole);
        else parts.push(frame(B, [data.subarray(pos + 5, portalEnd + 1), Buffer.from(server), data.subarray(stmtEnd, end)]));
        break;
      }
      case D:
      case C: {
        completions++;
        const kind = data[pos + 5];
        const name = data.toString('utf8', pos + 6, end - 1);
        const answered = code === D && kind === 0x53 ? names.describeAnswered?.(name) ?? null : null;
        if (answered !== null) {
          segments.push({ buf: Buffer.concat(parts), completions: completions - 1, parseCompleteAfter: false,
            ...(answered.error ? { errorAfter: answered.bytes } : { answerAfter: answered.bytes }) });
          parts = answered.error ? [REFUSED_BIND] : [];
          completions = answered.error ? 1 : 0;
          break;
        }
        const server = kind === 0x53 /* S */ && name !== '' ? names.serverName(name) : undefined;
        if (code === C && kind === 0x53 && name !== '') names.closing?.(name);
        if (server === undefined) parts.push(whole);
        else parts.push(frame(code, [Buffer.from([kind!]), Buffer.from(code === C ? NO_SUCH_STATEMENT : server), NUL]));
        break;
      }
      case E:
        completions++;
        parts.push(whole);
        break;
      default:
        parts.push(whole);
        break;
    }
    pos = end;
  }
  segments.push({ buf: parts.length === 1 ? parts[0]! : Buffer.concat(parts), completions, parseCompleteAfter: false });
  return segments;
}

const SQL_NAMED = /(prepare|execute|deallocate(?:\s+prepare)?)(\s+)("(?:[^"]|"")+"|[A-Za-z_\u0080-\uffff][\w$\u0080-\uffff]*)/iy;

/**
 * SQL-level statements: `PREPARE name ...`, `EXECUTE name ...`, `DEALLOCATE [PREPARE] name` with
 * `name` replaced by `server` (the first identifier after the keyword(s), after any leading white
 * space and comments); null when the text is not of that form, or (with `expect`, the name the
 * grammar found) when that identifier is not the statement's name. A null means the statement
 * cannot be renamed: the caller fails closed (pins the session), never sends it unrenamed.
 */
export function renameSqlStatement(sql: string, server: string, expect?: string): string | null {
  const at = skipFiller(sql);
  SQL_NAMED.lastIndex = at;
  const m = SQL_NAMED.exec(sql);
  if (m === null) return null;
  const id = m[3]!;
  if (expect !== undefined && (id.startsWith('"') ? id.slice(1, -1).replace(/""/g, '"') : id.toLowerCase()) !== expect) return null;
  return sql.slice(0, at) + m[1] + m[2] + server + sql.slice(at + m[0].length);
}

const PREPARE_NAMED = /prepare\s+("(?:[^"]|"")+"|[A-Za-z_\u0080-\uffff][\w$\u0080-\uffff]*)/iy;

/** The text after a PREPARE's name (parameter types and body): what defines the statement. */
export function prepareDefinition(sql: string): string {
  const at = skipFiller(sql);
  PREPARE_NAMED.lastIndex = at;
  const m = PREPARE_NAMED.exec(sql);
  return m === null ? sql : sql.slice(at + m[0].length).trim();
}
