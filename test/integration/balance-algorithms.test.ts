/**
 * Issue 12, load_balance_algorithm under pgbench (-C: one session per transaction, so every
 * transaction is a new balancing decision), counted by pgmaitre's own per-node counters:
 *  - weighted (smart endpoint, weights 0:1:3): the standbys share the reads about 1:3;
 *  - round_robin (smart endpoint, 0:1:1): the standbys get the same number, give or take one;
 *  - least_connections (read port): with 4 sessions parked on standby1, new connections go to
 *    standby2;
 *  - least_latency (read port): standby1 behind a proxy that delays each request by 60 ms gets
 *    almost none of them.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { Client } from 'pg';
import { withCluster } from '../harness/cluster';
import { backendLines, startInProcess, type InProcess } from '../harness/in-process';
import { exec } from '../harness/exec';
import { freePort } from '../../src/demo/free-port';

const BASE = "sr_check_user = 'postgres'\nhealth_check_user = 'postgres'\nhealth_check_period = 2\nenable_pool_hba = off\n";

describe('balance algorithms under pgbench', { timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 2, pgbench: 1 });
  const bench = async (port: number, tx: number): Promise<void> => {
    const r = await exec(fx.cluster.pg.bin('pgbench'), ['-n', '-S', '-C', '-c', '1', '-t', String(tx), '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'postgres'],
      { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`actually processed: ${tx}/${tx}`));
  };
  const selects = (px: InProcess): number[] => px.app.ctx.cluster.nodes.map((n) => n.counters.select_cnt);
  const delta = (a: number[], b: number[]): number[] => b.map((v, i) => v - a[i]!);

  test('weighted 0:1:3 on the smart endpoint: about a quarter / three quarters', async () => {
    const px = await startInProcess(`${backendLines(fx.cluster, [0, 1, 3])}\n${BASE}load_balance_algorithm = 'weighted'\n`);
    try {
      const s0 = selects(px);
      await bench(px.port, 200);
      const d = delta(s0, selects(px));
      assert.equal(d[0], 0);
      const share = d[2]! / (d[1]! + d[2]!);
      assert.ok(share > 0.6 && share < 0.9, `node 2 share ${share.toFixed(2)} (${d})`);
    } finally {
      await px.stop();
    }
  });

  test('round_robin 0:1:1 on the smart endpoint: the same count on each standby', async () => {
    const px = await startInProcess(`${backendLines(fx.cluster, [0, 1, 1])}\n${BASE}load_balance_algorithm = 'round_robin'\n`);
    try {
      const s0 = selects(px);
      await bench(px.port, 100);
      const d = delta(s0, selects(px));
      assert.ok(Math.abs(d[1]! - d[2]!) <= 2 && d[1]! + d[2]! >= 100, `${d}`);
    } finally {
      await px.stop();
    }
  });

  test('least_connections on the read port: new connections avoid the standby holding 4 sessions', async () => {
    const rport = await freePort();
    const px = await startInProcess(`${backendLines(fx.cluster, [0, 1, 1])}\n${BASE}load_balance_algorithm = 'least_connections'\nread_port = ${rport}\n`
      + "app_name_redirect_preference_list = 'parked:1'\n");
    const parked: Client[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        const c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres', application_name: 'parked' });
        await c.connect();
        assert.equal((await c.query('SELECT inet_server_port() AS p')).rows[0].p, fx.cluster.standbys[0]!.port);
        parked.push(c);
      }
      await bench(rport, 100);
      const d = px.app.dedicated!;
      assert.ok(d.served('read', 2) >= 97, `standby1 ${d.served('read', 1)}, standby2 ${d.served('read', 2)}`);
    } finally {
      for (const c of parked) await c.end();
      await px.stop();
    }
  });

  test('least_latency on the read port: the slow standby gets almost nothing', async () => {
    const slow = fx.cluster.standbys[0]!.port;
    const proxyPort = await freePort();
    const proxy = net.createServer((c) => {
      const s = net.connect(slow, '127.0.0.1');
      c.on('data', (d) => setTimeout(() => s.write(d), 60)); // 60 ms more per request (a margin over a loaded machine's scheduling delays)
      s.on('data', (d) => c.write(d));
      c.on('error', () => s.destroy());
      s.on('error', () => c.destroy());
      c.on('close', () => s.destroy());
      s.on('close', () => c.destroy());
    });
    await new Promise<void>((r) => proxy.listen(proxyPort, '127.0.0.1', r));
    const rport = await freePort();
    const lines = backendLines(fx.cluster, [0, 1, 1]).replace(`backend_port1 = ${slow}`, `backend_port1 = ${proxyPort}`);
    const px = await startInProcess(`${lines}\n${BASE}load_balance_algorithm = 'least_latency'\nread_port = ${rport}\n`);
    try {
      await bench(rport, 200);
      const d = px.app.dedicated!;
      const share = d.served('read', 2) / (d.served('read', 1) + d.served('read', 2));
      assert.ok(share >= 0.8, `fast standby share ${share.toFixed(2)}: slow ${d.served('read', 1)}, fast ${d.served('read', 2)}`);
    } finally {
      await px.stop();
      proxy.close();
    }
  });
});
