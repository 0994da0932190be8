/**
 * detach_false_primary and the admin promote path against a REAL cluster: a standby promoted
 * while the primary still runs is a false primary (no standby streams from it) and is detached;
 * then promoteNode(1, {switchover}) detaches the primary, runs failover_command with %m = 1,
 * promotes node 1 with pg_promote() and routes writes to it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { withCluster } from '../harness/cluster';
import { backendLines, eventually, startInProcess, type InProcess } from '../harness/in-process';

describe('false primary and admin promote', { timeout: 120_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  let px: InProcess;
  let dir: string;
  const log = () => path.join(dir, 'failover.log');

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-falseprimary-'));
    px = await startInProcess([
      backendLines(fx.cluster),
      "sr_check_user = 'postgres'", 'sr_check_period = 1',
      "health_check_user = 'postgres'", 'health_check_period = 1',
      'detach_false_primary = on',
      `failover_command = 'echo "%d %m %P" >> ${log()}'`,
      'enable_pool_hba = off',
    ].join('\n'));
  });
  after(async () => {
    await px?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const cl = () => px.app.ctx.cluster;

  test('a standby promoted behind our back while the primary runs is detached as a false primary', async () => {
    assert.equal(cl().primaryId(), 0);
    await fx.cluster.promote('standby2');
    const t0 = Date.now();
    await eventually(() => cl().node(2)!.status === 'down', 'node 2 detached', 5000);
    console.log(`# false primary detached after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.match(cl().node(2)!.statusReason, /^false_primary: node 0 is the primary/);
    assert.equal(cl().primaryId(), 0);
    assert.equal(cl().node(1)!.status, 'up');
    // failover_command runs in a shell of its own: wait for what it writes.
    await eventually(() => fs.existsSync(log()) && fs.readFileSync(log(), 'utf8').trim() === '2 0 0', 'failover_command wrote "2 0 0"', 5000);
  });

  test('promoteNode(1, {switchover}) detaches the primary, runs failover_command with %m = 1, promotes node 1', async () => {
    const msg = await px.app.health.promoteNode(1, { switchover: true });
    assert.equal(msg, 'node 1 promoted to primary');
    assert.equal(cl().primaryId(), 1);
    assert.equal(cl().node(0)!.status, 'down');
    assert.match(cl().node(0)!.statusReason, /^switchover: /);
    assert.equal(await fx.cluster.psql('standby1', 'SELECT pg_is_in_recovery()'), 'f');
    assert.deepEqual(fs.readFileSync(log(), 'utf8').trim().split('\n'), ['2 0 0', '0 1 0']);
    // Node 0 still runs as a primary but is detached: nothing flips back.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(cl().primaryId(), 1);
    await eventually(() => cl().node(0)!.role === 'standby', 'old primary no longer listed as primary', 1000);
  });
});
