/**
 * One session's link to one backend node: the connection it uses there, and the exact account of
 * the answers that node still owes, in order.
 *
 * Every request written to a link pushes an Expect: how many extended-protocol completions it
 * will produce (Parse → '1', Bind → '2', Close → '3', Describe → 'T'/'n', Execute → 'C'/'I'/'s'),
 * whether it ends with a ReadyForQuery (Sync, Query, FunctionCall), and whether its answer goes to
 * the client or is swallowed (a side request: a statement re-parsed here, session state replayed
 * here). The scanner below walks the backend's byte stream, headers only, and attributes each
 * message to the Expect at the head of the queue; a message's fate (forwarded, swallowed, or held
 * until its body says what it is) is decided at its first byte, so ranges of a chunk are forwarded
 * untouched and in order, and an answer never leaks into a swallowed one or the reverse.
 *
 * The protocol rules this encodes (PostgreSQL docs, "Extended Query"):
 * - after an ErrorResponse in the extended protocol the backend skips every message until the
 *   next Sync: the failing request and every request up to that Sync get no more answers;
 * - Sync and Flush received during COPY IN are ignored (the Sync sent with an Execute that starts
 *   COPY IN is never answered);
 * - a request ending in Flush has no ReadyForQuery: it is complete when its last completion came.
 * A message nobody asked for (no Expect) is asynchronous: NOTIFY, notices, ParameterStatus, or a
 * FATAL goodbye; the link forwards the first three only when `forwardAsync` is set and holds a
 * goodbye for its owner to decide.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 */
import { Buffer } from 'node:buffer';
import { BackendCode, TxStatus } from '../protocol/codes';
import { decodeErrorFields, decodeParameterStatus } from '../protocol/backend';
import type { BackendPort, ForwardSink } from './ports';
import { emptyArray } from '../util/arrays';

/** How a request ends. */
export const Term = {
  /** Flush, CopyDone/CopyFail, or nothing: no ReadyForQuery. */
  None: 0,
  /** Sync: ReadyForQuery; skip-until-Sync after an extended-protocol error ends here. */
  Sync: 1,
  /** Query or FunctionCall: ReadyForQuery (skipped, unanswered, while the backend skips until Sync). */
  Query: 2,
} as const;
export type Term = (typeof Term)[keyof typeof Term];

/** Why a request was written: the client's own, or one of pgmaitre's side requests. */
export const ExpectKind = {
  Client: 0,
  /** A statement re-parsed on this node before a request that uses it. */
  Reparse: 1,
  /** Session state (SET...) replayed on this node. */
  State: 2,
  /** A transaction opened or closed here to follow the session's (load_balance_in_transaction). */
  Tx: 3,
  /** Cleanup (Close/DEALLOCATE of something the session removed elsewhere). */
  Cleanup: 4,
  /**
   * An answer pgmaitre gives itself, in place (transaction pooling: ParseComplete for a statement
   * the connection already has): its bytes go to the client when it reaches the head of the queue.
   */
  Synthetic: 5,
  /** A question pgmaitre asks the server itself (transaction pooling: is a temporary relation left?); rows are counted. */
  Probe: 6,
  /**
   * Transaction pooling: a Describe of statements the client just parsed, so that pgmaitre can
   * describe them itself where the server cannot be asked (connection-statements.ts describeParsed).
   * Its answer is kept in `described`.
   */
  Describe: 7,
} as const;
export type ExpectKind = (typeof ExpectKind)[keyof typeof ExpectKind];

