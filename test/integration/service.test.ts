/**
 * Running pgmaitre as a service, as contrib/systemd/pgmaitre.service does it: the unit passes
 * `systemd-analyze verify` (when systemd is installed); its ExecStart command line starts a
 * real pgmaitre in front of a real cluster; its ExecReload command (SIGHUP) applies a changed
 * parameter without dropping a session; its KillSignal (SIGTERM) ends the sessions with 57P01
 * and exits 0 well within TimeoutStopSec. Also: `pgmaitre healthcheck` (the container's
 * HEALTHCHECK) answers from /health, and the log is rendered for people on a terminal and
 * stays JSON lines in a pipe.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { freePort, REPO_ROOT, withCluster } from '../harness/cluster';
import { backendLines } from '../harness/in-process';
import { spawnServer, type ServerProcess } from '../../src/demo/child-server';
import { exec, isExecutable } from '../harness/exec';

const UNIT = path.join(REPO_ROOT, 'contrib', 'systemd', 'pgmaitre.service');
const SYSTEMD_ANALYZE = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find(isExecutable);

/** The [Service] settings of a unit file (last one wins, as systemd reads them). */
function unitSettings(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) { section = s[1]!; continue; }
    const eq = line.indexOf('=');
    if (eq > 0) out.set(`${section}.${line.slice(0, eq).trim()}`, line.slice(eq + 1).trim());
  }
  return out;
}

/** The unit's command lines with the install paths replaced by this checkout's. */
function localise(cmd: string, confPath: string): string[] {
  return cmd.replace('/usr/bin/node', process.execPath).replace('/opt/pgmaitre', REPO_ROOT).replace('/etc/pgmaitre/pgpool.conf', confPath).split(/\s+/);
}

/**
 * The lines of systemd-analyze's output that concern `unitPath`: lines naming another unit
 * file ("/lib/systemd/system/pgpool2.service:12: ...") are about units installed on this
 * machine, not ours; lines naming no file are kept (they may be about the verified unit).
 */
function warningsAbout(stderr: string, unitPath: string): string[] {
  const base = path.basename(unitPath);
  return stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '').filter((l) => {
    const m = /^(\S+?\.(?:service|socket|target|timer|mount|automount|path|slice|scope|device|swap))(?::\d+)?:/.exec(l);
    if (m === null) return true;
    return m[1] === unitPath || path.basename(m[1]!) === base;
  });
}

const unit = unitSettings(fs.readFileSync(UNIT, 'utf8'));

