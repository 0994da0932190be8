/**
 * Issue 12, an HA pair: two pgmaitre processes in front of the same cluster, coordinated through
 * a real etcd (etcd_endpoints). Stopping a standby detaches it on both, and exactly one
 * failover_command runs (the lease holder's). Killing the lease holder (SIGKILL: no resign, the
 * lease has to expire) while a second standby stops: the other instance takes the lease over and
 * runs that failover_command itself, once.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { withCluster, startPgmaitre, type PgmaitreProcess } from '../harness/cluster';
import { backendLines, eventually } from '../harness/in-process';
import { etcdBinary, startEtcd, type TestEtcd } from '../harness/etcd';
import { exec } from '../harness/exec';

const skip = etcdBinary() === null ? 'etcd is not installed (Debian package etcd-server; .ci/run installs it)' : false;

describe('two pgmaitre instances and an etcd lease', { timeout: 240_000, skip }, () => {
  const fx = withCluster({ standbys: 2 });
  let etcd: TestEtcd;
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-ha-'));
  const ran = path.join(logDir, 'failover.log');
  const procs: PgmaitreProcess[] = [];
  const conf = (name: string): string => `${backendLines(fx.cluster, [0, 1, 1])}
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
enable_pool_hba = off
sr_check_user = 'postgres'
health_check_user = 'postgres'
health_check_period = 1
health_check_timeout = 2
health_check_max_retries = 0
sr_check_period = 1
failover_command = 'echo "${name} %d" >> ${ran}'
etcd_endpoints = '${etcd.endpoint}'
etcd_prefix = '/pgmaitre-test/'
etcd_lease_ttl = 3
etcd_instance_name = '${name}'
log_format = 'json'
`;
  before(async () => {
    fs.writeFileSync(ran, '');
    etcd = await startEtcd();
  });
  after(async () => {
    for (const p of procs) await p.stop().catch(() => undefined);
    await etcd?.stop();
    fs.rmSync(logDir, { recursive: true, force: true });
  });

  const lines = (): string[] => fs.readFileSync(ran, 'utf8').split('\n').filter((l) => l.trim() !== '');
  const nodeStatus = async (p: PgmaitreProcess, id: number): Promise<string> => {
    const r = await exec(fx.cluster.pg.bin('psql'), ['-X', '-At', '-h', '127.0.0.1', '-p', String(p.port), '-U', 'postgres', '-d', 'postgres', '-c', 'SHOW POOL_NODES']);
    return r.stdout.split('\n').map((l) => l.split('|')).find((c) => c[0] === String(id))?.[3] ?? '?';
  };

  test('a standby stops: both instances detach it, exactly one failover_command runs', async () => {
    const a = await startPgmaitre({ config: conf('A') });
    procs.push(a);
    await a.waitForLog(/holds the failover lease/, 15_000);
    const b = await startPgmaitre({ config: conf('B') });
    procs.push(b);
    await fx.cluster.stopNode('standby1', 'immediate');
    await eventually(async () => (await nodeStatus(a, 1)) === 'down' && (await nodeStatus(b, 1)) === 'down', 'node 1 down on both instances', 15_000);
    await new Promise((r) => setTimeout(r, 2000)); // time for a second (wrong) run to show up
    assert.deepEqual(lines(), ['A 1']);
    assert.match(b.logs(), /failover_command for node 1 left to the instance holding the failover lease/);
  });

  test('the lease holder is killed while another standby stops: the other instance takes over and runs it once', async () => {
    const [a, b] = procs as [PgmaitreProcess, PgmaitreProcess];
    process.kill(a.pid, 'SIGKILL');
    await fx.cluster.stopNode('standby2', 'immediate');
    await b.waitForLog(/holds the failover lease/, 20_000);
    await eventually(() => lines().length === 2, 'a failover_command for node 2', 20_000);
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(lines(), ['A 1', 'B 2']);
    assert.equal(await nodeStatus(b, 2), 'down');
  });
});
