/**
 * Finds the primary: the node flagged ALWAYS_PRIMARY, else the node whose
 * pg_is_in_recovery() is false. Probes run with `pg` (a side connection, never the data path),
 * each time-boxed, all nodes in parallel.
 */
import { Client } from 'pg';
import type { Logger } from '../log/logger';
import { type Cluster, NodeRole, NodeStatus } from '../cluster/cluster';

/** Credentials and limits for probe connections (sr_check_* keys). */
export interface ProbeOptions {
  readonly user: string;
  readonly password: string;
  readonly database: string;
  readonly timeoutMs: number;
}

/** Result of probing one node. */
export type ProbeResult = { readonly ok: true; readonly inRecovery: boolean } | { readonly ok: false; readonly error: string };

/** Asks one node whether it is in recovery. */
export async function probeRecovery(host: string, port: number, opts: ProbeOptions): Promise<ProbeResult> {
  const client = new Client({
    host, port, user: opts.user, password: opts.password || undefined, database: opts.database,
    connectionTimeoutMillis: opts.timeoutMs, query_timeout: opts.timeoutMs, application_name: 'pgmaitre probe',
  });
  client.on('error', () => {});
  try {
    await client.connect();
    const r = await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    return { ok: true, inRecovery: r.rows[0]?.r === true };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  } finally {
    client.end().catch(() => {});
  }
}

/**
 * Probes every node and records roles and statuses in the cluster.
 * Returns the primary's id, or -1 when none could be confirmed.
 */
export async function findPrimary(cluster: Cluster, opts: ProbeOptions, log: Logger): Promise<number> {
  const results = await Promise.all(cluster.nodes.map((n) => probeRecovery(n.host, n.port, opts)));
  let primary = -1;
  cluster.nodes.forEach((n, i) => {
    const r = results[i]!;
    cluster.setObserved(n.id, r.ok ? 'up' : 'down', !r.ok ? NodeRole.Unknown : r.inRecovery ? NodeRole.Standby : NodeRole.Primary);
    if (!r.ok) {
      log.warn({ event: 'probe_failed', node_id: n.id, error: r.error }, `node ${n.id} (${n.host}:${n.port}) did not answer the primary probe`);
      if (!n.flags.includes('ALWAYS_PRIMARY')) {
        cluster.setStatus(n.id, NodeStatus.Down, `probe failed: ${r.error}`);
        return;
      }
    }
    const isPrimary = n.flags.includes('ALWAYS_PRIMARY') || (r.ok && !r.inRecovery);
    if (isPrimary && primary === -1) {
      primary = n.id;
      cluster.setRole(n.id, NodeRole.Primary, n.flags.includes('ALWAYS_PRIMARY') ? 'ALWAYS_PRIMARY flag' : 'pg_is_in_recovery() = false');
    } else {
      cluster.setRole(n.id, r.ok && r.inRecovery ? NodeRole.Standby : NodeRole.Unknown,
        isPrimary ? 'a second node claims to be primary' : 'pg_is_in_recovery() = true');
    }
    if (n.status === NodeStatus.Down && r.ok) cluster.setStatus(n.id, NodeStatus.Waiting, 'probe succeeded');
  });
  return primary;
}
