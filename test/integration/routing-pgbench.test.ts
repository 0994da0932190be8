/**
 * pgbench through pgmaitre with routing on: -S at 16 clients in every protocol mode finishes with
 * 0 failed transactions and its reads land on the standbys; the tpcb-like script finishes with 0
 * failures and its writes land on the primary (per-node counters, as SHOW POOL_NODES shows them).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { withCluster } from '../harness/cluster';
import { backendLines, startInProcess, type InProcess } from '../harness/in-process';
import { runCommand } from '../../src/demo/pg-exec';

describe('pgbench with routing', { timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 2, pgbench: 1 });
  let px: InProcess;
  before(async () => {
    px = await startInProcess(`${backendLines(fx.cluster, [0, 1, 1])}\nsr_check_user = 'postgres'\nenable_pool_hba = off\nnum_init_children = 32\n`);
  });
  after(async () => { await px?.stop(); });

  async function pgbench(args: string[]): Promise<string> {
    const r = await runCommand(fx.cluster.pg.bin('pgbench'), ['-h', '127.0.0.1', '-p', String(px.port), '-U', 'postgres', ...args, 'postgres']);
    return `${r.stdout}\n${r.stderr}`; // runCommand rejects on a non-zero exit
  }
  const counters = () => px.app.ctx.cluster.nodes.map((n) => ({ ...n.counters }));

  for (const mode of ['simple', 'extended', 'prepared']) {
    test(`pgbench -S -c 16 -M ${mode}: 0 failed, reads on the standbys`, async () => {
      const before0 = counters();
      const out = await pgbench(['-n', '-S', '-M', mode, '-c', '16', '-j', '2', '-t', '200']);
      assert.match(out, /number of transactions actually processed: 3200\/3200/);
      assert.doesNotMatch(out, /number of failed transactions: [1-9]/);
      const after0 = counters();
      const selects = after0.map((c, i) => c.select_cnt - before0[i]!.select_cnt);
      assert.equal(selects[0], 0, 'no reads on the primary (weight 0)');
      // pgbench's own start-up queries (scale detection) come on top of the 3200.
      assert.ok(selects[1]! + selects[2]! >= 3200 && selects[1]! + selects[2]! <= 3210, `reads: ${selects}`);
      assert.ok(selects[1]! > 0 && selects[2]! > 0, `both standbys read: ${selects}`);
    });
  }

  for (const mode of ['simple', 'prepared']) {
    test(`pgbench tpcb-like -M ${mode}: 0 failed, writes on the primary`, async () => {
      const before0 = counters();
      const out = await pgbench(['-n', '-M', mode, '-c', '8', '-j', '2', '-t', '100']);
      assert.match(out, /number of transactions actually processed: 800\/800/);
      assert.doesNotMatch(out, /number of failed transactions: [1-9]/);
      const after0 = counters();
      const updates = after0.map((c, i) => c.update_cnt - before0[i]!.update_cnt);
      const inserts = after0.map((c, i) => c.insert_cnt - before0[i]!.insert_cnt);
      assert.deepEqual(updates, [2400, 0, 0]);
      assert.deepEqual(inserts, [800, 0, 0]);
    });
  }
});