/** What one request written to a link will produce (pooled: never kept past `release`). */
export class Expect {
  kind: ExpectKind = ExpectKind.Client;
  swallow = false;
  /** A ReadyForQuery ends it. */
  sync = false;
  /** It ends with Sync proper (skip-until-Sync stops here). */
  realSync = false;
  /** Extended-protocol completions still to come. */
  pending = 0;
  /** An ErrorResponse belonged to its answer. */
  errored = false;
  /** The backend skipped it (an earlier extended-protocol error): it got no answer. */
  skipped = false;
  /** Bytes of its answer (other than notices) reached the client. */
  started = false;
  /** The request, kept while it may be re-run on another node. */
  retry: object | null = null;
  /**
   * A simple Query's statements whose CommandComplete (or EmptyQueryResponse) has not come, when
   * the owner counts them (-1: not counted). At 0, with no completion pending, only the
   * ReadyForQuery is owed: see answeredButReady.
   */
  queryLeft = -1;
  /** The core's own note (what to do when it completes). */
  token: unknown = null;
  /** Transaction status of the ReadyForQuery that completed it (0 when none). */
  status = 0;
  /** Forward an ErrorResponse of a swallowed request (a re-parse the client's own messages depend on). */
  errorsToClient = false;
  /** A Synthetic expect's bytes. */
  bytes: Buffer | null = null;
  /** DataRows of a swallowed answer (a Probe reads its answer this way). */
  rows = 0;
  /** Completions it was to produce. */
  completions = 0;
  /** When it errored: completions that had come before the error (the failing message's index). */
  failedAt = -1;
  /**
   * A Query written inside an open extended-protocol sequence: the Link.sequence it ends when its
   * ReadyForQuery comes (-1: none). Skipped (the backend skips to Sync after an error), it ends nothing.
   */
  endsSequence = -1;
  /**
   * A request split around ParseCompletes answered in place (transaction pooling): the expect of
   * its last part (null: not split, or this is it), this part's first message's index in the
   * whole request, and (on the last part) the index in the whole request of the message that
   * failed in an earlier part (-1: none).
   */
  splitLast: Expect | null = null;
  splitOffset = 0;
  failedAtOrig = -1;
  /**
   * Its first ErrorResponse is not forwarded (it still errors the request): pgmaitre answered
   * that message itself, in place (statement-names.ts Segment.errorAfter).
   */
  hideError = false;
  /**
   * A swallowed request whose ParameterStatus messages go to the client with the synthetic answer
   * that follows it (localError's ABORT_TX: PostgreSQL reports, at the error, a setting the
   * aborted transaction had changed and now takes back; seed 102108). Kept in `params`.
   */
  keepParams = false;
  params: Buffer[] | null = null;
  /**
   * A Describe expect's answer (ExpectKind.Describe): per statement, its ParameterDescription
   * frame, then true (a RowDescription came: it returns rows) or false (NoData).
   */
  described: (Buffer | boolean)[] | null = null;
}

/** Disposition of the message being scanned. */
const FWD = 0;
const DROP = 1;
const HOLD = 2;
/**
 * A notice or error after the head of a re-runnable answer began in this very chunk (its bytes
 * are still in the unforwarded run): forwarded with the run, unless it says the node is going
 * away, in which case the run is cut back to where that answer began (see `tentative`).
 */
const PEEK = 3;

/** Extended-protocol completion messages: one per Parse/Bind/Close/Describe/Execute. */
const COMPLETION = new Uint8Array(256);
for (const c of '123nTCIs') COMPLETION[c.charCodeAt(0)] = 1;

const Z = BackendCode.ReadyForQuery;
const E = BackendCode.ErrorResponse;
const N = BackendCode.NoticeResponse;
const A = BackendCode.NotificationResponse;
const S = BackendCode.ParameterStatus;
const G = BackendCode.CopyInResponse;

/** A FATAL the backend sent before going away. */
export interface Goodbye {
  readonly code: string;
  /** The message's bytes when it was held (not forwarded): the owner may forward it. */
  readonly frame: Buffer | null;
  /** It reached the client as part of an answer. */
  readonly forwarded: boolean;
}

const pool: Expect[] = [];

