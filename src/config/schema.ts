/**
 * The one declarative table of every configuration key pgmaitre accepts.
 *
 * Names, defaults, units, ranges and contexts follow pgpool-II 4.6 (CFGCXT_INIT →
 * 'restart', CFGCXT_RELOAD/CFGCXT_SESSION → 'hot', CFGCXT_SESSION also → session:true),
 * so an existing pgpool.conf loads unchanged. Keys we do not act on yet are declared
 * with implemented:false (they load, with a warning). Keys of our own carry pgmaitre:true.
 * Numbered keys (backend_hostname0, health_check_period1, …) are declared once per family
 * in NUMBERED_FAMILIES; obsolete keys of older pgpool versions in OBSOLETE_PARAMS.
 */
import { bool, int, LONG_MAX, list, oneOf, real, str, type ParamSpec } from './param-spec';

const I = { impl: true } as const;
const IS = { impl: true, session: true } as const;
const S = { session: true } as const;
const OURS = { impl: true, pgmaitre: true } as const;
const SECRET = { secret: true } as const;

/** Message levels accepted by log_min_messages / client_min_messages ('debug' = debug2). */
export const MESSAGE_LEVELS = [
  'debug5', 'debug4', 'debug3', 'debug2', 'debug1', 'debug',
  'info', 'notice', 'warning', 'error', 'log', 'fatal', 'panic',
] as const;

/** Clustering modes of backend_clustering_mode. */
export const CLUSTERING_MODES = [
  'streaming_replication', 'native_replication', 'logical_replication', 'slony', 'raw', 'snapshot_isolation',
] as const;

