/**
 * Issue 19, online recovery, on real clusters with the pgpool_recovery extension installed in the
 * primary and the shipped scripts (contrib/recovery) in its data directory:
 *   - refusals through the real pcp_recovery_node (primary, node up, extension missing) and
 *     `pgmaitre recovery-node`; a failing script (its message reaches the pcp client and the
 *     log, the node stays down) with a concurrent request refused meanwhile;
 *   - a standby's data directory destroyed, then rebuilt (pg_basebackup + slot) by
 *     pcp_recovery_node while pgbench runs through pgmaitre: 0 failed transactions, the node
 *     shown `recovering`, then attached;
 *   - recovery_timeout exceeded (scripts run from pgmaitre's host: recovery_script_dir);
 *   - the whole loop with auto_recovery: primary stopped, a standby promoted, the old primary
 *     rebuilt with pg_rewind and attached as a standby, no one asking;
 *   - auto_recovery in an HA pair: only the instance holding the etcd lease runs the scripts.
 * Skips when the extension or the pcp tools are not installed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { withCluster, type Cluster } from '../harness/cluster';
import { eventually, startInProcess, type InProcess } from '../harness/in-process';
import { exec } from '../harness/exec';
import { freePort } from '../../src/demo/free-port';
import { pcpHash } from '../../src/config/pcp-conf';
import { poolNodesRows } from '../../src/admin/commands/show-pool-nodes';
import { runPcpCommand } from '../../src/pcp/cli';
import { ensurePostgres } from '../../src/demo/postgres-bin';
import { CONTRIB_RECOVERY, installPgpoolRecovery, installScripts, pgpoolRecoveryMissing } from '../harness/pgpool-recovery';
import { etcdBinary, startEtcd, type TestEtcd } from '../harness/etcd';

const PCP_BIN = ['/usr/sbin', '/usr/bin', '/usr/local/bin'].find((d) => fs.existsSync(path.join(d, 'pcp_recovery_node')));
let major: number | undefined;
try { major = ensurePostgres({ install: false }).major; } catch { major = undefined; }
const SKIP = PCP_BIN === undefined ? 'pcp_recovery_node not installed (apt-get install pgpool2)'
  : major === undefined ? 'PostgreSQL not installed' : pgpoolRecoveryMissing(major) ?? false;

/** pg_rewind needs full_page_writes and wal_log_hints (the harness turns full_page_writes off). */
const SETTINGS = { full_page_writes: 'on', wal_log_hints: 'on' };
const HEALTH = "sr_check_user = 'postgres'\nhealth_check_user = 'postgres'\nhealth_check_period = 1\nhealth_check_timeout = 3\nhealth_check_max_retries = 0\nsr_check_period = 1\nsearch_primary_node_timeout = 0\n";

/** Backend lines with data directories; application names as the recovered nodes will use them. */
function backends(c: Cluster, appNames: readonly string[]): string {
  return c.nodes.map((n, i) => [
    `backend_hostname${i} = '${n.host}'`, `backend_port${i} = ${n.port}`, `backend_weight${i} = 1`,
    `backend_flag${i} = 'ALLOW_TO_FAILOVER'`, `backend_data_directory${i} = '${n.dataDir}'`,
    `backend_application_name${i} = '${appNames[i] ?? n.id}'`,
  ].join('\n')).join('\n');
}

interface Pcp { port: number; env: NodeJS.ProcessEnv; dir: string }

async function pcpSetup(): Promise<Pcp & { conf: string; files: Record<string, string> }> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-recovery-pcp-'));
  const pass = path.join(dir, 'pcppass');
  fs.writeFileSync(pass, `*:${port}:admin:s3cret\n`, { mode: 0o600 });
  return {
    port, dir, env: { ...process.env, PCPPASSFILE: pass },
    conf: `pcp_listen_addresses = '127.0.0.1'\npcp_port = ${port}\npcp_socket_dir = ''\n`,
    files: { 'pcp.conf': `admin:${pcpHash('s3cret')}\n` },
  };
}

function pcpRecover(p: Pcp, id: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return exec(path.join(PCP_BIN ?? '', 'pcp_recovery_node'), ['-h', '127.0.0.1', '-p', String(p.port), '-U', 'admin', '-w', '-n', String(id)], { env: p.env, timeoutMs: 240_000 });
}