/** See the file header. */
export class Link {
  conn: BackendPort | null = null;
  /** log_backend_messages: called with each message kind from this backend (null when off). */
  trace: ((code: number, node: number) => void) | null = null;
  /** Transaction status from the last ReadyForQuery. */
  txStatus: number = TxStatus.Idle;
  /** Expects in order; the head is the one being answered. */
  private readonly q: Expect[] = [];
  /** Expects whose answer goes to the client. */
  clientOwed = 0;
  /** Expects waiting for a ReadyForQuery. */
  syncOwed = 0;
  /**
   * The client's extended-protocol sequence on this link is open (messages since the last Sync;
   * a Query ends it only once its ReadyForQuery comes: see openSequence/endSequence).
   */
  unsynced = false;
  /**
   * The last client request written here ended with neither Sync, Query nor Flush: its answers
   * may sit unflushed in the server's output buffer (SessionCore.flushWaited).
   */
  unflushed = false;
  /** Advanced each time a sequence opens (a Query's ReadyForQuery ends only the one it was written in). */
  private sequence = 0;
  /** The backend is in COPY IN: the client's CopyData/CopyDone/CopyFail go here. */
  copyIn = false;
  /** Asynchronous messages (NOTIFY, notices, ParameterStatus) with no request go to the client. */
  forwardAsync = false;
  /** Set when the backend said FATAL (or a shutdown notice at the head of a retryable answer). */
  goodbye: Goodbye | null = null;
  /** A length below 4 was seen: the stream cannot be trusted. */
  broken = false;
  /** Completed expects the owner must look at (side requests, tokens), in order. */
  readonly done: Expect[] = [];
  /** Client expects completed during the last feed. */
  completedClient = 0;
  /** performance.now() when the link went from idle to owing the client answers (latency), or 0. */
  busySince = 0;
  /** A CopyInResponse was seen since the owner last looked (the client's COPY data goes here). */
  copyStarted = false;
  /** Requests batched for this link's next write (see SessionCore.flush). */
  readonly out: Buffer[] = [];
  /** Cleanup side requests to send before this link's next request (Close/DEALLOCATE/DISCARD elsewhere). */
  readonly cleanup: { buf: Buffer; completions: number; term: Term; clears?: 'all' | 'statements' }[] = [];
  /** The backend socket's output is above its high-water mark. */
  full = false;
  /** An extended-protocol error came and no Sync was written since: the backend skips what comes until one. */
  private skipping = false;
  /**
   * Transaction pooling: the connection's unnamed statement is the client's own (its unnamed
   * Parse went there during this lease and no Query of pgmaitre's dropped it since).
   */
  unnamedOwn = false;
  /**
   * A request that may leave something at commit (Plan.lasting) was written since the link was
   * last at rest (idle, nothing owed): a client that leaves now has its requests run to their end
   * rather than cancelled (SessionCore.leave).
   */
  lasting = false;

  // Scanner state across chunks.
  private code = 0;
  private disp = FWD;
  /** A header split across chunks (made when one first is: a Buffer per link was an ArrayBuffer per session). */
  private hdr: Buffer | null = null;
  private hdrPos = 0;
  /** Body bytes of the current message still to come (0 between messages). */
  private left = 0;
  /** Whole-message buffer when the body is needed and the message straddles chunks (or is held). */
  private collect: Buffer | null = null;
  private collectPos = 0;
  /**
   * The head, a re-runnable read, began answering in the chunk being scanned, and nothing of its
   * answer was forwarded yet (null once the run is forwarded). PostgreSQL flushes its buffered,
   * unfinished answer together with the WARNING or FATAL of a shutdown, then exits: such an
   * answer is taken back and the read runs elsewhere (recovery.ts).
   */
  private tentative: Expect | null = null;
  /** Where, in the chunk being scanned, the tentative answer began. */
  private tentativeAt = 0;
  /** Set by errorOrNotice: cut the run back to tentativeAt (the tentative answer is taken back). */
  private retract = false;
  /** An answer was taken back: the backend must say nothing more (a message after it breaks the link). */
  private takenBack = false;

  constructor(readonly node: number) {}

  /** The index, in the whole client request, of the message that failed (-1: before it, or skipped); see Expect.splitLast. */
  static failIndex(e: Expect): number {
    if (e.failedAtOrig >= 0) return e.failedAtOrig;
    if (e.skipped) return -1;
    return e.splitOffset + e.failedAt;
  }