describe('systemd unit', () => {
  test('declares what the issue asks: foreground start, restart policy, SIGHUP reload, SIGTERM stop, file limit, own user', () => {
    assert.ok(['simple', 'notify', 'exec'].includes(unit.get('Service.Type')!), unit.get('Service.Type'));
    assert.match(unit.get('Service.ExecStart')!, / -n -f \/etc\/pgmaitre\/pgpool\.conf$/);
    assert.equal(unit.get('Service.ExecReload'), '/bin/kill -HUP $MAINPID');
    assert.equal(unit.get('Service.KillSignal') ?? 'SIGTERM', 'SIGTERM');
    assert.equal(unit.get('Service.Restart'), 'on-failure');
    assert.ok(Number(unit.get('Service.LimitNOFILE')) >= 65536);
    assert.equal(unit.get('Service.User'), 'pgmaitre');
    assert.equal(unit.get('Install.WantedBy'), 'multi-user.target');
  });

  test('passes systemd-analyze verify', { skip: SYSTEMD_ANALYZE === undefined ? 'systemd-analyze not installed (.ci/run installs Debian\'s systemd package)' : false }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-unit-'));
    try {
      // ExecStart must name an executable that exists here: this machine's node and checkout.
      const text = fs.readFileSync(UNIT, 'utf8').replace('/usr/bin/node', process.execPath).replace(/\/opt\/pgmaitre/g, REPO_ROOT);
      fs.writeFileSync(path.join(dir, 'pgmaitre.service'), text);
      // A DBA's machine has other units enabled in multi-user.target (pgpool2.service, whose
      // StandardOutput=syslog systemd-analyze calls obsolete): verify loads them too, because the
      // unit is WantedBy=multi-user.target. Reproduce that with an extra unit directory holding
      // such a unit enabled, and judge only what systemd-analyze says about pgmaitre's unit.
      const extra = path.join(dir, 'units');
      fs.mkdirSync(path.join(extra, 'multi-user.target.wants'), { recursive: true });
      fs.writeFileSync(path.join(extra, 'other-legacy.service'),
        '[Unit]\nDescription=legacy\n[Service]\nExecStart=/bin/true\nStandardOutput=syslog\n[Install]\nWantedBy=multi-user.target\n');
      fs.symlinkSync(path.join(extra, 'other-legacy.service'), path.join(extra, 'multi-user.target.wants', 'other-legacy.service'));
      const env = { ...process.env, SYSTEMD_UNIT_PATH: `${extra}:` };
      const unitPath = path.join(dir, 'pgmaitre.service');
      const r = await exec(SYSTEMD_ANALYZE!, ['verify', unitPath], { env });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stderr, /other-legacy\.service/, 'the other unit is loaded, so the filter below is exercised');
      assert.deepEqual(warningsAbout(r.stderr, unitPath), [], 'no warning from systemd-analyze about pgmaitre.service');
      // The same verification does complain about a broken unit (so silence above means something).
      const broken = path.join(dir, 'broken.service');
      fs.writeFileSync(broken, text.replace('KillSignal=SIGTERM', 'KillSignal=SIGTREM'));
      const bad = await exec(SYSTEMD_ANALYZE!, ['verify', broken], { env });
      assert.ok(warningsAbout(bad.stderr, broken).some((l) => /Failed to parse signal name/.test(l)), bad.stderr);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the unit\'s commands against a real pgmaitre', { timeout: 120_000 }, () => {
  const fx = withCluster({ standbys: 1 });
  let dir: string;
  let conf: string;
  let port: number;
  let httpPort: number;
  let proc: ServerProcess;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-service-'));
    conf = path.join(dir, 'pgpool.conf');
    port = await freePort();
    httpPort = await freePort();
    fs.writeFileSync(conf, [
      `listen_addresses = '127.0.0.1'`, `port = ${port}`, "unix_socket_directories = ''", "pcp_listen_addresses = ''",
      `http_port = ${httpPort}`, "http_listen_addresses = '127.0.0.1'", `pid_file_name = '${path.join(dir, 'pgmaitre.pid')}'`,
      backendLines(fx.cluster), "sr_check_user = 'postgres'", "health_check_user = 'postgres'", 'health_check_period = 1',
      'client_idle_limit = 0', '',
    ].join('\n'));
    const [cmd, ...args] = localise(unit.get('Service.ExecStart')!, conf);
    proc = await spawnServer({ name: 'pgmaitre (ExecStart)', cmd: cmd!, args, port, cwd: dir });
  });
  after(async () => {
    await proc?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('ExecReload (SIGHUP) applies a changed parameter; the open session lives on', async () => {
    const c = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    await c.connect();
    try {
      assert.equal((await c.query('PGPOOL SHOW client_idle_limit')).rows[0]?.client_idle_limit, '0');
      fs.writeFileSync(conf, fs.readFileSync(conf, 'utf8').replace('client_idle_limit = 0', 'client_idle_limit = 3600'));
      const [cmd, ...args] = localise(unit.get('Service.ExecReload')!.replace('$MAINPID', String(proc.pid)), conf);
      const r = await exec(cmd!, args);
      assert.equal(r.code, 0, r.stderr);
      await proc.waitForLog(/"event":"reload".*configuration reloaded \(1 change\(s\) applied\)/, 10_000);
      const fresh = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
      await fresh.connect();
      assert.equal((await fresh.query('PGPOOL SHOW client_idle_limit')).rows[0]?.client_idle_limit, '3600');
      await fresh.end();
      assert.equal((await c.query('SELECT 42 AS n')).rows[0]?.n, 42, 'the session opened before the reload still works');
      // A broken configuration is refused and the running one kept.
      const good = fs.readFileSync(conf, 'utf8');
      fs.writeFileSync(conf, `${good}num_init_children = zero\n`);
      await exec(cmd!, args);
      await proc.waitForLog(/"event":"reload_failed".*keeping the running configuration: pgpool\.conf:\d+: num_init_children/, 10_000);
      fs.writeFileSync(conf, good);
      assert.ok(proc.alive());
      assert.equal((await c.query('SELECT 1 AS n')).rows[0]?.n, 1);
    } finally {
      await c.end().catch(() => {});
    }
  });

  test('pgmaitre healthcheck (the container HEALTHCHECK) answers from /health', async () => {
    const r = await exec(process.execPath, [path.join(REPO_ROOT, 'bin', 'pgmaitre.js'), 'healthcheck', '-f', conf]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^http://127\\.0\\.0\\.1:${httpPort}/health: 200 .*"state":"running"`));
  });

  test('KillSignal (SIGTERM) ends sessions with 57P01 and exits 0 within TimeoutStopSec', async () => {
    const c = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    const errors: { code?: string }[] = [];
    c.on('error', (e) => errors.push(e as { code?: string }));
    await c.connect();
    await c.query('SELECT 1');
    const started = Date.now();
    process.kill(proc.pid, unit.get('Service.KillSignal') as NodeJS.Signals);
    const status = await proc.stop(); // already signalled: waits for the exit
    const took = Date.now() - started;
    assert.deepEqual(status, { code: 0, signal: null });
    assert.ok(took < Number(/^(\d+)s?$/.exec(unit.get('Service.TimeoutStopSec')!)![1]) * 1000, `stopped in ${took} ms`);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(errors[0]?.code, '57P01', JSON.stringify(errors));
    assert.match(proc.logs(), /"event":"signal","signal":"SIGTERM".*received SIGTERM, shutting down/);
    assert.ok(!fs.existsSync(path.join(dir, 'pgmaitre.pid')), 'pid file removed at exit');
    const down = await exec(process.execPath, [path.join(REPO_ROOT, 'bin', 'pgmaitre.js'), 'healthcheck', '-f', conf]);
    assert.equal(down.code, 1, 'healthcheck fails once pgmaitre is gone');
    assert.match(down.stderr, /ECONNREFUSED/);
  });
});

describe('logs on a terminal and in a pipe', { timeout: 60_000 }, () => {
  const fx = withCluster({ standbys: 1 });
  const SCRIPT = ['/usr/bin/script', '/bin/script'].find(isExecutable);

  test('a terminal gets time, level, message and fields; a pipe gets JSON lines', { skip: SCRIPT === undefined ? 'script(1) not installed (util-linux)' : false }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-logs-'));
    // Whatever happens, every process this test starts is stopped (a failed assertion must not hang the file).
    const cleanup: (() => Promise<unknown>)[] = [];
    try {
      const conf = path.join(dir, 'pgpool.conf');
      const port = await freePort();
      fs.writeFileSync(conf, `listen_addresses = '127.0.0.1'\nport = ${port}\nunix_socket_directories = ''\npcp_listen_addresses = ''\nhttp_port = 0\npid_file_name = ''\n` +
        `${backendLines(fx.cluster)}\nsr_check_user = 'postgres'\nhealth_check_user = 'postgres'\nlog_min_messages = info\n`);
      const bin = `${process.execPath} ${path.join(REPO_ROOT, 'bin', 'pgmaitre.js')} -n -f ${conf}`;
      // script(1) gives pgmaitre a pseudo-terminal as stderr, as a person running it by hand has.
      const pidFile = path.join(dir, 'tty.pid');
      const ttyConf = path.join(dir, 'tty.conf');
      fs.writeFileSync(ttyConf, `${fs.readFileSync(conf, 'utf8')}pid_file_name = '${pidFile}'\n`);
      const tty = await spawnServer({ name: 'pgmaitre on a tty', cmd: SCRIPT!, args: ['-qfec', bin.replace(conf, ttyConf), '/dev/null'], port, cwd: dir });
      cleanup.push(async () => {
        // pgmaitre under script(1) is script's child: stopped by its pid, then script itself.
        const kids = (() => { try { return fs.readFileSync(`/proc/${tty.pid}/task/${tty.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number); } catch { return []; } })();
        for (const k of kids) { try { process.kill(k, 'SIGTERM'); } catch { /* gone */ } }
        await tty.stop();
      });
      await tty.waitForLog(/pgmaitre listening on/);
      // The pid file is written once the start is complete (admin listeners too), a moment after that line.
      for (let i = 0; i < 200 && !fs.existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 50));
      // Stop pgmaitre itself (a signal to script(1) would reach it as a SIGHUP: a reload).
      process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGTERM');
      for (let i = 0; i < 100 && tty.alive(); i++) await new Promise((r) => setTimeout(r, 50));
      await tty.stop();
      const plain = tty.logs().replace(/\u001b\[[0-9;]*m/g, '').replace(/\r/g, '');
      assert.match(plain, /^\[\d\d:\d\d:\d\d\.\d{3}\] LOG: pgmaitre listening on 127\.0\.0\.1:\d+ {2}event=listening addresses=127\.0\.0\.1 port=\d+$/m);
      assert.match(plain, /^\[[\d:.]+\] LOG: received SIGTERM, shutting down {2}event=signal signal=SIGTERM$/m);
      assert.match(plain, /^\[[\d:.]+\] LOG: primary node is 0 {2}event=primary_found node_id=0$/m);
      assert.ok(!/^\{"level"/m.test(plain), `no JSON line on a terminal:\n${plain}`);
      assert.match(tty.logs(), /\u001b\[32mINFO/, 'levels are coloured on a terminal');
      const pipe = await spawnServer({ name: 'pgmaitre in a pipe', cmd: process.execPath, args: [path.join(REPO_ROOT, 'bin', 'pgmaitre.js'), '-n', '-f', conf], port, cwd: dir });
      cleanup.push(() => pipe.stop());
      await pipe.waitForLog(/pgmaitre listening on/);
      await pipe.stop();
      const lines = pipe.logs().split('\n').filter(Boolean);
      for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), `JSON line: ${l}`);
      assert.ok(lines.some((l) => (JSON.parse(l) as { event?: string }).event === 'listening'));
      // log_format = text asks for the human form in a pipe too (no colours there).
      fs.appendFileSync(conf, "log_format = 'text'\n");
      const text = await spawnServer({ name: 'pgmaitre log_format=text', cmd: process.execPath, args: [path.join(REPO_ROOT, 'bin', 'pgmaitre.js'), '-n', '-f', conf], port, cwd: dir });
      cleanup.push(() => text.stop());
      await text.waitForLog(/pgmaitre listening on/);
      await text.stop();
      assert.match(text.logs(), /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] LOG: pgmaitre listening on /m);
      assert.ok(!text.logs().includes('\u001b['), 'no colour codes outside a terminal');
    } finally {
      for (const c of cleanup) await c().catch(() => {});
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
