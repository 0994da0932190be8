/**
 * Issue 19, item 3: the shipped recovery scripts (contrib/recovery) over SSH, for real. A real
 * OpenSSH server (Debian's openssh-server, started here as root on 127.0.0.1 and a free port,
 * with a throw-away host key, config and authorized_keys) lets the PostgreSQL OS user log in
 * as itself with a throw-away client key; the scripts, run by the pgpool_recovery extension
 * on the primary, get RECOVERY_SSH=always and SSH_OPTIONS (port, key, known_hosts) from the
 * server's environment — as a DBA would set them in /etc/postgresql/<major>/<cluster>/environment
 * or the service's Environment= — so every command on the target goes through sshd. Then a
 * standby whose data directory was destroyed is rebuilt by the real pcp_recovery_node, started
 * over SSH, and attached; sshd's own log shows the logins.
 * (The one-host path: test/integration/online-recovery.test.ts; quoting with a stand-in ssh:
 * test/unit/recovery/scripts.test.ts.)
 * Skips, saying why, when sshd, the pcp tools or the extension are not installed, or when not root.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { withCluster } from '../harness/cluster';
import { eventually, startInProcess, type InProcess } from '../harness/in-process';
import { exec } from '../harness/exec';
import { freePort } from '../../src/demo/free-port';
import { pcpHash } from '../../src/config/pcp-conf';
import { ensurePostgres } from '../../src/demo/postgres-bin';
import { chownToServerUser, isRoot } from '../../src/demo/pg-exec';
import { installPgpoolRecovery, pgpoolRecoveryMissing } from '../harness/pgpool-recovery';

const SSHD = '/usr/sbin/sshd';
const PCP_BIN = ['/usr/sbin', '/usr/bin', '/usr/local/bin'].find((d) => fs.existsSync(path.join(d, 'pcp_recovery_node')));
let major: number | undefined;
try { major = ensurePostgres({ install: false }).major; } catch { major = undefined; }
const SKIP = !fs.existsSync(SSHD) ? `${SSHD} not found (apt-get install openssh-server)`
  : spawnSync('ssh', ['-V']).error !== undefined ? 'ssh client not found (apt-get install openssh-client)'
  : !isRoot() ? 'needs root: sshd must run as root to log in as the PostgreSQL OS user'
  : PCP_BIN === undefined ? 'pcp_recovery_node not installed (apt-get install pgpool2)'
  : major === undefined ? 'PostgreSQL not installed' : pgpoolRecoveryMissing(major) ?? false;

const OS_USER = process.env['PG_OS_USER'] ?? 'postgres';

interface Sshd { proc: ChildProcess; port: number; dir: string; log: () => string }

function keygen(file: string): void {
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'pgmaitre-test', '-f', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
}

/** sshd -D -e on 127.0.0.1:<free port>, throw-away keys; resolves once it listens. */
async function startSshd(): Promise<Sshd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-sshd-'));
  fs.chmodSync(dir, 0o755); // the server OS user reads its key and known_hosts here
  const port = await freePort();
  keygen(path.join(dir, 'host_key'));
  keygen(path.join(dir, 'client_key'));
  chownToServerUser(path.join(dir, 'client_key')); // ssh wants its private key 0600 and its own
  fs.copyFileSync(path.join(dir, 'client_key.pub'), path.join(dir, 'authorized_keys'));
  fs.chmodSync(path.join(dir, 'authorized_keys'), 0o644);
  const hostPub = fs.readFileSync(path.join(dir, 'host_key.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
  fs.writeFileSync(path.join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${hostPub}\n`, { mode: 0o644 });
  const conf = path.join(dir, 'sshd_config');
  fs.writeFileSync(conf, [
    'ListenAddress 127.0.0.1',
    `HostKey ${dir}/host_key`,
    `PidFile ${dir}/sshd.pid`,
    `AuthorizedKeysFile ${dir}/authorized_keys`,
    'StrictModes no',
    // the postgres account has a locked password ('!'): without PAM sshd refuses any login to it
    'UsePAM yes',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin no',
    `AllowUsers ${OS_USER}`,
    'X11Forwarding no',
    'AllowTcpForwarding no',
    'LogLevel INFO',
    '',
  ].join('\n'), { mode: 0o600 });
  // the privilege separation directory (the ssh service creates it; it is not running here)
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const proc = spawn(SSHD, ['-D', '-e', '-f', conf, '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (s: string) => { log += s; });
  const sshd: Sshd = { proc, port, dir, log: () => log };
  try {
    await eventually(() => {
      if (proc.exitCode !== null) throw new Error(`sshd exited (${proc.exitCode}): ${log}`);
      return /Server listening on 127\.0\.0\.1 port/.test(log);
    }, 'sshd listening', 15_000);
  } catch (err) {
    await stopSshd(sshd);
    throw err;
  }
  return sshd;
}

async function stopSshd(s: Sshd): Promise<void> {
  if (s.proc.exitCode === null && s.proc.signalCode === null && s.proc.pid !== undefined) {
    const gone = new Promise((r) => s.proc.once('exit', r));
    process.kill(s.proc.pid, 'SIGTERM');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
  }
  fs.rmSync(s.dir, { recursive: true, force: true });
}

describe('online recovery over SSH: a real sshd, pcp_recovery_node, the shipped scripts', { skip: SKIP, timeout: 120_000 }, () => {
  let sshd: Sshd | undefined;
  const saved = { RECOVERY_SSH: process.env['RECOVERY_SSH'], SSH_OPTIONS: process.env['SSH_OPTIONS'] };
  // Before the cluster starts: its servers (and so the scripts the extension runs) inherit these.
  before(async () => {
    sshd = await startSshd();
    process.env['RECOVERY_SSH'] = 'always';
    process.env['SSH_OPTIONS'] = [
      '-p', String(sshd.port), '-i', `${sshd.dir}/client_key`, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes',
      '-o', `UserKnownHostsFile=${sshd.dir}/known_hosts`, '-o', 'GlobalKnownHostsFile=/dev/null',
      '-o', 'StrictHostKeyChecking=yes', '-o', 'ConnectTimeout=10',
    ].join(' ');
  });
  const fx = withCluster({ standbys: 1, settings: { full_page_writes: 'on', wal_log_hints: 'on' } });
  let px: InProcess | undefined;
  let pcpDir: string | undefined;
  let pcpPort = 0;

  before(async () => {
    await installPgpoolRecovery(fx.cluster);
    pcpPort = await freePort();
    pcpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-recovery-ssh-pcp-'));
    fs.writeFileSync(path.join(pcpDir, 'pcppass'), `*:${pcpPort}:admin:s3cret\n`, { mode: 0o600 });
    const nodes = fx.cluster.nodes.map((n, i) => [
      `backend_hostname${i} = '${n.host}'`, `backend_port${i} = ${n.port}`, `backend_weight${i} = 1`,
      `backend_flag${i} = 'ALLOW_TO_FAILOVER'`, `backend_data_directory${i} = '${n.dataDir}'`,
      `backend_application_name${i} = '${i === 0 ? 'primary' : `server${i}`}'`,
    ].join('\n')).join('\n');
    px = await startInProcess(`${nodes}\nsr_check_user = 'postgres'\nhealth_check_user = 'postgres'\nhealth_check_period = 1\n`
      + 'health_check_timeout = 3\nhealth_check_max_retries = 0\nsr_check_period = 1\nsearch_primary_node_timeout = 0\n'
      + `pcp_listen_addresses = '127.0.0.1'\npcp_port = ${pcpPort}\npcp_socket_dir = ''\nenable_pool_hba = off\n`
      + "recovery_user = 'postgres'\nrecovery_1st_stage_command = 'recovery_1st_stage'\nrecovery_timeout = 60\n",
    { 'pcp.conf': `admin:${pcpHash('s3cret')}\n` });
  });

  after(async () => {
    await px?.stop();
    if (pcpDir !== undefined) fs.rmSync(pcpDir, { recursive: true, force: true });
    if (sshd !== undefined) await stopSshd(sshd);
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  test('a standby whose data directory was destroyed is rebuilt and started through sshd', async () => {
    const c = fx.cluster;
    const s1 = c.nodes[1]!;
    const app = px!.app;
    await c.stopNode(s1.id, 'immediate');
    fs.rmSync(s1.dataDir, { recursive: true, force: true });
    await eventually(() => app.ctx.cluster.node(1)?.status === 'down', 'node 1 down', 15_000);
    const loginsBefore = (sshd!.log().match(/Accepted publickey for postgres from 127\.0\.0\.1/g) ?? []).length;

    const r = await exec(path.join(PCP_BIN ?? '', 'pcp_recovery_node'), ['-h', '127.0.0.1', '-p', String(pcpPort), '-U', 'admin', '-w', '-n', '1'],
      { env: { ...process.env, PCPPASSFILE: path.join(pcpDir!, 'pcppass') }, timeoutMs: 90_000 });
    const primaryLog = (() => { try { return fs.readFileSync(c.primary.logFile, 'utf8').split('\n').filter((l) => /recovery|ssh|pgpool_remote_start/i.test(l)).slice(-30).join('\n'); } catch { return ''; } })();
    const why = `${r.stdout}\n${r.stderr}\n--- sshd:\n${sshd!.log()}\n--- primary log:\n${primaryLog}`;
    assert.equal(r.code, 0, why);
    assert.match(r.stdout, /pcp_recovery_node -- Command Successful/, why);

    // Every target command went through sshd: the 1st stage's check and its work, then the start.
    const logins = (sshd!.log().match(/Accepted publickey for postgres from 127\.0\.0\.1/g) ?? []).length - loginsBefore;
    assert.ok(logins >= 3, `expected >= 3 SSH logins as postgres, saw ${logins}\n${why}`);
    assert.match(fs.readFileSync(path.join(c.primary.dataDir, 'pgmaitre_recovery.log'), 'utf8'), /node 1 ready to start as a standby[^\n]*pg_basebackup/);

    assert.equal(app.ctx.cluster.node(1)?.status, 'up');
    assert.equal(app.ctx.cluster.node(1)?.role, 'standby');
    assert.ok(fs.existsSync(path.join(s1.dataDir, 'standby.signal')));
    await eventually(async () => (await c.psql(c.primary.id, "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'server1' AND state = 'streaming'")) === '1', 'server1 streaming', 30_000);
    assert.equal(await c.psql(c.primary.id, "SELECT active FROM pg_replication_slots WHERE slot_name = 'pgmaitre_node1'"), 't');
    process.stdout.write(`# node 1 rebuilt over SSH: ${logins} logins as postgres through sshd on 127.0.0.1:${sshd!.port}\n`);
  });
});