  /** Nothing owed, nothing half-read: the connection could be given back. */
  get quiet(): boolean {
    return this.q.length === 0 && this.hdrPos === 0 && this.left === 0 && !this.copyIn;
  }

  /** Expects still owed (any kind). */
  get owed(): number {
    return this.q.length;
  }

  /** The head expect (being answered), or undefined. */
  get head(): Expect | undefined {
    return this.q[0];
  }

  /** Records that a request was written: see Expect. Returns it (to set retry/token). */
  expect(kind: ExpectKind, swallow: boolean, completions: number, term: Term): Expect {
    const e = pool.pop() ?? new Expect();
    e.kind = kind;
    e.swallow = swallow;
    e.sync = term !== Term.None;
    e.realSync = term === Term.Sync;
    e.pending = completions;
    e.errored = false;
    e.skipped = false;
    e.started = false;
    e.retry = null;
    e.queryLeft = -1;
    e.token = null;
    e.status = 0;
    e.errorsToClient = false;
    e.bytes = null;
    e.rows = 0;
    e.completions = completions;
    e.failedAt = -1;
    e.endsSequence = -1;
    e.splitLast = null;
    e.splitOffset = 0;
    e.failedAtOrig = -1;
    e.hideError = false;
    e.keepParams = false;
    e.params = null;
    e.described = null;
    if (this.skipping) {
      // The backend skips everything up to the next Sync after an earlier error: this request
      // gets no answer (its Sync, if any, a ReadyForQuery).
      e.skipped = true;
      e.pending = 0;
      if (e.realSync) this.skipping = false;
      else if (e.sync) e.sync = false; // a Query is skipped too: no ReadyForQuery of its own
    }
    this.q.push(e);
    if (!swallow) this.clientOwed++;
    if (e.sync) this.syncOwed++;
    return e;
  }

  /** A request left the client's extended-protocol sequence open (Flush, or no Sync). */
  openSequence(): void {
    this.unsynced = true;
    this.sequence++;
  }

  /**
   * A request that ends with Sync or a Query was written (`e`: its last expect). A Sync ends the
   * sequence. A Query written into an open sequence ends it only when the backend answers it: a
   * backend skipping to Sync after an error (known now or not yet) skips the Query too, and the
   * sequence (and the skipping) goes on until the client's Sync; pgmaitre must not write a Sync of
   * its own there (it would make the backend run what the client's next messages are).
   */
  endSequence(e: Expect | null, query: boolean): void {
    if (!query || !this.unsynced) {
      this.unsynced = false;
      return;
    }
    if (e !== null && !e.skipped && e.sync) e.endsSequence = this.sequence;
  }

  /**
   * pgmaitre's own answer to part of a request, sent to `sink` in its place in the answer stream:
   * now if nothing is owed before it, else when the answers before it are complete.
   */
  synthetic(bytes: Buffer, sink: ForwardSink): void {
    const e = this.expect(ExpectKind.Synthetic, false, 0, Term.None);
    e.bytes = bytes;
    if (this.q.length === 1) this.emitSynthetic(sink);
  }

  /** Sends and completes the synthetic expects at the head of the queue. */
  private emitSynthetic(sink: ForwardSink): void {
    for (let h = this.q[0]; h !== undefined && h.kind === ExpectKind.Synthetic; h = this.q[0]) {
      if (!h.skipped && h.bytes !== null) sink.forward(h.bytes, 0, h.bytes.length);
      this.complete(h);
    }
  }

  /** Gives a completed expect back (after the owner looked at `done`). */
  static release(e: Expect): void {
    e.retry = null;
    e.token = null;
    e.splitLast = null;
    e.params = null;
    e.described = null;
    if (pool.length < 1024) pool.push(e);
  }

  /**
   * The connection ended between two messages while the head of the queue, a re-runnable read,
   * had everything of its answer but the ReadyForQuery (PostgreSQL flushes its buffered answer
   * together with an immediate shutdown's WARNING and exits). The client cannot tell that answer
   * from a whole one: the owner completes it with a ReadyForQuery of its own instead of ending
   * the session.
   */
  answeredButReady(): boolean {
    const h = this.q[0];
    return h !== undefined && h.kind === ExpectKind.Client && h.retry !== null && h.sync && h.pending === 0
      && h.queryLeft === 0 && this.hdrPos === 0 && this.left === 0 && this.collect === null && !this.copyIn
      && this.goodbye === null && !this.broken;
  }

