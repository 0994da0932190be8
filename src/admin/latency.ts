/**
 * The query latency histogram, fed by the session on the hot path through observeQueryLatency
 * (one prom-client Histogram observe: a bucket search and two additions) and exported by the
 * HTTP /metrics endpoint. It lives in admin so that the frontend, which may import admin but
 * not http, can feed it.
 *
 * Beside the histogram, each node keeps an exponentially weighted mean of its recent latencies
 * (recentLatency), the input of load_balance_algorithm = least_latency: a histogram counts
 * since start, while the balancer needs "how fast is this node now". A mean older than
 * RECENT_MS counts as unknown, so a node left alone gets tried, and measured, again.
 */
import { Histogram } from 'prom-client';

/** pgmaitre_query_duration_seconds{node}: time from forwarding a request to its ReadyForQuery. */
export const queryLatency = new Histogram({
  name: 'pgmaitre_query_duration_seconds',
  help: 'Duration of client requests by backend node, from forwarding to ReadyForQuery.',
  labelNames: ['node'] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [],
});

/** Records one request's latency on a node. */
export function observeQueryLatency(nodeId: number, seconds: number): void {
  queryLatency.observe({ node: String(nodeId) }, seconds);
}

/** Weight of the newest observation in the running mean. */
const ALPHA = 0.2;
/** A node's mean is forgotten after this long without an observation. */
export const RECENT_MS = 10_000;

interface NodeLatency {
  observe(v: number): void;
  mean: number;
  at: number;
}

const children = new Map<number, NodeLatency>();

/** The latency recorder of one node: the histogram child plus the running mean (cached: no label hashing on the hot path). */
export function nodeLatency(nodeId: number): { observe(v: number): void } {
  let c = children.get(nodeId);
  if (c === undefined) {
    const h = queryLatency.labels(String(nodeId));
    const rec: NodeLatency = {
      mean: 0,
      at: 0,
      observe(v: number): void {
        h.observe(v);
        const now = performance.now();
        rec.mean = now - rec.at > RECENT_MS ? v : rec.mean + ALPHA * (v - rec.mean);
        rec.at = now;
      },
    };
    children.set(nodeId, (c = rec));
  }
  return c;
}

/** Recent mean query latency of a node in seconds, or undefined when it has none from the last RECENT_MS. */
export function recentLatency(nodeId: number): number | undefined {
  const c = children.get(nodeId);
  if (c === undefined || c.at === 0 || performance.now() - c.at > RECENT_MS) return undefined;
  return c.mean;
}

/** pgmaitre_pool_wait_seconds: how long transaction-pooled requests waited for a backend connection. */
export const leaseWait = new Histogram({
  name: 'pgmaitre_pool_wait_seconds',
  help: 'Time requests waited for a backend connection to be leased (transaction and statement pooling).',
  buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 120],
  registers: [],
});

/** Records one lease wait. */
export function observeLeaseWait(seconds: number): void {
  leaseWait.observe(seconds);
}
