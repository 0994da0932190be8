/**
 * Choosing a session's (or, with statement_level_load_balance, a statement's) load-balance node:
 * pgpool-II's weighted random choice among the nodes that are up with a weight above 0 (the
 * primary included, by its own weight), after the redirect preference lists, which are tried in
 * the order app_name → user → database.
 *
 * A preference list is `pattern:target(ratio), ...` where the pattern is a regular expression
 * matched against the whole name, the target `primary`, `standby` or a node id, and the optional
 * ratio (0..1, default 1) the share of sessions that follow the preference; the others fall back
 * to the weighted choice. Standbys that lag beyond the delay threshold are skipped; with
 * prefer_lower_delay_standby the least-lagging standby replaces a lagging choice.
 *
 * The final choice among the qualifying nodes follows load_balance_algorithm:
 * - `weighted`: pgpool's weighted random pick (the default);
 * - `round_robin`: smooth weighted round robin (each node in turn, as often as its weight says;
 *   HAProxy's `balance roundrobin`);
 * - `least_connections`: the node with the fewest active sessions per unit of weight
 *   (`active / weight`; HAProxy's `balance leastconn`), ties taken in turn;
 * - `least_latency`: the node with the lowest recent query latency; a node without a recent
 *   measurement counts as fastest, so it gets tried (and measured) again, ties taken in turn.
 * BACKUP standbys (backend_flagN) qualify only when no other standby does (HAProxy `backup`).
 * Everything these need comes in the candidate records; the only state is LbState (the round
 * robin counters), owned by the caller.
 */

/** What node selection needs to know about one node. */
export interface LbCandidate {
  readonly id: number;
  readonly weight: number;
  readonly usable: boolean;
  readonly isPrimary: boolean;
  readonly lagging: boolean;
  readonly delay: number;
  /** backend_flagN has BACKUP: a standby used only when no other standby qualifies. */
  readonly backup?: boolean;
  /** Sessions (smart endpoint leases and dedicated-port relays) on the node now (least_connections). */
  readonly active?: number;
  /** Recent mean query latency in seconds, undefined when not measured lately (least_latency). */
  readonly latency?: number;
}

/** load_balance_algorithm values. */
export const LbAlgorithm = {
  Weighted: 'weighted', RoundRobin: 'round_robin', LeastConnections: 'least_connections', LeastLatency: 'least_latency',
} as const;
export type LbAlgorithm = (typeof LbAlgorithm)[keyof typeof LbAlgorithm];

/** Mutable selection state kept by the caller (one per balancing point). */
export interface LbState {
  /** Smooth weighted round robin: current weight of each node. */
  readonly current: Map<number, number>;
  /** Rotation for ties (least_connections, least_latency). */
  turn: number;
}

/** Fresh selection state. */
export function newLbState(): LbState {
  return { current: new Map(), turn: 0 };
}

/**
 * Smooth weighted round robin (every node gains its weight, the richest is picked and pays the
 * total): over any window of sum(weights) picks each node is chosen exactly `weight` times.
 */
export function roundRobinPick(cands: readonly LbCandidate[], state: LbState): number {
  let total = 0;
  let best: LbCandidate | null = null;
  let bestCur = -Infinity;
  for (const c of cands) {
    const cur = (state.current.get(c.id) ?? 0) + c.weight;
    state.current.set(c.id, cur);
    total += c.weight;
    if (cur > bestCur) {
      bestCur = cur;
      best = c;
    }
  }
  if (best === null || total <= 0) return -1;
  state.current.set(best.id, bestCur - total);
  return best.id;
}

/** The candidates with the lowest `score`, one of them in turn. */
function lowestPick(cands: readonly LbCandidate[], score: (c: LbCandidate) => number, state: LbState): number {
  let min = Infinity;
  for (const c of cands) min = Math.min(min, score(c));
  const tied = cands.filter((c) => score(c) === min);
  if (tied.length === 0) return -1;
  return tied[state.turn++ % tied.length]!.id;
}

/** Picks one of `cands` (all qualifying, weight > 0) by algorithm; -1 when empty. */
export function pickByAlgorithm(cands: readonly LbCandidate[], algorithm: LbAlgorithm, state: LbState, random: () => number): number {
  if (cands.length === 0) return -1;
  switch (algorithm) {
    case LbAlgorithm.RoundRobin:
      return roundRobinPick(cands, state);
    case LbAlgorithm.LeastConnections:
      return lowestPick(cands, (c) => (c.active ?? 0) / c.weight, state);
    case LbAlgorithm.LeastLatency:
      return lowestPick(cands, (c) => c.latency ?? 0, state);
    case LbAlgorithm.Weighted:
      return weightedPick(cands, random);
    default: {
      const never: never = algorithm;
      throw new Error(`unknown load_balance_algorithm ${String(never)}`);
    }
  }
}

/** Drops BACKUP standbys when another standby among `cands` qualifies. */
export function withoutIdleBackups(cands: readonly LbCandidate[]): readonly LbCandidate[] {
  if (!cands.some((c) => c.backup === true)) return cands;
  return cands.some((c) => !c.isPrimary && c.backup !== true) ? cands.filter((c) => c.backup !== true) : cands;
}

/**
 * The read port's choice: a fresh standby (BACKUP ones only when no other is up), then the
 * primary when `primaryFallback`, then a lagging standby; -1 when nothing is up.
 */