  /** Expects still owed, for retry after the node went away (head first). Empties the queue. */
  drain(): Expect[] {
    const out = this.q.splice(0);
    this.clientOwed = 0;
    this.syncOwed = 0;
    return out;
  }

  /** Forgets the scan state (the connection was replaced). */
  reset(): void {
    // Twice per lease in transaction pooling (given back, attached): no array made when nothing is owed.
    if (this.q.length > 0) {
      this.drain().forEach((e) => Link.release(e));
    } else {
      this.clientOwed = 0;
      this.syncOwed = 0;
    }
    this.hdrPos = 0;
    this.left = 0;
    this.collect = null;
    this.copyIn = false;
    this.unsynced = false;
    this.unflushed = false;
    this.goodbye = null;
    this.broken = false;
    this.takenBack = false;
    this.tentative = null;
    this.retract = false;
    this.busySince = 0;
    this.copyStarted = false;
    emptyArray(this.out);
    emptyArray(this.cleanup);
    this.full = false;
    this.skipping = false;
    this.unnamedOwn = false;
    this.lasting = false;
    this.pendingSynthetic = false;
    this.txStatus = TxStatus.Idle;
  }

  private complete(e: Expect): void {
    const i = this.q.indexOf(e);
    if (i === 0) this.q.shift();
    else if (i > 0) this.q.splice(i, 1);
    if (!e.swallow) {
      this.clientOwed--;
      this.completedClient++;
    }
    if (e.sync) this.syncOwed--;
    this.done.push(e);
    const next = this.q[0];
    if (e.params !== null) {
      if (next !== undefined && next.kind === ExpectKind.Synthetic && next.bytes !== null) next.bytes = withParams(next.bytes, e.params);
      e.params = null;
    }
    if (next !== undefined && next.kind === ExpectKind.Synthetic && this.sink !== null) this.pendingSynthetic = true;
  }

  /** Completes the heads that owe nothing more (see feed). */
  private dropAnswered(): void {
    for (let h = this.q[0]; h !== undefined && h.pending === 0 && !h.sync && h.kind !== ExpectKind.Synthetic; h = this.q[0]) this.complete(h);
  }

  /**
   * Completes the heads that owe nothing more, at once rather than when the backend's next message
   * comes: a Flush with nothing before it has no answer at all, and a request waiting for this
   * node to have answered everything (another node's, or a leaving client's rest) would otherwise
   * wait for ever (the hostile-input fuzz: an H then a read balanced to the other node). Then a
   * synthetic answer that reached the head is sent. Called after a request was written and after
   * each backend chunk; look at `done` afterwards.
   */
  settleEmpty(sink: ForwardSink): void {
    const h = this.q[0];
    if (h === undefined || h.pending !== 0 || h.sync || h.kind === ExpectKind.Synthetic || this.hdrPos !== 0 || this.left !== 0) return;
    this.dropAnswered();
    if (this.q[0]?.kind === ExpectKind.Synthetic) {
      this.pendingSynthetic = false;
      this.emitSynthetic(sink);
    }
  }

  /** For SessionCore.debugState: the head's account and the scanner's position. */
  debugState(): string {
    const h = this.q[0];
    return `head ${h === undefined ? '-' : `kind ${h.kind} pending ${h.pending}/${h.completions} sync ${h.sync} skipped ${h.skipped} errored ${h.errored}`}, `
      + `queue ${this.q.length}, unsynced ${this.unsynced}, unflushed ${this.unflushed}, skipping ${this.skipping}, hdr ${this.hdrPos}, left ${this.left}`;
  }

  /** The sink of the chunk being scanned (synthetic answers go there). */
  private sink: ForwardSink | null = null;
  /** A synthetic expect reached the head: it is sent before the next message is looked at. */
  private pendingSynthetic = false;

