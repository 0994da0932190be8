/** Tests of loadConfig: units, types, every error at once, warnings, obsolete keys, freeze, paths. */
import { strict as assert } from 'node:assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import {
  ConfigError, describeParam, loadConfig, loadConfigText, redactConfig, validateOverride,
} from '../../../src/config/load';
import { PARAMS } from '../../../src/config/schema';
import type { ParamSpec } from '../../../src/config/param-spec';
import type { Config } from '../../../src/config/types';

const ROOT = resolve(__dirname, '../../../..');
const BACKEND = "backend_hostname0 = 'localhost'\nbackend_port0 = 5432\n";

function load(text: string): ReturnType<typeof loadConfigText> {
  return loadConfigText(text, '/etc/pgmaitre/pgpool.conf');
}

function errorsOf(text: string): string[] {
  try {
    load(text);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.message.split('\n');
  }
  assert.fail('expected a ConfigError');
}

test('defaults follow pgpool-II 4.6', () => {
  const { config, warnings } = load(BACKEND);
  assert.deepEqual(warnings, []);
  assert.equal(config.port, 9999);
  assert.equal(config.connect_timeout, 10000);
  assert.equal(config.log_min_messages, 'warning');
  assert.equal(config.backend_clustering_mode, 'streaming_replication');
  assert.deepEqual(config.reset_query_list, ['ABORT', 'DISCARD ALL']);
  assert.equal(config.load_balance_in_transaction, false);
  assert.equal(config.http_port, 8404);
  assert.equal(config.max_message_size, 1073741823);
  assert.equal(config.log_format, 'auto'); // text on a terminal, JSON lines otherwise
});

test('units convert to the base unit of each key', () => {
  const { config } = load(`${BACKEND}health_check_period = 5min\nconnect_timeout = 2s\nchild_life_time = 1h\nsearch_primary_node_timeout = 1d\ndelay_threshold = 16MB\nlog_rotation_age = 2h\nlog_rotation_size = 1GB\nunix_socket_permissions = 0700\nmemqcache_maxcache = 400kB\n`);
  assert.equal(config.health_check_period, 300);
  assert.equal(config.connect_timeout, 2000);
  assert.equal(config.child_life_time, 3600);
  assert.equal(config.search_primary_node_timeout, 86400);
  assert.equal(config.delay_threshold, 16 * 1024 * 1024);
  assert.equal(config.log_rotation_age, 120);
  assert.equal(config.log_rotation_size, 1024 * 1024);
  assert.equal(config.unix_socket_permissions, 0o700);
  assert.equal(config.memqcache_maxcache, 409600);
});

test('a fractional number of base units is an error naming key and line', () => {
  const errs = errorsOf(`${BACKEND}health_check_period = 500ms\n`);
  assert.deepEqual(errs, ['pgpool.conf:3: health_check_period: "500ms" is not an integral number of seconds']);
});

test('every bad value is reported at once, one line each, in file order', () => {
  const errs = errorsOf(`${BACKEND}num_init_children = abc\nport = 80\nload_balance_mode = maybe\nlog_min_messages = loud\nhealth_check_timeout = 5parsecs\nfoo_bar = 1\n`);
  assert.deepEqual(errs, [
    'pgpool.conf:3: num_init_children: must be an integer >= 1, got "abc"',
    'pgpool.conf:4: port: must be an integer between 1024 and 65535, got "80"',
    'pgpool.conf:5: load_balance_mode: must be a boolean (on/off, true/false, yes/no, 1/0), got "maybe"',
    `pgpool.conf:6: log_min_messages: must be one of ${PARAMS.log_min_messages.values.join(', ')}; got "loud"`,
    'pgpool.conf:7: health_check_timeout: invalid unit "parsecs" in "5parsecs" (valid units: us, ms, s, min, h, d)',
    'pgpool.conf:8: foo_bar: unrecognized configuration parameter',
  ]);
});

test('syntax errors and value errors come together', () => {
  const errs = errorsOf(`${BACKEND}port = 1 2\nmax_pool = -1\n`);
  assert.equal(errs.length, 2);
  assert.match(errs[0] ?? '', /^pgpool\.conf:3: port: syntax error/);
  assert.match(errs[1] ?? '', /^pgpool\.conf:4: max_pool: must be an integer >= 0/);
});

test('at least one backend is required; a backend needs a host name', () => {
  assert.deepEqual(errorsOf('port = 9999\n'), ['pgpool.conf: backend_hostname0: at least one backend must be configured (backend_hostname0, backend_port0, ...)']);
  const errs = errorsOf(`${BACKEND}backend_port1 = 5433\n`);
  assert.match(errs[0] ?? '', /^pgpool\.conf:3: backend_hostname1: required/);
});

