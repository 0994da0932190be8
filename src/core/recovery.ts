/**
 * Recovery: what a session does when it loses a backend connection. PostgreSQL's own rule is
 * that a client whose backend went away is disconnected; pgmaitre can do better only when the
 * client cannot tell: nothing it asked was answered in part, nothing it relies on lived there.
 *
 * - A read that had not started answering (no byte of it reached the client) and was not inside
 *   an open extended-protocol sequence is re-run on another node, first.
 * - A read whose answer came whole but for its ReadyForQuery (an immediate shutdown flushes the
 *   backend's buffered answer with its WARNING, then exits) is completed with a ReadyForQuery of
 *   pgmaitre's own ('I': such reads run outside transactions) before the rest is judged.
 * - Losing the primary (or the node whose pid the client was given) while a transaction is open,
 *   or while the session holds state that cannot be replayed (LISTEN, advisory locks, cursors
 *   WITH HOLD, temporary tables), ends the session: the client sees the backend's own FATAL.
 * - FATAL 57P01 on an idle primary connection is either pg_terminate_backend() of this client's
 *   backend (end the session, as PostgreSQL would) or the server shutting down (go on elsewhere):
 *   the caller asks whether the node still accepts connections.
 *
 * lossVerdict() is the policy, on facts alone; connectionLost() is the session's side of it
 * (SessionCore.onBackendClosed): what the lost link owed is settled, the host told, the reads
 * queued again. retryable() keeps a read with its expect while it may run elsewhere.
 */
import { TxStatus } from '../protocol/codes';
import { encodeErrorResponse, encodeReadyForQuery } from '../protocol/backend';
import { clientErrors } from '../errors/client-errors';
import { LogEvent } from '../log/logger';
import type { RouteState } from '../router/router';
import { Link, Term, type Expect, type Goodbye } from './link';
import type { Request } from './request';
import type { Plan } from './planner';
import type { CoreHost } from './core-host';
import type { ForwardSink } from './ports';
import type { Pins } from './tx-pooling';
import { releaseHeld, type CacheSession } from './cache-glue';

/** What the session does after losing a connection. */
export type LossVerdict = 'go on' | 'end' | 'ask';

/** The facts lossVerdict looks at. */
export interface LossFacts {
  /** The expects the client still waited for on that connection (swallowed side requests left out). */
  readonly owed: readonly { readonly retry: object | null; readonly started: boolean }[];
  /** The client's extended-protocol sequence there was open (no Sync since its last message). */
  readonly unsynced: boolean;
  /** The node was the primary or the client's identity node. */
  readonly isPrimary: boolean;
  /** A transaction is open, or the session holds state that lived only there. */
  readonly holdsSession: boolean;
  /** SQLSTATE of the backend's goodbye ('' when it said nothing). */
  readonly code: string;
}

/** See the file header. `retry`: the owed requests are re-run elsewhere. */
export function lossVerdict(f: LossFacts): { verdict: LossVerdict; retry: boolean } {
  const n = f.owed.length;
  const retry = n > 0 && !f.unsynced && f.owed.every((e) => e.retry !== null && !e.started);
  if (n > 0 && !retry) return { verdict: 'end', retry };
  if (f.isPrimary && f.holdsSession) return { verdict: 'end', retry };
  if (f.isPrimary && n === 0 && f.code === '57P01') return { verdict: 'ask', retry };
  return { verdict: 'go on', retry };
}

/** What losing a connection reads and changes of the session (SessionCore). */
export interface RecoverySession extends CacheSession, ForwardSink {
  readonly host: Pick<CoreHost, 'cluster' | 'classifier' | 'config' | 'log' | 'pid' | 'closeLink' | 'backendError' | 'nodeAccepting'>;
  readonly route: RouteState;
  readonly pins: Pins;
  /** Node whose backend pid the client was given (its login connection). */
  readonly identityNode: number;
  /** The node whose chunk is being scanned (-1: none). */
  feedNode: number;
  /** The link in COPY IN (its client frames go straight there), or null. */
  copyTarget: Link | null;
  /** Requests not sent yet, in order, and their bytes (paced). */
  readonly queue: Request[];
  queuedBytes: number;
  /** Applies what the completed expects of `link` mean. */
  settle(link: Link): void;
  /** A node's connection is gone: its statements and portals with it. */
  forgetNode(node: number): void;
  /** Sends every queued request that can be sent now. */
  drive(): void;
  /** Ends the session (its connections are the host's to end). */
  end(reason: string): void;
}

const SHUTDOWN_CODES = new Set(['57P01', '57P02']);