export function selectReadPortNode(
  nodes: readonly LbCandidate[], algorithm: LbAlgorithm, state: LbState, primaryFallback: boolean, random: () => number = Math.random,
): number {
  const standbys = nodes.filter((n) => n.usable && !n.isPrimary && n.weight > 0);
  const fresh = standbys.filter((n) => !n.lagging);
  const pick = pickByAlgorithm(withoutIdleBackups(fresh), algorithm, state, random);
  if (pick >= 0) return pick;
  const primary = nodes.find((n) => n.usable && n.isPrimary);
  if (primaryFallback && primary !== undefined) return primary.id;
  return pickByAlgorithm(withoutIdleBackups(standbys), algorithm, state, random);
}

/** One parsed preference entry. */
export interface RedirectPreference {
  readonly pattern: RegExp;
  readonly target: 'primary' | 'standby' | number;
  readonly ratio: number;
}

/** Parses a *_redirect_preference_list value; throws with the offending entry. */
export function parseRedirectPreferences(list: string | readonly string[]): RedirectPreference[] {
  const items = typeof list === 'string' ? list.split(',') : list.flatMap((x) => x.split(','));
  const out: RedirectPreference[] = [];
  for (const raw of items) {
    const item = raw.trim();
    if (item === '') continue;
    const m = /^(.*):\s*(primary|standby|\d+)\s*(?:\(\s*([0-9.]+)\s*\))?$/i.exec(item);
    if (m === null) throw new Error(`invalid redirect preference "${item}"`);
    const t = m[2]!.toLowerCase();
    const ratio = m[3] === undefined ? 1 : Number(m[3]);
    if (!(ratio >= 0 && ratio <= 1)) throw new Error(`invalid ratio in redirect preference "${item}"`);
    out.push({ pattern: new RegExp(`^(?:${m[1]!.trim()})$`), target: t === 'primary' || t === 'standby' ? t : Number(t), ratio });
  }
  return out;
}

/** Weighted random pick among candidates (weight > 0); -1 when none. */
export function weightedPick(cands: readonly LbCandidate[], random: () => number): number {
  let total = 0;
  for (const c of cands) total += c.weight;
  if (total <= 0) return -1;
  let r = random() * total;
  for (const c of cands) {
    r -= c.weight;
    if (r < 0) return c.id;
  }
  return cands[cands.length - 1]!.id;
}

/** Who is asking, for the preference lists. */
export interface LbRequester {
  readonly applicationName: string;
  readonly user: string;
  readonly database: string;
}

/** The preference lists, in the order they are tried. */
export interface LbPreferences {
  readonly appName: readonly RedirectPreference[];
  readonly user: readonly RedirectPreference[];
  readonly database: readonly RedirectPreference[];
  readonly preferLowerDelayStandby: boolean;
  /** load_balance_algorithm (default weighted). */
  readonly algorithm?: LbAlgorithm;
  /** Round-robin counters shared by every session of this balancing point. */
  readonly state?: LbState;
}

/** Picks the load-balance node; returns the primary's id when nothing else qualifies. */
export function selectLoadBalanceNode(
  nodes: readonly LbCandidate[],
  who: LbRequester,
  prefs: LbPreferences,
  primaryId: number,
  random: () => number = Math.random,
): number {
  const usable = nodes.filter((n) => n.usable);
  const weighted = usable.filter((n) => n.weight > 0);
  const fresh = (n: LbCandidate): boolean => n.isPrimary || !n.lagging;
  const algorithm = prefs.algorithm ?? LbAlgorithm.Weighted;
  const state = prefs.state ?? newLbState();
  // BACKUP standbys join only when no other standby can take reads.
  const pickAmong = (cands: readonly LbCandidate[]): number => pickByAlgorithm(withoutIdleBackups(cands), algorithm, state, random);
  let pick = -1;
  // (No preference list, the usual case: nothing to build or match, at every session's first pick.)
  const lists: [readonly RedirectPreference[], string][] = prefs.appName.length + prefs.user.length + prefs.database.length === 0 ? []
    : [[prefs.appName, who.applicationName], [prefs.user, who.user], [prefs.database, who.database]];
  for (const [list, name] of lists) {
    const pref = list.find((p) => p.pattern.test(name));
    if (pref === undefined) continue;
    if (random() >= pref.ratio) break; // this session falls back to the weighted choice
    if (pref.target === 'primary') return primaryId;
    if (pref.target === 'standby') pick = pickAmong(weighted.filter((n) => !n.isPrimary && fresh(n)));
    else if (usable.some((n) => n.id === pref.target)) pick = pref.target;
    break;
  }
  if (pick < 0) pick = pickAmong(weighted);
  if (pick < 0) return primaryId;
  const chosen = usable.find((n) => n.id === pick)!;
  if (!fresh(chosen)) {
    // delay_threshold: a lagging standby gets no reads; prefer_lower_delay_standby picks the
    // least-lagging standby that is within the threshold, else the primary takes them.
    if (!prefs.preferLowerDelayStandby) return primaryId;
    const best = usable.filter((n) => !n.isPrimary && fresh(n) && n.weight > 0).sort((a, b) => a.delay - b.delay)[0];
    return best === undefined ? primaryId : best.id;
  }
  return pick;
}
