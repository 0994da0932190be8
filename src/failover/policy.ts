/**
 * Pure failover decisions, kept apart from I/O so they can be tested with plain objects:
 * pgpool's "main node", which of several self-declared primaries is the true one
 * (detach_false_primary), and which detached standbys auto_failback may bring back.
 */
import { type BackendNode, NodeStatus } from '../cluster/cluster';

/** Why a node's status or role changed; the code prefixes statusReason (SHOW POOL_NODES) and logs. */
export const Reason = {
  HealthCheckFailed: 'health_check_failed',
  BackendError: 'backend_error',
  AdminDetach: 'admin_detach',
  AdminAttach: 'admin_attach',
  OnlineRecovery: 'online_recovery',
  AdminPromote: 'admin_promote',
  Switchover: 'switchover',
  FalsePrimary: 'false_primary',
  FollowPrimary: 'follow_primary',
  AutoFailback: 'auto_failback',
  HealthCheckRise: 'health_check_rise',
  ReachableAtStart: 'reachable_at_start',
  UnreachableAtStart: 'unreachable_at_start',
  Promoted: 'promotion_detected',
  Demoted: 'in_recovery',
  Replaced: 'replaced_by_new_primary',
  AlwaysPrimary: 'always_primary_flag',
  Standby: 'pg_is_in_recovery',
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

/** A minimal node shape for the policies. */
export type PolicyNode = Pick<BackendNode, 'id' | 'host' | 'port' | 'status' | 'flags' | 'applicationName'>;

/** True for statuses that count as alive (pgpool's VALID_BACKEND: up or waiting). */
export function isAlive(n: Pick<BackendNode, 'status'>): boolean {
  return n.status === NodeStatus.Up || n.status === NodeStatus.Waiting;
}

/** pgpool's main node: the live node with the smallest id, or -1. */
export function mainNodeId(nodes: readonly PolicyNode[]): number {
  let best = -1;
  for (const n of nodes) if (isAlive(n) && (best === -1 || n.id < best)) best = n.id;
  return best;
}

const LOCAL = new Set(['127.0.0.1', 'localhost', '::1', '']);

/** Whether a walreceiver's sender host/port designates this node (loopback spellings are equal). */
export function upstreamIs(up: { host: string; port: number }, n: Pick<BackendNode, 'host' | 'port'>): boolean {
  if (up.port !== n.port) return false;
  if (up.host === n.host) return true;
  const local = (h: string): boolean => LOCAL.has(h) || h.startsWith('/');
  return local(up.host) && local(n.host);
}

/** A node as the false-primary check sees it: a claimant, or a standby and its upstream. */
export interface RoleClaim {
  readonly id: number;
  readonly inRecovery: boolean;
  readonly upstream: { host: string; port: number } | null;
}

/**
 * pgpool's detach_false_primary rule. With several nodes claiming to be primary: without
 * standbys the smallest id is kept; with standbys, the true primary is the one every standby
 * streams from (pg_stat_wal_receiver) and the others are false; if none qualifies (or several
 * do), nothing is decided.
 */
export function judgePrimaries(claims: readonly RoleClaim[], nodes: readonly PolicyNode[]): { truePrimary: number; falsePrimaries: number[] } {
  const primaries = claims.filter((c) => !c.inRecovery).map((c) => c.id).sort((a, b) => a - b);
  if (primaries.length <= 1) return { truePrimary: primaries[0] ?? -1, falsePrimaries: [] };
  const standbys = claims.filter((c) => c.inRecovery);
  if (standbys.length === 0) return { truePrimary: primaries[0]!, falsePrimaries: primaries.slice(1) };
  const qualified = primaries.filter((pid) => {
    const p = nodes.find((n) => n.id === pid);
    return p !== undefined && standbys.every((s) => s.upstream !== null && upstreamIs(s.upstream, p));
  });
  if (qualified.length !== 1) return { truePrimary: -1, falsePrimaries: [] };
  const t = qualified[0]!;
  return { truePrimary: t, falsePrimaries: primaries.filter((p) => p !== t) };
}

/**
 * auto_failback: detached nodes whose application_name streams ('streaming') from the primary,
 * and whose last failback is at least intervalMs ago.
 */
export function autoFailbackCandidates(
  nodes: readonly PolicyNode[],
  streaming: readonly { applicationName: string; state: string }[],
  lastFailback: ReadonlyMap<number, number>,
  now: number,
  intervalMs: number,
): number[] {
  return nodes.filter((n) => n.status === NodeStatus.Down && n.applicationName !== ''
    && streaming.some((s) => s.applicationName === n.applicationName && s.state === 'streaming')
    && now - (lastFailback.get(n.id) ?? -Infinity) >= intervalMs).map((n) => n.id);
}
