/**
 * How a lease ends (transaction pooling; session pooling uses close() and cancel only): the
 * paths that give a connection back, each asking leaseFate() (tx-pooling.ts) what becomes of it.
 *
 * - releaseIdle(): after every drive, each connection whose transaction is over goes back clean;
 *   a pinned session keeps its connections (the pin is reported once to the host), and a session
 *   pinned only by temporary relations asks the primary's connection whether any is left
 *   (probeTemp, answered in tempProbed).
 * - cancelQueries(): a CancelRequest for the client's running query; until the server took it
 *   the connection is not given back and the session sends nothing more (SessionCore.drive), so
 *   a cancel only ever reaches the query it was meant for (F26).
 * - endLeases(): the session ends: every connection back clean, back after DISCARD ALL (the
 *   session held state there), closed (a request in flight, a transaction open: a running query
 *   is cancelled first), or held until its cancel reached the server, then decided again.
 * - closeLeases(): an internal error ended the session (SessionCore.crash): every connection is
 *   closed, never given back (its state is unknown).
 */
import { TxStatus } from '../protocol/codes';
import { encodeQuery } from '../protocol/frontend';
import type { RouteState } from '../router/router';
import { ExpectKind, Term, type Expect, type Link } from './link';
import type { CoreHost } from './core-host';
import { Fate, leaseFate, TEMP_PROBE, type LeaseSession, type Pins } from './tx-pooling';

/** What the lease-ending paths read and change of the session (SessionCore). */
export interface LeaseEndSession extends LeaseSession {
  readonly host: Pick<CoreHost, 'pooling' | 'cluster' | 'pinned' | 'closeLink' | 'cancelBackend'>;
  readonly links: readonly (Link | undefined)[];
  readonly pins: Pins;
  readonly route: RouteState;
  /** The session has ended: nothing more is sent or driven. */
  readonly closed: boolean;
  /** Why the session keeps its connections, as last reported to the host ('' = it does not). */
  pinnedFor: string;
  /**
   * Links whose cancel request is on its way (until the server took it): their connection is not
   * given back meanwhile, and nothing more is sent anywhere (F26: the cancel must not land on the
   * client's next statement, nor on another client's).
   */
  readonly cancelling: Map<Link, Promise<void>>;
  /** Links whose session-state replay failed: their settings are unknown (reset when given back). */
  readonly stateLost: Set<Link>;
  /** All links with a connection. */
  connected(): IterableIterator<Link>;
  send(link: Link, buf: Buffer): void;
  flush(): void;
  /** Sends every queued request that can be sent now. */
  drive(): void;
  /** Runs `fn` (an event entering the core); a throw ends this session only. */
  guard(fn: () => void): void;
}

/** The temporary-relation probe's note. */
interface ProbeToken {
  readonly generation: number;
}

/**
 * Transaction pooling: gives back every connection whose transaction is over (leaseFate says
 * Clean: nothing owed, idle, no extended-protocol sequence open, no cancel in flight, not pinned
 * by state that lives only there); probes whether the temporary relations that pin it are gone.
 */
export function releaseIdle(s: LeaseEndSession): void {
  if (s.host.pooling === 'session' || s.closed) return;
  const pin = s.pinReason();
  if (pin !== '') {
    if (s.pinnedFor === '') {
      s.pinnedFor = pin;
      s.host.pinned(pin);
    }
    if (s.pins.tempProbeDue && s.pins.forced === '' && pin === 'a temporary table') probeTemp(s);
    return;
  }
  if (s.pinnedFor !== '') {
    s.pinnedFor = '';
    s.host.pinned('');
  }
  for (const l of s.links) {
    if (l === undefined || l.conn === null) continue;
    if (leaseFate(l, s, false) !== Fate.Clean) continue;
    giveBack(s, l, Fate.Clean, '');
  }
}


/** Ends `link`'s lease with `fate` (Clean, Reset or Close: see tx-pooling.ts). */
export function giveBack(s: LeaseEndSession, l: Link, fate: Fate, why: string): void {
  const conn = l.conn!;
  l.conn = null;
  l.reset();
  if (s.stateLost.size > 0) s.stateLost.delete(l);
  s.host.closeLink(conn, fate !== Fate.Close, why, fate === Fate.Reset);
}