  /**
   * Scans one backend chunk: forwards the client's ranges to `sink` in order, swallows side
   * answers, updates the account. Look at `done`, `completedClient`, `goodbye` afterwards.
   */
  feed(chunk: Buffer, sink: ForwardSink): void {
    this.sink = sink;
    const len = chunk.length;
    let pos = 0;
    // Start of the range being forwarded in this chunk, or -1. A message that is not forwarded
    // ends the range at its first byte (begin), so ranges and held messages leave in order.
    let run = -1;
    while (pos < len && !this.broken) {
      if (this.left > 0) {
        // The body of a message begun earlier.
        const n = Math.min(this.left, len - pos);
        if ((this.disp === FWD || this.disp === PEEK) && run < 0) run = pos;
        const whole = this.collect;
        if (whole !== null) {
          chunk.copy(whole, this.collectPos, pos, pos + n);
          this.collectPos += n;
        }
        pos += n;
        this.left -= n;
        if (this.left === 0 && whole !== null) {
          this.collect = null;
          this.end(whole, 0, whole.length, sink);
        }
        continue;
      }
      let mlen: number;
      let msgStart = -1;
      if (this.hdrPos === 0) {
        // A head that owes nothing more (skipped after an earlier error, with no completion or
        // ReadyForQuery of its own) is complete: this message belongs to what follows it.
        const h = this.q[0];
        if (h !== undefined && h.pending === 0 && !h.sync && h.kind !== ExpectKind.Synthetic) this.dropAnswered();
        if (this.pendingSynthetic) {
          // pgmaitre's own answer comes here, between the backend's messages.
          if (run >= 0) {
            sink.forward(chunk, run, pos);
            run = -1;
          }
          this.tentative = null;
          this.pendingSynthetic = false;
          this.emitSynthetic(sink);
        }
        // A message starts here: its fate is decided by its first byte.
        this.begin(chunk[pos]!, pos);
        if (this.disp === FWD || this.disp === PEEK) {
          if (run < 0) run = pos;
        } else if (run >= 0) {
          sink.forward(chunk, run, pos);
          run = -1;
          this.tentative = null;
        }
        if (len - pos < 5) {
          chunk.copy(this.hdr ??= Buffer.alloc(5), 0, pos, len);
          this.hdrPos = len - pos;
          pos = len;
          break;
        }
        mlen = chunk.readInt32BE(pos + 1);
        msgStart = pos;
        pos += 5;
      } else {
        // The rest of a header split across chunks.
        const n = Math.min(5 - this.hdrPos, len - pos);
        if ((this.disp === FWD || this.disp === PEEK) && run < 0) run = pos;
        chunk.copy(this.hdr!, this.hdrPos, pos, pos + n);
        this.hdrPos += n;
        pos += n;
        if (this.hdrPos < 5) break;
        this.hdrPos = 0;
        mlen = this.hdr!.readInt32BE(1);
      }
      if (mlen < 4) {
        this.broken = true;
        break;
      }
      const body = mlen - 4;
      if (!this.header(this.code)) {
        const n = Math.min(body, len - pos);
        pos += n;
        this.left = body - n;
        continue;
      }
      if (msgStart >= 0 && len - pos >= body) {
        pos += body;
        this.end(chunk, msgStart, pos, sink);
        if (this.retract) {
          // Only what came before the taken-back answer goes to the client.
          this.retract = false;
          if (run >= 0 && this.tentativeAt > run) sink.forward(chunk, run, this.tentativeAt);
          run = -1;
        }
        continue;
      }
      // The body is needed and the message straddles chunks: collect it whole (small messages).
      const whole = Buffer.allocUnsafe(mlen + 1);
      whole[0] = this.code;
      whole.writeInt32BE(mlen, 1);
      const n = Math.min(body, len - pos);
      chunk.copy(whole, 5, pos, pos + n);
      pos += n;
      this.left = body - n;
      if (this.left === 0) {
        this.end(whole, 0, whole.length, sink);
      } else {
        this.collect = whole;
        this.collectPos = 5 + n;
      }
    }
    if (run >= 0) sink.forward(chunk, run, pos);
    this.tentative = null;
    if (this.pendingSynthetic && this.left === 0 && this.hdrPos === 0) {
      this.pendingSynthetic = false;
      this.emitSynthetic(sink);
    }
  }

