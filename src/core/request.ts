/**
 * A client request — the frames up to a sync point (Query, Sync, FunctionCall), a Flush, or
 * CopyDone/CopyFail — and what routing needs to know about it, read by walking the frame headers
 * once. Only the statements' SQL and the names in Parse/Bind/Describe/Close/Execute are decoded.
 *
 * Requests and the RequestInfo scratch are reused (pooled / cleared in place): the common shapes
 * (a lone Query; Bind/Execute/Sync of a known statement; Parse/Bind/Describe/Execute/Sync of the
 * unnamed one) cost no allocation here beyond the decoded strings.
 */
import { Buffer } from 'node:buffer';
import { FrontendCode } from '../protocol/codes';
import { decodeBind, decodeClose, decodeDescribe, decodeExecute, decodeParse, decodeQuery } from '../protocol/frontend';
import { Term } from './link';
import { emptyArray } from '../util/arrays';

/** A complete request as received (one contiguous buffer). */
export class Request {
  data: Buffer = EMPTY;
  /** Extended-protocol messages that each produce one completion (Parse, Bind, Describe, Execute, Close). */
  completions = 0;
  /** How it ends (see Term). */
  term: Term = Term.None;
  /** Ends with Flush (no Sync): the backend keeps its extended-protocol state until Sync. */
  flush = false;
  /**
   * Ends with neither Sync, Query nor Flush (a CopyDone after extended messages, a long pipeline
   * cut early): what the server answers to it stays in its output buffer for now.
   */
  unflushed = false;
  /** It is COPY data (CopyData/CopyDone/CopyFail) with nothing else. */
  copyOnly = false;
  /** Transaction pooling: a SQL PREPARE renamed to this server statement. */
  pooledPrepare: string | null = null;
  /** Transaction pooling: its SQL PREPARE/EXECUTE was renamed to a server statement name. */
  pooledRenamed = false;
  /** Transaction pooling: the bytes sent instead of `data` (the renamed statement; `data` stays the client's). */
  pooledData: Buffer | null = null;
}

const EMPTY = Buffer.alloc(0);
const pool: Request[] = [];

/** A Request from the pool. */
export function newRequest(): Request {
  return pool.pop() ?? new Request();
}

/** Gives a request back once it is sent (its data is no longer referenced by the core). */
export function releaseRequest(r: Request): void {
  r.data = EMPTY;
  r.pooledPrepare = null;
  r.pooledRenamed = false;
  r.pooledData = null;
  if (pool.length < 256) pool.push(r);
}

/** A Parse in a request: the statement name, its SQL, and where its frame sits in `data`. */
export interface ParseRef {
  readonly name: string;
  readonly sql: string;
  readonly start: number;
  readonly end: number;
}

/** What a request contains, for routing (a scratch object, cleared by read()). */
export class RequestInfo {
  /** SQL of each simple Query. */
  readonly queries: string[] = [];
  readonly parses: ParseRef[] = [];
  /** Statement names bound (Bind) and the portals they create. */
  readonly bindStatements: string[] = [];
  readonly bindPortals: string[] = [];
  /** Statements described or closed ('S' targets). */
  readonly statementRefs: string[] = [];
  /** Portals executed, described or closed ('P' targets). */
  readonly portalRefs: string[] = [];
  /** Statements closed ('C' with 'S'). */
  readonly closedStatements: string[] = [];
  /** Uses the extended protocol (any of P/B/D/E/C). */
  extended = false;
  /** Contains a FunctionCall (fastpath), or a frame whose body does not decode: the primary runs it. */
  functionCall = false;

  /**
   * Drops what the last request decoded (read() fills it again): its SQL texts and names must not
   * stay reachable from an idle session (see SessionCore.drive).
   */
  forget(): void {
    emptyArray(this.queries);
    emptyArray(this.parses);
    emptyArray(this.bindStatements);
    emptyArray(this.bindPortals);
    emptyArray(this.statementRefs);
    emptyArray(this.portalRefs);
    emptyArray(this.closedStatements);
  }

