/**
 * The query latency histogram, fed by the session on the hot path through observeQueryLatency
 * (one prom-client Histogram observe: a bucket search and two additions) and exported by the
 * HTTP /metrics endpoint. It lives in admin so that the frontend, which may import admin but
 * not http, can feed it.
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

const children = new Map<number, { observe(v: number): void }>();

/** The histogram child of one node (cached: no label hashing on the hot path). */
export function nodeLatency(nodeId: number): { observe(v: number): void } {
  let c = children.get(nodeId);
  if (c === undefined) children.set(nodeId, (c = queryLatency.labels(String(nodeId))));
  return c;
}