  /** A message begins with `code`: decide its fate. */
  private begin(code: number, pos: number): void {
    this.code = code;
    if (this.takenBack) {
      // The node said it was going away, yet goes on: its answers can no longer be trusted.
      this.broken = true;
      return;
    }
    if (this.trace !== null) this.trace(code, this.node);
    const h = this.q[0];
    if (h === undefined) {
      // Nothing asked: asynchronous, or a goodbye.
      if (code === E) this.disp = HOLD;
      else this.disp = this.forwardAsync && (code === A || code === N || code === S) ? FWD : DROP;
      return;
    }
    if (code === A && this.forwardAsync) {
      this.disp = FWD;
      return;
    }
    if (h.swallow) {
      if (code === 68 /* D */) h.rows++;
      if (h.kind === ExpectKind.Describe) {
        if (code === 0x74 /* t */) {
          this.disp = HOLD; // (kept in end())
          return;
        }
        if (code === 0x54 /* T */ || code === 0x6e /* n */) (h.described ??= []).push(code === 0x54);
      }
      this.disp = (code === E && h.errorsToClient) || (code === S && h.keepParams) ? HOLD : DROP;
      return;
    }
    if (code === E && h.hideError) {
      h.hideError = false;
      this.disp = DROP;
      return;
    }
    if (h.queryLeft > 0 && (code === 67 /* C */ || code === 73 /* I */)) h.queryLeft--;
    if (h.retry !== null && !h.started && (code === E || code === N)) {
      // The head of an answer that may still run elsewhere: see what it is first.
      this.disp = HOLD;
      return;
    }
    if (h === this.tentative && (code === E || code === N)) {
      this.disp = PEEK;
      return;
    }
    this.disp = FWD;
    if (code !== N && code !== S && code !== A && !h.started) {
      h.started = true;
      if (h.retry !== null) {
        this.tentative = h;
        this.tentativeAt = pos;
      }
    }
  }

  /** Header read; effects that need no body. Returns true when the body is needed. */
  private header(code: number): boolean {
    if (code === Z || code === E || code === S || this.disp === HOLD || this.disp === PEEK) return true;
    const h = this.q[0];
    if (COMPLETION[code] === 1) {
      if (code === 67 /* C */) this.copyIn = false;
      if (h !== undefined && h.pending > 0) {
        h.pending--;
        if (h.pending === 0 && !h.sync) this.complete(h);
      }
    } else if (code === G) {
      this.copyIn = true;
      this.copyStarted = true;
      // Sync is ignored during COPY IN: the one sent with this Execute will not be answered.
      if (h !== undefined && h.pending > 0 && h.realSync) {
        h.sync = false;
        h.realSync = false;
        this.syncOwed--;
      }
    }
    return false;
  }

  /** A whole message whose body was needed: buf[start] is its type byte. */
  private end(buf: Buffer, start: number, end: number, sink: ForwardSink): void {
    const code = buf[start]!;
    if (code === Z) {
      this.readyForQuery(buf[start + 5] ?? TxStatus.Idle);
      return;
    }
    if (code === S) {
      try {
        const p = decodeParameterStatus(buf, start, end);
        this.conn?.params.set(p.name, p.value);
        const h = this.q[0];
        if (this.disp === HOLD && h !== undefined && h.keepParams) (h.params ??= []).push(Buffer.from(buf.subarray(start, end)));
      } catch {
        // a malformed ParameterStatus is forwarded as it is; nothing to track
      }
      return;
    }
    if (code === E || code === N) {
      this.errorOrNotice(code, buf, start, end, sink);
      return;
    }
    if (this.disp !== HOLD) return;
    const h = this.q[0];
    if (code === 0x74 && h !== undefined && h.swallow && h.kind === ExpectKind.Describe) {
      (h.described ??= []).push(Buffer.from(buf.subarray(start, end)));
      return;
    }
    sink.forward(Buffer.from(buf.subarray(start, end)), 0, end - start);
  }