/**
 * Transaction pooling: the session is pinned only by temporary relations and a statement that
 * may have dropped them ran: ask the primary's connection whether any is left (a row: yes).
 */
export function probeTemp(s: LeaseEndSession): void {
  const l = s.links[s.host.cluster.primaryId()];
  if (l?.conn == null || l.owed > 0 || !l.quiet || l.unsynced || l.txStatus !== TxStatus.Idle || s.cancelInFlight(l)) return;
  s.pins.tempProbeDue = false;
  l.unnamedOwn = false;
  const e = l.expect(ExpectKind.Probe, true, 0, Term.Query);
  e.token = { generation: s.pins.tempGeneration } satisfies ProbeToken;
  s.send(l, encodeQuery(TEMP_PROBE));
  s.flush();
}


/** Forwards a CancelRequest to the backend running this session's query, if any. */
export function cancelQueries(s: LeaseEndSession): void {
  for (const l of s.connected()) {
    if (l.clientOwed === 0 || s.cancelling.has(l)) continue;
    // Until the server took the cancel, this connection is not given back (transaction pooling):
    // a cancel must only ever reach this client's query.
    const conn = l.conn!;
    const taken = s.host.cancelBackend(l.node, conn.backendPid, conn.backendSecret).catch(() => {});
    s.cancelling.set(l, taken);
    void taken.then(() => {
      s.cancelling.delete(l);
      if (!s.closed) s.guard(() => s.drive());
    });
  }
}


/**
 * The session ends (client gone, shutdown, FATAL): every lease ends, each connection's fate
 * decided by leaseFate (tx-pooling.ts): back clean, back after DISCARD ALL (the session held
 * state there: advisory locks, LISTEN, temporary tables...), or closed (a request in flight, a
 * transaction open: a query still running is cancelled first). A connection whose cancel is
 * on its way is held until the server took it, then decided again.
 */
export function endLeases(s: LeaseEndSession): void {
  // (Once per session: no generator, and the set made only when a cancel is sent.)
  let cancelled = null as Set<number> | null;
  const links = s.links;
  for (let i = 0; i < links.length; i++) {
    const l = links[i];
    if (l === undefined || l.conn === null) continue;
    const conn = l.conn;
    const fate = leaseFate(l, s, true, s.stateLost.size > 0 && s.stateLost.has(l));
    if (fate === Fate.Close && l.clientOwed > 0 && cancelled?.has(l.node) !== true) {
      (cancelled ??= new Set<number>()).add(l.node);
      void s.host.cancelBackend(l.node, conn.backendPid, conn.backendSecret);
    }
    if (fate === Fate.Hold) {
      // Decided once the server took the cancel: by then the connection is either at rest or not.
      const pinned = s.host.pooling !== 'session' && s.pinReason() !== '';
      const lost = s.stateLost.has(l);
      const restNow = l.owed === 0 && l.quiet && !l.unsynced && l.txStatus === TxStatus.Idle && s.copyLink !== l;
      l.conn = null;
      l.reset();
      void s.cancelling.get(l)!.then(() => {
        // Not at rest: closed for the same reason as without a cancel (a transaction open or a
        // request in flight), only later.
        s.host.closeLink(conn, restNow, restNow ? '' : 'client left with a transaction open or a request in flight (closed once its cancel reached the server)', restNow && (pinned || lost));
      });
      continue;
    }
    const why = fate === Fate.Close ? 'client left with a transaction open or a request in flight' : '';
    giveBack(s, l, fate, why);
  }
}

/** The probe's answer: no temporary relation left (and none created since it was sent): the pin lifts. */
export function tempProbed(s: LeaseEndSession, e: Expect): void {
  if (!e.errored && !e.skipped && e.rows === 0 && (e.token as ProbeToken).generation === s.pins.tempGeneration) {
    s.pins.tempDiscarded();
    s.route.tempTables.clear();
  }
}

/**
 * An internal error ended the session (SessionCore.crash): every connection is closed, never
 * given back (its state is unknown), even when resetting its link throws.
 */
export function closeLeases(s: Pick<LeaseEndSession, 'links' | 'host'>, why: string): void {
  for (const l of s.links) {
    if (l?.conn == null) continue;
    const conn = l.conn;
    l.conn = null;
    try {
      l.reset();
    } finally {
      s.host.closeLink(conn, false, why);
    }
  }
}
