/**
 * Issue 12, health semantics HAProxy users expect, on real clusters:
 *  - BACKUP standby (backend_flagN 'ALLOW_TO_FAILOVER|BACKUP'): no reads while the other standby
 *    is up, all of them once it is down (read port and smart endpoint), none again when it is back;
 *  - health_check_rise: the stopped standby, started again, is attached by itself after that many
 *    successful checks (no pcp_attach_node, auto_failback off);
 *  - HTTP role check (health_check_http_portN) against small Patroni stand-ins that answer
 *    /primary and /replica from the real node: when the stand-in of node 0 says "neither" the node
 *    is detached although PostgreSQL answers, write-port connections are closed, and once
 *    standby1 is promoted its stand-in says /primary and the write port follows it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { Client } from 'pg';
import { withCluster, type ClusterNode } from '../harness/cluster';
import { backendLines, eventually, startInProcess, type InProcess } from '../harness/in-process';
import { exec } from '../harness/exec';
import { freePort } from '../../src/demo/free-port';

const HEALTH = "sr_check_user = 'postgres'\nhealth_check_user = 'postgres'\nhealth_check_period = 1\nhealth_check_timeout = 2\nhealth_check_max_retries = 0\nsr_check_period = 1\nsearch_primary_node_timeout = 0\n";

async function serverPort(px: InProcess, port: number, pg: { bin(n: string): string }): Promise<string> {
  const r = await exec(pg.bin('psql'), ['-X', '-At', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-c', 'SELECT inet_server_port() || \':\' || pg_is_in_recovery()']);
  return r.code === 0 ? r.stdout.trim() : `error: ${r.stderr.trim()}`;
}

describe('BACKUP standby and health_check_rise', { timeout: 240_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  let px: InProcess;
  let rport = 0;
  before(async () => {
    rport = await freePort();
    const lines = backendLines(fx.cluster, [0, 1, 1]).replace("backend_flag2 = 'ALLOW_TO_FAILOVER'", "backend_flag2 = 'ALLOW_TO_FAILOVER|BACKUP'");
    px = await startInProcess(`${lines}\n${HEALTH}read_port = ${rport}\nhealth_check_rise = 2\nload_balance_algorithm = 'round_robin'\nenable_pool_hba = off\n`);
  });
  after(async () => { await px?.stop(); });

  test('the backup standby takes reads only while the other standby is down; rise brings that one back', async () => {
    const [s1, s2] = fx.cluster.standbys as [ClusterNode, ClusterNode];
    for (let i = 0; i < 4; i++) {
      assert.equal(await serverPort(px, rport, fx.cluster.pg), `${s1.port}:true`, 'read port: never the backup');
      assert.equal(await serverPort(px, px.port, fx.cluster.pg), `${s1.port}:true`, 'smart endpoint: never the backup');
    }
    await fx.cluster.stopNode('standby1', 'immediate');
    await eventually(() => px.app.ctx.cluster.node(1)?.status === 'down', 'standby1 marked down', 10_000);
    for (let i = 0; i < 3; i++) {
      assert.equal(await serverPort(px, rport, fx.cluster.pg), `${s2.port}:true`, 'read port: the backup now');
      assert.equal(await serverPort(px, px.port, fx.cluster.pg), `${s2.port}:true`, 'smart endpoint: the backup now');
    }
    await fx.cluster.startNode('standby1');
    const t0 = Date.now();
    await eventually(() => px.app.ctx.cluster.node(1)?.status === 'up', 'standby1 attached again by rise', 20_000);
    assert.match(px.app.ctx.cluster.node(1)!.statusReason, /health_check_rise/);
    assert.ok(Date.now() - t0 >= 1000, 'not before two checks');
    assert.equal(await serverPort(px, rport, fx.cluster.pg), `${s1.port}:true`, 'reads leave the backup again');
  });
});

/** A Patroni stand-in: answers /primary and /replica from the real node, unless told to fail. */
class PatroniStandIn {
  mode: 'auto' | 'down' = 'auto';
  requests = 0;
  readonly server: http.Server;
  port = 0;

  constructor(private readonly node: ClusterNode) {
    this.server = http.createServer((req, res) => {
      this.requests++;
      void this.role().then((role) => {
        const ok = (req.url === '/primary' && role === 'primary') || (req.url === '/replica' && role === 'replica');
        res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ role }));
      });
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
    return this.port;
  }

  private async role(): Promise<string> {
    if (this.mode === 'down') return 'unknown';
    const c = new Client({ host: '127.0.0.1', port: this.node.port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 5000 });
    c.on('error', () => {});
    try {
      await c.connect();
      const r = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
      return r.rows[0]!.r ? 'replica' : 'primary';
    } catch {
      return 'unknown';
    } finally {
      await c.end().catch(() => {});
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => { this.server.closeAllConnections(); this.server.close(() => resolve()); });
  }
}

describe('HTTP role check (Patroni REST stand-ins)', { timeout: 240_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  let px: InProcess;
  let wport = 0;
  const standIns: PatroniStandIn[] = [];
  before(async () => {
    wport = await freePort();
    const ports: number[] = [];
    for (const n of fx.cluster.nodes) {
      const s = new PatroniStandIn(n);
      standIns.push(s);
      ports.push(await s.listen());
    }
    const httpLines = ports.map((p, i) => `health_check_http_port${i} = ${p}`).join('\n');
    // Retries: one slow answer of a stand-in on a busy machine must not detach a node.
    px = await startInProcess(`${backendLines(fx.cluster, [0, 1, 1])}\n${HEALTH}write_port = ${wport}\n${httpLines}\nenable_pool_hba = off\n`
      + 'health_check_max_retries = 2\nhealth_check_timeout = 6\n');
  });
  after(async () => {
    await px?.stop();
    for (const s of standIns) await s.close();
  });

  test('the HTTP check decides health and role; the write port follows it', async () => {
    const [p0, p1] = fx.cluster.nodes.map((n) => n.port);
    assert.equal(await serverPort(px, wport, fx.cluster.pg), `${p0}:false`);
    await eventually(() => standIns.every((s) => s.requests > 0), 'every stand-in asked', 5000);
    const held = new Client({ host: '127.0.0.1', port: wport, user: 'postgres', database: 'postgres' });
    held.on('error', () => {});
    await held.connect();

    standIns[0]!.mode = 'down'; // Patroni says node 0 is neither primary nor replica
    await eventually(() => px.app.ctx.cluster.node(0)?.status === 'down', 'node 0 detached by its HTTP check', 20_000);
    await eventually(async () => held.query('SELECT 1').then(() => false, () => true), 'write-port connection to node 0 closed', 5000);
    assert.match(await serverPort(px, wport, fx.cluster.pg), /no primary node is available/);

    await fx.cluster.promote('standby1');
    await eventually(() => px.app.ctx.cluster.primaryId() === 1,
      `node 1 adopted from its /primary answer (nodes: ${JSON.stringify(px.app.ctx.cluster.nodes.map((n) => [n.status, n.role, n.statusReason]))})`, 30_000);
    assert.equal(await serverPort(px, wport, fx.cluster.pg), `${p1}:false`);
  });
});
