/**
 * pgpool-II pattern lists compiled once per Classifier.
 *
 * pgpool-II treats each entry of write_function_list, read_only_function_list and
 * primary_routing_query_pattern_list as a POSIX extended regular expression that must match
 * the whole subject (it anchors them as ^...$) and compares case-insensitively. We compile each
 * entry to a JS RegExp `^(?:entry)$` with flags `is` (POSIX `.` also matches a newline),
 * translating POSIX bracket classes such as [[:alpha:]]. An entry that does not compile is
 * rejected at construction time (config errors surface at load, not per query).
 */
import { isSafeFunction, isWriterFunction } from './functions';

const POSIX_CLASSES: Readonly<Record<string, string>> = {
  alpha: 'A-Za-z', digit: '0-9', alnum: 'A-Za-z0-9', upper: 'A-Z', lower: 'a-z',
  space: ' \\t\\r\\n\\v\\f', blank: ' \\t', punct: '!-\\/:-@\\[-`{-~', xdigit: '0-9A-Fa-f',
  word: 'A-Za-z0-9_', cntrl: '\\x00-\\x1f\\x7f', print: '\\x20-\\x7e', graph: '\\x21-\\x7e',
};

/** Compiles one pgpool-style pattern. Throws with the offending entry on a bad pattern. */
export function compilePattern(entry: string): RegExp {
  const src = entry.replace(/\[:([a-z]+):\]/g, (m, name: string) => POSIX_CLASSES[name] ?? m);
  try {
    return new RegExp(`^(?:${src})$`, 'is');
  } catch (err) {
    throw new Error(`invalid regular expression ${JSON.stringify(entry)}: ${(err as Error).message}`);
  }
}

/** Options in the form the hot path uses. */
export interface CompiledOptions {
  readonly writeFunctions: readonly RegExp[];
  readonly readOnlyFunctions: readonly RegExp[] | undefined;
  readonly primaryRouting: readonly RegExp[];
  readonly allowSqlComments: boolean;
  readonly ignoreLeadingWhiteSpace: boolean;
  readonly standardConformingStrings: boolean;
}

const compileList = (list: readonly string[] | undefined): RegExp[] =>
  (list ?? []).filter((e) => e.trim() !== '').map((e) => compilePattern(e.trim()));

export function compileOptions(opts: {
  writeFunctions?: readonly string[];
  readOnlyFunctions?: readonly string[];
  primaryRoutingPatterns?: readonly string[];
  allowSqlComments?: boolean;
  ignoreLeadingWhiteSpace?: boolean;
  standardConformingStrings?: boolean;
}): CompiledOptions {
  const ro = compileList(opts.readOnlyFunctions);
  return {
    writeFunctions: compileList(opts.writeFunctions),
    readOnlyFunctions: ro.length > 0 ? ro : undefined,
    primaryRouting: compileList(opts.primaryRoutingPatterns),
    allowSqlComments: opts.allowSqlComments ?? false,
    ignoreLeadingWhiteSpace: opts.ignoreLeadingWhiteSpace ?? true,
    standardConformingStrings: opts.standardConformingStrings ?? true,
  };
}

/** A function name matches if its qualified or its bare name does. */
function nameMatches(list: readonly RegExp[], fn: string): boolean {
  const dot = fn.lastIndexOf('.');
  const bare = dot >= 0 ? fn.slice(dot + 1) : fn;
  for (const re of list) if (re.test(fn) || (bare !== fn && re.test(bare))) return true;
  return false;
}

/**
 * Decides what the called functions mean for a statement that is otherwise read-only.
 * Returns a reason string when it must go to the primary, '' when it may go to a standby,
 * or 'check' when the router must check volatility in pg_proc.
 */
export function functionVerdict(fns: readonly string[], o: CompiledOptions): string {
  let unknown = false;
  for (const fn of fns) {
    if (isWriterFunction(fn)) return 'writer function ' + fn;
    if (o.writeFunctions.length > 0 && nameMatches(o.writeFunctions, fn)) return 'write_function_list: ' + fn;
    if (isSafeFunction(fn)) continue;
    if (o.readOnlyFunctions) {
      if (!nameMatches(o.readOnlyFunctions, fn)) return 'read_only_function_list: ' + fn;
      continue;
    }
    if (o.writeFunctions.length === 0) unknown = true;
  }
  return unknown ? 'check' : '';
}

/** Whether the query text matches primary_routing_query_pattern_list (raw, or trimmed without a final ';'). */
export function matchesPrimaryRouting(sql: string, o: CompiledOptions): boolean {
  if (o.primaryRouting.length === 0) return false;
  const trimmed = sql.trim().replace(/;+\s*$/, '').trim();
  for (const re of o.primaryRouting) if (re.test(sql) || re.test(trimmed)) return true;
  return false;
}