/** The ReadyForQuery that completes a read whose node went away after answering it (outside a transaction). */
const READY_IDLE = encodeReadyForQuery(TxStatus.Idle);

/**
 * The backend connection of `node` closed or failed (SessionCore.onBackendClosed): what it owed
 * is settled (a read answered but for its ReadyForQuery is completed), the host is told, and the
 * session goes on, re-runs its reads elsewhere, asks the node, or ends (lossVerdict).
 */
export function connectionLost(s: RecoverySession, node: number, reason: string): void {
  const link = s.links[node];
  if (link === undefined || link.conn === null || s.closed) return;
  const conn = link.conn;
  if (link.answeredButReady()) {
    // A read answered whole but for its ReadyForQuery: the ReadyForQuery is ours (see the file header).
    s.feedNode = node;
    link.feed(READY_IDLE, s);
    s.feedNode = -1;
  }
  const goodbye = link.goodbye;
  const owed = link.drain();
  const unsynced = link.unsynced;
  if (link.done.length > 0) s.settle(link);
  if (s.collectNode === node) {
    s.collectNode = -1;
    s.cache!.collected(0, false);
  }
  releaseHeld(s);
  link.reset();
  link.conn = null;
  s.host.closeLink(conn, false, reason);
  if (s.copyTarget === link) s.copyTarget = null;
  s.host.log.warn({ event: LogEvent.BackendError, node_id: node, pid: s.host.pid, reason, goodbye: goodbye?.code }, 'backend connection lost');
  // failover_on_backend_error is about a connection lost without a word; a FATAL goodbye
  // (57P01/57P02: pg_terminate_backend, a server shutdown) counts only with failover_on_backend_shutdown.
  const code = goodbye?.code ?? '';
  if (code === '' || (SHUTDOWN_CODES.has(code) && s.host.config.failover_on_backend_shutdown)) s.host.backendError(node, reason);
  const primary = s.host.cluster.primaryId();
  const clientOwed = owed.filter((e) => !e.swallow);
  const { verdict, retry } = lossVerdict({
    owed: clientOwed, unsynced, code,
    isPrimary: node === primary || node === s.identityNode,
    holdsSession: s.route.inTransaction || s.state.holdsUnreplayable || s.route.tempTables.size > 0 || s.pins.temp,
  });
  s.forgetNode(node);
  if (verdict === 'end') {
    for (const e of owed) Link.release(e);
    lost(s, node, goodbye);
    return;
  }
  if (retry) {
    // Nothing of the client's was lost: its reads run again elsewhere, first.
    const reqs = clientOwed.map((e) => e.retry as Request);
    for (let i = reqs.length - 1; i >= 0; i--) {
      s.queue.unshift(reqs[i]!);
      s.queuedBytes += reqs[i]!.data.length;
    }
    s.host.log.info({ event: 'read_retry', pid: s.host.pid, node_id: node, requests: reqs.length },
      `node ${node} went away before answering; re-running ${reqs.length} read(s) elsewhere`);
  }
  for (const e of owed) Link.release(e);
  if (verdict === 'ask') {
    // FATAL 57P01 on an idle connection: pg_terminate_backend() of this client's backend (end
    // the session, as PostgreSQL would), or the server shutting down (go on elsewhere)?
    s.block(s.host.nodeAccepting(node).then((accepting) => {
      if (accepting) lost(s, node, goodbye);
    }), `check whether node ${node} is shutting down`);
    return;
  }
  s.drive();
}

/**
 * Ends the session after losing `node`, as PostgreSQL would: the client sees the backend's own
 * FATAL (once: not again when it came with an answer), or ours when the backend said nothing.
 */
function lost(s: RecoverySession, node: number, goodbye: Goodbye | null): void {
  if (goodbye === null) s.client.write(encodeErrorResponse(clientErrors.backendLost(node)));
  else if (!goodbye.forwarded && goodbye.frame !== null) s.client.write(goodbye.frame);
  s.end(`backend node ${node} lost${goodbye ? ` (${goodbye.code})` : ''}`);
}

/**
 * Keeps `req` with its expect while it may run again elsewhere, and says when its answer is whole
 * but for the ReadyForQuery (Link.answeredButReady): a Sync's completions are counted already; a
 * simple Query's only when it holds one statement.
 */
export function retryable(e: Expect, req: Request, plan: Plan): void {
  e.retry = req;
  if (req.term !== Term.Query) e.queryLeft = 0;
  else if (plan.classes.length === 1 && plan.classes[0]!.statements === 1) e.queryLeft = 1;
}
