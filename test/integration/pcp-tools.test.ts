/**
 * The real pcp_* tools (Debian's pgpool2 package) against pgmaitre's PCP server, over TCP and
 * the Unix socket, with an AdminContext over a real Cluster whose actions record their calls.
 * No PostgreSQL needed. Skips when the tools are not installed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createPcpServer, type PcpServer } from '../../src/pcp/server';
import { pcpHash } from '../../src/config/pcp-conf';
import { pgTimestamp } from '../../src/admin/format';
import { PcpClient } from '../../src/pcp/client';
import { addSession, makeContext, type TestContext } from '../fixtures/admin/context';

const BIN = ['/usr/sbin', '/usr/bin', '/usr/local/bin'].find((d) => fs.existsSync(path.join(d, 'pcp_node_count')));

function run(tool: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(path.join(BIN ?? '', tool), args, { env, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

function toolVersion(): Promise<'4.3' | '4.4'> {
  return new Promise((resolve) => {
    execFile(path.join(BIN ?? '', 'pcp_node_info'), ['--version'], (_e, out, errOut) => {
      const m = /(\d+)\.(\d+)/.exec(String(out) + String(errOut));
      resolve(m !== null && (Number(m[1]) < 4 || (Number(m[1]) === 4 && Number(m[2]) <= 3)) ? '4.3' : '4.4');
    });
  });
}

describe('real pcp_* tools against the PCP server', { skip: BIN === undefined ? 'pcp_* tools not installed (apt-get install pgpool2)' : false }, () => {
  let t: TestContext;
  let server: PcpServer;
  let port: number;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const tcp = (): string[] => ['-h', '127.0.0.1', '-p', String(port), '-U', 'admin', '-w'];

  before(async () => {
    t = makeContext();
    addSession(t);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgmaitre-pcp-'));
    server = createPcpServer(t.ctx, {
      port: 0, listenAddresses: '127.0.0.1', socketDir: dir, users: new Map([['admin', pcpHash('s3cret')]]), clientVersion: await toolVersion(),
    });
    port = await server.listen();
    const pass = path.join(dir, 'pcppass');
    fs.writeFileSync(pass, `*:${port}:admin:s3cret\n`, { mode: 0o600 });
    env = { ...process.env, PCPPASSFILE: pass };
  });
  after(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('pcp_node_count', async () => {
    assert.deepEqual(await run('pcp_node_count', tcp(), env), { code: 0, stdout: '3\n', stderr: '' });
  });

  test('pcp_node_info: one node, all nodes, verbose', async () => {
    const ts = (id: number) => pgTimestamp(t.cluster.node(id)!.lastStatusChange);
    const one = await run('pcp_node_info', [...tcp(), '-n', '1'], env);
    assert.equal(one.stdout, `db1 5433 2 0.333333 up up standby standby 1024 streaming async ${ts(1)}\n`);
    const all = await run('pcp_node_info', [...tcp(), '-a'], env);
    assert.deepEqual(all.stdout.trim().split('\n'), [
      `db0 5432 2 0.333333 up up primary primary 0 none none ${ts(0)}`,
      `db1 5433 2 0.333333 up up standby standby 1024 streaming async ${ts(1)}`,
      `db2 5434 3 0.333333 down down standby unknown 0 none none ${ts(2)}`,
    ]);
    const v = await run('pcp_node_info', [...tcp(), '-n', '0', '-v'], env);
    assert.match(v.stdout, /^Hostname\s+: db0$/m);
    assert.match(v.stdout, /^Status Name\s+: up$/m);
    assert.match(v.stdout, /^Role\s+: primary$/m);
    const bad = await run('pcp_node_info', [...tcp(), '-n', '9'], env);
    assert.match(bad.stdout + bad.stderr, /ERROR: {2}informing node info failed\nDETAIL: {2}invalid node ID/);
  });

  test('pcp_health_check_stats', async () => {
    Object.assign(t.cluster.node(0)!.health, { total_count: 4, success_count: 4, max_duration: 12, min_duration: 3, total_duration: 20 });
    const r = await run('pcp_health_check_stats', [...tcp(), '-n', '0'], env);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^0 db0 5432 up primary \d{4}-\d\d-\d\d \d\d:\d\d:\d\d 4 4 0 0 0 0\.000000 0 12 3 5\.000000 {4}\n$/);
    const v = await run('pcp_health_check_stats', [...tcp(), '-n', '0', '-v'], env);
    assert.match(v.stdout, /^Average Health Check Duration : 5\.000000$/m);
  });

  test('pcp_proc_count and pcp_proc_info', async () => {
    const c = await run('pcp_proc_count', tcp(), env);
    assert.equal(c.stdout, '2000000000 31337 2000000002 2000000003 \n');
    const i = await run('pcp_proc_info', tcp(), env);
    assert.deepEqual(i.stdout.trim().split('\n'), [
      'app alice 2024-01-02 03:05:00 1 3 0 2024-01-02 03:05:01 2024-01-02 03:05:00 0  3 1000 1 31337 0 Idle',
      'app alice 2024-01-02 03:05:00 1 3 0 2024-01-02 03:05:02 2024-01-02 03:05:00 0  2 1001 1 31337 1 Idle',
    ]);
    const v = await run('pcp_proc_info', [...tcp(), '-P', '31337', '-v'], env);
    assert.match(v.stdout, /^Backend PID\s+: 1001$/m);
  });

  test("pcp_proc_info: the answer carries 4.7's 21 fields; the 4.3 tool reads its 17 and ignores the rest", async () => {
    // libpcp copies exactly as many fields as its own POOL_REPORT_POOLS has (17 in 4.3, 18 in
    // 4.6, 21 in 4.7) and never looks past them, so trailing fields are safe for older tools
    // while a 4.7 tool finds client_host, client_port and statement where it expects them.
    const s = t.sessions[0]!;
    (s.backends[1] as { statement?: string }).statement = `SELECT '${'x'.repeat(3000)}' AS "a b"`;
    const c = await PcpClient.connect({ host: '127.0.0.1', port, user: 'admin', password: 's3cret' });
    try {
      const rows = (await c.request('P', Buffer.from('31337\0'), 'p')).filter((x) => x[0] === 'ProcessInfo');
      assert.equal(rows.length, 6);
      for (const r of rows) assert.equal(r.length, 1 + 21);
      assert.deepEqual(rows[1]!.slice(19, 21), ['127.0.0.1', '50000']);
      assert.equal(Buffer.byteLength(rows[1]![21]!), 1023);
      assert.equal(rows[0]![21], '');
    } finally {
      c.close();
    }
    const i = await run('pcp_proc_info', [...tcp(), '-P', '31337'], env);
    assert.equal(i.code, 0, i.stderr);
    assert.deepEqual(i.stdout.trim().split('\n'), [
      'app alice 2024-01-02 03:05:00 1 3 0 2024-01-02 03:05:01 2024-01-02 03:05:00 0  3 1000 1 31337 0 Idle',
      'app alice 2024-01-02 03:05:00 1 3 0 2024-01-02 03:05:02 2024-01-02 03:05:00 0  2 1001 1 31337 1 Idle',
    ]);
  });

  test("pcp_log_rotate's request ('V' + scope) is answered CommandComplete and rotates the log", async () => {
    // Debian's 4.3.5 tools predate pcp_log_rotate (4.4): send its packet as libpcp 4.7 does.
    t.calls.length = 0;
    const c = await PcpClient.connect({ host: '127.0.0.1', port, user: 'admin', password: 's3cret' });
    try {
      const r = await c.request('V', Buffer.from('l'), 'v');
      assert.deepEqual(r, [['CommandComplete']]);
    } finally {
      c.close();
    }
    assert.deepEqual(t.calls, ['log_rotate']);
  });

  test('pcp_pool_status redacts secrets', async () => {
    const r = await run('pcp_pool_status', tcp(), env);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /name : sr_check_password\nvalue: \*{8}\n/);
    assert.match(r.stdout, /name : backend_status2\nvalue: down\n/);
  });

  test('attach, detach (graceful), promote (switchover), reload, stop call the actions', async () => {
    t.calls.length = 0;
    assert.equal((await run('pcp_attach_node', [...tcp(), '-n', '2'], env)).stdout, 'pcp_attach_node -- Command Successful\n');
    assert.equal((await run('pcp_detach_node', [...tcp(), '-g', '-n', '1'], env)).stdout, 'pcp_detach_node -- Command Successful\n');
    assert.equal((await run('pcp_promote_node', [...tcp(), '-s', '-n', '1'], env)).stdout, 'pcp_promote_node -- Command Successful\n');
    assert.equal((await run('pcp_reload_config', tcp(), env)).stdout, 'pcp_reload_config -- Command Successful\n');
    assert.equal((await run('pcp_stop_pgpool', [...tcp(), '-m', 'fast'], env)).stdout, 'pcp_stop_pgpool -- Command Successful\n');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(t.calls, ['attach 2', 'detach 1 graceful', 'promote 1 switchover', 'reload', 'stop fast']);
    assert.equal(t.cluster.node(2)!.status, 'up');
    const p = await run('pcp_promote_node', [...tcp(), '-n', '0'], env);
    assert.match(p.stdout + p.stderr, /specified node is already primary node/);
  });

  test('the Unix-domain socket works (-h <socket dir>)', async () => {
    const r = await run('pcp_node_count', ['-h', dir, '-p', String(port), '-U', 'admin', '-w'], env);
    assert.equal(r.stdout, '3\n');
  });

  test('a wrong password is refused', async () => {
    const bad = path.join(dir, 'badpass');
    fs.writeFileSync(bad, `*:${port}:admin:nope\n`, { mode: 0o600 });
    const r = await run('pcp_node_count', tcp(), { ...env, PCPPASSFILE: bad });
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /FATAL: {2}authentication failed\nDETAIL: {2}username and\/or password does not match/);
  });
});
