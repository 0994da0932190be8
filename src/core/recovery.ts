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
 */

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