test('backend flags are validated', () => {
  const errs = errorsOf(`${BACKEND}backend_flag0 = 'ALLOW_TO_FAILOVER|DISALLOW_TO_FAILOVER|BOGUS'\n`);
  assert.equal(errs.length, 2);
  assert.match(errs[0] ?? '', /backend_flag0: unknown flag "BOGUS"/);
  assert.match(errs[1] ?? '', /mutually exclusive/);
  const { config } = load(`${BACKEND}backend_flag0 = 'always_primary'\n`);
  assert.deepEqual(config.backends[0]?.flags, ['ALLOW_TO_FAILOVER', 'ALWAYS_PRIMARY']);
});

test('duplicate keys: the last one wins', () => {
  const { config } = load(`${BACKEND}port = 1111\nport = 2222\n`);
  assert.equal(config.port, 2222);
});

test('per-node health check overrides resolve against the globals', () => {
  const { config } = load(`${BACKEND}backend_hostname1 = 'h1'\nhealth_check_period = 10\nhealth_check_period1 = 1min\nhealth_check_user = 'hc'\n`);
  assert.equal(config.backends[0]?.healthCheck.period, 10);
  assert.equal(config.backends[1]?.healthCheck.period, 60);
  assert.equal(config.backends[1]?.healthCheck.user, 'hc');
  assert.equal(config.backends[1]?.port, 5432);
});

test('obsolete keys warn and renamed ones apply to their successor', () => {
  const { config, warnings } = load(`${BACKEND}master_slave_mode = on\nmaster_slave_sub_mode = 'stream'\nwhite_function_list = 'f1,f2'\nblack_function_list = 'nextval'\nfail_over_on_backend_error = off\nbackend_socket_dir = '/tmp'\nfollow_master_command = 'x.sh'\n`);
  assert.equal(config.backend_clustering_mode, 'streaming_replication');
  assert.deepEqual(config.read_only_function_list, ['f1', 'f2']);
  assert.deepEqual(config.write_function_list, ['nextval']);
  assert.equal(config.failover_on_backend_error, false);
  assert.equal(config.follow_primary_command, 'x.sh');
  assert.equal(warnings.length, 7);
  assert.match(warnings[0] ?? '', /^pgpool\.conf:3: master_slave_mode: obsolete since pgpool-II 4\.2, use backend_clustering_mode \(taken as 'streaming_replication'\)/);
  assert.ok(warnings.includes('pgpool.conf:5: white_function_list: obsolete name of read_only_function_list, value applied to read_only_function_list'));
  assert.ok(warnings.includes('pgpool.conf:8: backend_socket_dir: obsolete pgpool parameter (removed in 3.5), ignored'));
});

test('the new name wins over an obsolete one', () => {
  const { config, warnings } = load(`${BACKEND}write_function_list = 'a'\nblack_function_list = 'b'\nreplication_mode = on\nbackend_clustering_mode = raw\n`);
  assert.deepEqual(config.write_function_list, ['a']);
  assert.equal(config.backend_clustering_mode, 'raw');
  assert.match(warnings[0] ?? '', /black_function_list: obsolete name of write_function_list, ignored because write_function_list is also set/);
});

test('unimplemented pgpool keys warn only when set away from their default', () => {
  const { warnings } = load(`${BACKEND}use_watchdog = off\nuse_watchdog = on\n`);
  assert.deepEqual(warnings, ['pgpool.conf:4: use_watchdog: not implemented by pgmaitre yet, ignored']);
});

test('the snapshot is deep-frozen', () => {
  const { config } = load(BACKEND);
  assert.ok(Object.isFrozen(config));
  assert.ok(Object.isFrozen(config.backends));
  assert.ok(Object.isFrozen(config.backends[0]));
  assert.ok(Object.isFrozen(config.backends[0]?.healthCheck));
  assert.ok(Object.isFrozen(config.reset_query_list));
  assert.throws(() => {
    (config as { port: number }).port = 1;
  }, TypeError);
});

test('file paths resolve against the config directory, as pgpool does', () => {
  const { config } = load(`${BACKEND}ssl_key = 'certs/server.key'\n`);
  assert.equal(config.config_file, '/etc/pgmaitre/pgpool.conf');
  assert.equal(config.pool_passwd, '/etc/pgmaitre/pool_passwd');
  assert.equal(config.hba_file, '/etc/pgmaitre/pool_hba.conf');
  assert.equal(config.pcp_file, '/etc/pgmaitre/pcp.conf');
  assert.equal(config.ssl_key, '/etc/pgmaitre/certs/server.key');
  const saved = process.env['PGPOOLKEYFILE'];
  delete process.env['PGPOOLKEYFILE'];
  try {
    assert.equal(load(BACKEND).config.key_file, join(homedir(), '.pgpoolkey'));
  } finally {
    if (saved !== undefined) process.env['PGPOOLKEYFILE'] = saved;
  }
  const o = loadConfigText(BACKEND, '/etc/pgmaitre/pgpool.conf', { hbaFile: '/x/hba', pcpFile: '/x/pcp', keyFile: '/x/key' });
  assert.deepEqual([o.config.hba_file, o.config.pcp_file, o.config.key_file], ['/x/hba', '/x/pcp', '/x/key']);
  assert.equal(load(`${BACKEND}pool_passwd = ''\n`).config.pool_passwd, '');
});

