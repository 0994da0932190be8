/**
 * The differential transaction-pooling fuzzer: a round generates a scenario from a seed, plays
 * every client slot at the same time through pgmaitre (pool_mode = transaction, default_pool_size
 * 1-3 from the seed, one backend: the primary) and on private direct connections to the primary,
 * then compares each client's normalised messages step by step. After the clients are gone, no
 * advisory lock may be left on the primary and no pooled connection may still be leased.
 *
 * Used by test/integration/txpool-fuzz.test.ts (bounded, in `npm test`) and by
 * `npm run fuzz -- --mode txpool` (test/fuzz/run.ts, a longer run).
 */
import { RawClient } from '../../harness/raw-client';
import { backendLines, startInProcess, type InProcess } from '../../harness/in-process';
import type { Cluster } from '../../harness/cluster';
import { encodeQuery } from '../../../src/protocol/frontend';
import { describeStep, generateScenario, STEP_CLASSES, type Generation, type Scenario, type ScenarioOptions } from './grammar';
import { playSlot, type SideTarget, type SlotTranscript } from './runner';

/** One client whose answers through pgmaitre differ from its direct connection's. */
export interface Divergence {
  readonly slot: number;
  readonly generation: number;
  readonly step: number;
  /** The steps of that generation up to the divergent one, described. */
  readonly sequence: readonly string[];
  readonly expected: readonly string[];
  readonly got: readonly string[];
}

/**
 * A divergence already reported (a finding of /work/fuzz-findings.md) that a run may tolerate: it
 * matches when the first differing message on each side matches. The rest of that client's
 * connection is then not compared (its state differs from there on).
 */
export interface KnownDivergence {
  readonly finding: string;
  readonly expected: RegExp;
  readonly got: RegExp;
}

/** The first message where a divergence's two sides differ. */
export function firstDifference(d: Divergence): { expected: string; got: string } {
  let k = 0;
  while (k < d.expected.length && k < d.got.length && d.expected[k] === d.got[k]) k++;
  return { expected: d.expected[k] ?? '(end)', got: d.got[k] ?? '(end)' };
}

/** The known divergence `d` is, if any. */
export function knownAs(d: Divergence, known: readonly KnownDivergence[]): KnownDivergence | undefined {
  const f = firstDifference(d);
  return known.find((k) => k.expected.test(f.expected) && k.got.test(f.got));
}

/** What a round found. */
export interface RoundResult {
  readonly seed: number;
  readonly poolSize: number;
  readonly divergences: readonly Divergence[];
  /** Invariants broken after the clients left (leaked locks, leases) and uncaught exceptions. */
  readonly problems: readonly string[];
  readonly steps: number;
  readonly ms: number;
}

/** Options of a round. */
export interface RoundOptions extends ScenarioOptions {
  readonly seed: number;
  readonly cluster: Cluster;
  /** Extra pgpool.conf lines. */
  readonly extraConfig?: string;
  /** ms to wait for one answer. */
  readonly timeoutMs?: number;
  /**
   * Play the "pgmaitre" side on direct connections too: any divergence is then the fuzzer's own
   * nondeterminism (a check of the oracle; `npm run fuzz -- --mode txpool --self-check`).
   */
  readonly selfCheck?: boolean;
}

/** Step classes named in a comma-separated list (FUZZ_EXCLUDE), checked against STEP_CLASSES. */
export function parseClasses(list: string | undefined): Set<string> {
  const out = new Set<string>();
  for (const c of (list ?? '').split(',').map((x) => x.trim()).filter(Boolean)) {
    if (!(STEP_CLASSES as readonly string[]).includes(c)) throw new Error(`unknown fuzz step class '${c}' (known: ${STEP_CLASSES.join(', ')})`);
    out.add(c);
  }
  return out;
}

/** pgpool.conf of the pgmaitre under test. */
export function fuzzConfig(cluster: Cluster, poolSize: number, extra = ''): string {
  return [
    backendLines({ nodes: [cluster.primary] }),
    "sr_check_user = 'postgres'", 'sr_check_period = 0', 'health_check_period = 0',
    'enable_pool_hba = off', 'load_balance_mode = off',
    'pool_mode = transaction', `default_pool_size = ${poolSize}`,
    'num_init_children = 200', 'max_client_conn = 400', 'query_wait_timeout = 120', 'connect_timeout = 20000',
    extra,
  ].join('\n');
}

async function adminQuery(cluster: Cluster, sql: string): Promise<string[][]> {
  const c = await RawClient.connect(cluster.primary.port, { user: 'postgres', database: 'postgres' });
  try {
    c.send(encodeQuery(sql));
    const ms = await c.untilReady(30_000);
    const err = ms.find((m) => m.type === 'E');
    if (err) throw new Error(`${sql}: ${err.error?.message}`);
    const { decodeDataRow } = await import('../../../src/protocol/backend');
    return ms.filter((m) => m.type === 'D').map((m) => decodeDataRow(m.frame, 0, m.frame.length).map((v) => v ?? ''));
  } finally {
    c.close();
  }
}

