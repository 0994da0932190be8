/**
 * Public types of the SQL classifier: what a statement is, and whether it may run on a
 * read-only standby. Pure type declarations, no runtime code except the kind list.
 */

/** Every statement kind the classifier reports. */
export const QueryKinds = [
  'read', 'write', 'begin', 'commit', 'rollback', 'savepoint', 'release', 'rollback_to',
  'set', 'reset', 'discard', 'deallocate', 'show', 'lock', 'copy_from', 'copy_to',
  'listen', 'notify', 'unlisten', 'cursor', 'prepare', 'execute', 'explain', 'call',
  'vacuum', 'two_phase', 'ddl', 'temp_table', 'utility', 'empty', 'admin', 'unknown',
] as const;

export type QueryKind = (typeof QueryKinds)[number];

/** Which stage produced a classification. */
export type ParsedBy = 'lexer' | 'parser' | 'cache';

/** Facts the router needs beyond kind/readOnly. Absent booleans mean false. */
export interface QueryFlags {
  /** SELECT ... FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE. */
  forUpdate?: boolean;
  /** SELECT ... INTO (creates a table). */
  selectInto?: boolean;
  /** A data-modifying statement inside WITH. */
  writableCte?: boolean;
  /** Alias of isolationSerializable, kept for callers that test `serializable`. */
  serializable?: boolean;
  /** BEGIN / START TRANSACTION / SET TRANSACTION ... READ WRITE. */
  readWrite?: boolean;
  /** BEGIN / START TRANSACTION / SET TRANSACTION ... READ ONLY. */
  readOnlyTx?: boolean;
  /** ISOLATION LEVEL SERIALIZABLE in BEGIN / START / SET TRANSACTION / SET SESSION CHARACTERISTICS. */
  isolationSerializable?: boolean;
  /** CREATE TEMP TABLE/VIEW/SEQUENCE, SELECT INTO TEMP, CREATE TEMP TABLE AS: name is in `relations`. */
  createsTemp?: boolean;
  /** EXPLAIN with ANALYZE (the inner statement is executed). */
  explainAnalyze?: boolean;
  /**
   * Read-only so far, but it calls functions outside the built-in allowlist and neither
   * write_function_list nor read_only_function_list is configured: the router must look
   * their volatility up in pg_proc (pgpool-II semantics) before sending it to a standby.
   */
  needsVolatilityCheck?: boolean;
  /**
   * A statement changes session state (SET, RESET, DISCARD, PREPARE, EXECUTE, DEALLOCATE, LISTEN,
   * UNLISTEN, DECLARE/CLOSE): the session core looks at its effects (session-effects.ts).
   */
  sessionEffects?: boolean;
  /** Why a statement that is otherwise a read must go to the primary (option or comment rule). */
  primaryReason?: string;
  parsedBy: ParsedBy;
  /** libpg-query's message when the grammar rejected the text (kind is then 'unknown'). */
  parseError?: string;
}

/** A pgpool-II admin command the proxy answers itself. */
export interface AdminCommand {
  /** Upper-case command: 'SHOW POOL_NODES', 'PGPOOL SHOW', 'PGPOOL SET', 'PGPOOL RESET', ... */
  readonly command: string;
  /** The rest of the statement, trimmed, without a trailing semicolon (original case). */
  readonly args: string;
}

/** The classification of one query string (possibly several statements). */
export interface QueryClass {
  readonly kind: QueryKind;
  /** True only when the whole string is positively known to be safe on a read-only standby. */
  readonly readOnly: boolean;
  /** Number of non-empty statements in the string. */
  readonly statements: number;
  /** Function names called: lower-case unless quoted; schema-qualified as 'schema.name'. */
  readonly functions: readonly string[];
  /** Tables read or written (see fast-path.ts for what the lexer path reports). */
  readonly relations: readonly string[];
  readonly flags: Readonly<QueryFlags>;
  readonly admin?: AdminCommand;
}

/** pgpool-II compatible knobs; compiled once per Classifier. */
export interface ClassifyOptions {
  /** write_function_list: regexes, each matched against the whole function name (^...$, case-insensitive). */
  readonly writeFunctions?: readonly string[];
  /** read_only_function_list: when set, a called function not matching any entry forces the primary. */
  readonly readOnlyFunctions?: readonly string[];
  /** primary_routing_query_pattern_list: regexes matched against the whole query text (^...$, case-insensitive). */
  readonly primaryRoutingPatterns?: readonly string[];
  /** allow_sql_comments (pgpool default off): when false, a query starting with a comment is not load balanced. */
  readonly allowSqlComments?: boolean;
  /** ignore_leading_white_space (pgpool default on): when false, leading white space prevents load balancing. */
  readonly ignoreLeadingWhiteSpace?: boolean;
  /**
   * The session's standard_conforming_strings (default true). When false, backslashes in
   * '...' literals are escapes, which our lexer and libpg-query do not model: such queries fail closed.
   */
  readonly standardConformingStrings?: boolean;
  /** LRU entries (default 10_000). */
  readonly cacheSize?: number;
  /** Longest text given to libpg-query or cached (default 8192 characters). */
  readonly maxParseLength?: number;
}

/** Cache counters for metrics. */
export interface ClassifierStats {
  readonly hits: number;
  readonly misses: number;
  readonly size: number;
  readonly capacity: number;
  /** Queries decided by the lexer alone (no cache, no parser). */
  readonly lexerDecided: number;
  /** Queries given to libpg-query. */
  readonly parsed: number;
  /** Queries that failed closed because they were too long or the parser was not loaded. */
  readonly failedClosed: number;
}

/**
 * A caller's last text decided by the lexer through the shape cache, and its verdict
 * (Classifier.classifyLike fills it in). One per caller (a session's planner): nothing per request.
 */
export interface ShapeHint {
  sql: string;
  /** `sql` up to its first digit: what a text of its shape starts with, character for character. */
  prefix: string;
  cls: QueryClass | null;
  /** The classifier that decided (a reload makes a new one, with other options). */
  by: unknown;
}

/** A compiled classifier: options and cache bound together. */
export interface Classifier {
  classify(sql: string): QueryClass;
  /**
   * classify(), but a text with the shape of the caller's last shape-decided text (`hint`: the
   * same text but for the digits of its numbers) gets that text's verdict after one comparison,
   * without hashing the text and looking the hash up; `hint` is updated.
   */
  classifyLike?(sql: string, hint: ShapeHint): QueryClass;
  stats(): ClassifierStats;
}
