/**
 * The inputs of load-balance node selection (router/lb-select.ts), read from the live cluster:
 * which nodes are up and may take reads, their weight, lag, BACKUP flag, and — only for the
 * algorithm that needs it — how many sessions each holds (least_connections: leases of the smart
 * endpoint's pools plus dedicated-port relays) or its recent query latency (least_latency).
 * Shared by the smart endpoint (RequestDispatcher.readNode) and the dedicated read port, so both
 * balance on the same numbers. With worker processes both figures are the instance's: the other
 * workers' sessions are added, and the latency is the instance's mean (workers/instance-lb.ts).
 */
import type { LbCandidate } from '../router/lb-select';
import { recentLatency } from '../admin/latency';
import type { FrontendContext } from './context';

/** Sessions this process holds on a node: the smart endpoint's leases plus dedicated-port relays. */
export function localActive(ctx: FrontendContext, nodeId: number): number {
  return (ctx.pools.get(nodeId)?.activeCount() ?? 0) + (ctx.relayCount?.(nodeId) ?? 0);
}

/** Candidate records for every node; `excluded(id)` marks nodes the caller must avoid (recently failed). */
export function lbCandidates(ctx: FrontendContext, primaryId: number, excluded?: (id: number) => boolean): LbCandidate[] {
  const algorithm = ctx.routing.prefs.algorithm;
  const routing = ctx.routing;
  const nodes = ctx.cluster.nodes;
  const out: LbCandidate[] = [];
  for (const n of nodes) {
    const lag = routing.lag(n.id);
    const c: { -readonly [K in keyof LbCandidate]: LbCandidate[K] } = {
      id: n.id,
      weight: n.weight,
      usable: (n.status === 'up' || n.status === 'waiting') && (n.id === primaryId || n.role === 'standby') && !(excluded?.(n.id) ?? false),
      isPrimary: n.id === primaryId,
      lagging: n.id !== primaryId && lag.lagging,
      delay: lag.delay,
      backup: n.flags.length > 0 && n.flags.includes('BACKUP'),
    };
    // (Assigned, not spread in: a spread of a fresh object per node was a runtime call each.)
    if (algorithm === 'least_connections') c.active = localActive(ctx, n.id) + (ctx.otherWorkersActive?.(n.id) ?? 0);
    if (algorithm === 'least_latency') c.latency = recentLatency(n.id);
    out.push(c);
  }
  return out;
}
