// compare.ts — a bench run against the saved baseline (bench/baseline.json): one line per figure
// with the baseline value, the new value, the change in percent and a verdict. Only figures that
// compare a proxy with direct or the bare pipe in the same run (ratio, added latency, CPU relative
// to the pipe's) or that are the proxy's own cost (CPU per query, RSS growth) are judged; absolute
// TPS follows the machine's mood and is not.
// The noise bands are wide on purpose: the machines are shared 2-core VMs where one pgbench run
// varies by ±30%; the medians of BENCH_ROUNDS rounds are steadier, but not by much. A change is a
// regression (or an improvement) only when it is beyond both the percent band and the absolute
// floor of its figure. `--fail-on-regression` (or BENCH_FAIL_ON_REGRESSION=1) makes it an exit code.
// By hand: node dist/bench/e2e/compare.js [baseline.json] [results.json]
//   (defaults: bench/baseline.json and bench/results/latest.json)

import fs from 'node:fs';
import path from 'node:path';
import type { BenchReport } from './results';

export type MetricName = 'ratioToDirect' | 'cpuUsPerQuery' | 'cpuVsPipe' | 'addedLatencyUs' | 'rssGrowthMb';

/** How one figure is judged. */
export interface MetricSpec {
  readonly name: MetricName;
  readonly label: string;
  readonly unit: string;
  readonly better: 'higher' | 'lower';
  /** Changes within ±pct percent are noise. */
  readonly pct: number;
  /** ...and so are changes smaller than abs (in the figure's unit), whatever their percent. */
  readonly abs: number;
  readonly digits: number;
}

/** The judged figures and their noise bands (see the header for why they are this wide). */
export const METRICS: Readonly<Record<MetricName, MetricSpec>> = {
  ratioToDirect: { name: 'ratioToDirect', label: 'tps ratio to direct', unit: 'x', better: 'higher', pct: 15, abs: 0.02, digits: 3 },
  cpuUsPerQuery: { name: 'cpuUsPerQuery', label: 'proxy CPU per query', unit: 'µs', better: 'lower', pct: 15, abs: 2, digits: 1 },
  // a busy machine makes every process's query dearer: the bare pipe's CPU in the same round cancels most of that
  cpuVsPipe: { name: 'cpuVsPipe', label: "CPU per query / the pipe's", unit: 'x', better: 'lower', pct: 15, abs: 0.05, digits: 2 },
  // a difference of two noisy latencies: relative swings are large when it is small
  addedLatencyUs: { name: 'addedLatencyUs', label: 'added latency (1 client)', unit: 'µs', better: 'lower', pct: 25, abs: 15, digits: 1 },
  // RSS moves in allocator-sized steps; the target is < 20 MB, so 10 MB is the useful grain
  rssGrowthMb: { name: 'rssGrowthMb', label: 'RSS growth under flood', unit: 'MB', better: 'lower', pct: 25, abs: 10, digits: 1 },
};

/** One judged figure of one report. `failed`: the run behind it did not succeed. */
export interface MetricPoint {
  readonly key: string;
  readonly target: string;
  readonly scenario: string;
  readonly metric: MetricName;
  readonly value: number | undefined;
  readonly failed: boolean;
}

export type Verdict = 'ok' | 'regression' | 'improvement' | 'failed' | 'fixed' | 'new' | 'missing';

/** One output line: a figure in the baseline and/or the new run. */
export interface ComparisonRow {
  readonly key: string;
  readonly target: string;
  readonly scenario: string;
  readonly metric: MetricName;
  readonly baseline: number | undefined;
  readonly value: number | undefined;
  /** (value − baseline) / |baseline| in percent, when both exist and baseline ≠ 0. */
  readonly changePct: number | undefined;
  readonly verdict: Verdict;
}

/** The judged figures of a report (every target but direct, which is the yardstick). */
export function metricPoints(report: Pick<BenchReport, 'results' | 'flood'>): MetricPoint[] {
  const points: MetricPoint[] = [];
  const add = (target: string, scenario: string, metric: MetricName, value: number | undefined, failed: boolean): void => {
    points.push({ key: `${target} ${scenario} ${metric}`, target, scenario, metric, value, failed });
  };
  const hasPipe = report.results.some((r) => r.target === 'pipe');
  for (const r of report.results) {
    if (r.target === 'direct') continue;
    const scenario = `${r.mode} c=${r.clients}`;
    add(r.target, scenario, 'ratioToDirect', r.ratioToDirect, !r.ok);
    add(r.target, scenario, 'cpuUsPerQuery', r.cpuUsPerQuery, !r.ok);
    if (hasPipe && r.target !== 'pipe') add(r.target, scenario, 'cpuVsPipe', r.cpuVsPipe, !r.ok);
    if (r.clients === 1) add(r.target, scenario, 'addedLatencyUs', r.addedLatencyUs, !r.ok);
  }
  for (const f of report.flood ?? []) add(f.target, `flood ${f.seconds} s`, 'rssGrowthMb', f.growthMb, !f.ok);
  return points;
}

