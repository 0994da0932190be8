/**
 * The query latency histogram, fed by the session on the hot path through observeQueryLatency
 * (a CheapHistogram observe: a bucket search and three additions) and exported by the
 * HTTP /metrics endpoint. It lives in admin so that the frontend, which may import admin but
 * not http, can feed it.
 *
 * Beside the histogram, each node keeps an exponentially weighted mean of its recent latencies
 * (recentLatency), the input of load_balance_algorithm = least_latency: a histogram counts
 * since start, while the balancer needs "how fast is this node now". A mean older than
 * RECENT_MS counts as unknown, so a node left alone gets tried, and measured, again.
 */
import { performance } from 'node:perf_hooks';
import type { MetricObjectWithValues, MetricValueWithName } from 'prom-client';

/** One series of a CheapHistogram: counts per bucket (the last: above every bound), sum, count. */
export class HistogramSeries {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[], readonly labels: Readonly<Record<string, string>>) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(v: number): void {
    if (!Number.isFinite(v)) return;
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }
}

/**
 * A Prometheus histogram cheap enough for the hot path (query latency by node, lease waits):
 * prom-client's observe() builds and validates a label object, hashes it and turns the bucket bound into a property name (a
 * number-to-string conversion) on each call — about 1 µs per request on the lab VM, paid per
 * transaction and again per lease wait (issue 17, item 9). Here an observation is a bucket search
 * and three additions. get() gives exactly what prom-client's Histogram.get() gives (cumulative
 * `_bucket` samples with `le`, then `+Inf`, `_sum`, `_count`, series in creation order), so the
 * registry, the workers' merge and the /history sampler read it as they read prom-client's.
 */
export class CheapHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, HistogramSeries>();

  /** `labelName`: the one label of its series (null: a single series without labels). */
  constructor(readonly name: string, readonly help: string, readonly buckets: readonly number[], private readonly labelName: string | null = null) {
    if (labelName === null) this.labels();
  }

  /** The series of one label value (created on first use; keep it: no lookup per observation). */
  labels(value = ''): HistogramSeries {
    let s = this.series.get(value);
    if (s === undefined) this.series.set(value, (s = new HistogramSeries(this.buckets, this.labelName === null ? {} : { [this.labelName]: value })));
    return s;
  }

  /** One observation in the series without labels (or the series of label value ''). */
  observe(v: number): void {
    this.labels().observe(v);
  }

  get(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    const values: MetricValueWithName<string>[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.series.values()) {
      let acc = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        acc += s.counts[i]!;
        values.push({ value: acc, metricName: bucket, exemplar: null, labels: { le: this.buckets[i]!, ...s.labels } } as MetricValueWithName<string>);
      }
      values.push({ value: s.count, metricName: bucket, exemplar: null, labels: { le: '+Inf', ...s.labels } } as MetricValueWithName<string>);
      values.push({ value: s.sum, metricName: `${this.name}_sum`, exemplar: undefined, labels: { ...s.labels } } as MetricValueWithName<string>);
      values.push({ value: s.count, metricName: `${this.name}_count`, exemplar: undefined, labels: { ...s.labels } } as MetricValueWithName<string>);
    }
    // prom-client's types declare a `collect` and an enum `type` its own get() does not give either.
    return Promise.resolve({ name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' } as unknown as MetricObjectWithValues<MetricValueWithName<string>>);
  }

  /** Forgets every series (as prom-client's reset(): until the next observation, none is exported). */
  reset(): void {
    this.series.clear();
  }
}

/** pgmaitre_query_duration_seconds{node}: time from forwarding a request to its ReadyForQuery. */
export const queryLatency = new CheapHistogram(
  'pgmaitre_query_duration_seconds',
  'Duration of client requests by backend node, from forwarding to ReadyForQuery.',
  [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  'node',
);

/** Records one request's latency on a node. */
export function observeQueryLatency(nodeId: number, seconds: number): void {
  queryLatency.labels(String(nodeId)).observe(seconds);
}

/** Weight of the newest observation in the running mean. */
export const ALPHA = 0.2;
/** A node's mean is forgotten after this long without an observation. */
export const RECENT_MS = 10_000;

interface NodeLatency {
  /** `now`: performance.now() when the caller read it already (one clock read per request, not two). */
  observe(v: number, now?: number): void;
  mean: number;
  at: number;
  /** Observations since the last drainLatencyWindows() (worker_processes > 1: reported to the supervisor). */
  wsum: number;
  wcount: number;
}

const children = new Map<number, NodeLatency>();

/** The latency recorder of one node: the histogram child plus the running mean (cached: no label hashing on the hot path). */
export function nodeLatency(nodeId: number): { observe(v: number, now?: number): void } {
  let c = children.get(nodeId);
  if (c === undefined) {
    const h = queryLatency.labels(String(nodeId));
    const rec: NodeLatency = {
      mean: 0,
      at: 0,
      wsum: 0,
      wcount: 0,
      observe(v: number, at?: number): void {
        h.observe(v);
        rec.wsum += v;
        rec.wcount++;
        const now = at ?? performance.now();
        // The first observation starts the mean (at = 0 is not "long ago" in a process younger than RECENT_MS).
        rec.mean = rec.at === 0 || now - rec.at > RECENT_MS ? v : rec.mean + ALPHA * (v - rec.mean);
        rec.at = now;
      },
    };
    children.set(nodeId, (c = rec));
  }
  return c;
}

/**
 * worker_processes > 1: the instance's running means (every worker's observations merged by the
 * supervisor, workers/instance-lb.ts), pushed to every worker; null in one process.
 */
let instance: Map<number, { readonly mean: number; readonly at: number }> | null = null;

/** Sets the instance's means: [node, mean seconds, age of its newest observation in ms]. */
export function setInstanceLatencies(list: readonly (readonly [number, number, number])[]): void {
  const now = performance.now();
  instance = new Map(list.map(([id, mean, age]) => [id, { mean, at: now - age }]));
}

/** This process's observations per node since the last call: [node, sum of seconds, count]. */
export function drainLatencyWindows(): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (const [id, c] of children) {
    if (c.wcount === 0) continue;
    out.push([id, c.wsum, c.wcount]);
    c.wsum = 0;
    c.wcount = 0;
  }
  return out;
}

/**
 * Recent mean query latency of a node in seconds, or undefined when it has none from the last
 * RECENT_MS. With worker processes it is the instance's mean (every worker balances on the same
 * figure); this process's own until the supervisor has one for the node.
 */
export function recentLatency(nodeId: number): number | undefined {
  if (instance !== null) {
    const e = instance.get(nodeId);
    if (e !== undefined && performance.now() - e.at <= RECENT_MS) return e.mean;
  }
  const c = children.get(nodeId);
  if (c === undefined || c.at === 0 || performance.now() - c.at > RECENT_MS) return undefined;
  return c.mean;
}

/** pgmaitre_pool_wait_seconds: how long transaction-pooled requests waited for a backend connection. */
export const leaseWait = new CheapHistogram(
  'pgmaitre_pool_wait_seconds',
  'Time requests waited for a backend connection to be leased (transaction and statement pooling).',
  [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 120],
);

/** Records one lease wait. */
export function observeLeaseWait(seconds: number): void {
  leaseWait.observe(seconds);
}
