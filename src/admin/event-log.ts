/**
 * A bounded list of recent cluster events (node down, failback, failover, role changes) for the
 * status page. It listens to the Cluster's 'change' events and names them the way an operator
 * thinks about them; app.ts passes `() => log.list()` as AdminContext.recentEvents and may
 * `record()` events of its own (reloads, admin actions).
 */
import type { Cluster, NodeChange } from '../cluster/cluster';
import type { AdminEvent } from './types';

/** Classifies a cluster change into an event kind. */
export function eventKind(c: NodeChange): string {
  if (c.field === 'status') {
    if (c.to === 'down' || c.to === 'quarantine') return 'node_down';
    if (c.to === 'up' && (c.from === 'down' || c.from === 'quarantine')) return 'failback';
    return 'node_up';
  }
  return c.to === 'primary' && c.from === 'standby' ? 'failover' : 'role_change';
}

/** The kinds eventKind() produces (counted from 0 so their series exist before the first event). */
export const EVENT_KINDS = ['node_down', 'node_up', 'failback', 'failover', 'role_change'] as const;

/** Recent events, newest last, at most `limit`; and how many of each kind since start. */
export class EventLog {
  private readonly events: AdminEvent[] = [];
  private readonly totals = new Map<string, number>(EVENT_KINDS.map((k) => [k, 0]));
  private readonly onChange = (c: NodeChange): void => {
    this.record({ at: new Date(), kind: eventKind(c), nodeId: c.nodeId, message: `node ${c.nodeId} ${c.field} ${c.from} -> ${c.to}: ${c.reason}` });
  };

  constructor(private readonly cluster?: Cluster, private readonly limit = 200) {
    cluster?.on('change', this.onChange);
  }

  /** Adds an event (dropping the oldest beyond the limit). */
  record(e: AdminEvent): void {
    this.totals.set(e.kind, (this.totals.get(e.kind) ?? 0) + 1);
    this.events.push(e);
    if (this.events.length > this.limit) this.events.splice(0, this.events.length - this.limit);
  }

  /** A snapshot, oldest first. */
  list(): readonly AdminEvent[] {
    return [...this.events];
  }

  /** Events of each kind since start (for the pgmaitre_cluster_events_total counter). */
  counts(): ReadonlyMap<string, number> {
    return new Map(this.totals);
  }

  /** Stops listening to the cluster. */
  close(): void {
    this.cluster?.off('change', this.onChange);
  }
}
