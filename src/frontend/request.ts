/**
 * A client request: the frames up to a sync point (Query, Sync, FunctionCall) or a Flush, and
 * what routing needs to know about them, read by walking the frame headers once. Only the
 * statements' SQL and the names in Parse/Bind/Describe/Close/Execute are decoded.
 */
import { FrontendCode } from '../protocol/codes';
import { decodeBind, decodeClose, decodeDescribe, decodeExecute, decodeParse, decodeQuery } from '../protocol/frontend';

/** A complete request as received (one contiguous buffer). */
export interface Request {
  readonly data: Buffer;
  /** How many ReadyForQuery messages it will produce. */
  readonly syncs: number;
  /** Ends with Flush and no Sync: the backend keeps its extended-protocol state. */
  readonly flush: boolean;
}

/** A Parse in a request: the statement name, its SQL, and where its frame sits in `data`. */
export interface ParseRef {
  readonly name: string;
  readonly sql: string;
  readonly start: number;
  readonly end: number;
}

/** What a request contains, for routing. */
export interface RequestContents {
  /** SQL of each simple Query. */
  readonly queries: string[];
  readonly parses: ParseRef[];
  /** Statement names bound (Bind) and the portals they create. */
  readonly binds: { readonly statement: string; readonly portal: string }[];
  /** Statements described or closed ('S' targets). */
  readonly statementRefs: string[];
  /** Portals executed, described or closed ('P' targets). */
  readonly portalRefs: string[];
  /** Statements closed ('C' with 'S'). */
  readonly closedStatements: string[];
  /** Uses the extended protocol (any of P/B/D/E/C). */
  readonly extended: boolean;
  /** Only frames that need no routing of their own (Sync, Flush, CopyDone...). */
  readonly bare: boolean;
  /** Contains a FunctionCall (fastpath): the function may write, so the primary runs it. */
  readonly functionCall: boolean;
}

/** Walks a request's frames and decodes what routing needs. */
export function readRequest(data: Buffer): RequestContents {
  const out = {
    queries: [] as string[], parses: [] as ParseRef[], binds: [] as { statement: string; portal: string }[],
    statementRefs: [] as string[], portalRefs: [] as string[], closedStatements: [] as string[], extended: false, bare: true,
    functionCall: false,
  };
  let pos = 0;
  while (pos + 5 <= data.length) {
    const code = data[pos]!;
    const end = pos + 1 + data.readInt32BE(pos + 1);
    try {
      readFrame(data, code, pos, end, out);
    } catch {
      // A frame whose body does not decode (the framer checked only its length): like
      // PostgreSQL, answer it with the server's own protocol error rather than crash. It goes
      // to the primary, as a FunctionCall does, and the backend reports "invalid message format".
      out.functionCall = true;
      out.bare = false;
    }
    pos = end;
  }
  return out;
}

type MutableContents = { -readonly [K in keyof RequestContents]: RequestContents[K] };

function readFrame(data: Buffer, code: number, pos: number, end: number, out: MutableContents): void {
  switch (code) {
    case FrontendCode.Query:
      out.queries.push(decodeQuery(data, pos, end));
      out.bare = false;
      break;
    case FrontendCode.Parse: {
      const p = decodeParse(data, pos, end);
      out.parses.push({ name: p.name, sql: p.sql, start: pos, end });
      out.extended = true;
      out.bare = false;
      break;
    }
    case FrontendCode.Bind: {
      const b = decodeBind(data, pos, end);
      out.binds.push({ statement: b.statement, portal: b.portal });
      out.extended = true;
      out.bare = false;
      break;
    }
    case FrontendCode.Describe:
    case FrontendCode.Close: {
      const d = code === FrontendCode.Describe ? decodeDescribe(data, pos, end) : decodeClose(data, pos, end);
      if (d.kind === 'S') {
        out.statementRefs.push(d.name);
        if (code === FrontendCode.Close) out.closedStatements.push(d.name);
      } else {
        out.portalRefs.push(d.name);
      }
      out.extended = true;
      out.bare = false;
      break;
    }
    case FrontendCode.Execute:
      out.portalRefs.push(decodeExecute(data, pos, end).portal);
      out.extended = true;
      out.bare = false;
      break;
    case FrontendCode.FunctionCall:
      out.functionCall = true;
      out.bare = false;
      break;
    default:
      break;
  }
}