/** Judge one figure's move from base to value against its band. */
export function judge(spec: MetricSpec, base: number, value: number): 'ok' | 'regression' | 'improvement' {
  const delta = value - base;
  if (Math.abs(delta) < spec.abs) return 'ok';
  if (base !== 0 && Math.abs(delta / base) * 100 <= spec.pct) return 'ok';
  const worse = spec.better === 'lower' ? delta > 0 : delta < 0;
  return worse ? 'regression' : 'improvement';
}

/** Every figure of baseline and latest, paired by key, in latest's order (then baseline-only ones), judged. */
export function compareReports(
  baseline: Pick<BenchReport, 'results' | 'flood'>,
  latest: Pick<BenchReport, 'results' | 'flood'>,
  metrics: Readonly<Record<MetricName, MetricSpec>> = METRICS,
): ComparisonRow[] {
  const base = new Map(metricPoints(baseline).map((p) => [p.key, p]));
  const rows: ComparisonRow[] = [];
  const seen = new Set<string>();
  for (const p of metricPoints(latest)) {
    seen.add(p.key);
    const b = base.get(p.key);
    const bv = b && !b.failed ? b.value : undefined;
    const nv = p.failed ? undefined : p.value;
    const changePct = bv !== undefined && nv !== undefined && bv !== 0 ? ((nv - bv) / Math.abs(bv)) * 100 : undefined;
    let verdict: Verdict;
    if (p.failed) verdict = 'failed';
    else if (!b) verdict = 'new';
    else if (b.failed) verdict = 'fixed';
    else if (bv === undefined || nv === undefined) verdict = bv === undefined ? 'new' : 'missing';
    else verdict = judge(metrics[p.metric], bv, nv);
    rows.push({ key: p.key, target: p.target, scenario: p.scenario, metric: p.metric, baseline: bv, value: nv, changePct, verdict });
  }
  for (const b of base.values()) {
    if (seen.has(b.key)) continue;
    rows.push({ key: b.key, target: b.target, scenario: b.scenario, metric: b.metric, baseline: b.failed ? undefined : b.value, value: undefined, changePct: undefined, verdict: 'missing' });
  }
  return rows;
}

/** Rows that should stop a merge: pgmaitre's figures that got worse beyond noise, or runs that failed. */
export function regressions(rows: readonly ComparisonRow[], target = 'pgmaitre'): ComparisonRow[] {
  return rows.filter((r) => r.target === target && (r.verdict === 'regression' || r.verdict === 'failed'));
}

/** Median change of direct TPS between the runs: how much faster or slower the machine itself was. */
export function machineDriftPct(baseline: Pick<BenchReport, 'results'>, latest: Pick<BenchReport, 'results'>): number | undefined {
  const changes: number[] = [];
  for (const r of latest.results) {
    if (r.target !== 'direct' || !r.ok || r.tps === undefined) continue;
    const b = baseline.results.find((x) => x.target === 'direct' && x.mode === r.mode && x.clients === r.clients && x.ok);
    if (b?.tps) changes.push(((r.tps - b.tps) / b.tps) * 100);
  }
  changes.sort((a, b) => a - b);
  if (changes.length === 0) return undefined;
  const mid = changes.length >> 1;
  return changes.length % 2 ? changes[mid] : ((changes[mid - 1] as number) + (changes[mid] as number)) / 2;
}

/** Settings that differ between the runs and make the comparison less fair. */
export function settingDifferences(baseline: BenchReport, latest: BenchReport): string[] {
  const out: string[] = [];
  const bc = baseline.config as unknown as Record<string, unknown>;
  const lc = latest.config as unknown as Record<string, unknown>;
  for (const k of ['duration', 'scale', 'rounds', 'weights', 'floodSeconds']) {
    const a = JSON.stringify(bc[k]);
    const b = JSON.stringify(lc[k]);
    if (a !== b) out.push(`${k}: baseline ${a ?? '-'}, now ${b ?? '-'}`);
  }
  if (baseline.host.cpus !== latest.host.cpus) out.push(`cpus: baseline ${baseline.host.cpus}, now ${latest.host.cpus}`);
  if (baseline.host.postgres !== latest.host.postgres) out.push(`PostgreSQL: baseline ${baseline.host.postgres}, now ${latest.host.postgres}`);
  const major = (v: string): string => v.replace(/^v(\d+).*/, '$1');
  if (major(baseline.host.node) !== major(latest.host.node)) out.push(`Node.js: baseline ${baseline.host.node}, now ${latest.host.node}`);
  return out;
}

