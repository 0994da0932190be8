/**
 * A worker's stand-in for the health system: the supervisor runs the health checks, the
 * replication checks, failover and the etcd lease once for the instance and pushes every node
 * state change at once (messages.ts 'nodes'); the worker applies it to its own Cluster, whose
 * 'change' events then do here what they do in one process (idle connections of a node that went
 * down closed, dedicated-port relays to an old primary ended). Backend errors the data path sees
 * go to the supervisor (failover_on_backend_error decides there); node actions asked through SQL
 * are the supervisor's too (worker.ts).
 */
import type { Cluster } from '../cluster/cluster';
import type { HealthSystem } from '../failover/index';
import type { NodeState } from './messages';

/** The worker's health stand-in and the function that applies the supervisor's pushes. */
export interface RemoteHealth {
  readonly system: HealthSystem;
  apply(nodes: readonly NodeState[]): void;
}

/** Builds the stand-in; `start()` resolves once the first node states arrived. */
export function remoteHealth(cluster: Cluster, reportBackendError: (node: number, reason: string) => void,
  actions: Pick<HealthSystem, 'attachNode' | 'detachNode' | 'promoteNode'>): RemoteHealth {
  const lagging = new Set<number>();
  let first: () => void = () => {};
  const firstSeen = new Promise<void>((resolve) => { first = resolve; });
  const apply = (nodes: readonly NodeState[]): void => {
    for (const n of nodes) {
      // Role before status: a promotion arrives as (role primary, status up) and the cached
      // primary is recomputed on each, as in one process.
      cluster.setRole(n.id, n.role, n.reason);
      cluster.setStatus(n.id, n.status, n.reason);
      cluster.setObserved(n.id, n.pgStatus, n.pgRole);
      cluster.setReplication(n.id, n.replication);
      if (n.lagging) lagging.add(n.id);
      else lagging.delete(n.id);
    }
    first();
  };
  const system = {
    start: () => firstSeen,
    stop: async () => {},
    reportBackendError,
    attachNode: actions.attachNode,
    detachNode: actions.detachNode,
    promoteNode: actions.promoteNode,
    replication: { isLagging: (id: number) => lagging.has(id) },
    gate: undefined,
    onConfigReload: () => {},
  };
  // Only what app.ts and app-admin.ts call on a worker exists (health, failover: the supervisor's).
  return { system: system as unknown as HealthSystem, apply };
}
