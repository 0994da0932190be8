/**
 * The recent past behind the status page's charts (GET /api/history): every second (default)
 * a sample of each node's throughput (reads and writes per second, from the statement
 * counters), query latency p50/p99 (from the buckets the /metrics histogram already keeps,
 * over the last interval), replication lag, pool use and status, and of the client slots
 * (in use, waiting), and of the query cache when it is on (hit ratio, hits and misses per second,
 * over the last interval). Samples live in a fixed ring (10 minutes by default); the answer is
 * columnar, one array per series aligned on one time array, which is what uPlot draws.
 *
 * Nothing here touches the query path: the sampler reads the same counters SHOW POOL_NODES and
 * /metrics read, on an unref'd timer that runs only while the HTTP server listens.
 */
import type { AdminContext } from '../admin/types';
import { queryLatency } from '../admin/latency';

/** One node in one sample. */
interface NodeSample {
  readonly reads: number | null;
  readonly writes: number | null;
  readonly p50: number | null;
  readonly p99: number | null;
  readonly lagBytes: number | null;
  readonly lagSeconds: number | null;
  readonly poolActive: number | null;
  readonly poolTotal: number | null;
  readonly up: 0 | 1;
  readonly primary: 0 | 1;
}

interface Sample {
  readonly t: number;
  readonly nodes: ReadonlyMap<number, NodeSample>;
  readonly inUse: number;
  readonly waiting: number;
  readonly capacity: number;
  /** Query cache over the last interval (null: cache off, or no previous sample). */
  readonly cache: { readonly hitRatio: number | null; readonly hits: number | null; readonly misses: number | null } | null;
}

/** Cumulative counts of one node at the previous sample. */
interface Previous {
  readonly reads: number;
  readonly writes: number;
  /** Cumulative bucket counts, in the order of `bounds`. */
  readonly buckets: readonly number[];
}

/** The /api/history answer. */
export interface HistoryJson {
  /** Seconds between samples. */
  readonly interval: number;
  /** Unix time (seconds) of each sample. */
  readonly t: number[];
  readonly nodes: {
    readonly id: number; readonly host: string; readonly port: number;
    readonly reads: (number | null)[]; readonly writes: (number | null)[];
    /** Query latency in milliseconds. */
    readonly p50: (number | null)[]; readonly p99: (number | null)[];
    readonly lagBytes: (number | null)[]; readonly lagSeconds: (number | null)[];
    readonly poolActive: (number | null)[]; readonly poolTotal: (number | null)[];
    readonly up: (0 | 1 | null)[]; readonly primary: (0 | 1 | null)[];
  }[];
  readonly clients: { readonly inUse: number[]; readonly waiting: number[]; readonly capacity: number[] };
  /**
   * The query cache (absent when memory_cache_enabled = off): hit ratio in percent of the
   * cacheable lookups of each interval (null when there were none), hits and misses per second.
   */
  readonly cache?: { readonly hitRatio: (number | null)[]; readonly hits: (number | null)[]; readonly misses: (number | null)[] };
}

/** Options of HistorySampler. */
export interface HistoryOptions {
  /** Milliseconds between samples (default 1000). */
  readonly intervalMs?: number;
  /** Samples kept (default 600: ten minutes at one per second). */
  readonly capacity?: number;
}

/**
 * Quantile q of a histogram given as cumulative counts per upper bound (the last bound may be
 * +Inf), interpolating linearly inside the bucket, as PromQL's histogram_quantile does. Null
 * when the histogram is empty. Hand-written: a dozen lines over numbers we already hold.
 */
