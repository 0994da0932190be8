/**
 * Session pooling: is the client's own backend still there before a request goes elsewhere?
 *
 * A client's key is its login backend's pid. When an administrator ends that backend
 * (pg_terminate_backend(pid)), PostgreSQL ends the client at its next step: the signal is
 * handled before the backend reads another message. Through pgmaitre the next step may be a read
 * sent to a standby, answered before the primary's FATAL has even reached pgmaitre (the killed
 * process may not have run yet). So every pg_terminate_backend() sent through pgmaitre bumps a
 * process-wide count (`noteTermination`), and a session whose next request goes to a node other
 * than its own backend's first sends a Sync to its own backend when the count moved since it last
 * looked: a ReadyForQuery means it is alive; a FATAL ends the session with that FATAL, before the
 * request is sent (session-core.ts, onBackendClosed). A termination issued outside pgmaitre
 * still races, as it would with any pooler; the FATAL then ends the session as soon as it arrives.
 */

let terminations = 0;

/** Functions that end other backends: each call bumps the count. */
export const TERMINATING_FUNCTIONS: ReadonlySet<string> = new Set(['pg_terminate_backend']);

/** A request calling pg_terminate_backend() is being sent. */
export function noteTermination(): void {
  terminations++;
}

/** The per-session side: when to check, and whether a check is in flight. */
export class IdentityCheck {
  private seen = terminations;
  /** A Sync is on its way to the session's own backend. */
  pending = false;

  /** True when a termination was sent through pgmaitre since this session last looked (and it now looks). */
  due(): boolean {
    if (this.seen === terminations) return false;
    this.seen = terminations;
    return true;
  }
}
