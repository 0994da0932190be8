/**
 * Function lists the classifier knows without asking the database.
 *
 * SAFE_FUNCTIONS: built-in pg_catalog functions that are IMMUTABLE or STABLE, have no side
 * effects and give the same answer on a standby. A SELECT that calls only these (bare or as
 * `pg_catalog.name`) is decided by the lexer; any other call sends the statement to the
 * parser and, when neither write_function_list nor read_only_function_list is configured,
 * sets `needsVolatilityCheck` so the router can look the function up in pg_proc.
 * VOLATILE functions such as random(), clock_timestamp() or gen_random_uuid() are deliberately
 * absent: pgpool-II does not load-balance volatile calls, and neither do we. Node-specific
 * functions (pg_backend_pid, inet_server_addr) are absent too.
 *
 * WRITER_FUNCTIONS: built-ins that write, take locks, depend on session state kept on the
 * primary, or fail on a standby. Calling one always routes to the primary, whatever the options.
 */

export const SAFE_FUNCTIONS: ReadonlySet<string> = new Set([
  // aggregates and window functions
  'count', 'sum', 'avg', 'min', 'max', 'array_agg', 'string_agg', 'json_agg', 'jsonb_agg',
  'json_object_agg', 'jsonb_object_agg', 'bool_and', 'bool_or', 'every', 'bit_and', 'bit_or',
  'stddev', 'stddev_pop', 'stddev_samp', 'variance', 'var_pop', 'var_samp',
  'row_number', 'rank', 'dense_rank', 'percent_rank', 'cume_dist', 'ntile', 'lag', 'lead',
  'first_value', 'last_value', 'nth_value',
  // SQL-syntax functions (keywords) and conditionals
  'coalesce', 'nullif', 'greatest', 'least', 'extract', 'overlay', 'position', 'substring',
  'trim', 'rollup', 'cube',
  // date/time (STABLE/IMMUTABLE)
  'now', 'current_timestamp', 'transaction_timestamp', 'statement_timestamp', 'date_trunc',
  'date_part', 'to_char', 'to_date', 'to_timestamp', 'to_number', 'age', 'make_date',
  'make_timestamp', 'make_interval', 'justify_interval', 'date_bin',
  // strings
  'lower', 'upper', 'length', 'char_length', 'character_length', 'octet_length', 'concat',
  'concat_ws', 'substr', 'replace', 'btrim', 'ltrim', 'rtrim', 'strpos', 'left', 'right',
  'lpad', 'rpad', 'split_part', 'initcap', 'format', 'md5', 'reverse', 'repeat', 'translate',
  'regexp_replace', 'regexp_match', 'regexp_matches', 'starts_with', 'quote_ident',
  'quote_literal', 'encode', 'decode',
  // numbers
  'abs', 'round', 'floor', 'ceil', 'ceiling', 'trunc', 'mod', 'power', 'sqrt', 'sign',
  // arrays and json
  'array_length', 'array_upper', 'array_lower', 'array_to_string', 'string_to_array',
  'cardinality', 'unnest', 'array_position', 'array_remove', 'array_append',
  'to_json', 'to_jsonb', 'row_to_json', 'json_build_object', 'jsonb_build_object',
  'json_build_array', 'jsonb_build_array', 'jsonb_array_length', 'json_array_length',
  'jsonb_extract_path', 'jsonb_extract_path_text', 'json_extract_path',
  'json_extract_path_text', 'jsonb_typeof', 'json_typeof', 'jsonb_set', 'jsonb_strip_nulls',
  'jsonb_array_elements', 'json_array_elements', 'jsonb_each', 'json_each',
  'jsonb_object_keys', 'jsonb_pretty', 'generate_series', 'generate_subscripts',
  // system information used by drivers, ORMs and psql (STABLE)
  'version', 'pg_is_in_recovery', 'current_database', 'current_schema', 'current_schemas',
  'current_user', 'session_user', 'format_type', 'pg_get_expr', 'pg_get_indexdef',
  'pg_get_constraintdef', 'pg_get_viewdef', 'pg_get_userbyid', 'pg_get_serial_sequence',
  'pg_get_function_arguments', 'pg_get_function_result', 'pg_get_triggerdef',
  'pg_table_is_visible', 'pg_type_is_visible', 'pg_function_is_visible',
  'pg_encoding_to_char', 'obj_description', 'col_description', 'shobj_description',
  'has_table_privilege', 'has_schema_privilege', 'has_database_privilege',
  'has_column_privilege', 'has_function_privilege', 'pg_has_role', 'pg_relation_size',
  'pg_total_relation_size', 'pg_size_pretty', 'pg_get_keywords',
  // full-text search (IMMUTABLE/STABLE)
  'to_tsvector', 'to_tsquery', 'plainto_tsquery', 'phraseto_tsquery', 'websearch_to_tsquery',
  'ts_rank', 'ts_rank_cd', 'ts_headline',
]);

