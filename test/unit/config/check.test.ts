/**
 * `pgmaitre check` (src/check.ts, main.ts): every error and warning of pgpool.conf,
 * pool_hba.conf, pool_passwd and pcp.conf with FILE:LINE, the exit codes (0 valid, 1 errors,
 * 2 warnings only, --strict), the spellings (check, -C, -c, --check), the same lines as a failed
 * start prints, and neither a listener nor a backend connection while checking.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkConfiguration, checkExitCode } from '../../../src/check';
import { aesEntry } from '../../../src/config/pool-passwd';
import { exec } from '../../harness/exec';

const REPO = path.resolve(__dirname, '../../../..');
const BIN = path.join(REPO, 'bin', 'pgmaitre.js');
const dirs: string[] = [];
after(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

/** A config directory with pgpool.conf and the given files. */
function confDir(pgpool: string, files: Record<string, string> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-check-'));
  dirs.push(dir);
  fs.writeFileSync(path.join(dir, 'pgpool.conf'), pgpool);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

const BACKEND = "backend_hostname0 = '127.0.0.1'\nbackend_port0 = 5432\nsr_check_user = 'postgres'\npid_file_name = ''\npcp_listen_addresses = ''\n";
const run = (args: string[]) => exec(process.execPath, [BIN, ...args], { timeoutMs: 20_000 });

describe('pgmaitre check', () => {
  test('the sample configuration in conf/ is valid (exit 0) and the report names the files it read', async () => {
    const r = await run(['check', '-f', path.join(REPO, 'conf', 'pgpool.conf')]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^configuration is valid: .*conf\/pgpool\.conf$/m);
    for (const f of ['pool_hba.conf: 3 rule', 'pool_passwd: 1 user', 'pcp.conf: 1 user']) assert.ok(r.stdout.includes(f), `${f} in\n${r.stdout}`);
  });

  test('errors in all four files are listed together, each with FILE:LINE, and exit 1', async () => {
    const dir = confDir([
      'port = 9999',
      'num_init_children = 0',
      "white_function_list = 'nextval'",
      BACKEND,
      'bogus_key = 1',
      'enable_pool_hba = on',
    ].join('\n'), {
      'pool_hba.conf': 'host all all 127.0.0.1/32 trust\nhots all all 10.0.0.0/8 md5\n',
      'pcp.conf': '# admin\nadmin:not-a-hash\n',
      pool_passwd: 'postgres:TEXTpostgres\n',
    });
    const r = await run(['-C', '-f', path.join(dir, 'pgpool.conf')]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const lines = r.stdout.split('\n');
    for (const want of [
      'ERROR: pgpool.conf:2: num_init_children: must be an integer >= 1, got "0"',
      'ERROR: pgpool.conf:10: bogus_key: unrecognized configuration parameter',
      'ERROR: pool_hba.conf:2: invalid connection type "hots" (expected local, host, hostssl or hostnossl)',
      'ERROR: pcp.conf:2: admin: password must be the 32-hex-digit MD5 printed by pg_md5',
      'WARNING: pgpool.conf:3: white_function_list: obsolete name of read_only_function_list, value applied to read_only_function_list',
    ]) assert.ok(lines.includes(want), `missing line ${want}\n${r.stdout}`);
    assert.match(r.stdout, /configuration has 4 error\(s\) and 1 warning\(s\)/);
  });

  test('warnings only: exit 2; --strict (or -dW) makes them fatal: exit 1', async () => {
    const key = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-check-key-'));
    dirs.push(key);
    const dir = confDir(`${BACKEND}enable_pool_hba = on\nwhite_function_list = 'nextval'\nssl = on\n`, {
      'pool_hba.conf': 'host all all 127.0.0.1/32 scram-sha-256\nhost all all 10.0.0.0/8 radius\n',
      pool_passwd: `postgres:TEXTpostgres\n${aesEntry('app', 'secret', 'k3y')}\n`,
      'pcp.conf': 'admin:21232f297a57a5a743894a0e4a801fc3\n',
    });
    const conf = path.join(dir, 'pgpool.conf');
    // No key file (-k points to a missing one): the AES entry is unusable, as at start.
    const r = await run(['check', '-f', conf, '-k', path.join(key, 'missing')]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stdout, /^WARNING: pool_passwd:2: app: entry unusable: cannot decrypt AES password: key file .* not readable \(ENOENT\)$/m);
    assert.match(r.stdout, /^WARNING: pool_hba\.conf:2: authentication method "radius" is not supported by pgmaitre: clients matching this line are refused$/m);
    assert.match(r.stdout, /^WARNING: pgpool\.conf: ssl: ssl = on but ssl_cert or ssl_key is not set/m);
    assert.match(r.stdout, /^WARNING: pgpool\.conf:7: white_function_list: obsolete name/m);
    assert.match(r.stdout, /configuration is valid with 4 warning\(s\)/);
    for (const strict of ['--strict', '-dW']) {
      const s = await run(['check', strict, '-f', conf, '-k', path.join(key, 'missing')]);
      assert.equal(s.code, 1, s.stdout);
      assert.match(s.stdout, /\(fatal with --strict\)/);
    }
    // With the key the entry decrypts: one warning fewer.
    fs.writeFileSync(path.join(key, '.pgpoolkey'), 'k3y\n');
    const withKey = checkConfiguration(conf, { keyFile: path.join(key, '.pgpoolkey') });
    assert.equal(withKey.warnings.length, 3, withKey.warnings.join('\n'));
  });

  test('check, -C, -c and --check are one command; -q prints nothing for a valid configuration', async () => {
    const conf = path.join(confDir(BACKEND), 'pgpool.conf');
    for (const args of [['check', '-f', conf], ['-C', '-f', conf], ['-c', `-f${conf}`], ['--check', `--config-file=${conf}`], ['-n', '-f', conf, '-C']]) {
      const r = await run(args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /configuration is valid/);
    }
    const q = await run(['check', '-q', '-f', conf]);
    assert.equal(q.code, 0);
    assert.equal(q.stdout, '');
    const typo = await run(['check', '--stirct', '-f', conf]);
    assert.equal(typo.code, 1, 'a mistyped check must not look like "warnings only"');
  });

  test('TLS files and port clashes a start would trip over are errors', () => {
    const dir = confDir(`${BACKEND}pcp_listen_addresses = 'localhost'\nssl = on\nssl_cert = 'missing.crt'\nssl_key = 'missing.key'\nhttp_port = 9898\n`);
    const r = checkConfiguration(path.join(dir, 'pgpool.conf'));
    assert.deepEqual(r.errors, [
      `pgpool.conf: ssl_cert: cannot read ${path.join(dir, 'missing.crt')}: ENOENT`,
      'pgpool.conf: http_port: 9898 is also pcp_port: two listeners cannot share a port',
    ]);
    assert.equal(checkExitCode(r, false), 1);
  });

  test('the query cache with a dedicated write port: warned that writes relayed there do not invalidate it, unless the change stream is on', () => {
    const dir = confDir(`${BACKEND}memory_cache_enabled = on\nwrite_port = 5433\n`);
    const r = checkConfiguration(path.join(dir, 'pgpool.conf'));
    assert.ok(r.warnings.some((w) => /^pgpool\.conf: write_port: .*query cache.*memqcache_logical_invalidation/.test(w)), r.warnings.join('\n'));
    for (const extra of ['memqcache_logical_invalidation = on\n', 'memory_cache_enabled = off\n', 'write_port = 0\n']) {
      const ok = checkConfiguration(path.join(confDir(`${BACKEND}memory_cache_enabled = on\nwrite_port = 5433\n${extra}`), 'pgpool.conf'));
      assert.ok(!ok.warnings.some((w) => /write_port/.test(w)), `${extra}: ${ok.warnings.join('\n')}`);
    }
  });

  test('a start fails on the lines the check prints; the check goes on to the other files', async () => {
    const hba = { 'pool_hba.conf': 'host all all 127.0.0.1/32 trust\nhost all all 300.1.1.1/32 md5\n' };
    const errorLines = (out: string) => out.split('\n').filter((l) => l.startsWith('ERROR: ')).map((l) => l.slice('ERROR: '.length));
    // Only pool_hba.conf is wrong: the start stops on that very line.
    const conf1 = path.join(confDir(`${BACKEND}enable_pool_hba = on\n`, hba), 'pgpool.conf');
    const [check1, start1] = [await run(['check', '-f', conf1]), await run(['-n', '-f', conf1])];
    assert.equal(check1.code, 1);
    assert.equal(start1.code, 1);
    assert.deepEqual(errorLines(check1.stdout), ['pool_hba.conf:2: invalid ADDRESS "300.1.1.1/32" (expected CIDR such as 10.0.0.0/8, an address and mask, all, samehost or samenet; host names are not supported)']);
    assert.equal(start1.stderr.trim(), errorLines(check1.stdout)[0]);
    // pgpool.conf is wrong too: a start reports pgpool.conf only, the check both files.
    const conf2 = path.join(confDir(`${BACKEND}enable_pool_hba = on\nport = 1\n`, hba), 'pgpool.conf');
    const [check2, start2] = [await run(['check', '-f', conf2]), await run(['-n', '-f', conf2])];
    assert.equal(start2.code, 1);
    assert.equal(start2.stderr.trim(), 'pgpool.conf:7: port: must be an integer between 1024 and 65535, got "1"');
    assert.deepEqual(errorLines(check2.stdout), [start2.stderr.trim(), errorLines(check1.stdout)[0]]);
  });

  test('keeps no listener open and connects to no backend; notes the port taken', async () => {
    let connections = 0;
    // A tripwire, not a PostgreSQL: it only counts connection attempts.
    const tripwire = net.createServer((s) => { connections++; s.destroy(); });
    await new Promise<void>((r) => tripwire.listen(0, '127.0.0.1', r));
    // Our own listener holds the client port: a check that tried to bind it would fail.
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    try {
      const tp = (tripwire.address() as net.AddressInfo).port;
      const hp = (holder.address() as net.AddressInfo).port;
      const conf = path.join(confDir([
        `listen_addresses = '127.0.0.1'`, `port = ${hp}`, `pcp_port = ${hp + 1}`, "http_listen_addresses = '127.0.0.1'",
        `backend_hostname0 = '127.0.0.1'`, `backend_port0 = ${tp}`, `backend_hostname1 = '127.0.0.1'`, `backend_port1 = ${tp}`,
        "sr_check_user = 'postgres'", "health_check_period = 1", "health_check_user = 'postgres'", "pid_file_name = ''",
      ].join('\n'), { 'pcp.conf': 'admin:21232f297a57a5a743894a0e4a801fc3\n' }), 'pgpool.conf');
      const started = Date.now();
      const r = await run(['check', '-f', conf]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      // Trying the port (bind, close at once) is how the check finds it taken: a NOTICE, not a failure.
      assert.match(r.stdout, new RegExp(`NOTICE: pgpool.conf: listen_addresses/port: cannot listen on 127\\.0\\.0\\.1 port ${hp} now: address already in use`));
      await new Promise((res) => setTimeout(res, 200));
      assert.equal(connections, 0, 'check connected to a backend');
      assert.ok(Date.now() - started < 10_000);
    } finally {
      tripwire.close();
      holder.close();
    }
  });
});