/** Creates the tables of every slot on both sides (empty). */
async function setupTables(cluster: Cluster, slots: number): Promise<void> {
  const sql: string[] = [];
  for (let i = 0; i < slots; i++) for (const side of ['d', 'p']) sql.push(`DROP TABLE IF EXISTS fz${side}${i}_t; CREATE TABLE fz${side}${i}_t (v int)`);
  await adminQuery(cluster, sql.join('; '));
}

function compare(s: Scenario, direct: readonly SlotTranscript[], pooled: readonly SlotTranscript[]): Divergence[] {
  const out: Divergence[] = [];
  for (const script of s.slots) {
    const d = direct.find((x) => x.slot === script.slot)!;
    const p = pooled.find((x) => x.slot === script.slot)!;
    let diverged = false;
    script.generations.forEach((gen, g) => {
      const ds = d.gens[g] ?? [];
      const ps = p.gens[g] ?? [];
      const n = Math.max(ds.length, ps.length);
      if (diverged) return;
      for (let i = 0; i < n; i++) {
        const a = ds[i] ?? ['(step not played)'];
        const b = ps[i] ?? ['(step not played)'];
        if (JSON.stringify(a) !== JSON.stringify(b)) {
          out.push({
            slot: script.slot, generation: g, step: i,
            sequence: gen.steps.slice(0, i + 1).map(describeStep),
            expected: a, got: b,
          });
          // the slot's table may differ from here on: its later connections are not compared
          diverged = true;
          return;
        }
      }
    });
  }
  return out;
}

/** Plays one seed's scenario on both sides and compares. */
export function runRound(o: RoundOptions): Promise<RoundResult> {
  return runScenario(generateScenario(o.seed, o), o);
}

