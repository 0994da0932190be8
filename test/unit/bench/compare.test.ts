/** The e2e bench's baseline comparison and round medians (bench/e2e/compare.ts, results.ts): pure, no pgbench. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareReports, formatComparison, judge, machineDriftPct, METRICS, regressions } from '../../../bench/e2e/compare';
import { median, pairWithinRounds, summarise, type BenchRow, type FloodRow, type RoundSample } from '../../../bench/e2e/results';

type Report = { results: BenchRow[]; flood: FloodRow[] };

const row = (target: BenchRow['target'], mode: string, clients: number, f: Partial<BenchRow> = {}): BenchRow => ({
  target, mode, clients, ok: true, error: undefined, roundsOk: 3, tps: 1000, latencyMs: 1,
  ratioToDirect: target === 'direct' ? 1 : 0.6, addedLatencyUs: clients === 1 && target !== 'direct' ? 80 : undefined,
  cpuUsPerQuery: target === 'direct' ? undefined : 70, cpuVsPipe: target === 'pgmaitre' ? 1.2 : undefined,
  tpsRange: [900, 1100], cpuRange: undefined, ...f,
});
const flood = (growthMb: number | undefined, ok = true): FloodRow => ({
  target: 'pgmaitre', seconds: 5, ok, error: ok ? undefined : 'died', beforeMb: 70, peakMb: 70 + (growthMb ?? 0), growthMb, samples: [],
});
const report = (rows: BenchRow[], fl: FloodRow[] = []): Report => ({ results: rows, flood: fl });
const find = (rows: ReturnType<typeof compareReports>, key: string) => {
  const r = rows.find((x) => x.key === key);
  assert.ok(r, `row ${key} in ${rows.map((x) => x.key).join(', ')}`);
  return r;
};

test('judge: inside either the percent band or the absolute floor is noise; beyond both, the direction decides', () => {
  const cpu = METRICS.cpuUsPerQuery; // lower is better, ±15%, ≥ 2 µs
  assert.equal(judge(cpu, 70, 80), 'ok'); // +14.3%
  assert.equal(judge(cpu, 70, 81), 'regression'); // +15.7%
  assert.equal(judge(cpu, 70, 59), 'improvement'); // −15.7%
  assert.equal(judge(cpu, 4, 5.9), 'ok'); // +47% but under the 2 µs floor
  const ratio = METRICS.ratioToDirect; // higher is better
  assert.equal(judge(ratio, 0.6, 0.5), 'regression');
  assert.equal(judge(ratio, 0.6, 0.7), 'improvement');
  assert.equal(judge(ratio, 0.6, 0.55), 'ok');
  const rss = METRICS.rssGrowthMb; // 10 MB floor
  assert.equal(judge(rss, 2, 9), 'ok');
  assert.equal(judge(rss, 380, 4), 'improvement');
  assert.equal(judge(rss, 0, 30), 'regression'); // a zero baseline is judged by the floor alone
});

test('compareReports: one line per judged figure with baseline, new value, change in percent and verdict', () => {
  const base = report([row('direct', 'simple', 1), row('pgmaitre', 'simple', 1), row('direct', 'simple', 16), row('pgmaitre', 'simple', 16)], [flood(380)]);
  const now = report(
    [
      row('direct', 'simple', 1, { tps: 1500 }),
      row('pgmaitre', 'simple', 1, { addedLatencyUs: 120, ratioToDirect: 0.61 }),
      row('direct', 'simple', 16),
      row('pgmaitre', 'simple', 16, { cpuUsPerQuery: 35, ratioToDirect: 0.45 }),
    ],
    [flood(12)],
  );
  const rows = compareReports(base, now);
  // direct is the yardstick: never judged; 1-client rows add latency; the flood adds RSS growth
  assert.deepEqual(rows.map((r) => r.key), [
    'pgmaitre simple c=1 ratioToDirect', 'pgmaitre simple c=1 cpuUsPerQuery', 'pgmaitre simple c=1 addedLatencyUs',
    'pgmaitre simple c=16 ratioToDirect', 'pgmaitre simple c=16 cpuUsPerQuery', 'pgmaitre flood 5 s rssGrowthMb',
  ]);
  const lat = find(rows, 'pgmaitre simple c=1 addedLatencyUs');
  assert.equal(lat.baseline, 80);
  assert.equal(lat.value, 120);
  assert.equal(lat.changePct, 50);
  assert.equal(lat.verdict, 'regression');
  assert.equal(find(rows, 'pgmaitre simple c=1 ratioToDirect').verdict, 'ok');
  assert.equal(find(rows, 'pgmaitre simple c=16 cpuUsPerQuery').changePct, -50);
  assert.equal(find(rows, 'pgmaitre simple c=16 cpuUsPerQuery').verdict, 'improvement');
  assert.equal(find(rows, 'pgmaitre simple c=16 ratioToDirect').verdict, 'regression');
  assert.equal(find(rows, 'pgmaitre flood 5 s rssGrowthMb').verdict, 'improvement');
  assert.deepEqual(regressions(rows).map((r) => r.key), ['pgmaitre simple c=1 addedLatencyUs', 'pgmaitre simple c=16 ratioToDirect']);
  assert.equal(machineDriftPct(base, now), 25); // median of +50% and 0%: direct tps is reported, not judged

  const text = formatComparison(rows);
  assert.match(text, /pgmaitre\s+simple c=1\s+added latency \(1 client\) \(µs\)\s+80\.0\s+120\.0\s+\+50\.0%\s+±25%\s+REGRESSION/);
  assert.match(text, /noise bands.*proxy CPU per query ±15% and ≥ 2 µs/);
});

test('compareReports: failed runs, fixed runs, and figures only one side has', () => {
  const base = report([row('direct', 'extended', 16), row('pgmaitre', 'extended', 16, { ok: false, error: 'boom' }), row('pipe', 'simple', 64)], [flood(380)]);
  const now = report([row('direct', 'extended', 16), row('pgmaitre', 'extended', 16), row('pgmaitre', 'prepared', 16, { ok: false, error: 'x' })], [flood(undefined, false)]);
  const rows = compareReports(base, now);
  assert.equal(find(rows, 'pgmaitre extended c=16 cpuUsPerQuery').verdict, 'fixed');
  assert.equal(find(rows, 'pgmaitre extended c=16 cpuUsPerQuery').baseline, undefined);
  assert.equal(find(rows, 'pgmaitre prepared c=16 ratioToDirect').verdict, 'failed'); // failing is flagged even without a baseline
  assert.equal(find(rows, 'pgmaitre prepared c=16 ratioToDirect').baseline, undefined);
  const died = find(rows, 'pgmaitre flood 5 s rssGrowthMb');
  assert.equal(died.verdict, 'failed');
  assert.equal(died.baseline, 380);
  assert.equal(died.value, undefined);
  assert.equal(find(rows, 'pipe simple c=64 ratioToDirect').verdict, 'missing');
  // a failure is a regression; a missing figure is not
  assert.deepEqual(regressions(rows).map((r) => r.key), [
    'pgmaitre prepared c=16 ratioToDirect', 'pgmaitre prepared c=16 cpuUsPerQuery', 'pgmaitre flood 5 s rssGrowthMb',
  ]);
  const added = compareReports(report([]), report([row('pgmaitre', 'simple', 64)]));
  assert.deepEqual(added.map((r) => r.verdict), ['new', 'new']);
  // the bare pipe's lines are calibration: never counted as pgmaitre's regressions
  const pipeWorse = compareReports(report([row('pipe', 'simple', 16)]), report([row('pipe', 'simple', 16, { cpuUsPerQuery: 140 })]));
  assert.equal(pipeWorse[1]?.verdict, 'regression');
  assert.deepEqual(regressions(pipeWorse), []);
});

test('compareReports: CPU relative to the pipe stays ok when a busy machine makes both dearer', () => {
  const base = report([row('pipe', 'simple', 16, { cpuUsPerQuery: 50 }), row('pgmaitre', 'simple', 16, { cpuUsPerQuery: 60, cpuVsPipe: 1.2 })]);
  const busy = report([row('pipe', 'simple', 16, { cpuUsPerQuery: 65 }), row('pgmaitre', 'simple', 16, { cpuUsPerQuery: 78, cpuVsPipe: 1.2 })]);
  const rows = compareReports(base, busy);
  assert.deepEqual(rows.map((r) => `${r.key} ${r.verdict}`), [
    'pipe simple c=16 ratioToDirect ok', 'pipe simple c=16 cpuUsPerQuery regression',
    'pgmaitre simple c=16 ratioToDirect ok', 'pgmaitre simple c=16 cpuUsPerQuery regression', 'pgmaitre simple c=16 cpuVsPipe ok',
  ]);
  const worse = compareReports(base, report([row('pipe', 'simple', 16, { cpuUsPerQuery: 50 }), row('pgmaitre', 'simple', 16, { cpuUsPerQuery: 75, cpuVsPipe: 1.5 })]));
  assert.equal(find(worse, 'pgmaitre simple c=16 cpuVsPipe').verdict, 'regression');
});

const sample = (target: RoundSample['target'], clients: number, round: number, tps: number | undefined, f: Partial<RoundSample> = {}): RoundSample => ({
  target, mode: 'simple', clients, round, tps, latencyMs: tps ? (1000 * clients) / tps : undefined, transactions: tps ? tps * 10 : 0,
  failed: 0, aborted: 0, error: undefined, exitCode: 0, ok: tps !== undefined, cpuUsPerQuery: target === 'direct' ? undefined : 50 + round, ...f,
});

test('median: odd and even counts, missing values skipped', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([undefined, 5, Number.NaN]), 5);
  assert.equal(median([]), undefined);
});

test('rounds: each proxy run is paired with the direct run of its own round, then the medians are reported', () => {
  const samples = [
    sample('direct', 1, 1, 10_000), sample('pgmaitre', 1, 1, 5_000),
    sample('direct', 1, 2, 5_000), sample('pgmaitre', 1, 2, 4_000),
    sample('direct', 1, 3, 8_000), sample('pgmaitre', 1, 3, 6_000),
    sample('direct', 16, 1, 20_000), sample('pgmaitre', 16, 1, undefined, { error: 'ERROR: boom', exitCode: 1 }),
    sample('pipe', 1, 1, 6_000, { cpuUsPerQuery: 25.5 }), sample('pipe', 1, 2, 6_000, { cpuUsPerQuery: 104 }), sample('pipe', 1, 3, 6_000, { cpuUsPerQuery: 53 }),
  ];
  pairWithinRounds(samples);
  // ratios per round: 0.5, 0.8, 0.75 → median 0.75 (the ratio of the tps medians would be 5000/8000)
  const mine = samples.filter((s) => s.target === 'pgmaitre' && s.clients === 1);
  assert.deepEqual(mine.map((s) => s.ratioToDirect), [0.5, 0.8, 0.75]);
  // added latency per round: 200−100, 250−200, 166.7−125 µs
  assert.deepEqual(mine.map((s) => Math.round(s.addedLatencyUs ?? -1)), [100, 50, 42]);
  // pgmaitre's CPU per query (51, 52, 53) over the pipe's of the same round (25.5, 104, 53)
  assert.deepEqual(mine.map((s) => s.cpuVsPipe), [2, 0.5, 1]);
  assert.equal(samples.find((s) => s.target === 'pipe')?.cpuVsPipe, undefined);
  const rows = summarise(samples);
  assert.deepEqual(rows.map((r) => `${r.target} ${r.clients}`), ['direct 1', 'pgmaitre 1', 'direct 16', 'pgmaitre 16', 'pipe 1']);
  assert.equal(rows[1]!.cpuVsPipe, 1);
  const one = rows[1]!;
  assert.equal(one.ratioToDirect, 0.75);
  assert.equal(one.addedLatencyUs, 50);
  assert.equal(one.tps, 5000);
  assert.equal(one.cpuUsPerQuery, 52);
  assert.deepEqual(one.tpsRange, [4000, 6000]);
  assert.equal(one.ok, true);
  const failed = rows[3]!;
  assert.equal(failed.ok, false);
  assert.equal(failed.roundsOk, 0);
  assert.equal(failed.error, 'ERROR: boom');
  assert.equal(failed.ratioToDirect, undefined);
  // direct paired with itself: the yardstick line reads 1.000 and +0 µs
  assert.equal(rows[0]!.ratioToDirect, 1);
  assert.equal(rows[0]!.addedLatencyUs, 0);
  assert.equal(rows[2]!.addedLatencyUs, undefined); // added latency is a 1-client figure
});
