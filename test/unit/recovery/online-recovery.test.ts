/**
 * Online recovery without PostgreSQL: recovery_password resolution, the refusals, one recovery at
 * a time, a failing script's output in the error, the `recovering` status, the PCP 'O' answers,
 * and when auto_recovery starts one. (The real runs are in test/integration/online-recovery.test.ts.)
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { recoveryPassword, RecoveryPasswordError } from '../../../src/recovery/credentials';
import { OnlineRecovery, RecoveryError } from '../../../src/recovery/online-recovery';
import { encryptAesPassword, type PoolPasswdEntry } from '../../../src/config/pool-passwd';
import { loadConfigText } from '../../../src/config/load';
import { NodeStatus } from '../../../src/cluster/cluster';
import { handlePcpRequest } from '../../../src/pcp/handlers';
import { cstr, decodeError } from '../../../src/pcp/codec';
import { poolNodesRows } from '../../../src/admin/commands/show-pool-nodes';
import { statusSnapshot } from '../../../src/http/status';
import { makeContext, THREE_NODES } from '../../fixtures/admin/context';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-recovery-unit-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('recovery_password', () => {
  const pp = new Map<string, PoolPasswdEntry>([
    ['alice', { kind: 'text', password: 'from-pool-passwd' }],
    ['bob', { kind: 'md5', md5: `md5${'a'.repeat(32)}` }],
  ]);
  const keyFile = path.join(tmp, 'key');
  fs.writeFileSync(keyFile, 'the key\n');

  test('plain, TEXT, AES with the key file, pool_passwd when empty', () => {
    assert.equal(recoveryPassword('u', 'plain', pp, keyFile), 'plain');
    assert.equal(recoveryPassword('u', 'TEXTmd5 is not a hash here', pp, keyFile), 'md5 is not a hash here');
    assert.equal(recoveryPassword('u', `AES${encryptAesPassword('s3cret', 'the key')}`, pp, keyFile), 's3cret');
    assert.equal(recoveryPassword('alice', '', pp, keyFile), 'from-pool-passwd');
    assert.equal(recoveryPassword('nobody', '', pp, keyFile), '');
  });

  test('md5 hashes are refused (pgpool-II wording), a wrong AES key too', () => {
    assert.throws(() => recoveryPassword('u', `md5${'0'.repeat(32)}`, pp, keyFile),
      (e: unknown) => e instanceof RecoveryPasswordError && /invalid format/.test(e.message) && /not allowed to be md5 hashed format/.test(e.detail));
    assert.throws(() => recoveryPassword('bob', '', pp, keyFile), RecoveryPasswordError);
    assert.throws(() => recoveryPassword('u', `AES${encryptAesPassword('x', 'another key')}`, pp, keyFile), /cannot be decrypted/);
  });
});

function script(name: string, text: string): string {
  fs.writeFileSync(path.join(tmp, name), text, { mode: 0o755 });
  return name;
}

function setup(extra: string) {
  const t = makeContext(`recovery_user = 'postgres'\nrecovery_script_dir = '${tmp}'\n${extra}`);
  const held: string[] = [];
  let leading = true;
  const rec = new OnlineRecovery({
    cluster: t.cluster, log: pino({ level: 'silent' }), config: () => t.config.current, poolPasswd: () => new Map(),
    attach: (id) => t.ctx.actions.attachNode(id), holdAttach: (id, h) => held.push(`${h ? '+' : '-'}${id}`),
    leading: () => leading, pollMs: 50,
  });
  const ctx = { ...t.ctx, recovery: () => rec.progress(), actions: { ...t.ctx.actions, recoverNode: (id: number) => rec.recover(id) } };
  return { t, rec, held, ctx, setLeading: (v: boolean) => { leading = v; } };
}

describe('OnlineRecovery', () => {
  script('slow_fail', '#!/bin/sh\nsleep 1\necho "first stage for node $5 from $7:$4" \necho "ERROR: no space left on $2" >&2\nexit 3\n');
  script('pgpool_remote_start', '#!/bin/sh\nexit 0\n');

  test('refusals: the primary, a node that is up, an unknown node, no data directory', async () => {
    const { rec } = setup('');
    await assert.rejects(rec.recover(0), (e: unknown) => e instanceof RecoveryError && e.detail === 'primary server cannot be recovered by online recovery.');
    await assert.rejects(rec.recover(1), /node recovery failed, node id: 1 is alive/);
    await assert.rejects(rec.recover(9), (e: unknown) => e instanceof RecoveryError && e.detail === 'node id 9 is not valid');
    const { rec: rec2, t } = setup('');
    t.cluster.setStatus(1, NodeStatus.Down, 'health_check_failed: test');
    await assert.rejects(rec2.recover(1), (e: unknown) => e instanceof RecoveryError && /backend_data_directory1 is not set/.test(e.detail));
  });

  test('one at a time; the script\'s output is the error; recovering meanwhile; the node stays down', async () => {
    const { rec, held, ctx, t } = setup("recovery_1st_stage_command = 'slow_fail'\n");
    const first = rec.recover(2);
    assert.equal(poolNodesRows(ctx, -1)[2]?.[3], 'recovering');
    const page = statusSnapshot(ctx).nodes[2]!;
    assert.equal(page.status, 'recovering');
    assert.match(page.statusReason, /^online recovery: 1st_stage/);
    await assert.rejects(rec.recover(2), (e: unknown) => e instanceof RecoveryError && e.severity === 'FATAL' && /already processing another recovery request \(node 2/.test(e.detail));
    await assert.rejects(first, (e: unknown) => e instanceof RecoveryError
      && e.message === 'executing recovery, execution of command failed at "1st stage"'
      && /exited with status 3: first stage for node 2 from db0:5432 \| ERROR: no space left on db2/.test(e.detail));
    assert.deepEqual(held, ['+2', '-2']);
    assert.equal(t.cluster.node(2)?.status, 'down');
    assert.equal(poolNodesRows(ctx, -1)[2]?.[3], 'down');
    assert.equal(rec.progress(), null);
  });

  test("PCP 'O': 'c' CommandComplete on success, ERROR or FATAL packets as pgpool-II", async () => {
    script('ok_stage', '#!/bin/sh\nexit 0\n');
    const { ctx, rec } = setup("recovery_1st_stage_command = 'ok_stage'\nrecovery_timeout = 1\n");
    const refused = await handlePcpRequest(ctx, 'O', cstr('0'));
    const f = decodeError(refused.packets[0]!.subarray(5));
    assert.equal(f.get('S'), 'ERROR');
    assert.equal(f.get('M'), 'process recovery request failed');
    // ok_stage succeeds, but nothing listens on db2:5434: recovery_timeout.
    const timedOut = await handlePcpRequest(ctx, 'O', cstr('2'));
    assert.equal(timedOut.packets[0]!.toString('latin1', 0, 1), 'E');
    assert.match(decodeError(timedOut.packets[0]!.subarray(5)).get('D') ?? '', /failed to start in 1 second/);
    const running = rec.recover(2).catch(() => undefined);
    const busy = await handlePcpRequest(ctx, 'O', cstr('2'));
    assert.equal(busy.close, true);
    assert.equal(decodeError(busy.packets[0]!.subarray(5)).get('S'), 'FATAL');
    await running;
    const { ctx: okCtx } = setup('');
    const done = await handlePcpRequest({ ...okCtx, actions: { ...okCtx.actions, recoverNode: async () => 'ok' } }, 'O', cstr('2'));
    assert.equal(done.packets[0]!.toString('latin1', 0, 1), 'c');
    assert.match(done.packets[0]!.toString('latin1'), /CommandComplete/);
  });

  test('auto_recovery: after auto_recovery_delay, not for an admin detach, only while leading, once per delay', async () => {
    script('fast_fail', '#!/bin/sh\nexit 1\n');
    const { rec, t, setLeading } = setup("recovery_1st_stage_command = 'fast_fail'\nauto_recovery = on\nauto_recovery_delay = 5\n");
    const since = t.cluster.node(2)!.lastStatusChange.getTime();
    rec.scan(since + 1000);
    assert.equal(rec.progress(), null);
    setLeading(false);
    rec.scan(since + 6000);
    assert.equal(rec.progress(), null);
    setLeading(true);
    rec.scan(since + 6000);
    assert.equal(rec.progress()?.nodeId, 2);
    assert.equal(rec.progress()?.origin, 'auto');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(rec.progress(), null);
    rec.scan(since + 7000);
    assert.equal(rec.progress(), null, 'not again before auto_recovery_delay');
    rec.scan(since + 11_500);
    assert.equal(rec.progress()?.nodeId, 2, 'again after auto_recovery_delay');
    await new Promise((r) => setTimeout(r, 300));
    rec.scan(since + 17_000);
    assert.equal(rec.progress(), null, 'after two failures in a row: twice auto_recovery_delay');
    rec.scan(since + 21_600);
    assert.equal(rec.progress()?.nodeId, 2);
    await new Promise((r) => setTimeout(r, 300));
    t.cluster.setStatus(2, NodeStatus.Up, 'x');
    t.cluster.setStatus(2, NodeStatus.Down, 'admin_detach: detached by admin request');
    rec.scan(Date.now() + 60_000);
    assert.equal(rec.progress(), null, 'an admin detach is left alone');
    await rec.stop();
  });

  test('auto_recovery is off by default', () => {
    const c = loadConfigText(THREE_NODES, '/etc/pgpool/pgpool.conf').config;
    assert.equal(c.auto_recovery, false);
    assert.equal(c.auto_recovery_delay, 60);
    assert.equal(c.recovery_timeout, 90);
    assert.equal(c.recovery_database, 'postgres');
  });
});
