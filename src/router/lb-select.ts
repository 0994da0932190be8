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
 */

/** What node selection needs to know about one node. */
export interface LbCandidate {
  readonly id: number;
  readonly weight: number;
  readonly usable: boolean;
  readonly isPrimary: boolean;
  readonly lagging: boolean;
  readonly delay: number;
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
  const lists: [readonly RedirectPreference[], string][] = [[prefs.appName, who.applicationName], [prefs.user, who.user], [prefs.database, who.database]];
  let pick = -1;
  for (const [list, name] of lists) {
    const pref = list.find((p) => p.pattern.test(name));
    if (pref === undefined) continue;
    if (random() >= pref.ratio) break; // this session falls back to the weighted choice
    if (pref.target === 'primary') return primaryId;
    if (pref.target === 'standby') pick = weightedPick(weighted.filter((n) => !n.isPrimary && fresh(n)), random);
    else if (usable.some((n) => n.id === pref.target)) pick = pref.target;
    break;
  }
  if (pick < 0) pick = weightedPick(weighted, random);
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
