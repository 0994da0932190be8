/**
 * The vector selectors of a PromQL expression (metric name + label matchers), enough to check
 * that alert rules and dashboards name metrics and labels an exporter really has. Not a PromQL
 * parser: strings, grouping clauses and ranges are removed, then every identifier that is not
 * a function, aggregation or keyword is a metric name.
 */

/** One label matcher. */
export interface Matcher { readonly label: string; readonly op: '=' | '!=' | '=~' | '!~'; readonly value: string }

/** One vector selector. */
export interface Selector { readonly metric: string; readonly matchers: readonly Matcher[] }

const WORDS = new Set([
  // aggregations and their modifiers
  'sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile',
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'atan2',
  // functions
  'abs', 'absent', 'absent_over_time', 'ceil', 'changes', 'clamp', 'clamp_max', 'clamp_min', 'day_of_month', 'day_of_week',
  'day_of_year', 'days_in_month', 'delta', 'deriv', 'exp', 'floor', 'histogram_quantile', 'holt_winters', 'hour', 'idelta',
  'increase', 'irate', 'label_join', 'label_replace', 'ln', 'log2', 'log10', 'minute', 'month', 'predict_linear', 'rate',
  'resets', 'round', 'scalar', 'sgn', 'sort', 'sort_desc', 'sqrt', 'time', 'timestamp', 'vector', 'year',
  'avg_over_time', 'min_over_time', 'max_over_time', 'sum_over_time', 'count_over_time', 'quantile_over_time',
  'stddev_over_time', 'stdvar_over_time', 'last_over_time', 'present_over_time', 'label_values', 'inf', 'nan',
]);

/** Parses `{a="x", b=~"y"}`'s inside. */
function parseMatchers(inside: string): Matcher[] {
  const out: Matcher[] = [];
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?/gy;
  let m: RegExpExecArray | null;
  let pos = 0;
  while ((m = re.exec(inside)) !== null) {
    out.push({ label: m[1]!, op: m[2] as Matcher['op'], value: m[3]!.replace(/\\(.)/g, '$1') });
    pos = re.lastIndex;
  }
  if (inside.slice(pos).trim() !== '') throw new Error(`cannot read label matchers {${inside}}`);
  return out;
}

/** Every vector selector of `expr` (Grafana variables must be replaced first). */
export function selectorsOf(expr: string): Selector[] {
  const selectors: Selector[] = [];
  // {…} label matchers, kept aside and replaced by a marker that stays glued to the metric name
  const matcherSets: Matcher[][] = [];
  let text = expr.replace(/\{([^{}]*)\}/g, (_m, inside: string) => {
    matcherSets.push(parseMatchers(inside));
    return `\u0000${matcherSets.length - 1}\u0000`;
  });
  text = text
    .replace(/"(?:[^"\\]|\\.)*"/g, ' ') // strings (label_replace arguments)
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ') // grouping label lists
    .replace(/\[[^\]]*\]/g, ' '); // ranges and subqueries
  const re = /([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(?:\u0000(\d+)\u0000)?/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    if (m[0] === '') { re.lastIndex++; continue; }
    const name = m[1];
    const set = m[2] !== undefined ? matcherSets[Number(m[2])]! : undefined;
    if (name === undefined) {
      // {__name__="..."} style selector
      const n = set?.find((x) => x.label === '__name__' && x.op === '=');
      if (n !== undefined) selectors.push({ metric: n.value, matchers: set!.filter((x) => x !== n) });
      continue;
    }
    const prev = text.slice(0, m.index).trimEnd();
    const after = text.slice(m.index + m[0].length).trimStart();
    if (/[0-9.]$/.test(prev) && /^[eE]/.test(name)) continue; // exponent of a number
    if (WORDS.has(name.toLowerCase()) && set === undefined) continue;
    if (after.startsWith('(') && set === undefined) continue; // an unknown function: not a metric
    if (/^\d/.test(name)) continue;
    selectors.push({ metric: name, matchers: set ?? [] });
  }
  return selectors;
}

/** True when a label value satisfies a matcher (regexes are anchored, as in PromQL). */
export function matches(m: Matcher, value: string | undefined): boolean {
  const v = value ?? '';
  switch (m.op) {
    case '=': return v === m.value;
    case '!=': return v !== m.value;
    case '=~': return new RegExp(`^(?:${m.value})$`).test(v);
    case '!~': return !new RegExp(`^(?:${m.value})$`).test(v);
  }
}