/** Rewrites pgpool.conf with `extra` appended and reloads (recovery_* keys are hot). */
async function reloadWith(px: InProcess, base: string, extra: string): Promise<void> {
  const conf = path.join(px.dir, 'pgpool.conf');
  const text = fs.readFileSync(base, 'utf8');
  fs.writeFileSync(conf, `${text}\n${extra}\n`);
  await px.app.reload();
}

async function query(px: InProcess, sql: string): Promise<unknown[]> {
  const c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres' });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return (await c.query(sql)).rows;
  } finally {
    await c.end();
  }
}

describe('pcp_recovery_node through the pgpool_recovery extension', { skip: SKIP, timeout: 600_000 }, () => {
  const fx = withCluster({ standbys: 2, pgbench: 1, settings: SETTINGS });
  let px: InProcess;
  let pcp: Awaited<ReturnType<typeof pcpSetup>>;
  let baseConf: string;

  before(async () => {
    await installPgpoolRecovery(fx.cluster, {
      // A failing first stage: takes a while (so a second request finds it running), then says why.
      failing_stage: '#!/bin/sh\nsleep 3\necho "recovery_1st_stage: ERROR: target disk is full" >&2\necho "target disk is full" >> "$1/pgmaitre_recovery.log"\nexit 1\n',
    });
    pcp = await pcpSetup();
    px = await startInProcess(`${backends(fx.cluster, ['primary', 'server1', 'standby2'])}\n${HEALTH}${pcp.conf}enable_pool_hba = off\nnum_init_children = 16\n`
      + "recovery_user = 'postgres'\nrecovery_1st_stage_command = 'recovery_1st_stage'\nrecovery_timeout = 60\ndelay_threshold = 10000000\n", pcp.files);
    baseConf = path.join(pcp.dir, 'base.conf');
    fs.copyFileSync(path.join(px.dir, 'pgpool.conf'), baseConf);
  });
  after(async () => {
    await px?.stop();
    if (pcp !== undefined) fs.rmSync(pcp.dir, { recursive: true, force: true });
  });

  test('refused: the primary, a node that is up, an unknown node, a missing extension', async () => {
    const primary = await pcpRecover(pcp, 0);
    // pgpool-II 4.3's pcp tools exit 0 even on an error: stderr says it.
    assert.equal(primary.stdout, '', JSON.stringify(primary));
    assert.match(primary.stderr, /process recovery request failed[\s\S]*primary server cannot be recovered by online recovery/);
    const up = await pcpRecover(pcp, 1);
    assert.match(up.stderr, /node recovery failed, node id: 1 is alive/);
    assert.match(px.logs(), /recovery request for node 0 refused: process recovery request failed: primary server cannot be recovered/);
    assert.match((await pcpRecover(pcp, 7)).stderr, /node id 7 is not valid/);
    // The CLI face: same request, same refusal.
    let err = '';
    const code = await runPcpCommand(['recovery-node', '-h', '127.0.0.1', '-p', String(pcp.port), '-U', 'admin', '-w', '-n', '0'],
      { stdout: { write: () => true }, stderr: { write: (s: string) => (err += s) }, env: pcp.env });
    assert.equal(code, 1);
    assert.match(err, /primary server cannot be recovered/);
    // The extension lives in database postgres only: recovery_database = template1 lacks it.
    await px.app.health.detachNode(2);
    await reloadWith(px, baseConf, "recovery_database = 'template1'");
    const missing = await pcpRecover(pcp, 2);
    assert.match(missing.stderr, /pgpool_recovery extension is missing[\s\S]*CREATE EXTENSION pgpool_recovery[\s\S]*recovery_script_dir/);
    assert.equal(px.app.ctx.cluster.node(2)?.status, 'down');
  });

  test("a failing script: its error reaches the pcp client and the log, a concurrent request is refused, the node stays down", async () => {
    await reloadWith(px, baseConf, "recovery_1st_stage_command = 'failing_stage'");
    const first = pcpRecover(pcp, 2);
    await eventually(() => px.app.recovery.progress()?.nodeId === 2, 'recovery of node 2 running', 10_000);
    const second = await pcpRecover(pcp, 2);
    assert.match(second.stderr, /FATAL:\s+process recovery request failed[\s\S]*already processing another recovery request/);
    const r = await first;
    assert.doesNotMatch(r.stdout, /Successful/);
    assert.match(r.stderr, /execution of command failed at "1st stage"[\s\S]*failing_stage[\s\S]*target disk is full/);
    assert.match(px.logs(), /node recovery of node 2 failed[^\n]*target disk is full/);
    assert.equal(px.app.ctx.cluster.node(2)?.status, 'down');
    assert.equal(px.app.recovery.progress(), null);
    const events = px.app.admin?.adminCtx.recentEvents?.() ?? [];
    assert.ok(events.some((e) => e.kind === 'recovery_failed' && e.nodeId === 2), JSON.stringify(events));
    await reloadWith(px, baseConf, '');
    await px.app.health.attachNode(2);
  });

  test('a standby whose data directory was destroyed is rebuilt while pgbench runs: 0 failed transactions', async () => {
    const c = fx.cluster;
    const s1 = c.nodes[1]!;
    await c.stopNode('standby1', 'immediate');
    fs.rmSync(s1.dataDir, { recursive: true, force: true });
    await eventually(() => px.app.ctx.cluster.node(1)?.status === 'down', 'node 1 down', 15_000);
    // 15 s: the recovery takes ~3 s (6 s on a machine loaded 8 times over) after the 2 s below;
    // the load must span it and a few seconds of the rebuilt node serving
    const bench = exec(c.pg.bin('pgbench'), ['-n', '-b', 'tpcb-like@1', '-b', 'select-only@4', '-c', '4', '-j', '2', '-T', '15',
      '-h', '127.0.0.1', '-p', String(px.port), '-U', 'postgres', 'postgres'], { timeoutMs: 120_000 });
    let benchEnded = false;
    void bench.then(() => { benchEnded = true; });
    await new Promise((r) => setTimeout(r, 2000));
    const seen = new Set<string>();
    const watch = setInterval(() => { seen.add(poolNodesRows(px.app.admin!.adminCtx, -1)[1]?.[3] ?? ''); }, 50);
    const t0 = Date.now();
    const r = await pcpRecover(pcp, 1);
    clearInterval(watch);
    const took = Date.now() - t0;
    if (benchEnded) process.stdout.write(`# note: pgbench ended before the recovery did (${took} ms): the load did not span all of it\n`);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}\n${px.logs().split('\n').filter((l) => /recover|script/.test(l)).join('\n')}`);
    assert.match(r.stdout, /pcp_recovery_node -- Command Successful/);
    assert.ok(seen.has('recovering'), `SHOW POOL_NODES showed ${[...seen].join(', ')}`);
    assert.equal(px.app.ctx.cluster.node(1)?.status, 'up');
    assert.equal(px.app.ctx.cluster.node(1)?.role, 'standby');
    assert.ok(fs.existsSync(path.join(s1.dataDir, 'standby.signal')));
    const out = await bench;
    const text = `${out.stdout}\n${out.stderr}`;
    assert.match(text, /number of failed transactions: 0 /, text);
    assert.doesNotMatch(text, /aborted/i, text);
    assert.equal(out.code, 0, text);
    // It streams through its slot, under the application_name pgpool.conf names it by.
    await eventually(async () => (await c.psql('primary', "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'server1' AND state = 'streaming'")) === '1', 'server1 streaming', 30_000);
    assert.equal(await c.psql('primary', "SELECT active FROM pg_replication_slots WHERE slot_name = 'pgmaitre_node1'"), 't');
    const logs = px.logs();
    for (const stage of ['starting recovering node 1', 'SELECT pgpool_recovery', 'pgpool_remote_start', 'recovery done: node 1']) assert.ok(logs.includes(stage), stage);
    const events = px.app.admin?.adminCtx.recentEvents?.() ?? [];
    assert.ok(events.some((e) => e.kind === 'recovery_done' && e.nodeId === 1));
    // And it serves reads.
    const before1 = px.app.ctx.cluster.node(1)!.counters.select_cnt;
    for (let i = 0; i < 30 && px.app.ctx.cluster.node(1)!.counters.select_cnt === before1; i++) await query(px, 'SELECT 1');
    assert.ok(px.app.ctx.cluster.node(1)!.counters.select_cnt > before1, 'node 1 takes reads after its recovery');
    process.stdout.write(`# recovery of a destroyed standby under pgbench took ${took} ms\n`);
  });

  test('recovery_timeout exceeded (scripts from pgmaitre\'s host): the node stays down', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-recovery-scripts-'));
    try {
      installScripts([dir], { recovery_1st_stage: '#!/bin/sh\necho "first stage for node $5 ($2:$6 $3) from $7:$4, primary data $1"\n', pgpool_remote_start: '#!/bin/sh\necho "not starting $1 $2"\n' });
      await fx.cluster.stopNode('standby2', 'fast');
      await eventually(() => px.app.ctx.cluster.node(2)?.status === 'down', 'node 2 down', 15_000);
      await reloadWith(px, baseConf, `recovery_script_dir = '${dir}'\nrecovery_timeout = 3`);
      const t0 = Date.now();
      const r = await pcpRecover(pcp, 2);
      assert.doesNotMatch(r.stdout, /Successful/);
      assert.match(r.stderr, /recovery is checking if postmaster is started[\s\S]*failed to start in 3 second/);
      assert.ok(Date.now() - t0 >= 3000);
      const logs = px.logs();
      assert.match(logs, new RegExp(`first stage for node 2 \\(127\\.0\\.0\\.1:${fx.cluster.nodes[2]!.port} [^)]*\\) from 127\\.0\\.0\\.1:${fx.cluster.nodes[0]!.port}`));
      assert.match(logs, /not starting 127\.0\.0\.1/);
      assert.equal(px.app.ctx.cluster.node(2)?.status, 'down');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("no extension needed: the shipped scripts run from pgmaitre's host (recovery_script_dir) rebuild a stopped standby", async () => {
    // node 2 (standby2) is stopped and down since the previous test; its data directory is intact.
    assert.equal(px.app.ctx.cluster.node(2)?.status, 'down');
    await reloadWith(px, baseConf, `recovery_script_dir = '${CONTRIB_RECOVERY}'\nrecovery_timeout = 60`);
    const r = await pcpRecover(pcp, 2);
    assert.match(r.stdout, /pcp_recovery_node -- Command Successful/, `${r.stderr}\n${px.logs().split('\n').filter((l) => /recover|script/.test(l)).slice(-20).join('\n')}`);
    assert.equal(px.app.ctx.cluster.node(2)?.status, 'up');
    const logs = px.logs();
    assert.match(logs, /recovery_1st_stage: (pg_rewind done|pg_rewind impossible)/);
    assert.match(logs, /recovery_1st_stage: end: recovery_1st_stage is completed successfully/);
    assert.ok(!fs.existsSync(path.join(fx.cluster.nodes[0]!.dataDir, 'pgmaitre_recovery.log')) || !/node 2/.test(fs.readFileSync(path.join(fx.cluster.nodes[0]!.dataDir, 'pgmaitre_recovery.log'), 'utf8')));
    await eventually(async () => (await fx.cluster.psql('primary', "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'standby2' AND state = 'streaming'")) === '1', 'standby2 streaming again', 30_000);
  });
});

describe('auto_recovery: primary lost, standby promoted, old primary rewound and attached', { skip: SKIP, timeout: 600_000 }, () => {
  const fx = withCluster({ standbys: 2, settings: SETTINGS });
  let px: InProcess;

  before(async () => {
    await installPgpoolRecovery(fx.cluster);
    await fx.cluster.psql('primary', 'CREATE TABLE loop (i int)');
    await fx.cluster.waitForReplay();
    px = await startInProcess(`${backends(fx.cluster, ['server0', 'standby1', 'standby2'])}\n${HEALTH}enable_pool_hba = off\nnum_init_children = 16\n`
      + "recovery_user = 'postgres'\nrecovery_1st_stage_command = 'recovery_1st_stage'\nrecovery_timeout = 60\nauto_recovery = on\nauto_recovery_delay = 2\n");
  });
  after(async () => { await px?.stop(); });

  test('the whole loop needs no one', async () => {
    const c = fx.cluster;
    await query(px, 'INSERT INTO loop VALUES (1)');
    await c.stopNode('primary', 'fast');
    await eventually(() => px.app.ctx.cluster.node(0)?.status === 'down', 'node 0 down', 15_000);
    await c.promote('standby1');
    await c.follow('standby2', 'standby1');
    await eventually(() => px.app.ctx.cluster.primaryId() === 1, 'node 1 is the primary', 30_000);
    await query(px, 'INSERT INTO loop VALUES (2)');
    await eventually(() => px.app.ctx.cluster.node(0)?.status === 'up', 'node 0 recovered and attached', 180_000);
    assert.equal(px.app.ctx.cluster.node(0)?.role, 'standby');
    const logs = px.logs();
    assert.match(logs, /auto_recovery_delay = 2\): recovering it/);
    assert.match(logs, /recovery done: node 0/);
    // pg_rewind did it (its message is in the primary's server log; the slot and the data tell the rest).
    const oldPrimary = c.nodes.find((x) => x.id === 'primary')!;
    assert.ok(fs.existsSync(path.join(oldPrimary.dataDir, 'standby.signal')));
    assert.match(fs.readFileSync(path.join(oldPrimary.dataDir, 'postgresql.auto.conf'), 'utf8'), /application_name=server0/);
    const serverLog = fs.readFileSync(c.nodes.find((x) => x.id === 'standby1')!.logFile, 'utf8');
    assert.match(serverLog, /pg_rewind done/, 'the first stage rewound the old primary');
    await query(px, 'INSERT INTO loop VALUES (3)');
    await eventually(async () => (await c.psql('standby1', "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'server0' AND state = 'streaming'")) === '1', 'old primary streams from the new one', 30_000);
    const n = await exec(c.pg.bin('psql'), ['-X', '-A', '-t', '-h', '127.0.0.1', '-p', String(oldPrimary.port), '-U', 'postgres', '-c', 'SELECT pg_is_in_recovery(), count(*) FROM loop', 'postgres']);
    await eventually(async () => (await exec(c.pg.bin('psql'), ['-X', '-A', '-t', '-h', '127.0.0.1', '-p', String(oldPrimary.port), '-U', 'postgres', '-c', 'SELECT count(*) FROM loop', 'postgres'])).stdout.trim() === '3', 'old primary replays the new writes', 30_000);
    assert.match(n.stdout, /^t\|/);
    const events = px.app.admin?.adminCtx.recentEvents?.() ?? [];
    assert.ok(events.some((e) => e.kind === 'recovery_started' && e.nodeId === 0 && /auto_recovery/.test(e.message)));
  });
});

