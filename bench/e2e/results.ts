// results.ts — the e2e bench's result model (what bench/results/latest.json and bench/baseline.json
// hold) and the pure steps that turn raw rounds into reported figures: each round's proxy runs are
// paired with the direct run of the same round (ratio, added latency), then every figure is the
// median over the rounds, because single runs on the shared 2-core machines vary by ±30%. The
// proxy's CPU per query is also divided by the bare pipe's of the same round: the machine's mood
// moves both, so that quotient is the steadiest sign of a change in pgmaitre itself.

import type { PgbenchSummary } from './pgbench-output';
import type { FloodSample } from './flood';

export const ALL_TARGETS = ['direct', 'pipe', 'pgmaitre'] as const;
export type TargetName = (typeof ALL_TARGETS)[number];

/** Version of the JSON layout below; bumped when a field changes meaning. */
export const REPORT_SCHEMA = 1;

/** One pgbench run of one round. */
export interface RoundSample extends PgbenchSummary {
  readonly target: TargetName;
  readonly mode: string;
  readonly clients: number;
  readonly round: number;
  readonly exitCode: number;
  readonly ok: boolean;
  /** Proxy CPU (user+sys) per transaction; undefined for direct. */
  readonly cpuUsPerQuery: number | undefined;
  /** tps / direct tps of the same mode, clients and round. */
  ratioToDirect?: number;
  /** 1-client runs: mean latency minus direct's (from 1/tps) in the same round. */
  addedLatencyUs?: number;
  /** cpuUsPerQuery / the pipe's in the same mode, clients and round (targets other than pipe and direct). */
  cpuVsPipe?: number;
}

/** The reported figures of one (target, mode, clients): medians over the rounds that succeeded. */
export interface BenchRow {
  readonly target: TargetName;
  readonly mode: string;
  readonly clients: number;
  /** Every round succeeded. */
  readonly ok: boolean;
  readonly error: string | undefined;
  readonly roundsOk: number;
  readonly tps: number | undefined;
  readonly latencyMs: number | undefined;
  readonly ratioToDirect: number | undefined;
  readonly addedLatencyUs: number | undefined;
  readonly cpuUsPerQuery: number | undefined;
  readonly cpuVsPipe: number | undefined;
  /** Smallest and largest per-round value, to show the spread behind a median. */
  readonly tpsRange: readonly [number, number] | undefined;
  readonly cpuRange: readonly [number, number] | undefined;
}

/** Memory under the flooding client, per target: medians over rounds, each against a fresh process. */
export interface FloodRow {
  readonly target: TargetName;
  readonly seconds: number;
  readonly ok: boolean;
  readonly error: string | undefined;
  readonly beforeMb: number | undefined;
  readonly peakMb: number | undefined;
  readonly growthMb: number | undefined;
  readonly samples: readonly FloodSample[];
}

/** Everything one `npm run bench` measured (bench/results/latest.json; bench/baseline.json). */
export interface BenchReport {
  readonly schema: number;
  readonly startedAt: string;
  /** head: the checked-out commit; measured: the last commit that changed src/, bin/ or package-lock.json. */
  readonly commit: { readonly head: string; readonly measured: string; readonly subject: string; readonly dirty: boolean };
  readonly host: { readonly cpus: number; readonly model: string | undefined; readonly node: string; readonly postgres: number; readonly loadavgStart: readonly number[]; readonly loadavgEnd: readonly number[] };
  readonly config: {
    readonly duration: number;
    readonly warmup: number;
    readonly scale: number;
    readonly rounds: number;
    readonly modes: readonly string[];
    readonly clients: readonly number[];
    readonly targets: readonly string[];
    readonly weights: readonly number[];
    readonly floodSeconds: number;
  };
  readonly notes: readonly string[];
  readonly results: readonly BenchRow[];
  readonly flood: readonly FloodRow[];
  /** Every pgbench run, for a second look at the spread. */
  readonly samples: readonly RoundSample[];
}

/** Median of the finite numbers in xs (mean of the middle two for an even count); undefined if none. */
export function median(xs: readonly (number | undefined)[]): number | undefined {
  const v = xs.filter((x): x is number => x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid] : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

function range(xs: readonly (number | undefined)[]): readonly [number, number] | undefined {
  const v = xs.filter((x): x is number => x !== undefined && Number.isFinite(x));
  return v.length === 0 ? undefined : [Math.min(...v), Math.max(...v)];
}

/**
 * Pair each sample with the runs of the same mode, clients and round: ratio to direct and (1 client)
 * added latency from the direct run, CPU per query relative to the pipe's from the pipe run.
 */
export function pairWithinRounds(samples: RoundSample[]): void {
  const peer = (r: RoundSample, target: TargetName): RoundSample | undefined =>
    samples.find((x) => x.target === target && x.mode === r.mode && x.clients === r.clients && x.round === r.round && x.ok);
  for (const r of samples) {
    if (!r.ok) continue;
    const p = r.target === 'pipe' || r.target === 'direct' ? undefined : peer(r, 'pipe');
    if (p?.cpuUsPerQuery && r.cpuUsPerQuery !== undefined) r.cpuVsPipe = r.cpuUsPerQuery / p.cpuUsPerQuery;
    const d = peer(r, 'direct');
    if (!d || d.tps === undefined || r.tps === undefined || d.tps <= 0 || r.tps <= 0) continue;
    r.ratioToDirect = r.tps / d.tps;
    // one client runs one query at a time: 1/tps is its mean latency, with more digits than pgbench prints
    if (r.clients === 1) r.addedLatencyUs = 1e6 / r.tps - 1e6 / d.tps;
  }
}

/** One row per (target, mode, clients), in first-seen order, with the medians of its rounds. */
export function summarise(samples: readonly RoundSample[]): BenchRow[] {
  const groups = new Map<string, RoundSample[]>();
  for (const s of samples) {
    const key = `${s.target}\0${s.mode}\0${s.clients}`;
    const g = groups.get(key);
    if (g) g.push(s);
    else groups.set(key, [s]);
  }
  return [...groups.values()].map((g) => {
    const first = g[0] as RoundSample;
    const ok = g.filter((s) => s.ok);
    return {
      target: first.target,
      mode: first.mode,
      clients: first.clients,
      ok: ok.length === g.length,
      error: g.find((s) => !s.ok)?.error,
      roundsOk: ok.length,
      tps: median(ok.map((s) => s.tps)),
      latencyMs: median(ok.map((s) => s.latencyMs)),
      ratioToDirect: median(ok.map((s) => s.ratioToDirect)),
      addedLatencyUs: median(ok.map((s) => s.addedLatencyUs)),
      cpuUsPerQuery: median(ok.map((s) => s.cpuUsPerQuery)),
      cpuVsPipe: median(ok.map((s) => s.cpuVsPipe)),
      tpsRange: range(ok.map((s) => s.tps)),
      cpuRange: range(ok.map((s) => s.cpuUsPerQuery)),
    };
  });
}

/** Medians of one target's flood rounds (a round that ended early or failed still counts its growth). */
export function summariseFlood(target: TargetName, seconds: number, samples: readonly FloodSample[], error: string | undefined): FloodRow {
  return {
    target,
    seconds,
    ok: error === undefined && samples.length > 0,
    error,
    beforeMb: median(samples.map((s) => s.beforeMb)),
    peakMb: median(samples.map((s) => s.peakMb)),
    growthMb: median(samples.map((s) => s.growthMb)),
    samples,
  };
}
