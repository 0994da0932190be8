/**
 * pgpool-II 4.7's own sample configuration (src/sample/pgpool.conf.sample-stream of pgpool2 at
 * tag V4_7_2, which pgpool.conf.sample points to; kept verbatim in
 * test/fixtures/config/pgpool-4.7.conf.sample) loads in pgmaitre: as shipped, with every
 * commented default uncommented (so every 4.7 key is known and its default parses), and with
 * the edits a DBA typically makes. The only warning allowed is the deliberate socket_dir alias.
 * Also the reference configuration of ../shared/bench/peers.sh (a pgpool-II 4.3-style file:
 * socket_dir, logdir, wd_ipc_socket_dir with use_watchdog = off, the logging collector).
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { loadConfigText } from '../../../src/config/load';
import { lookupNumbered, lookupParam, lookupObsolete } from '../../../src/config/schema';

const ROOT = resolve(__dirname, '../../../..');
const SAMPLE = readFileSync(resolve(ROOT, 'test/fixtures/config/pgpool-4.7.conf.sample'), 'utf8');
const FILE = '/etc/pgpool-II/pgpool.conf';
const ALIAS = /^pgpool\.conf:\d+: socket_dir: obsolete name of unix_socket_directories, value applied to unix_socket_directories$/;

/** The sample with every `#key = value` line uncommented. */
function uncommented(text: string): string {
  return text.split('\n').map((l) => (/^#[a-z_0-9]+ *= /.test(l) ? l.slice(1) : l)).join('\n');
}

/** `text` with `key = value` lines set (replacing a commented or active line of that key, else appended). */
function edit(text: string, settings: Record<string, string>): string {
  let out = text;
  for (const [k, v] of Object.entries(settings)) {
    const re = new RegExp(`^#?${k} *=.*$`, 'm');
    out = re.test(out) ? out.replace(re, `${k} = ${v}`) : `${out}\n${k} = ${v}`;
  }
  return out;
}

const BACKENDS = {
  backend_hostname0: "'pg1'", backend_port0: '5432', backend_weight0: '1', backend_data_directory0: "'/var/lib/postgresql/17/main'",
  backend_flag0: "'ALLOW_TO_FAILOVER'", backend_application_name0: "'pg1'",
  backend_hostname1: "'pg2'", backend_port1: '5432', backend_weight1: '1', backend_data_directory1: "'/var/lib/postgresql/17/main'",
  backend_flag1: "'ALLOW_TO_FAILOVER'", backend_application_name1: "'pg2'",
};

test('every key of the 4.7 sample is declared (none unknown, none only as an obsolete name)', () => {
  const keys = [...SAMPLE.matchAll(/^#?([a-z_]+[a-z_0-9]*) *= /gm)].map((m) => m[1]!);
  assert.ok(keys.length > 200, `${keys.length} keys`);
  const unknown = keys.filter((k) => lookupParam(k) === undefined && lookupNumbered(k) === undefined);
  assert.deepEqual(unknown, []);
  assert.deepEqual(keys.filter((k) => lookupObsolete(k) !== undefined && lookupParam(k) === undefined), []);
});

test('the 4.7 sample as shipped (plus the backend it needs) and fully uncommented loads with no warning', () => {
  assert.deepEqual(loadConfigText(edit(SAMPLE, BACKENDS), FILE).warnings, []);
  const all = loadConfigText(uncommented(SAMPLE), FILE);
  assert.deepEqual(all.warnings, []);
  // pgpool 4.7's defaults, as the sample states them.
  assert.equal(all.config.log_pcp_processes, false);
  assert.equal(all.config.log_standby_delay, 'if_over_threshold');
  assert.equal(all.config.log_backend_messages, 'none');
  assert.equal(all.config.work_dir, '/tmp');
  for (const k of ['sr_check_user', 'health_check_user', 'recovery_user', 'wd_lifecheck_user'] as const) assert.equal(all.config[k], '', k);
});

test('the 4.7 sample with typical edits: only the socket_dir alias warns', () => {
  const text = edit(SAMPLE, {
    ...BACKENDS,
    listen_addresses: "'*'", port: '9999', socket_dir: "'/var/run/postgresql'", pcp_listen_addresses: "'*'",
    num_init_children: '64', max_pool: '2', enable_pool_hba: 'on',
    sr_check_period: '5', sr_check_user: "'pgpool'", sr_check_password: "''", delay_threshold: '10000000',
    health_check_period: '5', health_check_timeout: '10', health_check_user: "'pgpool'", health_check_max_retries: '3',
    log_standby_delay: "'always'", log_backend_messages: "'terse'", log_pcp_processes: 'on', log_connections: 'on',
    log_min_messages: 'info', log_line_prefix: "'%m: %a pid %p: '",
    logging_collector: 'on', log_directory: "'/var/log/pgpool'", log_filename: "'pgpool-%a.log'", log_truncate_on_rotation: 'on',
    log_rotation_age: '1d', log_rotation_size: '0',
    work_dir: "'/var/run/pgpool'", pid_file_name: "'/var/run/pgpool/pgpool.pid'",
    failover_command: "'/etc/pgpool-II/failover.sh %d %h %p %D %m %H %M %P %r %R %N %S'",
    follow_primary_command: "'/etc/pgpool-II/follow_primary.sh %d %h %p %D %m %H %M %P %r %R'",
    // the watchdog stays off: its settings (edited as in pgpool's docs) are not used
    use_watchdog: 'off', hostname0: "'server1'", wd_port0: '9000', pgpool_port0: '9999', heartbeat_hostname0: "'server1'",
    wd_lifecheck_method: "'heartbeat'", wd_ipc_socket_dir: "'/var/run/postgresql'", delegate_ip: "'192.168.1.100'",
    wd_listen_address: "'*'", wd_heartbeat_listen_addresses: "'*'",
  });
  const { config, warnings } = loadConfigText(text, FILE);
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, ALIAS);
  assert.deepEqual(config.unix_socket_directories, ['/var/run/postgresql']);
  assert.equal(config.log_standby_delay, 'always');
  assert.equal(config.log_backend_messages, 'terse');
  assert.equal(config.log_rotation_age, 1440);
  assert.equal(config.work_dir, '/var/run/pgpool');
});

test('a feature switched on that pgmaitre lacks still warns (use_watchdog); the query cache is implemented', () => {
  const { warnings } = loadConfigText(edit(SAMPLE, { ...BACKENDS, use_watchdog: 'on', memory_cache_enabled: 'on', wd_ipc_socket_dir: "'/run'" }), FILE);
  assert.ok(warnings.some((w) => /use_watchdog: not implemented/.test(w)), warnings.join('\n'));
  assert.ok(!warnings.some((w) => /memory_cache_enabled|memqcache/.test(w)), warnings.join('\n'));
  assert.ok(warnings.some((w) => /wd_ipc_socket_dir: not implemented/.test(w)), warnings.join('\n'));
});

test('logdir (4.7: the old name of work_dir) sets work_dir unless work_dir is set', () => {
  assert.equal(loadConfigText(edit(SAMPLE, { ...BACKENDS, logdir: "'/var/log/pgpool'" }), FILE).config.work_dir, '/var/log/pgpool');
  assert.equal(loadConfigText(edit(SAMPLE, { ...BACKENDS, logdir: "'/a'", work_dir: "'/b'" }), FILE).config.work_dir, '/b');
});

test('the reference configuration (../shared/bench/peers.sh, pgpool-II 4.3 style) warns only about socket_dir', () => {
  const d = '/tmp/lab-pgpool';
  const text = [
    "backend_clustering_mode = 'streaming_replication'", "listen_addresses = '127.0.0.1'", 'port = 19999', `socket_dir = '${d}'`,
    "pcp_listen_addresses = '127.0.0.1'", 'pcp_port = 19898', `pcp_socket_dir = '${d}'`, `wd_ipc_socket_dir = '${d}'`,
    `pid_file_name = '${d}/pgpool.pid'`, `logdir = '${d}'`, 'use_watchdog = off',
    ...[0, 1, 2].flatMap((i) => [`backend_hostname${i} = '127.0.0.1'`, `backend_port${i} = ${15432 + i}`, `backend_weight${i} = ${i === 0 ? 0 : 1}`,
      `backend_data_directory${i} = '/tmp/lab-pg/n${i}'`, `backend_flag${i} = 'ALLOW_TO_FAILOVER'`, `backend_application_name${i} = 'n${i}'`]),
    'enable_pool_hba = off', "pool_passwd = 'pool_passwd'", 'allow_clear_text_frontend_auth = off',
    'num_init_children = 64', 'max_pool = 4', 'reserved_connections = 0', 'connection_cache = on', 'child_life_time = 5min', 'client_idle_limit = 0',
    'load_balance_mode = on', 'statement_level_load_balance = off', "disable_load_balance_on_write = 'transaction'",
    'sr_check_period = 10', "sr_check_user = 'postgres'", "sr_check_password = ''", "sr_check_database = 'postgres'", 'delay_threshold = 0',
    'health_check_period = 2', 'health_check_timeout = 10', "health_check_user = 'postgres'", "health_check_password = ''",
    "health_check_database = 'postgres'", 'health_check_max_retries = 3', 'health_check_retry_delay = 1',
    "failover_command = ''", "failback_command = ''", 'failover_on_backend_error = on', 'search_primary_node_timeout = 30', 'memory_cache_enabled = off',
    "log_destination = 'stderr'", 'logging_collector = on', `log_directory = '${d}/log'`, "log_filename = 'pgpool.log'", 'log_truncate_on_rotation = off',
    'log_rotation_age = 0', 'log_rotation_size = 0', 'log_min_messages = warning', 'log_connections = off', 'log_statement = off', 'log_per_node_statement = off',
  ].join('\n');
  const { config, warnings } = loadConfigText(text, `${d}/pgpool.conf`);
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, ALIAS);
  assert.equal(config.work_dir, d);
  assert.equal(config.logging_collector, true);
});