  private readyForQuery(status: number): void {
    this.txStatus = status;
    if (this.conn !== null) this.conn.txStatus = status;
    this.copyIn = false;
    let h = this.q[0];
    while (h !== undefined && !h.sync) {
      // Answered without a ReadyForQuery of its own (should not be left here; be robust).
      this.complete(h);
      h = this.q[0];
    }
    if (h === undefined) {
      this.broken = true; // a ReadyForQuery nobody asked for: the account is lost
      return;
    }
    h.pending = 0;
    h.status = status;
    if (h.endsSequence >= 0 && h.endsSequence === this.sequence) this.unsynced = false;
    this.complete(h);
  }

  private errorOrNotice(code: number, buf: Buffer, start: number, end: number, sink: ForwardSink): void {
    let sqlstate = '';
    let fatal = false;
    try {
      const f = decodeErrorFields(buf, start, end);
      sqlstate = f.code;
      const sev = f.severityNonLocalized ?? f.severity;
      fatal = code === E && (sev === 'FATAL' || sev === 'PANIC');
    } catch {
      // malformed: treat as an ordinary error/notice
    }
    const shutdown = sqlstate === '57P01' || sqlstate === '57P02';
    const h = this.q[0];
    if (this.disp === PEEK && h !== undefined && h === this.tentative && (fatal || shutdown)) {
      // The node is going away with a read's answer unfinished and not yet forwarded: take it back.
      h.started = false;
      this.tentative = null;
      this.retract = true;
      this.takenBack = true;
      this.goodbye = { code: sqlstate, frame: Buffer.from(buf.subarray(start, end)), forwarded: false };
      return;
    }
    if (this.disp === HOLD) {
      const frame = Buffer.from(buf.subarray(start, end));
      if (h === undefined) {
        // Unsolicited: a FATAL goodbye is kept for the owner; anything else is dropped.
        if (fatal) this.goodbye = { code: sqlstate, frame, forwarded: false };
        return;
      }
      if (h.retry !== null && !h.started && (fatal || shutdown)) {
        // The node is going away before answering a request that may run elsewhere.
        this.goodbye = { code: sqlstate, frame, forwarded: false };
        return;
      }
      sink.forward(frame, 0, frame.length);
      if (code === E) h.started = true;
    }
    if (code !== E) return;
    if (fatal) {
      this.goodbye = { code: sqlstate, frame: Buffer.from(buf.subarray(start, end)), forwarded: this.disp !== DROP };
      return;
    }
    this.copyIn = false;
    if (h === undefined) return;
    h.errored = true;
    if (h.queryLeft > 0) h.queryLeft = 0; // a simple Query stops at its first error
    if (h.failedAt < 0) h.failedAt = h.completions - h.pending;
    if (h.pending > 0) this.skipUntilSync(h);
  }

  /** An extended-protocol error: the backend ignores everything up to the next Sync. */
  private skipUntilSync(h: Expect): void {
    h.pending = 0;
    if (h.realSync) return;
    this.complete(h);
    for (let e = this.q[0]; e !== undefined; e = this.q[0]) {
      if (e.realSync) {
        e.pending = 0;
        e.skipped = true;
        return;
      }
      e.skipped = true;
      this.complete(e);
    }
    // No Sync written yet: what is written before it is skipped too (see expect).
    this.skipping = true;
  }
}

/**
 * A synthetic answer with ParameterStatus frames `params` put where PostgreSQL reports them: just
 * before its ReadyForQuery (after everything else when it has none).
 */
function withParams(bytes: Buffer, params: Buffer[]): Buffer {
  const n = bytes.length;
  if (n >= 6 && bytes[n - 6] === Z && bytes.readInt32BE(n - 5) === 5) return Buffer.concat([bytes.subarray(0, n - 6), ...params, bytes.subarray(n - 6)]);
  return Buffer.concat([bytes, ...params]);
}