describe('auto_recovery in an HA pair: only the etcd lease holder recovers', { skip: major === undefined ? 'PostgreSQL not installed' : etcdBinary() === null ? 'etcd is not installed' : false, timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 1 });
  let etcd: TestEtcd;
  const pair: InProcess[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-recovery-pair-'));
  const ran = path.join(dir, 'ran.log');

  before(async () => {
    etcd = await startEtcd();
    fs.writeFileSync(ran, '');
    for (const name of ['A', 'B']) {
      const scripts = path.join(dir, name);
      fs.mkdirSync(scripts);
      // Each instance's first stage says who ran it, then fails: the node stays down, attempts repeat.
      installScripts([scripts], { recovery_1st_stage: `#!/bin/sh\necho ${name} >> ${ran}\nexit 1\n`, pgpool_remote_start: '#!/bin/sh\nexit 0\n' });
      pair.push(await startInProcess(`${backends(fx.cluster, ['primary', 'standby1'])}\n${HEALTH}enable_pool_hba = off\n`
        + `recovery_user = 'postgres'\nrecovery_1st_stage_command = 'recovery_1st_stage'\nrecovery_script_dir = '${scripts}'\nauto_recovery = on\nauto_recovery_delay = 1\n`
        + `etcd_endpoints = '${etcd.endpoint}'\netcd_prefix = '/pgmaitre-recovery-test/'\netcd_lease_ttl = 3\netcd_instance_name = '${name}'\n`));
    }
  });
  after(async () => {
    for (const p of pair) await p.stop().catch(() => undefined);
    await etcd?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a standby stays down: the lease holder tries to recover it, the other instance never does', async () => {
    await eventually(() => pair.some((p) => p.app.health.gate?.leading === true), 'one instance holds the lease', 20_000);
    const holder = pair.find((p) => p.app.health.gate?.leading === true)!;
    const name = holder.app.health.gate!.name;
    await fx.cluster.stopNode('standby1', 'fast');
    await eventually(() => pair.every((p) => p.app.ctx.cluster.node(1)?.status === 'down'), 'node 1 down on both', 15_000);
    await eventually(() => fs.readFileSync(ran, 'utf8').split('\n').filter(Boolean).length >= 2, 'two attempts', 30_000);
    const who = new Set(fs.readFileSync(ran, 'utf8').split('\n').filter(Boolean));
    assert.deepEqual([...who], [name]);
    assert.equal(pair.find((p) => p !== holder)!.app.recovery.progress(), null);
  });
});
