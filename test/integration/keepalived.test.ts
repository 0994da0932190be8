/**
 * Issue 12, the chapter's Architecture 4 for real: two network namespaces (one pgmaitre and one
 * keepalived each) joined by veth pairs to a bridge in a third namespace where the client runs.
 * keepalived's vrrp_script asks pgmaitre's /health (as conf/keepalived.conf does). The virtual
 * IP sits on the first instance; when that pgmaitre stops, the IP moves to the second one and a
 * client reconnecting to the same address is served by it. The backends are reached through the
 * cluster's Unix sockets (network namespaces do not separate the file system). Every namespace
 * is removed at the end. Skips, saying why, without root, `ip netns`, keepalived or curl.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { withCluster, REPO_ROOT } from '../harness/cluster';
import { eventually } from '../harness/in-process';
import { exec, isExecutable } from '../harness/exec';

const KEEPALIVED = ['/usr/sbin/keepalived', '/usr/local/sbin/keepalived'].find(isExecutable);
const CURL = ['/usr/bin/curl', '/usr/local/bin/curl'].find(isExecutable);
const tag = `pgmka${process.pid % 100000}`;
const NS = { a: `${tag}a`, b: `${tag}b`, c: `${tag}c` };
const VIP = '10.213.0.100';

function ip(args: string[]): string {
  return execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

/** Why this machine cannot run the test, or false. */
function whyNot(): string | false {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  if (KEEPALIVED === undefined) return 'keepalived is not installed (Debian package keepalived; .ci/run installs it)';
  if (CURL === undefined) return 'curl is not installed (Debian package curl; .ci/run installs it)';
  try {
    ip(['netns', 'add', `${tag}probe`]);
    ip(['netns', 'del', `${tag}probe`]);
  } catch (e) {
    return `ip netns does not work here: ${(e as { stderr?: Buffer }).stderr?.toString().trim() ?? String(e)}`;
  }
  return false;
}

function removeNamespaces(): void {
  for (const ns of Object.values(NS)) {
    try { ip(['netns', 'del', ns]); } catch { /* not there */ }
  }
}

const skip = whyNot();

