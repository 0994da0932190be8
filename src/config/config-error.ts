/**
 * The one error type of the config module: every problem found in a file, at once.
 *
 * Each issue renders as `FILE:LINE: key: why` (FILE is the base name), one per line, so
 * a DBA sees all mistakes in a single run instead of fixing them one restart at a time.
 */

/** One problem in a configuration file. */
export interface ConfigIssue {
  /** Base name of the file, e.g. `pgpool.conf`. */
  readonly file: string;
  /** 1-based line number; undefined for whole-file problems. */
  readonly line?: number;
  /** Offending key, when the problem is about one key. */
  readonly key?: string;
  readonly message: string;
}

/** Render one issue as `FILE:LINE: key: why`. */
export function formatIssue(i: ConfigIssue): string {
  const where = i.line !== undefined ? `${i.file}:${i.line}` : i.file;
  return i.key !== undefined ? `${where}: ${i.key}: ${i.message}` : `${where}: ${i.message}`;
}

/** Thrown when a configuration file is invalid; `message` has one line per issue. */
export class ConfigError extends Error {
  /** The individual problems, in file order. */
  readonly issues: readonly ConfigIssue[];
  /** Warnings found in the same pass (not in `message`), for `pgmaitre check`. */
  readonly warnings: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[], warnings: readonly ConfigIssue[] = []) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
    this.warnings = warnings;
  }
}