test('loadConfig reads a file and reports the base name', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgmaitre-conf-'));
  const f = join(dir, 'pgpool.conf');
  writeFileSync(f, `${BACKEND}num_init_children = abc\n`);
  assert.throws(() => loadConfig(f), /^ConfigError: pgpool\.conf:3: num_init_children: must be an integer >= 1, got "abc"$/m);
});

test('the shipped sample conf/pgpool.conf loads with no errors and no warnings', () => {
  const { config, warnings } = loadConfig(join(ROOT, 'conf/pgpool.conf'));
  assert.deepEqual(warnings, []);
  assert.equal(config.listen_addresses, '127.0.0.1');
  assert.equal(config.port, 9999);
  assert.deepEqual(config.backends.map((b) => b.port), [5432, 5433, 5434]);
});

test('a full pgpool 4.4-style pgpool.conf loads with warnings only', () => {
  const { config, warnings } = loadConfig(join(ROOT, 'test/fixtures/config/pgpool-4.4-full.conf'));
  assert.equal(config.backends.length, 3);
  assert.equal(config.backends[2]?.healthCheck.period, 30);
  assert.deepEqual(config.unix_socket_directories, ['/var/run/postgresql', '/tmp']);
  assert.deepEqual(config.primary_routing_query_pattern_list, ['.*FOR UPDATE.*', 'SELECT .* pg_advisory_lock.*']);
  assert.equal(config.memqcache_total_size, 64 * 1024 * 1024);
  assert.ok(warnings.length > 10);
  assert.ok(warnings.every((w) => /^pgpool-4\.4-full\.conf:\d+: [a-z_0-9]+: not implemented by pgmaitre yet, ignored$/.test(w)), warnings.join('\n'));
});

test("Debian's pgpool 4.3 sample with every parameter uncommented loads (skipped without it)", (t) => {
  let text: string;
  try {
    text = require('node:fs').readFileSync('/usr/share/doc/pgpool2/examples/pgpool.conf.sample', 'utf8') as string;
  } catch {
    t.skip('pgpool2 package not installed');
    return;
  }
  const uncommented = text.replace(/^#([a-z_]+[0-9]* *=)/gm, '$1');
  const { config } = loadConfigText(`${uncommented}\n${BACKEND}`, '/etc/pgpool2/pgpool.conf');
  assert.ok(config.backends.length >= 1);
});

test('validateOverride: session keys only, typed result, clear errors', () => {
  assert.equal(validateOverride('client_idle_limit', '1min'), 60);
  assert.equal(validateOverride('LOG_MIN_MESSAGES', 'DEBUG1'), 'debug1');
  assert.equal(validateOverride('allow_sql_comments', 'on'), true);
  assert.throws(() => validateOverride('port', '1234'), /cannot be changed with PGPOOL SET/);
  assert.throws(() => validateOverride('nope', '1'), /unrecognized configuration parameter "nope"/);
  assert.throws(() => validateOverride('client_idle_limit', 'x'), /invalid value for parameter "client_idle_limit"/);
});

test('describeParam', () => {
  const d = describeParam('health_check_period');
  assert.equal(d?.unit, 's');
  assert.equal(d?.reload, 'hot');
  assert.equal(describeParam('num_init_children')?.reload, 'restart');
  assert.equal(describeParam('log_statement')?.session, true);
  assert.equal(describeParam('backend_port3')?.default, 5432);
  assert.equal(describeParam('http_port')?.pgmaitre, true);
  assert.equal(describeParam('nope'), undefined);
});

test('redactConfig hides secrets', () => {
  const { config } = load(`${BACKEND}sr_check_password = 'pw'\nhealth_check_password = 'hcpw'\n`);
  const r = redactConfig(config);
  assert.equal(r['sr_check_password'], '********');
  assert.equal((r['backends'] as { healthCheck: { password: string } }[])[0]?.healthCheck.password, '********');
});

test('Config type and schema stay in sync', () => {
  const { config } = load(BACKEND);
  const extra = ['backends', 'config_file', 'hba_file', 'pcp_file', 'key_file'];
  assert.deepEqual(Object.keys(config).sort(), [...Object.keys(PARAMS), ...extra].sort());
  // Compile-time check: every schema key is a typed property of Config.
  const typed: { [K in keyof typeof PARAMS]: Config[K] } = config;
  assert.ok(typed);
  for (const [k, spec] of Object.entries(PARAMS) as [string, ParamSpec][]) {
    const v = (config as unknown as Record<string, unknown>)[k];
    const t = spec.type === 'bool' ? 'boolean' : spec.type === 'int' || spec.type === 'real' ? 'number' : spec.type === 'list' ? 'object' : 'string';
    assert.equal(typeof v, t, k);
  }
});
