/**
 * A listener that cannot open stops the start (issue 21, item 6). A DBA trying pgmaitre beside a
 * running pgpool-II with a copy of its pgpool.conf finds 9999, 9898 or the Unix socket taken:
 * pgmaitre must say which address, port, key and why, and exit non-zero (so systemd's
 * Restart=on-failure sees a failure), for the client port, the dedicated ports, the PCP port,
 * the HTTP port and the Unix sockets alike. `pgmaitre check` warns about the same ports.
 * The occupied ports are real listening sockets held by this test process.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, REPO_ROOT, withCluster } from '../harness/cluster';
import { backendLines } from '../harness/in-process';
import { exec } from '../harness/exec';

const BIN = path.join(REPO_ROOT, 'bin', 'pgmaitre.js');

/** A real listener on 127.0.0.1 (a port) or a Unix socket file, held until close(). */
async function occupy(where: { port: number } | { path: string }): Promise<net.Server> {
  const srv = net.createServer((s) => s.destroy());
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen('port' in where ? { host: '127.0.0.1', port: where.port } : { path: where.path }, resolve);
  });
  return srv;
}

const close = (srv: net.Server): Promise<void> => new Promise((r) => srv.close(() => r()));

describe('a listener that cannot open stops the start', { timeout: 180_000 }, () => {
  const fx = withCluster({ standbys: 0 });
  let dir: string;
  let base: { port: number; pcp: number; http: number; write: number };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-listen-'));
    fs.chmodSync(dir, 0o755);
    base = { port: await freePort(), pcp: await freePort(), http: await freePort(), write: await freePort() };
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  function writeConf(extra = ''): string {
    const conf = path.join(dir, 'pgpool.conf');
    fs.writeFileSync(conf, [
      "listen_addresses = '127.0.0.1'", `port = ${base.port}`, "unix_socket_directories = ''",
      "pcp_listen_addresses = '127.0.0.1'", `pcp_port = ${base.pcp}`, "pcp_socket_dir = ''",
      "http_listen_addresses = '127.0.0.1'", `http_port = ${base.http}`, `write_port = ${base.write}`,
      "pid_file_name = ''", "sr_check_user = 'postgres'", "health_check_user = 'postgres'", 'log_format = json',
      backendLines(fx.cluster), extra,
    ].join('\n'));
    fs.writeFileSync(path.join(dir, 'pcp.conf'), '');
    return conf;
  }

  async function start(conf: string): Promise<{ code: number | null; stderr: string }> {
    const r = await exec(process.execPath, [BIN, '-n', '-f', conf], { timeoutMs: 60_000 });
    assert.equal(r.signal, null, `pgmaitre did not exit by itself: ${r.stderr}`);
    return r;
  }

  const cases: { name: string; key: RegExp; port: () => number }[] = [
    { name: 'the PCP port', key: /pcp_listen_addresses\/pcp_port/, port: () => base.pcp },
    { name: 'the HTTP port', key: /http_listen_addresses\/http_port/, port: () => base.http },
    { name: 'the client port (9999)', key: /listen_addresses\/port/, port: () => base.port },
    { name: 'the dedicated write port', key: /listen_addresses\/write_port/, port: () => base.write },
  ];
  for (const c of cases) {
    test(`${c.name} taken: error naming address, port, key and reason; exit 1`, async () => {
      const holder = await occupy({ port: c.port() });
      try {
        const r = await start(writeConf());
        assert.equal(r.code, 1, r.stderr);
        const line = r.stderr.split('\n').find((l) => l.startsWith('pgmaitre: could not start:')) ?? '';
        assert.match(line, new RegExp(`cannot listen on 127\\.0\\.0\\.1 port ${c.port()} `), r.stderr);
        assert.match(line, c.key);
        assert.match(line, /address already in use/);
        assert.doesNotMatch(r.stderr, /"shutting down"/);
      } finally {
        await close(holder);
      }
    });
  }

  test('the Unix socket in use by another process, or its directory missing: exit 1 naming the key', async () => {
    const sockDir = path.join(dir, 'sock');
    fs.mkdirSync(sockDir, { recursive: true });
    const file = path.join(sockDir, `.s.PGSQL.${base.port}`);
    const holder = await occupy({ path: file });
    try {
      const r = await start(writeConf(`unix_socket_directories = '${sockDir}'`));
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`cannot listen on ${file.replace(/\./g, '\\.')} \\(unix_socket_directories\\): socket in use by another process`));
      assert.ok(fs.existsSync(file), "the other process's socket is left alone");
    } finally {
      await close(holder);
    }
    const pcpFile = path.join(sockDir, `.s.PGSQL.${base.pcp}`);
    const pcpHolder = await occupy({ path: pcpFile });
    try {
      const r = await start(writeConf(`pcp_socket_dir = '${sockDir}'`));
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /\(pcp_socket_dir\): socket in use by another process/);
      assert.ok(fs.existsSync(pcpFile), "the other process's PCP socket is left alone");
    } finally {
      await close(pcpHolder);
    }
    const r = await start(writeConf(`unix_socket_directories = '${path.join(dir, 'nope')}'`));
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /\(unix_socket_directories\): directory .*nope does not exist/);
  });

  test('worker_processes = 2: the client port taken stops the start with exit 1 naming it', async () => {
    const holder = await occupy({ port: base.port });
    try {
      const r = await start(writeConf('worker_processes = 2'));
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1 port ${base.port} \\(listen_addresses/port\\): address already in use`));
    } finally {
      await close(holder);
    }
  });

  test('worker_processes = 2 with a Unix socket directory: both workers serve the socket; one held by another process stops the start', async () => {
    const sockDir = path.join(dir, 'wsock');
    fs.mkdirSync(sockDir, { recursive: true });
    const file = path.join(sockDir, `.s.PGSQL.${base.port}`);
    // a stale file left by a process that died: removed, as with one process
    fs.writeFileSync(file, '');
    const conf = writeConf(`worker_processes = 2\nunix_socket_directories = '${sockDir}'`);
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [BIN, '-n', '-f', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    try {
      const deadline = Date.now() + 90_000;
      while (!/workers_ready/.test(out) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 200));
      assert.equal(child.exitCode, null, out);
      assert.match(out, /workers_ready/, out);
      const { Client } = await import('pg');
      // several connections: the supervisor deals them to both workers
      for (let i = 0; i < 4; i++) {
        const c = new Client({ host: sockDir, port: base.port, user: 'postgres', database: 'postgres' });
        await c.connect();
        assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1);
        await c.end();
      }
    } finally {
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      assert.equal(await exited, 0, out);
    }
    const holder = await occupy({ path: file });
    try {
      const r = await start(conf);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /\(unix_socket_directories\): socket in use by another process/);
      assert.ok(fs.existsSync(file), "the other process's socket is left alone");
    } finally {
      await close(holder);
    }
  });

  test('pgmaitre check notes the ports already in use (exit status still judges the files), quiet once they are free', async () => {
    const conf = writeConf();
    const holder = await occupy({ port: base.pcp });
    try {
      const r = await exec(process.execPath, [BIN, 'check', '-f', conf]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, new RegExp(`NOTICE: pgpool.conf: pcp_listen_addresses/pcp_port: cannot listen on 127\\.0\\.0\\.1 port ${base.pcp} now: address already in use`));
    } finally {
      await close(holder);
    }
    const free = await exec(process.execPath, [BIN, 'check', '-f', conf]);
    assert.doesNotMatch(free.stdout, /cannot listen/, free.stdout);
  });

  test('with every port free the same configuration starts (the failures above are the listeners)', async () => {
    const conf = writeConf();
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [BIN, '-n', '-f', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    try {
      const deadline = Date.now() + 30_000;
      const answers = (port: number): Promise<boolean> => new Promise((r) => {
        const c = net.connect(port, '127.0.0.1', () => { c.destroy(); r(true); });
        c.on('error', () => r(false));
      });
      // The HTTP port opens last: once it answers, every listener is open.
      while (!(await answers(base.http)) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
      assert.equal(child.exitCode, null, out);
      for (const p of [base.port, base.write, base.pcp, base.http]) assert.ok(await answers(p), `port ${p} answers`);
    } finally {
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    }
  });
});
