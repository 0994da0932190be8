// cluster.test.ts — smoke test of the throw-away cluster harness itself: roles, replication,
// stopping/starting a standby, and cleanup. If this fails, every other integration test will.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, test } from 'node:test';
import { processAlive } from '../../src/demo/cluster';
import { runCommand } from '../../src/demo/pg-exec';
import { startPgmaitre, withCluster } from '../harness/cluster';

describe('throw-away cluster (primary + 2 standbys)', () => {
  const fx = withCluster({ standbys: 2 });

  test('the primary is not in recovery, both standbys are', async () => {
    const c = fx.cluster;
    assert.equal(c.nodes.length, 3);
    assert.equal(await c.psql('primary', 'select pg_is_in_recovery()'), 'f');
    for (const s of c.standbys) assert.equal(await c.psql(s.id, 'select pg_is_in_recovery()'), 't', s.id);
    const apps = await c.psql('primary', "select application_name from pg_stat_replication where state = 'streaming' order by 1");
    assert.deepEqual(apps.split('\n'), ['standby1', 'standby2']);
  });

  test('a row written on the primary is readable on the standbys after waitForReplay', async () => {
    const c = fx.cluster;
    await c.psql('primary', "create table smoke (id int primary key, v text); insert into smoke values (1, 'hello')");
    await c.waitForReplay();
    for (const s of c.standbys) assert.equal(await c.psql(s.id, 'select v from smoke where id = 1'), 'hello', s.id);
  });

  test('a standby can be stopped and started again, and catches up', async () => {
    const c = fx.cluster;
    await c.stopNode('standby2');
    assert.equal(c.isRunning('standby2'), false);
    await assert.rejects(c.psql('standby2', 'select 1'));
    await c.stopNode('standby2'); // idempotent
    await c.psql('primary', "insert into smoke values (2, 'while down')");
    await c.startNode('standby2');
    assert.equal(c.isRunning('standby2'), true);
    await c.waitForStreaming();
    await c.waitForReplay();
    assert.equal(await c.psql('standby2', 'select v from smoke where id = 2'), 'while down');
  });

  test('startPgmaitre runs pgmaitre in front of the cluster and stops it', async () => {
    const c = fx.cluster;
    const backends = c.nodes.map((n, i) =>
      [`backend_hostname${i} = '${n.host}'`, `backend_port${i} = ${n.port}`, `backend_weight${i} = 1`, `backend_flag${i} = 'ALLOW_TO_FAILOVER'`].join('\n'),
    );
    const proxy = await startPgmaitre({
      config: ["listen_addresses = '127.0.0.1'", 'enable_pool_hba = off', "sr_check_user = 'postgres'", "pid_file_name = 'pgmaitre.pid'", ...backends].join('\n'),
    });
    try {
      const { stdout } = await runCommand(c.pg.bin('psql'), ['-X', '-A', '-t', '-h', '127.0.0.1', '-p', String(proxy.port), '-U', 'postgres', '-d', 'postgres', '-c', 'select 40 + 2']);
      assert.equal(stdout.trim(), '42');
    } finally {
      await proxy.stop();
    }
    assert.equal(proxy.alive(), false);
    assert.equal(fs.existsSync(proxy.dir), false);
  });

  test('destroy stops every server and removes the directory', async () => {
    const c = fx.cluster;
    const pids = c.nodes.map((n) => Number(fs.readFileSync(`${n.dataDir}/postmaster.pid`, 'utf8').split('\n')[0]));
    await c.destroy();
    assert.equal(fs.existsSync(c.dir), false);
    // a stopped postmaster may linger as a zombie until init reaps it: processAlive ignores zombies
    for (const pid of pids) assert.equal(processAlive(pid), false, `postmaster ${pid} still alive`);
    await c.destroy(); // idempotent
  });
});

describe('failover helpers', () => {
  const fx = withCluster({ standbys: 2, auth: 'scram-sha-256', users: [{ name: 'app', password: 'secret' }] });

  test('password auth: users log in with their password, a wrong one is refused', async () => {
    const c = fx.cluster;
    assert.equal(await c.psql('primary', 'select current_user', { user: 'app' }), 'app');
    assert.equal(await c.psql('standby1', 'select current_user'), 'postgres');
    await assert.rejects(c.psql('primary', 'select 1', { user: 'app', password: 'wrong' }), /password authentication failed/);
  });

  test('promote a standby and make the other one follow it', async () => {
    const c = fx.cluster;
    await c.stopNode('primary', 'immediate');
    await c.promote('standby1');
    assert.equal(c.primary.id, 'standby1');
    assert.equal(await c.psql('standby1', 'select pg_is_in_recovery()'), 'f');
    await c.follow('standby2', 'standby1');
    assert.deepEqual(c.standbys.map((s) => s.id).sort(), ['primary', 'standby2']);
    await c.psql('standby1', 'create table after_failover (x int); insert into after_failover values (42)');
    // waitForReplay/waitForStreaming consider running standbys only: the old primary is down
    await c.waitForStreaming();
    await c.waitForReplay();
    assert.equal(await c.psql('standby2', 'select x from after_failover'), '42');
  });
});
