/**
 * pgpool-II's logging collector and the 4.7 log switches on a real pgmaitre in front of a real
 * PostgreSQL: with logging_collector = on the log goes to log_directory/log_filename (not
 * stderr); `pgmaitre log-rotate` (pcp_log_rotate's request) begins the file of the moment;
 * log_backend_messages = terse writes pgpool's lines for a query's answer; log_pcp_processes
 * logs the PCP connection.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { freePort, REPO_ROOT, withCluster } from '../harness/cluster';
import { backendLines, eventually } from '../harness/in-process';
import { exec } from '../harness/exec';
import { pcpHash } from '../../src/config/pcp-conf';

const BIN = path.join(REPO_ROOT, 'bin', 'pgmaitre.js');

describe('logging_collector, pcp_log_rotate, log_backend_messages, log_pcp_processes', { timeout: 180_000 }, () => {
  const fx = withCluster({ standbys: 0 });
  let dir: string;
  let logDir: string;
  let port: number;
  let pcpPort: number;
  let child: ChildProcess;
  let stderr = '';

  const files = (): string[] => (fs.existsSync(logDir) ? fs.readdirSync(logDir).sort() : []);
  const allLogs = (): string => files().map((f) => fs.readFileSync(path.join(logDir, f), 'utf8')).join('');

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-logcol-'));
    logDir = path.join(dir, 'log');
    port = await freePort();
    pcpPort = await freePort();
    fs.writeFileSync(path.join(dir, 'pgpool.conf'), [
      "listen_addresses = '127.0.0.1'", `port = ${port}`, "unix_socket_directories = ''",
      "pcp_listen_addresses = '127.0.0.1'", `pcp_port = ${pcpPort}`, "pcp_socket_dir = ''", 'http_port = 0', "pid_file_name = ''",
      "sr_check_user = 'postgres'", backendLines(fx.cluster),
      'logging_collector = on', `log_directory = '${logDir}'`, "log_filename = 'pgmaitre-%H%M%S.log'", 'log_rotation_age = 0', 'log_rotation_size = 0',
      "log_backend_messages = 'terse'", 'log_pcp_processes = on', 'log_format = json',
    ].join('\n'));
    fs.writeFileSync(path.join(dir, 'pcp.conf'), `admin:${pcpHash('pw')}\n`);
    fs.writeFileSync(path.join(dir, 'pcppass'), `*:*:admin:pw\n`, { mode: 0o600 });
    child = spawn(process.execPath, [BIN, '-n', '-f', path.join(dir, 'pgpool.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    await eventually(() => new Promise<boolean>((r) => {
      const c = net.connect(pcpPort, '127.0.0.1', () => { c.destroy(); r(true); });
      c.on('error', () => r(false));
    }), 'pgmaitre listening', 30_000);
  });
  after(async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the log goes to log_directory, not stderr', async () => {
    await eventually(() => /pgmaitre listening on/.test(allLogs()), 'the start is logged in the file', 10_000);
    assert.equal(files().length, 1);
    assert.doesNotMatch(stderr, /pgmaitre listening on/);
  });

  test("log_backend_messages = terse: pgpool's lines for a query's answer", async () => {
    const c = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    await c.connect();
    try {
      await c.query('SELECT generate_series(1, 5)');
    } finally {
      await c.end();
    }
    await eventually(() => /last DataRow message from backend 0 repeated 4 times/.test(allLogs()), 'terse lines', 10_000);
    const log = allLogs();
    assert.match(log, /"msg":"RowDescription message from backend 0"/);
    assert.match(log, /"msg":"CommandComplete message from backend 0"/);
  });

  test('pgmaitre log-rotate (pcp_log_rotate) begins a new file; log_pcp_processes logs the PCP connection', async () => {
    const before = files();
    await new Promise((r) => setTimeout(r, 1100)); // log_filename has a seconds field: a new name
    const r = await exec(process.execPath, [BIN, 'log-rotate', '-h', '127.0.0.1', '-p', String(pcpPort), '-U', 'admin', '-w'],
      { env: { ...process.env, PCPPASSFILE: path.join(dir, 'pcppass') } });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stdout, 'pcp_log_rotate -- Command Successful\n');
    await eventually(() => files().length === before.length + 1, 'a second log file', 10_000);
    const newest = files().filter((f) => !before.includes(f))[0]!;
    await eventually(() => /PCP connection from 127\.0\.0\.1:\d+ ended/.test(fs.readFileSync(path.join(logDir, newest), 'utf8')), 'the PCP connection end in the new file', 10_000);
    assert.match(allLogs(), /PCP connection from 127\.0\.0\.1:\d+ accepted/);
  });
});
