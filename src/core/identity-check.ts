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
import { encodeSync } from '../protocol/frontend';
import { ExpectKind, Term, type Link } from './link';
import type { CoreHost } from './core-host';

/** What identityUnsure reads of the session (SessionCore). */
export interface IdentitySession {
  readonly host: Pick<CoreHost, 'pooling'>;
  readonly links: readonly (Link | undefined)[];
  /** Node whose backend pid the client was given (its login connection). */
  readonly identityNode: number;
  readonly identity: IdentityCheck;
  send(link: Link, buf: Buffer): void;
}

const SYNC = encodeSync();

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

  /** due() would be true (it does not look: SessionCore.quickRefusal asks without changing anything). */
  get unseen(): boolean {
    return this.seen !== terminations;
  }

  /** True when a termination was sent through pgmaitre since this session last looked (and it now looks). */
  due(): boolean {
    if (this.seen === terminations) return false;
    this.seen = terminations;
    return true;
  }
}

/**
 * Session pooling, a request for `node`: while a termination sent through pgmaitre may have hit
 * the client's own backend, a Sync goes there first and the request waits for its answer.
 */
export function identityUnsure(s: IdentitySession, node: number): boolean {
  const own = s.links[s.identityNode];
  if (s.host.pooling !== 'session' || own?.conn == null) return false;
  if (s.identity.pending) {
    if (own.owed > 0) return true;
    s.identity.pending = false;
  }
  if (node === s.identityNode || !s.identity.due() || own.owed > 0 || own.unsynced) return false;
  own.expect(ExpectKind.Cleanup, true, 0, Term.Sync);
  s.send(own, SYNC);
  s.identity.pending = true;
  return true;
}