export const WRITER_FUNCTIONS: ReadonlySet<string> = new Set([
  // sequences (currval/lastval read session state that exists only where nextval ran)
  'nextval', 'setval', 'lastval', 'currval',
  // advisory locks
  'pg_advisory_lock', 'pg_advisory_lock_shared', 'pg_advisory_unlock',
  'pg_advisory_unlock_shared', 'pg_advisory_unlock_all', 'pg_advisory_xact_lock',
  'pg_advisory_xact_lock_shared', 'pg_try_advisory_lock', 'pg_try_advisory_lock_shared',
  'pg_try_advisory_xact_lock', 'pg_try_advisory_xact_lock_shared',
  // transaction ids (assign an xid; fail or differ on a standby)
  'txid_current', 'txid_current_if_assigned', 'pg_current_xact_id',
  'pg_current_xact_id_if_assigned',
  // session state and notifications
  'set_config', 'pg_notify',
  // large objects
  'lo_create', 'lo_creat', 'lo_import', 'lo_export', 'lo_unlink', 'lo_open', 'lo_write',
  'lowrite', 'lo_put', 'lo_from_bytea', 'lo_truncate', 'lo_truncate64',
  // remote execution
  'dblink_exec', 'dblink', 'dblink_send_query', 'dblink_connect',
  // WAL / replication / administration (error on a standby or act on one node)
  'pg_current_wal_lsn', 'pg_current_wal_insert_lsn', 'pg_current_wal_flush_lsn',
  'pg_switch_wal', 'pg_create_restore_point', 'pg_create_physical_replication_slot',
  'pg_create_logical_replication_slot', 'pg_drop_replication_slot',
  'pg_logical_emit_message', 'pg_replication_origin_create', 'pg_replication_origin_drop',
  'pg_terminate_backend', 'pg_cancel_backend', 'pg_reload_conf', 'pg_rotate_logfile',
  'pg_stat_reset', 'pg_stat_reset_shared', 'pg_stat_reset_single_table_counters',
  'pg_promote', 'pg_backup_start', 'pg_backup_stop', 'pg_start_backup', 'pg_stop_backup',
  'pg_import_system_collations', 'pg_sleep', 'pg_sleep_for', 'pg_sleep_until',
]);

/** Strips a leading `pg_catalog.` so built-ins match either spelling. */
export function baseName(fn: string): string {
  return fn.startsWith('pg_catalog.') ? fn.slice(11) : fn;
}

/** A built-in known to be immutable/stable and side-effect free. */
export function isSafeFunction(fn: string): boolean {
  return SAFE_FUNCTIONS.has(baseName(fn));
}

/** A built-in that must run on the primary. Schema-qualified names match on their last part. */
export function isWriterFunction(fn: string): boolean {
  if (WRITER_FUNCTIONS.has(fn)) return true;
  const dot = fn.lastIndexOf('.');
  return dot >= 0 && WRITER_FUNCTIONS.has(fn.slice(dot + 1));
}