function num(v: number | undefined, digits: number): string {
  return v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits);
}

const MARK: Record<Verdict, string> = {
  ok: 'ok',
  regression: 'REGRESSION',
  improvement: 'better',
  failed: 'FAILED',
  fixed: 'fixed',
  new: 'new',
  missing: 'missing',
};

/** The comparison as a text table, one figure per line, with the noise bands it used. */
export function formatComparison(rows: readonly ComparisonRow[], metrics: Readonly<Record<MetricName, MetricSpec>> = METRICS): string {
  const head = ['target', 'scenario', 'figure', 'baseline', 'now', 'change', 'band', 'verdict'];
  const body = rows.map((r) => {
    const m = metrics[r.metric];
    const change = r.changePct === undefined ? '-' : `${r.changePct >= 0 ? '+' : ''}${r.changePct.toFixed(1)}%`;
    return [r.target, r.scenario, `${m.label} (${m.unit})`, num(r.baseline, m.digits), num(r.value, m.digits), change, `±${m.pct}%`, MARK[r.verdict]];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i < 3 || i === 7 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ').trimEnd();
  const floors = Object.values(metrics).map((m) => `${m.label} ±${m.pct}% and ≥ ${m.abs} ${m.unit}`).join('; ');
  return [
    line(head),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...body.map(line),
    `noise bands (a change counts only beyond both): ${floors}`,
  ].join('\n');
}

/** Print the comparison of two report files; true when pgmaitre regressed. */
export function printComparison(baseline: BenchReport, latest: BenchReport, baselineLabel: string, write: (s: string) => void): boolean {
  write(`\nchange against ${baselineLabel} (pgmaitre ${baseline.commit.measured.slice(0, 10)}${baseline.commit.dirty ? ' + uncommitted changes' : ''}, ${baseline.startedAt}):\n`);
  if (baseline.schema !== latest.schema) write(`warning: the baseline's JSON layout is version ${baseline.schema}, this run's ${latest.schema}: save a new baseline\n`);
  for (const d of settingDifferences(baseline, latest)) write(`warning: settings differ, ${d}\n`);
  const rows = compareReports(baseline, latest);
  const notMeasured = rows.filter((r) => r.verdict === 'missing');
  write(`${formatComparison(rows.filter((r) => r.verdict !== 'missing'))}\n`);
  if (notMeasured.length > 0) write(`${notMeasured.length} baseline figure(s) not measured in this run (other modes, clients, targets or flood length)\n`);
  const drift = machineDriftPct(baseline, latest);
  if (drift !== undefined) write(`direct tps changed by ${drift >= 0 ? '+' : ''}${drift.toFixed(1)}% (median): that is the machine, not pgmaitre; the judged figures are relative to direct or pgmaitre's own cost\n`);
  const pipeMoved = rows.filter((r) => r.target === 'pipe' && (r.verdict === 'regression' || r.verdict === 'improvement')).length;
  if (pipeMoved > 0) write(`note: the bare Node pipe moved beyond noise on ${pipeMoved} line(s): the machine or Node.js changed too, weigh pgmaitre's lines with that\n`);
  const bad = regressions(rows);
  write(bad.length === 0 ? 'pgmaitre: no regression beyond the noise bands\n' : `pgmaitre: ${bad.length} regression(s) beyond the noise bands: ${bad.map((r) => r.key).join(', ')}\n`);
  return bad.length > 0;
}

if (require.main === module) {
  const root = path.resolve(__dirname, '..', '..', '..');
  const [basePath = path.join(root, 'bench', 'baseline.json'), latestPath = path.join(root, 'bench', 'results', 'latest.json')] = process.argv
    .slice(2)
    .filter((a) => !a.startsWith('--'));
  const read = (p: string): BenchReport => JSON.parse(fs.readFileSync(p, 'utf8')) as BenchReport;
  const regressed = printComparison(read(basePath), read(latestPath), path.relative(process.cwd(), basePath) || basePath, (s) => process.stdout.write(s));
  const fail = process.argv.includes('--fail-on-regression') || process.env['BENCH_FAIL_ON_REGRESSION'] === '1';
  process.exit(regressed && fail ? 1 : 0);
}