  /** Reads `data`'s frames (cleared first). */
  read(data: Buffer): this {
    this.clear();
    let pos = 0;
    while (pos + 5 <= data.length) {
      const code = data[pos]!;
      const end = pos + 1 + data.readInt32BE(pos + 1);
      try {
        this.frame(data, code, pos, end);
      } catch {
        // A frame whose body does not decode (the framer checked only its length): like
        // PostgreSQL, answer it with the server's own protocol error rather than crash. It goes
        // to the primary, as a FunctionCall does, and the backend reports "invalid message format".
        this.functionCall = true;
      }
      pos = end;
    }
    return this;
  }

  /** What read() makes of a request that is one simple Query whose text is `sql` (decoded already). */
  readQuery(sql: string): this {
    this.clear();
    this.queries.push(sql);
    return this;
  }

  /** Nothing read: every list empty (read() and readQuery() start from here). */
  private clear(): void {
    emptyArray(this.queries);
    emptyArray(this.parses);
    emptyArray(this.bindStatements);
    emptyArray(this.bindPortals);
    emptyArray(this.statementRefs);
    emptyArray(this.portalRefs);
    emptyArray(this.closedStatements);
    this.extended = false;
    this.functionCall = false;
  }

  /** True when the request binds `name` as a new portal in this same request. */
  bindsPortal(name: string): boolean {
    return this.bindPortals.includes(name);
  }

  /**
   * True when this request parses statement `name` before its first Bind, Describe or Close of
   * it (a Bind of the unnamed statement ahead of the request's own unnamed Parse binds the one
   * the client had: seed 31082).
   */
  parsesBeforeUse(name: string, data: Buffer): boolean {
    if (!this.parsesStatement(name)) return false;
    for (let pos = 0; pos + 5 <= data.length; pos += 1 + data.readInt32BE(pos + 1)) {
      const c = data[pos]!;
      if (c === FrontendCode.Parse) {
        if (data.toString('utf8', pos + 5, data.indexOf(0, pos + 5)) === name) return true;
      } else if (c === FrontendCode.Bind) {
        const portalEnd = data.indexOf(0, pos + 5);
        if (data.toString('utf8', portalEnd + 1, data.indexOf(0, portalEnd + 1)) === name) return false;
      } else if ((c === FrontendCode.Describe || c === FrontendCode.Close) && data[pos + 5] === 0x53) {
        if (data.toString('utf8', pos + 6, data.indexOf(0, pos + 6)) === name) return false;
      }
    }
    return true;
  }

  /** Every 'S' reference to statement `name` in this request is a Close (none a Describe). */
  onlyClosed(name: string): boolean {
    let closes = 0;
    for (let i = 0; i < this.closedStatements.length; i++) if (this.closedStatements[i] === name) closes++;
    if (closes === 0) return false;
    let refs = 0;
    for (let i = 0; i < this.statementRefs.length; i++) if (this.statementRefs[i] === name) refs++;
    return refs === closes;
  }

  /** True when this request parses statement `name` itself. */
  parsesStatement(name: string): boolean {
    for (let i = 0; i < this.parses.length; i++) if (this.parses[i]!.name === name) return true;
    return false;
  }

  private frame(data: Buffer, code: number, pos: number, end: number): void {
    switch (code) {
      case FrontendCode.Query:
        this.queries.push(decodeQuery(data, pos, end));
        break;
      case FrontendCode.Parse: {
        const p = decodeParse(data, pos, end);
        this.parses.push({ name: p.name, sql: p.sql, start: pos, end });
        this.extended = true;
        break;
      }
      case FrontendCode.Bind: {
        const b = decodeBind(data, pos, end);
        this.bindStatements.push(b.statement);
        this.bindPortals.push(b.portal);
        this.extended = true;
        break;
      }
      case FrontendCode.Describe:
      case FrontendCode.Close: {
        const d = code === FrontendCode.Describe ? decodeDescribe(data, pos, end) : decodeClose(data, pos, end);
        if (d.kind === 'S') {
          this.statementRefs.push(d.name);
          if (code === FrontendCode.Close) this.closedStatements.push(d.name);
        } else {
          this.portalRefs.push(d.name);
        }
        this.extended = true;
        break;
      }
      case FrontendCode.Execute:
        this.portalRefs.push(decodeExecute(data, pos, end).portal);
        this.extended = true;
        break;
      case FrontendCode.FunctionCall:
        this.functionCall = true;
        break;
      default:
        break;
    }
  }
}
