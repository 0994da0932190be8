/**
 * The real pcp_* tools (Debian's pgpool2) and `pgmaitre <pcp command>` against a real pgmaitre
 * (the CLI as a child process) in front of a real primary + 2 standbys: node/process/pool
 * listings, detach/attach with the effect on routing, configuration reload (pcp_reload_config,
 * `pgmaitre reload -f` via the pid file, SIGHUP) keeping open sessions, restart-only keys refused,
 * a real promotion, and pcp_stop_pgpool ending the process with status 0.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort, REPO_ROOT, startPgmaitre, withCluster, type PgmaitreProcess } from '../harness/cluster';
import { backendLines, eventually } from '../harness/in-process';
import { pcpHash } from '../../src/config/pcp-conf';

const BIN = ['/usr/sbin', '/usr/bin', '/usr/local/bin'].find((d) => fs.existsSync(path.join(d, 'pcp_node_count')));
const TIMESTAMP = '\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d';

interface Run { code: number; stdout: string; stderr: string }

function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, [...args], { env, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('pcp_* tools and pgmaitre subcommands against a real pgmaitre and cluster', {
  skip: BIN === undefined ? 'pcp_* tools not installed (apt-get install pgpool2)' : false, timeout: 150_000,
}, () => {
  const fx = withCluster({ standbys: 2 });
  let px: PgmaitreProcess;
  let pcpPort: number;
  let tmp: string;
  let baseConfig: string;
  let env: NodeJS.ProcessEnv;
  let pidFile: string;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-admin-pcp-'));
    pcpPort = await freePort();
    pidFile = path.join(tmp, 'pgmaitre.pid');
    const port = await freePort();
    baseConfig = `${backendLines(fx.cluster, [0, 1, 1])}
sr_check_user = 'postgres'
sr_check_period = 1
enable_pool_hba = off
health_check_period = 1
health_check_user = 'postgres'
auto_failback = off
num_init_children = 4
max_pool = 2
port = ${port}
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
pcp_listen_addresses = '127.0.0.1'
pcp_port = ${pcpPort}
pcp_socket_dir = '${tmp}'
# pcp_client_version is left at 'auto': the installed tools' version decides the node-info layout
pid_file_name = '${pidFile}'
`;
    px = await startPgmaitre({ config: baseConfig, files: { 'pcp.conf': `admin:${pcpHash('s3cret')}\n` } });
    const pass = path.join(tmp, 'pcppass');
    fs.writeFileSync(pass, `*:${pcpPort}:admin:s3cret\n`, { mode: 0o600 });
    env = { PATH: process.env['PATH'], HOME: tmp, PCPPASSFILE: pass, LC_ALL: 'C' };
    await eventually(async () => (await pcp('pcp_node_info', '-a')).stdout.split('\n').filter((l) => / up up /.test(l)).length === 3,
      'every node up (pcp_node_info -a)', 15_000);
  });
  after(async () => {
    if (process.env['PGM_DEBUG']) process.stderr.write(px.logs());
    if (px?.alive()) await px.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const conn = (): string[] => ['-h', '127.0.0.1', '-p', String(pcpPort), '-U', 'admin', '-w'];
  const pcp = (tool: string, ...args: string[]): Promise<Run> => run(path.join(BIN!, tool), [...conn(), ...args], env);
  const pgmaitre = (...args: string[]): Promise<Run> => run(process.execPath, [path.join(REPO_ROOT, 'bin', 'pgmaitre.js'), ...args], env);
  const client = (): pg.Client => new pg.Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres' });

  async function ok(tool: string, ...args: string[]): Promise<string> {
    const r = await pcp(tool, ...args);
    assert.equal(r.code, 0, `${tool} ${args.join(' ')}: ${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  /** SHOW POOL_NODES through pgmaitre, by node id. */
  async function poolNodes(): Promise<Map<number, Record<string, string>>> {
    const c = client();
    await c.connect();
    try {
      const r = await c.query<Record<string, string>>('SHOW POOL_NODES');
      return new Map(r.rows.map((row) => [Number(row['node_id']), row]));
    } finally {
      await c.end();
    }
  }

  /** `n` reads in fresh sessions; select_cnt growth per node. */
  async function readsGrowth(n: number): Promise<number[]> {
    const before = await poolNodes();
    for (let i = 0; i < n; i++) {
      const c = client();
      await c.connect();
      await c.query('SELECT 1');
      await c.end();
    }
    const after = await poolNodes();
    return [0, 1, 2].map((id) => Number(after.get(id)!['select_cnt']) - Number(before.get(id)!['select_cnt']));
  }

  test('pcp_node_count, pcp_node_info (one, -a, -v) match the real cluster', async () => {
    assert.equal(await ok('pcp_node_count'), '3\n');
    const lines = (await ok('pcp_node_info', '-a')).trim().split('\n');
    assert.equal(lines.length, 3);
    for (const [i, n] of fx.cluster.nodes.entries()) {
      const role = i === 0 ? 'primary' : 'standby';
      const weight = i === 0 ? '0.000000' : '0.500000';
      // pcp_node_info prints "none" for the primary's empty replication state (as pgpool does).
      const repl = i === 0 ? '0 none none' : '\\d+ streaming async';
      assert.match(lines[i]!, new RegExp(`^${n.host} ${n.port} 2 ${weight} up up ${role} ${role} ${repl} ${TIMESTAMP}$`), lines[i]);
      assert.equal(await ok('pcp_node_info', '-n', String(i)), `${lines[i]}\n`);
    }
    const v = await ok('pcp_node_info', '-n', '1', '-v');
    assert.match(v, new RegExp(`^Hostname\\s+: ${fx.cluster.nodes[1]!.host}$`, 'm'));
    assert.match(v, new RegExp(`^Port\\s+: ${fx.cluster.nodes[1]!.port}$`, 'm'));
    assert.match(v, /^Status Name\s+: up$/m);
    assert.match(v, /^Role\s+: standby$/m);
    assert.match(v, /^Replication State\s+: streaming$/m);
    const bad = await pcp('pcp_node_info', '-n', '7');
    // The tools print the server's error on stderr (and, like pgpool's, still exit 0).
    assert.equal(bad.stdout, '');
    assert.match(bad.stderr, /^ERROR: {2}informing node info failed\nDETAIL: {2}invalid node ID\n/);
  });

  test('pcp_proc_count, pcp_proc_info show a live session; pcp_pool_status; pcp_health_check_stats', async () => {
    const c = client();
    await c.connect();
    try {
      await c.query('SELECT 1');
      const pid = (c as unknown as { processID: number }).processID;
      const pids = (await ok('pcp_proc_count')).trim().split(' ');
      assert.equal(pids.length, 4, 'one pid per client slot (num_init_children)');
      assert.ok(pids.includes(String(pid)), `${pid} in ${pids.join(' ')}`);
      const info = (await ok('pcp_proc_info', '-P', String(pid))).trim().split('\n');
      assert.ok(info.length >= 1);
      for (const l of info) assert.match(l, new RegExp(`^postgres postgres ${TIMESTAMP} \\d+ 3 0 `), l);
      assert.ok(info.some((l) => new RegExp(` ${pid} [01] Idle$`).test(l)), info.join('\n'));
      const v = await ok('pcp_proc_info', '-P', String(pid), '-v');
      assert.match(v, /^Database\s+: postgres$/m);
      assert.match(v, /^Username\s+: postgres$/m);
    } finally {
      await c.end();
    }
    const status = await ok('pcp_pool_status');
    assert.match(status, new RegExp(`name : port\\nvalue: ${px.port}\\n`));
    assert.match(status, /name : health_check_period\nvalue: 1\n/);
    assert.match(status, new RegExp(`name : backend_hostname1\\nvalue: ${fx.cluster.nodes[1]!.host}\\n`));
    await new Promise((r) => setTimeout(r, 1200));
    const hc = await ok('pcp_health_check_stats', '-n', '2');
    const m = new RegExp(`^2 ${fx.cluster.nodes[2]!.host} ${fx.cluster.nodes[2]!.port} up standby ${TIMESTAMP} (\\d+) (\\d+) 0 0 0 `).exec(hc);
    assert.ok(m !== null, hc);
    assert.ok(Number(m[1]) >= 1 && m[1] === m[2], `total ${m[1]} = success ${m[2]}`);
  });

  test('pgmaitre subcommands print what the pcp tools print', async () => {
    const args = ['-h', '127.0.0.1', '-p', String(pcpPort), '-U', 'admin', '-w'];
    const count = await pgmaitre('node-count', ...args);
    assert.deepEqual(count, { code: 0, stdout: '3\n', stderr: '' });
    const info = await pgmaitre('node-info', ...args, '1');
    assert.equal(info.code, 0, info.stderr);
    const tool = await ok('pcp_node_info', '-n', '1');
    assert.equal(info.stdout, tool);
    assert.equal((await pgmaitre('node-info', ...args, '-a')).stdout, await ok('pcp_node_info', '-a'));
    assert.equal((await pgmaitre('proc-info', ...args, '-a')).stdout, await ok('pcp_proc_info', '-a'));
    assert.match(info.stdout, new RegExp(`^${fx.cluster.nodes[1]!.host} ${fx.cluster.nodes[1]!.port} 2 0.500000 up up standby standby `));
    assert.match((await pgmaitre('node-info', ...args, '-n', '0', '-v')).stdout, /^Role\s+: primary$/m);
    const hc = await pgmaitre('health-check-stats', ...args, '-n', '0');
    assert.match(hc.stdout, new RegExp(`^0 ${fx.cluster.nodes[0]!.host} ${fx.cluster.nodes[0]!.port} up primary `));
    assert.equal((await pgmaitre('proc-count', ...args)).stdout.trim().split(' ').length, 4);
    assert.match((await pgmaitre('pool-status', ...args)).stdout, /name : num_init_children\nvalue: 4\n/);
  });

  test('pcp_detach_node 1: down in SHOW POOL_NODES, reads stop going there; pcp_attach_node brings it back', async () => {
    assert.equal(await ok('pcp_detach_node', '-n', '1'), 'pcp_detach_node -- Command Successful\n');
    const nodes = await poolNodes();
    assert.equal(nodes.get(1)!['status'], 'down');
    assert.equal(nodes.get(1)!['pg_status'], 'up', 'the server itself still runs');
    assert.match(await ok('pcp_node_info', '-n', '1'), / down up standby /);
    assert.deepEqual(await readsGrowth(10), [0, 0, 10], 'every read on node 2');
    // Health checks keep running; with auto_failback off the node stays detached.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await poolNodes()).get(1)!['status'], 'down');

    assert.equal(await ok('pcp_attach_node', '-n', '1'), 'pcp_attach_node -- Command Successful\n');
    assert.equal((await poolNodes()).get(1)!['status'], 'up');
    const g = await readsGrowth(30);
    assert.equal(g[0], 0);
    assert.equal(g[1]! + g[2]!, 30);
    assert.ok(g[1]! > 0, `node 1 serves reads again (${g.join(',')})`);
  });

  test('pcp_reload_config, pgmaitre reload -f, SIGHUP: hot changes apply without dropping a session; restart-only ones are refused', async () => {
    const conf = path.join(px.dir, 'pgpool.conf');
    const original = fs.readFileSync(conf, 'utf8');
    const c = client();
    await c.connect();
    try {
      const show = async (p: string): Promise<string> => Object.values((await c.query(`PGPOOL SHOW ${p}`)).rows[0] as Record<string, string>)[0]!;
      assert.equal(await show('log_statement'), 'off');

      // Statements are logged at LOG level, which pgmaitre writes as info: lower log_min_messages too.
      fs.writeFileSync(conf, `${original}\nlog_statement = on\nlog_min_messages = log\n`);
      assert.equal(await ok('pcp_reload_config'), 'pcp_reload_config -- Command Successful\n');
      assert.equal(await show('log_statement'), 'on');
      await c.query("SELECT 'after pcp reload'");
      await px.waitForLog(/statement: SELECT 'after pcp reload'/);

      fs.writeFileSync(conf, `${original}\nlog_statement = on\nlog_min_messages = log\nstatement_level_load_balance = on\n`);
      const r = await pgmaitre('reload', '-f', conf);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`signal sent to pid ${px.pid}`));
      await eventually(async () => (await show('statement_level_load_balance')) === 'on', 'statement_level_load_balance on after pgmaitre reload');

      fs.writeFileSync(conf, `${original}\nlog_statement = off\nstatement_level_load_balance = on\nport = ${await freePort()}\nnum_init_children = 9\n`);
      process.kill(px.pid, 'SIGHUP');
      await px.waitForLog(/changes to (port, num_init_children|num_init_children, port) need a restart/);
      await eventually(async () => (await show('log_statement')) === 'off', 'log_statement off after SIGHUP');
      assert.equal(await show('num_init_children'), '4', 'restart-only change not applied');
      assert.equal(await show('port'), String(px.port));
      // Still served on the old port; the session opened before every reload still works.
      assert.equal((await c.query('SELECT 7 AS x')).rows[0].x, 7);
      assert.equal((await ok('pcp_proc_count')).trim().split(' ').length, 4);
    } finally {
      await c.end();
      fs.writeFileSync(conf, original);
      process.kill(px.pid, 'SIGHUP');
    }
  });

  test('pcp_promote_node 2 promotes the real standby; writes go there', async () => {
    await fx.cluster.waitForReplay();
    const out = await ok('pcp_promote_node', '-n', '2');
    assert.equal(out, 'pcp_promote_node -- Command Successful\n');
    await eventually(async () => {
      const n = await poolNodes();
      return n.get(2)!['role'] === 'primary' && n.get(2)!['pg_role'] === 'primary';
    }, 'node 2 primary in SHOW POOL_NODES', 20_000);
    assert.equal((await fx.cluster.psql('standby2', 'SELECT pg_is_in_recovery()')).trim(), 'f');
    const nodes = await poolNodes();
    assert.equal(nodes.get(0)!['role'], 'standby');
    assert.equal(nodes.get(0)!['status'], 'down', 'the old primary is detached');
    const c = client();
    await c.connect();
    try {
      await c.query('CREATE TABLE after_promote (a int)');
      await c.query('INSERT INTO after_promote VALUES (1)');
    } finally {
      await c.end();
    }
    assert.equal((await fx.cluster.psql('standby2', 'SELECT count(*) FROM after_promote')).trim(), '1');
  });

  test('pcp_stop_pgpool -m fast: open sessions are ended and the process exits 0', async () => {
    const c = client();
    c.on('error', () => undefined);
    await c.connect();
    const ended = new Promise<void>((resolve) => c.once('end', () => resolve()));
    assert.equal(await ok('pcp_stop_pgpool', '-m', 'fast'), 'pcp_stop_pgpool -- Command Successful\n');
    await ended;
    await eventually(() => !px.alive(), 'pgmaitre exited', 15_000);
    const status = await px.stop();
    assert.deepEqual(status, { code: 0, signal: null });
    assert.ok(!fs.existsSync(pidFile), 'pid file removed');
  });
});
