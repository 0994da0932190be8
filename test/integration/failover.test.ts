/**
 * Primary failover against a REAL cluster, through the in-process pgmaitre: the primary stops →
 * primaryId() is -1 within the health-check bound, clients get a clear "no primary" error, and
 * failover_command runs with every pgpool placeholder (written to a file and checked one by
 * one); then an operator promotes standby1 with pg_promote → it is found as the new primary
 * without restart, writes go through pgmaitre again, and follow_primary_command runs for the
 * other nodes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { withCluster } from '../harness/cluster';
import { backendLines, eventually, startInProcess, type InProcess } from '../harness/in-process';

const FIELDS = ['d', 'h', 'p', 'D', 'm', 'H', 'M', 'P', 'r', 'R', 'N', 'S'] as const;
const LINE = `${FIELDS.map((f) => `${f}=%${f}`).join(' ')} pct=%%`;

function parse(line: string): Record<string, string> {
  return Object.fromEntries(line.trim().split(' ').map((kv) => kv.split('=') as [string, string]));
}

describe('primary failover and promotion', { timeout: 120_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  let px: InProcess;
  let dir: string;
  const failoverLog = () => path.join(dir, 'failover.log');
  const followLog = () => path.join(dir, 'follow.log');
  const lines = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n').filter(Boolean) : []);

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-failover-'));
    const c = fx.cluster;
    px = await startInProcess([
      backendLines(c),
      ...c.nodes.map((n, i) => `backend_data_directory${i} = '${n.dataDir}'`),
      "sr_check_user = 'postgres'", 'sr_check_period = 1',
      "health_check_user = 'postgres'", 'health_check_period = 1', 'health_check_max_retries = 1',
      'health_check_retry_delay = 1', 'health_check_timeout = 5', 'connect_timeout = 2000',
      'search_primary_node_timeout = 3',
      `failover_command = 'echo "${LINE}" >> ${failoverLog()}'`,
      `follow_primary_command = 'echo "${LINE}" >> ${followLog()}'`,
      'enable_pool_hba = off',
    ].join('\n'));
  });
  after(async () => {
    await px?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const cl = () => px.app.ctx.cluster;
  const connect = async (): Promise<Client> => {
    const client = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres' });
    client.on('error', () => {});
    await client.connect();
    return client;
  };

  test('the primary stops: primaryId() -1 within the bound, failover_command gets every placeholder', async () => {
    const c = fx.cluster;
    assert.equal(cl().primaryId(), 0);
    await c.stopNode('primary');
    const t0 = Date.now();
    const bound = 1 * (1 + 1) + 1 * 1 + 2;
    await eventually(() => cl().primaryId() === -1, 'no primary', bound * 1000);
    console.log(`# primaryId() = -1 after ${((Date.now() - t0) / 1000).toFixed(1)} s (bound ${bound} s)`);
    assert.equal(cl().node(0)!.status, 'down');
    assert.match(cl().node(0)!.statusReason, /^health_check_failed: /);

    await eventually(() => lines(failoverLog()).length === 1, 'failover_command ran', 5000);
    const v = parse(lines(failoverLog())[0]!);
    const [p, s1] = [c.nodes[0]!, c.nodes[1]!];
    assert.deepEqual(v, {
      d: '0', h: p.host, p: String(p.port), D: p.dataDir, // the failed node
      m: '1', H: s1.host, r: String(s1.port), R: s1.dataDir, // new main node: smallest live id
      M: '0', // old main node
      P: '0', N: p.host, S: String(p.port), // old primary
      pct: '%',
    });

    // Writes fail fast with a clear error while there is no primary.
    // A new client still gets in (reads go on, on a standby); its writes fail fast with 57P03.
    const client = await connect();
    assert.equal((await client.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true);
    await assert.rejects(client.query('CREATE TABLE no_primary_here (i int)'), (e: { code?: string; message?: string }) =>
      e.code === '57P03' && /no primary node is available/.test(e.message ?? ''));
    await client.end();
  });

  test('an operator promotes standby1: found as the new primary without restart; follow_primary_command runs', async () => {
    const c = fx.cluster;
    await new Promise((r) => setTimeout(r, 3500)); // let search_primary_node_timeout (3 s) expire first
    const t0 = Date.now();
    await c.promote('standby1');
    await eventually(() => cl().primaryId() === 1, 'node 1 is the primary', 15_000);
    console.log(`# new primary adopted ${((Date.now() - t0) / 1000).toFixed(1)} s after pg_ctl promote returned`);
    assert.equal(cl().node(1)!.role, 'primary');
    assert.match(cl().node(1)!.statusReason, /^reachable_at_start|^follow|^auto|^admin/, 'status unchanged by adoption');

    const client = await connect();
    try {
      await client.query('CREATE TABLE after_failover (i int)');
      await client.query('INSERT INTO after_failover VALUES (1)');
      assert.equal((await client.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, false);
    } finally {
      await client.end();
    }

    // pgpool: every node but the new primary is marked down and the command runs for each.
    await eventually(() => lines(followLog()).length === 2, 'follow_primary_command ran for nodes 0 and 2', 10_000);
    const runs = lines(followLog()).map(parse).sort((a, b) => Number(a['d']) - Number(b['d']));
    const s1 = c.nodes[1]!;
    assert.deepEqual(runs.map((r) => r['d']), ['0', '2']);
    for (const r of runs) {
      assert.equal(r['m'], '1');
      assert.equal(r['H'], s1.host);
      assert.equal(r['r'], String(s1.port));
      assert.equal(r['R'], s1.dataDir);
      assert.equal(r['P'], '0');
    }
    assert.equal(cl().node(2)!.status, 'down');
    assert.match(cl().node(2)!.statusReason, /^follow_primary: /);

    // The admin path brings it back (as a follow_primary script would with pcp_attach_node).
    assert.equal(await px.app.health.attachNode(2), 'node 2 attached');
    assert.equal(cl().node(2)!.status, 'up');
    assert.equal(cl().node(2)!.role, 'standby');
    await assert.rejects(px.app.health.promoteNode(0), /node 0 is down/);
  });
});