describe('keepalived moves the virtual IP between two pgmaitre instances', { timeout: 240_000, skip }, () => {
  const fx = withCluster({ standbys: 1 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-ka-'));
  const children = new Map<string, ChildProcess>();
  const output = new Map<string, string>();

  const run = (name: string, ns: string, cmd: string, args: string[]): ChildProcess => {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    output.set(name, '');
    const add = (d: Buffer): void => { output.set(name, (output.get(name) ?? '') + d.toString()); };
    child.stdout!.on('data', add);
    child.stderr!.on('data', add);
    children.set(name, child);
    return child;
  };
  const stop = async (name: string): Promise<void> => {
    const c = children.get(name);
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const done = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 5000);
    await done;
    clearTimeout(t);
  };
  const vipOn = (ns: string, dev: string): boolean => ip(['-n', ns, 'addr', 'show', 'dev', dev]).includes(`${VIP}/`);

  before(() => {
    removeNamespaces();
    for (const ns of Object.values(NS)) ip(['netns', 'add', ns]);
    ip(['-n', NS.c, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', NS.c, 'addr', 'add', '10.213.0.1/24', 'dev', 'br0']);
    ip(['-n', NS.c, 'link', 'set', 'br0', 'up']);
    ip(['-n', NS.c, 'link', 'set', 'lo', 'up']);
    for (const [side, addr] of [['a', '10.213.0.11'], ['b', '10.213.0.12']] as const) {
      const ns = NS[side];
      ip(['-n', ns, 'link', 'add', `v${side}`, 'type', 'veth', 'peer', 'name', `v${side}br`, 'netns', NS.c]);
      ip(['-n', NS.c, 'link', 'set', `v${side}br`, 'master', 'br0']);
      ip(['-n', NS.c, 'link', 'set', `v${side}br`, 'up']);
      ip(['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', `v${side}`]);
      ip(['-n', ns, 'link', 'set', `v${side}`, 'up']);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
  });

  after(async () => {
    for (const name of [...children.keys()]) await stop(name);
    removeNamespaces();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the IP follows the pgmaitre that runs; a client reconnects through it', async () => {
    const sock = fx.cluster.dir;
    const backends = fx.cluster.nodes.map((n, i) => `backend_hostname${i} = '${sock}'\nbackend_port${i} = ${n.port}\nbackend_weight${i} = 1\nbackend_application_name${i} = '${n.id}'`).join('\n');
    for (const [side, prio] of [['a', 150], ['b', 100]] as const) {
      const conf = path.join(dir, `pgpool-${side}.conf`);
      fs.writeFileSync(conf, `${backends}\nlisten_addresses = '*'\nport = 9999\nunix_socket_directories = ''\npcp_listen_addresses = ''\npid_file_name = ''\n`
        + `http_port = 8404\nhttp_listen_addresses = '127.0.0.1'\nenable_pool_hba = off\nsr_check_user = 'postgres'\nhealth_check_user = 'postgres'\n`
        + `health_check_period = 1\nlog_connections = on\nlog_min_messages = 'info'\nlog_format = 'text'\n`);
      run(`pgmaitre-${side}`, NS[side], process.execPath, [path.join(REPO_ROOT, 'bin', 'pgmaitre.js'), '-n', '-f', conf]);
      const kconf = path.join(dir, `keepalived-${side}.conf`);
      fs.writeFileSync(kconf, `global_defs {\n  router_id pgm_${side}\n  script_user root\n}\n`
        + `vrrp_script chk_pgmaitre {\n  script "${CURL} -fsS -o /dev/null --max-time 1 http://127.0.0.1:8404/health"\n  interval 1\n  timeout 2\n  fall 2\n  rise 1\n}\n`
        + `vrrp_instance pgmaitre_vip {\n  state ${side === 'a' ? 'MASTER' : 'BACKUP'}\n  interface v${side}\n  virtual_router_id 213\n  priority ${prio}\n  advert_int 1\n`
        + `  authentication {\n    auth_type PASS\n    auth_pass pgmtest\n  }\n  virtual_ipaddress {\n    ${VIP}/24\n  }\n  track_script {\n    chk_pgmaitre\n  }\n}\n`);
      run(`keepalived-${side}`, NS[side], KEEPALIVED!, ['--dont-fork', '--log-console', '--vrrp', '-f', kconf,
        '-p', path.join(dir, `ka-${side}.pid`), '-r', path.join(dir, `vrrp-${side}.pid`)]);
    }
    const psql = (): Promise<{ code: number | null; out: string }> =>
      exec('ip', ['netns', 'exec', NS.c, fx.cluster.pg.bin('psql'), '-X', '-At', '-h', VIP, '-p', '9999', '-U', 'postgres', '-d', 'postgres', '-c', 'SELECT pg_is_in_recovery()'],
        { env: { ...process.env, PGCONNECT_TIMEOUT: '2', PGSSLMODE: 'disable' }, timeoutMs: 10_000 }).then((r) => ({ code: r.code, out: r.stdout.trim() + r.stderr.trim() }));

    await eventually(() => vipOn(NS.a, 'va'), `virtual IP on instance a\n${output.get('keepalived-a')}\n${output.get('pgmaitre-a')}`, 30_000);
    assert.equal(vipOn(NS.b, 'vb'), false);
    await eventually(async () => (await psql()).code === 0, 'a client through the virtual IP', 15_000);
    assert.match(output.get('pgmaitre-a') ?? '', /connection authorized/);
    assert.doesNotMatch(output.get('pgmaitre-b') ?? '', /connection authorized/);

    const stoppedAt = Date.now();
    await stop('pgmaitre-a');
    await eventually(() => vipOn(NS.b, 'vb') && !vipOn(NS.a, 'va'), `virtual IP moved to instance b\n${output.get('keepalived-b')}`, 30_000);
    const moved = Date.now() - stoppedAt;
    await eventually(async () => (await psql()).code === 0, 'the client reconnects through the virtual IP', 15_000);
    assert.match(output.get('pgmaitre-b') ?? '', /connection authorized/, 'served by instance b now');
    process.stdout.write(`# virtual IP moved ${moved} ms after pgmaitre a stopped\n`);
  });
});