export function histogramQuantile(q: number, bounds: readonly number[], cumulative: readonly number[]): number | null {
  const total = cumulative[cumulative.length - 1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  for (let i = 0; i < bounds.length; i++) {
    const c = cumulative[i] ?? 0;
    if (c < rank) continue;
    const upper = bounds[i]!;
    const lower = i === 0 ? 0 : bounds[i - 1]!;
    if (!Number.isFinite(upper)) return lower; // beyond the last finite bucket: its bound, as Prometheus does
    const below = i === 0 ? 0 : (cumulative[i - 1] ?? 0);
    const inBucket = c - below;
    return inBucket <= 0 ? upper : lower + (upper - lower) * ((rank - below) / inBucket);
  }
  return bounds[bounds.length - 1] ?? null;
}

/** Per-node cumulative latency buckets from the prom-client histogram. */
async function latencyBuckets(ctx: AdminContext): Promise<{ bounds: number[]; byNode: Map<number, number[]> }> {
  const m = ctx.histograms?.().find((h) => h.name === 'pgmaitre_query_duration_seconds') ?? await queryLatency.get();
  const boundsSet = new Set<number>();
  const raw = new Map<number, Map<number, number>>();
  for (const v of m.values) {
    if (v.metricName !== 'pgmaitre_query_duration_seconds_bucket') continue;
    const le = (v.labels as Record<string, string | number | undefined>)['le'];
    const bound = le === '+Inf' ? Infinity : Number(le);
    const node = Number(v.labels.node);
    boundsSet.add(bound);
    let per = raw.get(node);
    if (per === undefined) raw.set(node, (per = new Map()));
    per.set(bound, v.value);
  }
  const bounds = [...boundsSet].sort((a, b) => a - b);
  const byNode = new Map<number, number[]>();
  for (const [node, per] of raw) byNode.set(node, bounds.map((b) => per.get(b) ?? 0));
  return { bounds, byNode };
}

/** Samples AdminContext periodically into a ring; see the file header. */
export class HistorySampler {
  readonly intervalMs: number;
  private readonly capacity: number;
  private readonly ring: Sample[] = [];
  private readonly previous = new Map<number, Previous>();
  private previousAt = 0;
  private previousCache: { hits: number; misses: number } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(private readonly ctx: AdminContext, opts: HistoryOptions = {}) {
    this.intervalMs = Math.max(100, opts.intervalMs ?? 1000);
    this.capacity = Math.max(2, opts.capacity ?? 600);
  }

  /** Starts sampling (one sample at once, then every interval). */
  start(): void {
    if (this.timer !== null) return;
    void this.sampleNow();
    this.timer = setInterval(() => { void this.sampleNow(); }, this.intervalMs);
    this.timer.unref();
  }

  /** Stops sampling; the samples stay. */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Takes one sample now (a sample still being taken is awaited instead). */
  sampleNow(): Promise<void> {
    this.running ??= this.take().finally(() => { this.running = null; });
    return this.running;
  }

  private async take(): Promise<void> {
    const now = Date.now();
    const { bounds, byNode } = await latencyBuckets(this.ctx);
    const dt = this.previousAt > 0 ? (now - this.previousAt) / 1000 : 0;
    const primaryId = this.ctx.primaryId();
    const nodes = new Map<number, NodeSample>();
    for (const n of this.ctx.nodes()) {
      const c = n.counters;
      const reads = c.select_cnt;
      const writes = c.insert_cnt + c.update_cnt + c.delete_cnt + c.ddl_cnt;
      const buckets = byNode.get(n.id) ?? bounds.map(() => 0);
      const prev = this.previous.get(n.id);
      const rate = (cur: number, before: number | undefined): number | null =>
        before === undefined || dt <= 0 ? null : Math.max(0, cur >= before ? cur - before : cur) / dt;
      const delta = prev === undefined ? null : buckets.map((b, i) => Math.max(0, b - (prev.buckets[i] ?? 0)));
      const ms = (q: number): number | null => {
        const s = delta === null ? null : histogramQuantile(q, bounds, delta);
        return s === null ? null : Math.round(s * 1e6) / 1e3;
      };
      const pool = this.ctx.poolCounts(n.id);
      const isPrimary = n.id === primaryId;
      nodes.set(n.id, {
        reads: rate(reads, prev?.reads),
        writes: rate(writes, prev?.writes),
        p50: ms(0.5),
        p99: ms(0.99),
        lagBytes: isPrimary ? null : n.replication.delayBytes,
        lagSeconds: isPrimary ? null : n.replication.delaySeconds,
        poolActive: pool?.active ?? null,
        poolTotal: pool?.total ?? null,
        up: n.status === 'up' || n.status === 'waiting' ? 1 : 0,
        primary: isPrimary ? 1 : 0,
      });
      this.previous.set(n.id, { reads, writes, buckets });
    }
    this.previousAt = now;
    const slots = this.ctx.slots();
    const qc = this.ctx.queryCache?.() ?? null;
    let cache: Sample['cache'] = null;
    if (qc !== null) {
      const m = qc.metrics();
      const prev = this.previousCache;
      if (prev !== null && dt > 0) {
        const hits = Math.max(0, m.hits - prev.hits);
        const misses = Math.max(0, m.misses - prev.misses);
        cache = { hitRatio: hits + misses === 0 ? null : Math.round((1000 * hits) / (hits + misses)) / 10, hits: hits / dt, misses: misses / dt };
      } else cache = { hitRatio: null, hits: null, misses: null };
      this.previousCache = { hits: m.hits, misses: m.misses };
    }
    this.ring.push({ t: now / 1000, nodes, inUse: slots.inUse, waiting: slots.waiting, capacity: slots.capacity, cache });
    if (this.ring.length > this.capacity) this.ring.splice(0, this.ring.length - this.capacity);
  }

  /** The samples of the last `seconds` (all by default), columnar. */
  snapshot(seconds?: number): HistoryJson {
    const from = seconds !== undefined && seconds > 0 ? Date.now() / 1000 - seconds : -Infinity;
    const samples = this.ring.filter((s) => s.t >= from);
    const col = <K extends keyof NodeSample>(id: number, k: K): (NodeSample[K] | null)[] => samples.map((s) => s.nodes.get(id)?.[k] ?? null);
    return {
      interval: this.intervalMs / 1000,
      t: samples.map((s) => Math.round(s.t * 1000) / 1000),
      nodes: this.ctx.nodes().map((n) => ({
        id: n.id, host: n.host, port: n.port,
        reads: col(n.id, 'reads'), writes: col(n.id, 'writes'), p50: col(n.id, 'p50'), p99: col(n.id, 'p99'),
        lagBytes: col(n.id, 'lagBytes'), lagSeconds: col(n.id, 'lagSeconds'),
        poolActive: col(n.id, 'poolActive'), poolTotal: col(n.id, 'poolTotal'), up: col(n.id, 'up'), primary: col(n.id, 'primary'),
      })),
      clients: { inUse: samples.map((s) => s.inUse), waiting: samples.map((s) => s.waiting), capacity: samples.map((s) => s.capacity) },
      ...(this.ctx.queryCache?.() == null ? {} : {
        cache: {
          hitRatio: samples.map((s) => s.cache?.hitRatio ?? null),
          hits: samples.map((s) => s.cache?.hits ?? null),
          misses: samples.map((s) => s.cache?.misses ?? null),
        },
      }),
    };
  }
}