const TLS_VERSIONS = ['', 'TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const;

/** Every non-numbered key: pgpool-II 4.x parameters plus pgmaitre's own. */
export const PARAMS = {
  // --- clustering mode -------------------------------------------------------------------
  backend_clustering_mode: oneOf(CLUSTERING_MODES, 'streaming_replication', 'restart', 'How backends replicate; pgmaitre supports streaming_replication (and raw).', I),

  // --- connections -------------------------------------------------------------------------
  listen_addresses: str('localhost', 'restart', "Comma-separated addresses to listen on for clients; '*' for all, '' for none.", I),
  port: int(9999, 'restart', 'TCP port for client connections.', { ...I, min: 1024, max: 65535 }),
  unix_socket_directories: list(['/tmp'], 'restart', 'Directories for the client Unix-domain socket.', I),
  unix_socket_group: str('', 'restart', 'Owning group of the Unix-domain sockets.'),
  unix_socket_permissions: int(0o777, 'restart', 'Access permissions of the Unix-domain sockets (octal).', { max: 0o777 }),
  reserved_connections: int(0, 'restart', 'Refuse (rather than queue) clients beyond num_init_children - reserved_connections.'),
  pcp_listen_addresses: str('localhost', 'restart', 'Addresses the PCP (admin) listener binds to.', I),
  pcp_port: int(9898, 'restart', 'TCP port of the PCP (admin) listener.', { ...I, min: 1024, max: 65535 }),
  pcp_socket_dir: str('/tmp', 'restart', 'Directory for the PCP Unix-domain socket.', I),
  listen_backlog_multiplier: int(2, 'restart', 'listen(2) backlog = num_init_children * this.', { ...I, min: 1 }),
  serialize_accept: bool(false, 'restart', 'Serialize accept() (pgpool process model; no effect here).'),

  // --- authentication ----------------------------------------------------------------------
  enable_pool_hba: bool(false, 'hot', 'Authenticate clients with pool_hba.conf.', I),
  pool_passwd: str('pool_passwd', 'restart', "pool_passwd file (relative to pgpool.conf's directory); '' disables it.", { ...I, path: true }),
  pool_key_file: str('', 'restart', "Key file for AES entries of pool_passwd (pgpool's -k flag); '' = $PGPOOLKEYFILE or ~/.pgpoolkey.", { ...OURS, path: true }),
  authentication_timeout: int(60, 'restart', 'Seconds allowed to complete client authentication; 0 = no limit.', { ...I, unit: 's' }),
  allow_clear_text_frontend_auth: bool(false, 'hot', 'Ask clients for a clear-text password when pool_passwd has no entry for them.', I),

  // --- SSL ---------------------------------------------------------------------------------
  ssl: bool(false, 'restart', 'Enable TLS for client and backend connections.', I),
  ssl_key: str('', 'restart', 'TLS private key file.', { ...I, path: true }),
  ssl_cert: str('', 'restart', 'TLS certificate file.', { ...I, path: true }),
  ssl_ca_cert: str('', 'restart', 'PEM file of CA certificates to verify peers.', { ...I, path: true }),
  ssl_ca_cert_dir: str('', 'restart', 'Directory of CA certificates.', { path: true }),
  ssl_crl_file: str('', 'restart', 'Certificate revocation list file.', { path: true }),
  ssl_ciphers: str('HIGH:MEDIUM:+3DES:!aNULL', 'restart', 'Allowed TLS ciphers (OpenSSL syntax).', I),
  ssl_prefer_server_ciphers: bool(false, 'restart', "Prefer the server's cipher order over the client's.", I),
  ssl_ecdh_curve: str('prime256v1', 'restart', 'Curve for ECDH key exchange.'),
  ssl_dh_params_file: str('', 'restart', 'Diffie-Hellman parameters file.', { path: true }),
  ssl_passphrase_command: str('', 'restart', 'Command that prints the passphrase of an encrypted key.'),
  ssl_min_protocol_version: oneOf(TLS_VERSIONS, 'TLSv1.2', 'restart', "Minimum TLS version ('' = library default); PostgreSQL's name, not in pgpool.conf.", OURS),
  ssl_max_protocol_version: oneOf(TLS_VERSIONS, '', 'restart', "Maximum TLS version ('' = no limit); PostgreSQL's name, not in pgpool.conf.", OURS),

  // --- pools -------------------------------------------------------------------------------
  process_management_mode: oneOf(['static', 'dynamic'] as const, 'static', 'hot', 'pgpool child process management (no processes here).'),
  process_management_strategy: oneOf(['aggressive', 'gentle', 'lazy'] as const, 'gentle', 'hot', 'pgpool spare-process scale-down strategy.'),
  num_init_children: int(32, 'restart', 'Maximum number of concurrent client sessions.', { ...I, min: 1 }),
  min_spare_children: int(5, 'hot', 'Minimum spare child processes (dynamic mode).', { min: 1 }),
  max_spare_children: int(10, 'hot', 'Maximum spare child processes (dynamic mode).', { min: 1 }),
  max_pool: int(4, 'restart', 'Cached backend connections per session slot (distinct user/database pairs).', I),
  child_life_time: int(300, 'restart', 'Seconds an idle session slot lives before its cached connections are dropped; 0 = forever.', { ...I, unit: 's' }),
  child_max_connections: int(0, 'restart', 'Recycle a session slot after this many client connections; 0 = never.', I),
  connection_life_time: int(0, 'restart', 'Seconds a cached backend connection may live; 0 = forever.', { ...I, unit: 's' }),
  client_idle_limit: int(0, 'hot', 'Disconnect a client idle this many seconds (even in a transaction); 0 = never.', { ...IS, unit: 's' }),

  // --- logging -----------------------------------------------------------------------------
  log_destination: str('stderr', 'hot', "Where to log: 'stderr', 'syslog' or both, comma-separated.", I),
  log_line_prefix: str('%m: %a pid %p: ', 'hot', 'printf-style prefix of each text log line.', I),
  log_connections: bool(false, 'hot', 'Log each successful connection.', I),
  log_disconnections: bool(false, 'hot', 'Log the end of each session.', I),
  log_pcp_processes: bool(false, 'hot', 'Log each PCP connection (pgpool: PCP process fork and exit) at LOG level.', I),
  log_hostname: bool(false, 'hot', 'Resolve and log client host names.', I),
  log_statement: bool(false, 'hot', 'Log every SQL statement.', IS),
  log_per_node_statement: bool(false, 'hot', 'Log every statement with the node it was sent to.', IS),
  notice_per_node_statement: bool(false, 'hot', 'Send a NOTICE to the client naming the node of each statement.', IS),
  log_client_messages: bool(false, 'hot', 'Log every protocol message from clients.', IS),
  log_backend_messages: oneOf(['none', 'terse', 'verbose'] as const, 'none', 'hot', "Log protocol messages from backends (pgpool 4.6): verbose = each one, terse = each change of kind with the count of repeats. Applies to backend connections a session attaches after the change.", IS),
  log_standby_delay: oneOf(['always', 'if_over_threshold', 'none'] as const, 'if_over_threshold', 'hot', 'When the replication check logs a standby\'s delay: always (any delay), if_over_threshold (beyond delay_threshold / delay_threshold_by_time), none.', I),
  syslog_facility: oneOf(['LOCAL0', 'LOCAL1', 'LOCAL2', 'LOCAL3', 'LOCAL4', 'LOCAL5', 'LOCAL6', 'LOCAL7'] as const, 'LOCAL0', 'hot', 'syslog facility.'),
  syslog_ident: str('pgpool', 'hot', 'syslog program identification.'),
  log_error_verbosity: oneOf(['terse', 'default', 'verbose'] as const, 'default', 'hot', 'Detail of logged errors.', S),
  client_min_messages: oneOf(MESSAGE_LEVELS, 'notice', 'hot', 'Lowest message level sent to clients.', S),
  log_min_messages: oneOf(MESSAGE_LEVELS, 'warning', 'hot', 'Lowest message level written to the log.', IS),
  logging_collector: bool(false, 'restart', 'Write the log to files in log_directory instead of stderr, rotated by age, size and pcp_log_rotate.', I),
  log_directory: str('/tmp/pgpool_logs', 'hot', 'Directory of collected log files (created if missing).', I),
  log_filename: str('pgpool-%Y-%m-%d_%H%M%S.log', 'hot', 'strftime pattern of collected log files.', I),
  log_file_mode: int(0o600, 'hot', 'Permissions of collected log files (octal).', I),
  log_truncate_on_rotation: bool(false, 'hot', 'Truncate rather than append on time-based rotation onto an existing file name.', I),
  log_rotation_age: int(1440, 'hot', 'Rotate log files after this many minutes; 0 = never.', { ...I, unit: 'min' }),
  log_rotation_size: int(10240, 'hot', 'Rotate log files after this many kilobytes; 0 = never.', { ...I, unit: 'kB', max: Math.floor(2147483647 / 1024) }),

  // --- file locations ----------------------------------------------------------------------
  pid_file_name: str('/var/run/pgpool/pgpool.pid', 'restart', 'PID file (relative to the config directory).', { ...I, path: true }),
  logdir: str('', 'restart', "Obsolete name of work_dir (pgpool 4.7): when set, its value is used as work_dir.", I),
  work_dir: str('/tmp', 'restart', "Directory of pgpool's pgpool_status file (pgpool 4.7; logdir before). pgmaitre keeps node status in memory and writes nothing there.", I),

  // --- connection pooling ------------------------------------------------------------------
  connection_cache: bool(true, 'restart', 'Keep backend connections open after the client leaves.', I),
  reset_query_list: list(['ABORT', 'DISCARD ALL'], 'hot', 'Semicolon-separated statements run on a backend connection before reuse.', { ...I, separator: ';' }),

  // --- native replication mode -------------------------------------------------------------
  replicate_select: bool(false, 'hot', 'Native replication: send SELECTs to every node.'),
  insert_lock: bool(true, 'hot', 'Native replication: lock tables on INSERT for SERIAL consistency.'),
  lobj_lock_table: str('', 'hot', 'Native replication: table locked around lo_creat.'),
  replication_stop_on_mismatch: bool(false, 'hot', 'Native replication: degenerate a node whose reply kind differs.'),
  failover_if_affected_tuples_mismatch: bool(false, 'hot', 'Native replication: degenerate a node whose row count differs.'),

  // --- load balancing ----------------------------------------------------------------------
  load_balance_mode: bool(true, 'restart', 'Send read-only queries to standbys by weight.', I),
  ignore_leading_white_space: bool(true, 'hot', 'Ignore leading white space when classifying queries.', I),
  read_only_function_list: list([], 'hot', 'Functions (regexps) that do not write; others called in a SELECT go to the primary.', I),
  write_function_list: list([], 'hot', 'Functions (regexps) that write: a SELECT calling them goes to the primary.', I),
  primary_routing_query_pattern_list: list([], 'hot', 'Semicolon-separated regexps of queries always sent to the primary.', { ...I, separator: ';' }),
  user_redirect_preference_list: str('', 'hot', "user:node pairs ('primary', 'standby' or a node id, optional weight) for load balancing.", I),
  database_redirect_preference_list: str('', 'hot', 'database:node pairs for load balancing.', I),
  app_name_redirect_preference_list: str('', 'hot', 'application_name:node pairs for load balancing.', I),
  allow_sql_comments: bool(false, 'hot', 'Ignore SQL comments when deciding load balancing.', IS),
  disable_load_balance_on_write: oneOf(['off', 'transaction', 'trans_transaction', 'always', 'dml_adaptive'] as const, 'transaction', 'hot', 'What a write does to later reads.', I),
  dml_adaptive_object_relationship_list: str('', 'hot', 'object:dependent pairs for dml_adaptive.', I),
  statement_level_load_balance: bool(false, 'hot', 'Choose the load-balance node per statement, not per session.', I),
  load_balance_in_transaction: bool(false, 'hot', 'Allow reads inside explicit transactions to go to standbys (before any write).', OURS),
  read_your_writes: bool(true, 'hot', "After a session writes, send its reads to the primary until standbys have replayed the write.", OURS),

  // --- streaming replication check ---------------------------------------------------------
  sr_check_period: int(10, 'hot', 'Seconds between replication-delay checks; 0 disables.', { ...I, unit: 's' }),
  sr_check_user: str('', 'hot', 'User for replication-delay checks.', I),
  sr_check_password: str('', 'hot', 'Password of sr_check_user (empty: look in pool_passwd).', { ...I, ...SECRET }),
  sr_check_database: str('postgres', 'hot', 'Database for replication-delay checks.', I),
  delay_threshold: int(0, 'hot', 'Max standby lag in WAL bytes before reads avoid it; 0 disables.', { ...I, unit: 'B', max: LONG_MAX }),
  delay_threshold_by_time: int(0, 'hot', 'Max standby lag in milliseconds before reads avoid it; 0 disables.', { ...I, unit: 'ms' }),
  prefer_lower_delay_standby: bool(false, 'hot', 'When the chosen standby lags, try the least-lagging standby before the primary.', I),
  follow_primary_command: str('', 'hot', 'Command run for each standby after a primary failover.', I),

  // --- health check ------------------------------------------------------------------------
  health_check_period: int(0, 'hot', 'Seconds between health checks; 0 disables.', { ...I, unit: 's' }),
  health_check_timeout: int(20, 'hot', 'Seconds before a health check gives up; 0 = no limit.', { ...I, unit: 's' }),
  health_check_user: str('', 'hot', 'User for health checks.', I),
  health_check_password: str('', 'hot', 'Password of health_check_user (empty: look in pool_passwd).', { ...I, ...SECRET }),
  health_check_database: str('', 'hot', "Database for health checks ('' tries postgres then template1).", I),
  health_check_max_retries: int(0, 'hot', 'Retries of a failed health check before failover.', I),
  health_check_retry_delay: int(1, 'hot', 'Seconds between health check retries.', { ...I, unit: 's' }),
  connect_timeout: int(10000, 'hot', 'Milliseconds before giving up connecting to a backend; 0 = no limit.', { ...I, unit: 'ms' }),
  health_check_test: bool(false, 'restart', 'pgpool developer switch for health check testing.'),

  // --- failover and failback ---------------------------------------------------------------
  failover_command: str('', 'hot', 'Command run when a node is detached (%d %h %p %D %m %H %M %P %r %R %N %S).', I),
  failback_command: str('', 'hot', 'Command run when a node is attached.', I),
  failover_on_backend_error: bool(true, 'hot', 'Fail a node over when reading/writing its socket fails and a new connection to it (one health check probe) fails too.', I),
  failover_on_backend_shutdown: bool(false, 'hot', 'Fail a node over when it reports an administrative shutdown.', I),
  detach_false_primary: bool(false, 'hot', 'Detach a node claiming to be primary that is not the real one.', I),
  search_primary_node_timeout: int(300, 'hot', 'Seconds to search for the new primary after failover; 0 = forever.', { ...I, unit: 's' }),
  auto_failback: bool(false, 'hot', 'Reattach a detached standby that is streaming again.', I),
  auto_failback_interval: int(60, 'hot', 'Minimum seconds between auto failbacks.', { ...I, unit: 's' }),

  // --- online recovery ---------------------------------------------------------------------
  recovery_user: str('', 'hot', 'User for online recovery (a superuser: the pgpool_recovery functions require it).', I),
  recovery_password: str('', 'hot', 'Password of recovery_user (empty: pool_passwd; AES/TEXT prefixes as pg_enc writes; md5 hashes are refused).', { ...I, ...SECRET }),
  recovery_database: str('postgres', 'hot', 'Database online recovery connects to on the primary (pgpool 4.7).', I),
  recovery_1st_stage_command: str('', 'hot', "Script in the primary's data directory run by pgpool_recovery() to rebuild the node.", I),
  recovery_2nd_stage_command: str('', 'hot', 'Second stage online recovery script (native replication mode only: not run in streaming replication).', I),
  recovery_timeout: int(90, 'hot', 'Seconds to wait for a recovered node to start.', { ...I, unit: 's' }),
  client_idle_limit_in_recovery: int(0, 'hot', 'Idle limit for clients during second stage recovery; -1 = immediate (native replication mode only).', { ...IS, unit: 's', min: -1 }),
  recovery_script_dir: str('', 'hot', "Run recovery_1st_stage_command and pgpool_remote_start from this directory on pgmaitre's host instead of through the pgpool_recovery extension; '' = use the extension.", { ...OURS, path: true }),
  auto_recovery: bool(false, 'hot', 'Recover (online recovery) a node that stays down auto_recovery_delay seconds, unless an admin detached it.', OURS),
  auto_recovery_delay: int(60, 'hot', 'Seconds a node stays down before auto_recovery rebuilds it (and between two attempts).', { ...OURS, unit: 's', min: 1 }),

  // --- watchdog ----------------------------------------------------------------------------
  use_watchdog: bool(false, 'restart', 'Enable the pgpool watchdog (HA of pgpool itself).'),
  trusted_servers: str('', 'restart', 'Servers pinged to check upstream connectivity.'),
  trusted_server_command: str('ping -q -c3 %h', 'hot', 'Command used to check a trusted server.'),
  delegate_ip: str('', 'restart', 'Virtual IP held by the watchdog leader.'),
  if_cmd_path: str('/sbin', 'restart', 'Directory of if_up_cmd/if_down_cmd.'),
  if_up_cmd: str('/usr/bin/sudo /sbin/ip addr add $_IP_$/24 dev eth0 label eth0:0', 'restart', 'Command bringing the virtual IP up.'),
  if_down_cmd: str('/usr/bin/sudo /sbin/ip addr del $_IP_$/24 dev eth0', 'restart', 'Command bringing the virtual IP down.'),
  arping_path: str('/usr/sbin', 'restart', 'Directory of arping_cmd.'),
  arping_cmd: str('/usr/bin/sudo /usr/sbin/arping -U $_IP_$ -w 1 -I eth0', 'restart', 'arping command after taking the virtual IP.'),
  ping_path: str('/bin', 'restart', 'Directory of ping.'),
  wd_priority: int(1, 'restart', 'Watchdog leader election priority.'),
  wd_authkey: str('', 'hot', 'Watchdog authentication key.', SECRET),
  wd_ipc_socket_dir: str('/tmp', 'restart', 'Directory of the watchdog IPC socket.'),
  clear_memqcache_on_escalation: bool(true, 'hot', 'Clear the query cache when becoming watchdog leader.'),
  wd_escalation_command: str('', 'hot', 'Command run when becoming watchdog leader.'),
  wd_de_escalation_command: str('', 'hot', 'Command run when resigning as watchdog leader.'),
  failover_when_quorum_exists: bool(true, 'restart', 'Fail over only while the watchdog cluster has quorum.'),
  failover_require_consensus: bool(true, 'restart', 'Fail over only when a majority of watchdog nodes agree.'),
  allow_multiple_failover_requests_from_node: bool(false, 'restart', 'Let one watchdog node vote several times.'),
  enable_consensus_with_half_votes: bool(false, 'restart', 'Half the votes suffice in an even-sized watchdog cluster.'),
  wd_remove_shutdown_nodes: bool(false, 'hot', 'Revoke membership of cleanly shut down watchdog nodes.'),
  wd_lost_node_removal_timeout: int(0, 'hot', 'Seconds before a LOST watchdog node loses membership; 0 = never.', { unit: 's' }),
  wd_no_show_node_removal_timeout: int(0, 'hot', 'Seconds before a NO-SHOW watchdog node loses membership; 0 = never.', { unit: 's' }),
  wd_listen_address: str('', 'restart', "Addresses the watchdog listens on ('' = all, pgpool 4.7)."),
  wd_listen_port: int(0, 'restart', 'Port the watchdog listens on (0 = the wd_port of its own node, pgpool 4.7).', { max: 65535 }),
  wd_heartbeat_listen_addresses: str('', 'restart', "Addresses heartbeat receivers listen on ('' = all, pgpool 4.7)."),
  wd_heartbeat_listen_port: int(0, 'restart', 'Port heartbeat receivers listen on (0 = heartbeat_port, pgpool 4.7).', { max: 65535 }),
  wd_monitoring_interfaces_list: str('', 'restart', 'Network interfaces the watchdog monitors.'),
  wd_lifecheck_method: oneOf(['query', 'heartbeat', 'external'] as const, 'heartbeat', 'restart', 'Watchdog life check method.'),
  wd_interval: int(10, 'restart', 'Seconds between watchdog life checks.', { unit: 's' }),
  wd_heartbeat_keepalive: int(2, 'restart', 'Seconds between heartbeat signals.', { unit: 's', min: 1 }),
  wd_heartbeat_deadtime: int(30, 'restart', 'Seconds without heartbeat before a node is lost.', { unit: 's', min: 1 }),
  wd_life_point: int(3, 'restart', 'Life check retries (query mode).'),
  wd_lifecheck_query: str('SELECT 1', 'restart', 'Life check query (query mode).'),
  wd_lifecheck_dbname: str('template1', 'hot', 'Life check database (query mode).'),
  wd_lifecheck_user: str('', 'hot', 'Life check user (query mode).'),
  wd_lifecheck_password: str('', 'hot', 'Life check password (query mode).', SECRET),

  // --- relation cache and misc -------------------------------------------------------------
  relcache_expire: int(0, 'restart', 'Seconds a relation cache entry (a function volatility looked up in pg_proc) lives; 0 = until evicted.', { unit: 's', max: LONG_MAX }),
  relcache_size: int(256, 'restart', 'Number of relation cache entries (function volatilities looked up in pg_proc, least recently used evicted).'),
  check_temp_table: oneOf(['catalog', 'trace', 'none', 'on', 'off'] as const, 'catalog', 'hot', 'How temporary tables are detected.'),
  check_unlogged_table: bool(true, 'hot', 'Check for unlogged tables in SELECTs.', S),
  enable_shared_relcache: bool(true, 'restart', 'Share the relation cache through the query cache.'),
  relcache_query_target: oneOf(['primary', 'load_balance_node'] as const, 'primary', 'hot', 'Node that answers relation cache queries.'),

  // --- in-memory query cache ---------------------------------------------------------------
  memory_cache_enabled: bool(false, 'restart', 'Enable the query cache: SELECT answers kept and replayed, invalidated by table (docs/query-cache.md).', I),
  memqcache_method: oneOf(['shmem', 'memcached'] as const, 'shmem', 'restart', "Where answers are kept: 'shmem' = pgmaitre's own memory (one process), 'memcached' = a memcached server shared by every pgmaitre using it.", I),
  memqcache_memcached_host: str('localhost', 'restart', 'memcached host (memqcache_method = memcached).', I),
  memqcache_memcached_port: int(11211, 'restart', 'memcached port.', { ...I, max: 65535 }),
  memqcache_total_size: int(67108864, 'restart', 'shmem: bytes the cached answers may use (least recently used evicted first).', { ...I, unit: 'B', max: LONG_MAX }),
  memqcache_max_num_cache: int(1000000, 'restart', 'shmem: most answers kept.', I),
  memqcache_expire: int(0, 'restart', 'Seconds an answer lives; 0 = until invalidated or evicted (the bound on writes that bypass pgmaitre).', { ...I, unit: 's' }),
  memqcache_auto_cache_invalidation: bool(true, 'hot', 'Invalidate answers when a write, DDL or anything that may write commits through pgmaitre (off: only memqcache_expire and the admin commands).', I),
  memqcache_maxcache: int(409600, 'restart', 'Largest answer kept, in bytes (larger ones are not cached).', { ...I, unit: 'B' }),
  memqcache_cache_block_size: int(1048576, 'restart', "Accepted for pgpool.conf compatibility; pgmaitre's shmem cache has no blocks (no fragmentation).", { ...I, unit: 'B', min: 512 }),
  memqcache_oiddir: str('/var/log/pgpool/oiddir', 'restart', 'Accepted for pgpool.conf compatibility; pgmaitre keeps table generations in memory or in memcached, no directory.', I),
  cache_safe_memqcache_table_list: list([], 'hot', 'Views, materialized views and unlogged tables (regexps) whose answers may be cached.', I),
  cache_unsafe_memqcache_table_list: list([], 'hot', 'Tables (regexps) whose answers are never cached (wins over the safe list).', I),
  memqcache_logical_invalidation: bool(false, 'restart', "Also invalidate by the primary's own change stream (logical decoding with test_decoding on a temporary slot pgmaitre owns, one per database; needs wal_level = logical and a REPLICATION or superuser sr_check_user): writes that bypass pgmaitre (another pooler, a direct connection, a job) invalidate too. While the stream is down or behind, no answer is served from the cache.", OURS),
  memqcache_logical_max_lag: int(0, 'hot', 'memqcache_logical_invalidation: 0 = a hit waits for a change-stream round begun after the request arrived (never stale, even for writes that bypass pgmaitre); > 0 = hits are served while a round begun at most this many ms ago has been applied (writes that bypass pgmaitre may be seen that late).', { ...OURS, unit: 'ms', max: 3600000 }),

  // --- pgmaitre's own ----------------------------------------------------------------------
  http_port: int(8404, 'restart', 'Port of the HTTP admin/metrics endpoint; 0 disables it.', { ...OURS, max: 65535 }),
  http_listen_addresses: str('localhost', 'restart', 'Addresses the HTTP admin endpoint binds to.', OURS),
  pgpool_compatibility: oneOf(['4.6', '4.7'] as const, '4.7', 'hot', "pgpool-II release pgmaitre answers as: SHOW POOL_VERSION and the status page ('4.7.0' or '4.6.0'), SHOW POOL_POOLS and pcp_proc_info (4.7's 21 columns with client_host, client_port, statement, or 4.6's 18).", OURS),
  pcp_client_version: oneOf(['auto', '4.3', '4.4'] as const, 'auto', 'restart', "pcp_* tools' version family for pcp_node_info replies (4.4 added a field in the middle of the record): '4.4' (pgpool-II 4.4 and later tools), '4.3' (older tools, e.g. Debian 12's pgpool2), or 'auto': the version of the pcp_node_info installed on this host, read once at start (4.4 when there is none).", OURS),
  http_auth: str('', 'hot', "Basic auth for the HTTP endpoint as 'user:password'; '' = none.", { ...OURS, ...SECRET }),
  max_message_size: int(1073741823, 'restart', 'Largest protocol message accepted, in bytes.', { ...OURS, unit: 'B', min: 1024, max: 1073741823 }),
  log_format: oneOf(['auto', 'json', 'text'] as const, 'auto', 'restart', "Log line format on stderr: 'json' (one JSON object per line, for files and collectors), 'text' (time, level, message and the fields that matter, for people) or 'auto' (text when stderr is a terminal, else json).", OURS),
  auth_query: str('', 'hot', "Query fetching a user's password verifier when pool_passwd has none ('' disables).", OURS),
  auth_user: str('', 'hot', 'User that runs auth_query (its password comes from pool_passwd); also used to look up role membership for +group/samerole in pool_hba.conf.', OURS),
  auth_query_database: str('postgres', 'hot', 'Database auth_query (and the role membership lookup) connects to.', OURS),
  auth_query_cache_ttl: int(10, 'hot', 'Seconds an auth_query result (including "no such user") is reused; 0 = ask every time.', { ...OURS, unit: 's' }),
  auth_failure_delay: int(750, 'hot', 'Milliseconds to wait before telling a client its authentication failed (the same for unknown users), to slow password guessing.', { ...OURS, unit: 'ms', max: 60000 }),
  auth_failure_limit: int(10, 'hot', 'Authentication failures from one client address within auth_failure_window after which further logins from it are refused at once (28000) until the window passes; 0 = no limit.', OURS),
  auth_failure_window: int(60, 'hot', 'Window, in seconds, over which auth_failure_limit counts failures from one address.', { ...OURS, unit: 's', min: 1 }),
  allow_replication_connections: bool(true, 'hot',
    "Replication connections (startup parameter replication=true for pg_basebackup/pg_receivewal, replication=database for logical consumers such as pg_recvlogical or Debezium) are relayed byte for byte to the current primary, which authenticates them with its own pg_hba.conf replication lines (with enable_pool_hba = on, pool_hba.conf and pool_passwd authenticate the client first and pgmaitre answers the primary from that credential); off: they are refused with FATAL 08P01.", OURS),

  // --- pgmaitre's own: HAProxy-style dedicated ports, balancing, health, HA pair ----------
  write_port: int(0, 'restart', 'Dedicated write port: every connection is relayed byte for byte to the current primary (HAProxy-style); 0 = off.', { ...OURS, max: 65535 }),
  read_port: int(0, 'restart', 'Dedicated read port: every connection is relayed byte for byte to a standby chosen by load_balance_algorithm; 0 = off.', { ...OURS, max: 65535 }),
  write_listen_addresses: str('', 'restart', "Addresses the write port binds to ('' = same as listen_addresses).", OURS),
  read_listen_addresses: str('', 'restart', "Addresses the read port binds to ('' = same as listen_addresses).", OURS),
  read_port_primary_fallback: bool(true, 'hot', 'The read port sends a connection to the primary when no standby is up (off: the connection is refused with 57P03).', OURS),
  load_balance_algorithm: oneOf(['weighted', 'round_robin', 'least_connections', 'least_latency'] as const, 'weighted', 'hot',
    "How the load-balance node is chosen (smart endpoint and read port): weighted (pgpool's weighted random), round_robin (weighted, in turn), least_connections (fewest sessions per unit of weight), least_latency (lowest recent query latency).", OURS),
  health_check_rise: int(0, 'hot', 'Consecutive successful health checks after which a node detached by failed health checks (or a backend error) is attached again (HAProxy rise); 0 = never (pgpool: pcp_attach_node or auto_failback).', OURS),
  health_check_http_port: int(0, 'hot', "Port of an HTTP role check on the node's host (Patroni's REST API: 8008); when set, the health check asks it instead of PostgreSQL; 0 = off.", { ...OURS, max: 65535 }),
  health_check_http_primary_path: str('/primary', 'hot', 'HTTP role check path answering 200 on the primary.', OURS),
  health_check_http_replica_path: str('/replica', 'hot', 'HTTP role check path answering 200 on a standby.', OURS),
  client_connection_rate_limit: int(0, 'hot', 'New connections one client address may open within client_connection_rate_window (HAProxy src_conn_rate); beyond it they are refused with 53300; 0 = no limit.', OURS),
  client_connection_rate_window: int(10, 'hot', 'Window, in seconds, over which client_connection_rate_limit counts connections from one address.', { ...OURS, unit: 's', min: 1 }),
  etcd_endpoints: str('', 'restart', "Comma-separated etcd URLs (http://127.0.0.1:2379): several pgmaitre instances elect through an etcd lease which one runs failover/failback/follow_primary commands; '' = off.", OURS),
  etcd_prefix: str('/pgmaitre/', 'restart', 'etcd key prefix shared by the instances in front of one cluster.', OURS),
  etcd_lease_ttl: int(10, 'restart', 'Seconds the command lease outlives an instance that stopped answering.', { ...OURS, unit: 's', min: 2 }),
  etcd_instance_name: str('', 'restart', "This instance's name in etcd and logs ('' = host name and port).", OURS),

  // --- pgmaitre's own: transaction pooling (PgBouncer's names and meanings) -----------------
  pool_mode: oneOf(['session', 'transaction', 'statement'] as const, 'session', 'hot',
    "How long a client keeps a backend connection: session (until it disconnects: pgpool's pooling), transaction (for one transaction or one autocommit statement / extended-protocol batch), statement (for one statement; transactions are refused). Applies to new sessions.", OURS),
  pool_mode_database_list: str('', 'hot', "Per-database pool_mode, pgpool list syntax: 'reporting:session,app:transaction' (regular expressions matched against the whole database name).", OURS),
  pool_mode_user_list: str('', 'hot', "Per-user pool_mode (user:mode,...); wins over pool_mode_database_list.", OURS),
  worker_processes: str('1', 'restart', "Processes serving clients on the same listeners (a number, or 'auto' = the cores available); health checks, failover, PCP and HTTP run once, in the supervising process; limits are shared between the workers (docs/workers.md). 1 = one process, as before.", OURS),
  max_client_conn: int(1000, 'restart', 'Transaction and statement pooling: client sessions served at once (num_init_children limits session-pooled clients); beyond it, 53300.', { ...OURS, min: 1 }),
  default_pool_size: int(20, 'hot', 'Transaction and statement pooling: backend connections per (node, user, database).', { ...OURS, min: 1 }),
  pinned_pool_size: int(20, 'hot', 'Transaction and statement pooling: backend connections per (node, user, database) that pinned sessions (LISTEN, temporary tables, session advisory locks, WITH HOLD cursors) may hold beyond default_pool_size, so that they never starve the other clients; 0 = pinned sessions count toward default_pool_size.', OURS),
  reserve_pool_size: int(0, 'hot', 'Transaction and statement pooling: extra backend connections per (node, user, database) for clients that waited reserve_pool_timeout.', OURS),
  reserve_pool_timeout: real(5, 'hot', 'Seconds a client waits before a reserve connection may be opened for it.', OURS),
  max_prepared_statements: int(200, 'hot', "Transaction and statement pooling: server-side prepared statements kept per backend connection (PgBouncer's name and default); beyond it the least recently used is closed (a client's statement is parsed again where it is missing). 0 = no limit (unlike PgBouncer, where 0 turns prepared-statement support off: pgmaitre always supports them).", { ...OURS, min: 0 }),
  query_wait_timeout: int(120, 'hot', 'Transaction and statement pooling: seconds a request may wait for a backend connection before it fails (ERROR 53300); 0 = no limit.', { ...OURS, unit: 's' }),
} as const satisfies Record<string, ParamSpec>;

/** Name of a non-numbered key. */
export type ParamName = keyof typeof PARAMS;

const BACKEND_FLAGS_DOC = "Pipe-separated: ALLOW_TO_FAILOVER | DISALLOW_TO_FAILOVER, ALWAYS_PRIMARY, BACKUP (a standby that takes reads only when every other standby is down).";

/**
 * Numbered key families: `<base>N` with N = 0..MAX_NUMBERED_INDEX. Per-node health check
 * overrides reuse the global key's spec; their default is "unset → use the global".
 */
export const NUMBERED_FAMILIES = {
  backend_hostname: str('', 'hot', "Backend N host name, IP address, or Unix socket directory (starting with '/').", I),
  backend_port: int(5432, 'hot', 'Backend N port.', { ...I, min: 1024, max: 65535 }),
  backend_weight: real(1, 'hot', 'Backend N load-balancing weight.', { ...I, min: 0, max: 100000000 }),
  backend_flag: str('ALLOW_TO_FAILOVER', 'hot', `Backend N behaviour flags. ${BACKEND_FLAGS_DOC}`, I),
  backend_data_directory: str('', 'hot', 'Backend N data directory (passed to failover commands).', I),
  backend_application_name: str('', 'hot', "Backend N's walreceiver application_name, to find its lag.", I),
  health_check_period: PARAMS.health_check_period,
  health_check_timeout: PARAMS.health_check_timeout,
  health_check_user: PARAMS.health_check_user,
  health_check_password: PARAMS.health_check_password,
  health_check_database: PARAMS.health_check_database,
  health_check_max_retries: PARAMS.health_check_max_retries,
  health_check_retry_delay: PARAMS.health_check_retry_delay,
  connect_timeout: PARAMS.connect_timeout,
  health_check_rise: PARAMS.health_check_rise,
  health_check_http_port: PARAMS.health_check_http_port,
  hostname: str('', 'restart', 'Watchdog node N host name.'),
  wd_port: int(9000, 'restart', 'Watchdog node N watchdog port.', { min: 1024, max: 65535 }),
  pgpool_port: int(9999, 'restart', 'Watchdog node N pgpool port.', { min: 1024, max: 65535 }),
  heartbeat_hostname: str('', 'restart', 'Heartbeat destination N.'),
  heartbeat_port: int(9694, 'restart', 'Heartbeat port N.', { min: 1024, max: 65535 }),
  heartbeat_device: str('', 'restart', 'Network device for heartbeat N.'),
} as const satisfies Record<string, ParamSpec>;

/** Name of a numbered key family. */
export type FamilyName = keyof typeof NUMBERED_FAMILIES;

/** Highest index N accepted in numbered keys (pgpool's MAX_NUM_BACKENDS - 1). */
export const MAX_NUMBERED_INDEX = 127;

/** Per-node health check keys: per-node override of the global key of the same name. */
export const HEALTH_CHECK_FAMILIES = [
  'health_check_period', 'health_check_timeout', 'health_check_user', 'health_check_password',
  'health_check_database', 'health_check_max_retries', 'health_check_retry_delay', 'connect_timeout',
  'health_check_rise', 'health_check_http_port',
] as const;

/** An obsolete key: either renamed (value applied to `to`) or dropped (ignored). */
export type ObsoleteParam =
  | { readonly kind: 'renamed'; readonly to: string; readonly since: string }
  | { readonly kind: 'mode'; readonly since: string }
  | { readonly kind: 'dropped'; readonly since: string };

/**
 * Keys of older pgpool versions. Numbered renames use the placeholder N. The 'mode' keys
 * (master_slave_mode, master_slave_sub_mode, replication_mode) fold into backend_clustering_mode.
 */
export const OBSOLETE_PARAMS: Readonly<Record<string, ObsoleteParam>> = {
  master_slave_mode: { kind: 'mode', since: '4.2' },
  master_slave_sub_mode: { kind: 'mode', since: '4.2' },
  replication_mode: { kind: 'mode', since: '4.2' },
  fail_over_on_backend_error: { kind: 'renamed', to: 'failover_on_backend_error', since: '4.0' },
  white_function_list: { kind: 'renamed', to: 'read_only_function_list', since: '4.2' },
  black_function_list: { kind: 'renamed', to: 'write_function_list', since: '4.2' },
  black_query_pattern_list: { kind: 'renamed', to: 'primary_routing_query_pattern_list', since: '4.2' },
  white_memqcache_table_list: { kind: 'renamed', to: 'cache_safe_memqcache_table_list', since: '4.2' },
  black_memqcache_table_list: { kind: 'renamed', to: 'cache_unsafe_memqcache_table_list', since: '4.2' },
  follow_master_command: { kind: 'renamed', to: 'follow_primary_command', since: '4.2' },
  socket_dir: { kind: 'renamed', to: 'unix_socket_directories', since: '4.4' },
  other_pgpool_hostnameN: { kind: 'renamed', to: 'hostnameN', since: '4.2' },
  other_pgpool_portN: { kind: 'renamed', to: 'pgpool_portN', since: '4.2' },
  other_wd_portN: { kind: 'renamed', to: 'wd_portN', since: '4.2' },
  heartbeat_destinationN: { kind: 'renamed', to: 'heartbeat_hostnameN', since: '4.2' },
  heartbeat_destination_portN: { kind: 'renamed', to: 'heartbeat_portN', since: '4.2' },
  backend_socket_dir: { kind: 'dropped', since: '3.5' },
  debug_level: { kind: 'dropped', since: '3.5' },
  print_timestamp: { kind: 'dropped', since: '3.4' },
  print_user: { kind: 'dropped', since: '3.4' },
  pcp_timeout: { kind: 'dropped', since: '3.5' },
  parallel_mode: { kind: 'dropped', since: '3.5' },
  enable_query_cache: { kind: 'dropped', since: '3.5' },
  pgpool2_hostname: { kind: 'dropped', since: '3.5' },
  system_db_hostname: { kind: 'dropped', since: '3.5' },
  system_db_port: { kind: 'dropped', since: '3.5' },
  system_db_dbname: { kind: 'dropped', since: '3.5' },
  system_db_schema: { kind: 'dropped', since: '3.5' },
  system_db_user: { kind: 'dropped', since: '3.5' },
  system_db_password: { kind: 'dropped', since: '3.5' },
  wd_hostname: { kind: 'dropped', since: '4.2' },
  wd_port: { kind: 'dropped', since: '4.2' },
  wd_heartbeat_port: { kind: 'dropped', since: '4.2' },
};

const WATCHDOG_KEYS = [
  'trusted_servers', 'trusted_server_command', 'delegate_ip', 'if_cmd_path', 'if_up_cmd', 'if_down_cmd', 'arping_path', 'arping_cmd',
  'ping_path', 'wd_priority', 'wd_authkey', 'wd_ipc_socket_dir', 'clear_memqcache_on_escalation', 'wd_escalation_command',
  'wd_de_escalation_command', 'failover_when_quorum_exists', 'failover_require_consensus', 'allow_multiple_failover_requests_from_node',
  'enable_consensus_with_half_votes', 'wd_remove_shutdown_nodes', 'wd_lost_node_removal_timeout', 'wd_no_show_node_removal_timeout',
  'wd_monitoring_interfaces_list', 'wd_lifecheck_method', 'wd_interval', 'wd_heartbeat_keepalive', 'wd_heartbeat_deadtime',
  'wd_life_point', 'wd_lifecheck_query', 'wd_lifecheck_dbname', 'wd_lifecheck_user', 'wd_lifecheck_password', 'wd_listen_address',
  'wd_listen_port', 'wd_heartbeat_listen_addresses', 'wd_heartbeat_listen_port',
  // numbered families (hostname0, wd_port0, ...)
  'hostname', 'wd_port', 'pgpool_port', 'heartbeat_hostname', 'heartbeat_port', 'heartbeat_device',
] as const;

const QUERY_CACHE_KEYS = [
  'memqcache_method', 'memqcache_memcached_host', 'memqcache_memcached_port', 'memqcache_total_size', 'memqcache_max_num_cache',
  'memqcache_expire', 'memqcache_auto_cache_invalidation', 'memqcache_maxcache', 'memqcache_cache_block_size', 'memqcache_oiddir',
  'cache_safe_memqcache_table_list', 'cache_unsafe_memqcache_table_list', 'enable_shared_relcache',
  'memqcache_logical_invalidation', 'memqcache_logical_max_lag',
] as const;

/**
 * Keys of a pgpool feature that its switch turns on (use_watchdog, memory_cache_enabled): while
 * the switch is off pgpool ignores them, and so does pgmaitre without a warning (a pgpool.conf
 * keeps the watchdog settings of its sample with use_watchdog = off). With the switch on, the
 * switch itself is reported as not implemented. Numbered keys are listed by family.
 */
export const FEATURE_GATES: Readonly<Record<string, 'use_watchdog' | 'memory_cache_enabled'>> = Object.fromEntries([
  ...WATCHDOG_KEYS.map((k) => [k, 'use_watchdog'] as const),
  ...QUERY_CACHE_KEYS.map((k) => [k, 'memory_cache_enabled'] as const),
]);

/** Spec of a numbered key such as backend_port3, with its family and index, if it is one. */
export function lookupNumbered(key: string): { family: FamilyName; index: number; spec: ParamSpec } | undefined {
  const m = /^([a-z_]+?)(\d+)$/.exec(key);
  if (m === null) return undefined;
  const base = m[1] ?? '';
  if (!Object.prototype.hasOwnProperty.call(NUMBERED_FAMILIES, base)) return undefined;
  const family = base as FamilyName;
  return { family, index: Number(m[2]), spec: NUMBERED_FAMILIES[family] };
}

/** Spec of a non-numbered key, if declared. */
export function lookupParam(key: string): ParamSpec | undefined {
  return Object.prototype.hasOwnProperty.call(PARAMS, key) ? (PARAMS as Record<string, ParamSpec>)[key] : undefined;
}

/** Obsolete-key entry for a key (numbered renames matched through their N placeholder). */
export function lookupObsolete(key: string): { entry: ObsoleteParam; newKey?: string } | undefined {
  const direct = OBSOLETE_PARAMS[key];
  if (direct !== undefined) return direct.kind === 'renamed' ? { entry: direct, newKey: direct.to } : { entry: direct };
  const m = /^([a-z_]+?)(\d+)$/.exec(key);
  if (m === null) return undefined;
  const entry = OBSOLETE_PARAMS[`${m[1] ?? ''}N`];
  if (entry === undefined) return undefined;
  return entry.kind === 'renamed' ? { entry, newKey: entry.to.replace(/N$/, m[2] ?? '') } : { entry };
}