/** Plays a scenario (generated, or shrunk by shrinkScenario) on both sides and compares. */
export async function runScenario(scenario: Scenario, o: Pick<RoundOptions, 'cluster' | 'extraConfig' | 'timeoutMs' | 'selfCheck'>): Promise<RoundResult> {
  const t0 = Date.now();
  const problems: string[] = [];
  const onCrash = (e: unknown): void => { problems.push(`uncaught exception in the test process (pgmaitre in process): ${(e as Error)?.stack ?? String(e)}`); };
  process.on('uncaughtException', onCrash);
  let px: InProcess | undefined;
  try {
    await setupTables(o.cluster, Math.max(0, ...scenario.slots.map((x) => x.slot + 1)));
    px = await startInProcess(fuzzConfig(o.cluster, scenario.poolSize, o.extraConfig));
    const timeoutMs = o.timeoutMs ?? 60_000;
    const params = { user: 'postgres', database: 'postgres' };
    const adminPort = o.cluster.primary.port;
    const direct: SideTarget = { side: 'd', port: o.cluster.primary.port, params, timeoutMs, adminPort };
    const pooled: SideTarget = { side: 'p', port: o.selfCheck ? o.cluster.primary.port : px.port, params, timeoutMs, adminPort };
    const [dt, pt] = await Promise.all([
      Promise.all(scenario.slots.map((s) => playSlot(s, direct))),
      Promise.all(scenario.slots.map((s) => playSlot(s, pooled))),
    ]);
    const divergences = compare(scenario, dt, pt);
    // after every client left: nothing leased, no session advisory lock left anywhere
    const app = px.app;
    const deadline = Date.now() + 15_000;
    let leased = -1;
    let locks = '';
    while (Date.now() < deadline) {
      leased = [...app.ctx.pools.values()].reduce((a, p) => a + p.counts().active, 0);
      locks = (await adminQuery(o.cluster, "SELECT string_agg(objid::text, ',') FROM pg_locks WHERE locktype = 'advisory'"))[0]?.[0] ?? '';
      if (leased === 0 && locks === '') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    if (leased !== 0) problems.push(`${leased} pooled connection(s) still leased 15 s after every client left`);
    if (locks !== '') problems.push(`advisory locks still held 15 s after every client left (keys ${locks}; 1000xx = direct, 2000xx = through pgmaitre)`);
    const steps = scenario.slots.reduce((a, s) => a + s.generations.reduce((b, g) => b + g.steps.length, 0), 0);
    return { seed: scenario.seed, poolSize: scenario.poolSize, divergences, problems, steps, ms: Date.now() - t0 };
  } finally {
    process.off('uncaughtException', onCrash);
    await px?.stop();
  }
}

/** A readable report of a failed round (what /work/fuzz-findings.md entries are made of). */
export function formatRound(r: RoundResult, maxDivergences = 5, known: readonly KnownDivergence[] = []): string {
  const unknown = r.divergences.filter((d) => knownAs(d, known) === undefined);
  const lines = [`seed ${r.seed} (default_pool_size ${r.poolSize}): ${unknown.length} client(s) diverged${unknown.length < r.divergences.length ? ` (and ${r.divergences.length - unknown.length} in known ways)` : ''}, ${r.problems.length} problem(s); replay: FUZZ_SEED=${r.seed}`];
  for (const p of r.problems) lines.push(`  problem: ${p}`);
  for (const d of unknown.slice(0, maxDivergences)) {
    lines.push(`  client ${d.slot} generation ${d.generation}, step ${d.step}:`);
    for (const [i, s] of d.sequence.entries()) lines.push(`    ${i === d.sequence.length - 1 ? '>' : ' '} ${s}`);
    lines.push(`    direct (expected): ${d.expected.join(' | ')}`);
    lines.push(`    pgmaitre (got):    ${d.got.join(' | ')}`);
  }
  return lines.join('\n');
}

/** True when a round found anything (but the known divergences given). */
export function failedRound(r: RoundResult, known: readonly KnownDivergence[] = []): boolean {
  return r.problems.length > 0 || r.divergences.some((d) => knownAs(d, known) === undefined);
}

/**
 * Shrinks a failing scenario greedily: drops whole slots, then generations, then chunks of steps
 * (halving down to single steps), keeping a change when a replay still fails (`tries` replays,
 * any failure counts: the interleaving of clients is not deterministic). Bounded by `budgetMs`.
 */
export async function shrinkScenario(s: Scenario, o: Pick<RoundOptions, 'cluster' | 'extraConfig' | 'timeoutMs' | 'selfCheck'>, budgetMs: number, log: (m: string) => void = () => undefined, tries = 2,
  still: (r: RoundResult) => boolean = failedRound): Promise<Scenario> {
  const deadline = Date.now() + budgetMs;
  const fails = async (c: Scenario): Promise<boolean> => {
    for (let i = 0; i < tries; i++) {
      const r = await runScenario(c, o);
      if (failedRound(r) && still(r)) return true;
    }
    return false;
  };
  let cur = s;
  const attempt = async (c: Scenario, what: string): Promise<boolean> => {
    if (Date.now() > deadline) return false;
    if (await fails(c)) { cur = c; log(`shrink: ${what} (${countSteps(cur)} steps left)`); return true; }
    return false;
  };
  for (let i = cur.slots.length - 1; i >= 0 && cur.slots.length > 1; i--) {
    await attempt({ ...cur, slots: cur.slots.filter((_, k) => k !== i) }, `dropped slot ${cur.slots[i]!.slot}`);
  }
  for (let si = 0; si < cur.slots.length; si++) {
    for (let gi = cur.slots[si]!.generations.length - 1; gi >= 0 && cur.slots[si]!.generations.length > 1; gi--) {
      await attempt(withGen(cur, si, null, gi), `dropped slot ${cur.slots[si]!.slot} generation ${gi}`);
    }
  }
  for (let si = 0; si < cur.slots.length; si++) {
    for (let gi = 0; gi < cur.slots[si]!.generations.length; gi++) {
      for (let chunk = Math.max(1, cur.slots[si]!.generations[gi]!.steps.length >> 1); chunk >= 1; chunk >>= 1) {
        for (let at = 0; at < cur.slots[si]!.generations[gi]!.steps.length; ) {
          const steps = cur.slots[si]!.generations[gi]!.steps;
          const next = [...steps.slice(0, at), ...steps.slice(at + chunk)];
          if (next.length === 0 || !(await attempt(withGen(cur, si, { steps: next }, gi), `dropped ${chunk} step(s) of slot ${cur.slots[si]!.slot} gen ${gi}`))) at += chunk;
          if (Date.now() > deadline) return cur;
        }
        if (chunk === 1) break;
      }
    }
  }
  return cur;
}

function withGen(s: Scenario, si: number, gen: Generation | null, gi: number): Scenario {
  return {
    ...s,
    slots: s.slots.map((slot, k) => k !== si ? slot : {
      ...slot,
      generations: gen === null ? slot.generations.filter((_, j) => j !== gi) : slot.generations.map((g, j) => (j === gi ? gen : g)),
    }),
  };
}

function countSteps(s: Scenario): number {
  return s.slots.reduce((a, x) => a + x.generations.reduce((b, g) => b + g.steps.length, 0), 0);
}

/** A whole scenario as text: every slot, generation and step (for a shrunk repro). */
export function formatScenario(s: Scenario): string {
  const lines = [`scenario of seed ${s.seed}, default_pool_size ${s.poolSize} ({t}, {ch}, {k}, {k2}: the client's own table, channel, advisory keys):`];
  for (const slot of s.slots) {
    slot.generations.forEach((g, gi) => {
      lines.push(`  client ${slot.slot}${slot.generations.length > 1 ? ` connection ${gi + 1}` : ''}:`);
      for (const st of g.steps) lines.push(`    ${describeStep(st)}`);
    });
  }
  return lines.join('\n');
}
