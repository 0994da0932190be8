/**
 * The HTTP face of a real pgmaitre (the CLI as a child process) in front of a real primary + 2
 * standbys: Patroni-style checks, /metrics parsed strictly and compared with real traffic, and
 * the status page in headless Chromium following a real standby stopped and started again.
 */
import { CHROMIUM, launchChromium } from '../harness/browser';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { freePort, startPgmaitre, withCluster, type PgmaitreProcess } from '../harness/cluster';
import { backendLines, eventually } from '../harness/in-process';
import { parsePrometheus, type Sample } from '../harness/prometheus';

const OUT = path.resolve(__dirname, '../../../test-output');

describe('HTTP status, metrics and status page against a real pgmaitre and cluster', { timeout: 150_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  let px: PgmaitreProcess;
  let base: string;

  before(async () => {
    const httpPort = await freePort();
    px = await startPgmaitre({
      config: `${backendLines(fx.cluster, [0, 1, 1])}
sr_check_user = 'postgres'
sr_check_period = 1
enable_pool_hba = off
health_check_period = 1
health_check_user = 'postgres'
health_check_timeout = 2
connect_timeout = 2000
auto_failback = on
auto_failback_interval = 1
num_init_children = 8
http_listen_addresses = '127.0.0.1'
http_port = ${httpPort}
http_auth = 'ops:s3cret'
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
`,
    });
    base = `http://127.0.0.1:${httpPort}`;
    await eventually(async () => {
      const s = await (await get('/api/status')).json() as { nodes: { status: string }[] };
      return s.nodes.length === 3 && s.nodes.every((n) => n.status === 'up');
    }, 'every node up in /api/status', 15_000);
  });
  after(async () => {
    await px?.stop();
  });

  /** http_auth is set: every path but /health needs Basic auth. */
  const AUTH = { authorization: `Basic ${Buffer.from('ops:s3cret').toString('base64')}` };
  const get = (p: string, init: RequestInit = {}): Promise<Response> => fetch(`${base}${p}`, { ...init, headers: AUTH });
  const client = (): pg.Client => new pg.Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres' });

  async function metrics(): Promise<Sample[]> {
    assert.equal((await fetch(`${base}/metrics`)).status, 401, 'behind http_auth');
    const r = await get('/metrics');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return parsePrometheus(await r.text()).samples;
  }
  function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
    const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    assert.equal(hits.length, 1, `one sample ${name} ${JSON.stringify(labels)} (found ${hits.length})`);
    return hits[0]!.value;
  }

  test('/health, /primary, /replica, /replica?lag=', async () => {
    const health = await fetch(`${base}/health`, { headers: {} });
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { state: 'running', nodes_up: 3, primary_id: 0 });
    assert.equal((await fetch(`${base}/primary`)).status, 401);
    const primary = await get('/primary');
    assert.equal(primary.status, 200);
    assert.deepEqual(await primary.json(), { role: 'primary', primary_id: 0, host: fx.cluster.nodes[0]!.host, port: fx.cluster.nodes[0]!.port });
    const replica = await get('/replica');
    assert.equal(replica.status, 200);
    const body = await replica.json() as { replicas: { id: number; port: number }[] };
    assert.deepEqual(body.replicas.map((r) => [r.id, r.port]), [[1, fx.cluster.nodes[1]!.port], [2, fx.cluster.nodes[2]!.port]]);
    assert.equal((await get('/replica?lag=1GB')).status, 200);
    assert.equal((await get('/replica?lag=16MB')).status, 200);
    assert.equal((await get('/nope')).status, 404);
  });

  test('/metrics: strict parse; per-node query counts match traffic; pools, sessions, classifier cache, health checks', async () => {
    const m0 = await metrics();
    const N = 40;
    const holder = client();
    await holder.connect();
    const writer = client();
    await writer.connect();
    try {
      // Statements the lexer cannot decide go through the parser and its cache: 4 distinct texts, N lookups.
      for (let i = 0; i < N; i++) await holder.query(`WITH x AS (SELECT ${i % 4} AS v) SELECT v FROM x`);
      await writer.query('CREATE TABLE IF NOT EXISTS http_metrics (a int)');
      for (let i = 0; i < 5; i++) await writer.query(`INSERT INTO http_metrics VALUES (${i})`);
      await writer.query('UPDATE http_metrics SET a = a + 1');
      await holder.query('BEGIN');
      await holder.query('SELECT 1');
      const m1 = await metrics();
      const grown = (node: number, kind: string): number =>
        value(m1, 'pgmaitre_node_queries_total', { node: String(node), kind }) - value(m0, 'pgmaitre_node_queries_total', { node: String(node), kind });
      // Reads outside a transaction go to the standbys; the one inside BEGIN goes to the primary (pgmaitre's default).
      assert.equal(grown(0, 'select'), 1, 'only the read inside BEGIN on the primary');
      assert.equal(grown(1, 'select') + grown(2, 'select'), N, 'every other read on a standby');
      assert.equal(grown(0, 'insert'), 5);
      assert.equal(grown(0, 'update'), 1);
      assert.equal(grown(1, 'insert') + grown(2, 'insert'), 0);
      // The latency histogram saw those requests: the writes on node 0, the reads on the standbys.
      const count = (m: typeof m1, node: number): number => {
        try {
          return value(m, 'pgmaitre_query_duration_seconds_count', { node: String(node) });
        } catch {
          return 0; // no request timed on that node yet: no series
        }
      };
      const timed = (node: number): number => count(m1, node) - count(m0, node);
      assert.ok(timed(0) >= 7, `requests timed on node 0: ${timed(0)}`);
      assert.equal(timed(1) + timed(2), N, 'every read on a standby timed once');
      // SHOW POOL_NODES agrees with /metrics.
      const nodes = (await writer.query<{ node_id: string; select_cnt: string }>('SHOW POOL_NODES')).rows;
      for (const n of nodes) assert.equal(Number(n.select_cnt), value(m1, 'pgmaitre_node_queries_total', { node: n.node_id, kind: 'select' }));

      for (const id of ['0', '1', '2']) {
        assert.equal(value(m1, 'pgmaitre_node_up', { node: id }), 1);
        assert.equal(value(m1, 'pgmaitre_node_primary', { node: id }), id === '0' ? 1 : 0);
        assert.equal(value(m1, 'pgmaitre_node_status', { node: id, status: 'up' }), 1);
        const ok0 = value(m0, 'pgmaitre_health_checks_total', { node: id, result: 'success' });
        assert.ok(value(m1, 'pgmaitre_health_checks_total', { node: id, result: 'success' }) >= ok0);
        assert.equal(value(m1, 'pgmaitre_health_checks_total', { node: id, result: 'fail' }), 0);
      }
      assert.equal(value(m1, 'pgmaitre_client_sessions'), 2);
      assert.equal(value(m1, 'pgmaitre_client_slots'), 8);
      assert.equal(value(m1, 'pgmaitre_client_waiting'), 0);
      // The holder is inside a transaction on the primary: that connection is active; its standby connection too (held by the session).
      assert.ok(value(m1, 'pgmaitre_pool_connections', { node: '0', state: 'active' }) >= 1, 'an active primary connection');
      const standby = [1, 2].map((id) => value(m1, 'pgmaitre_pool_connections', { node: String(id), state: 'active' }) + value(m1, 'pgmaitre_pool_connections', { node: String(id), state: 'idle' }));
      assert.ok(standby[0]! + standby[1]! >= 1, `standby connections counted (${standby.join(',')})`);
      const lookups = (m: Sample[]): number => value(m, 'pgmaitre_classifier_cache_lookups_total', { result: 'hit' }) + value(m, 'pgmaitre_classifier_cache_lookups_total', { result: 'miss' });
      // (The writer's statements may need the parser too.)
      assert.ok(lookups(m1) - lookups(m0) >= N, `one cache lookup per parsed statement (grew by ${lookups(m1) - lookups(m0)})`);
      const hits = value(m1, 'pgmaitre_classifier_cache_lookups_total', { result: 'hit' }) - value(m0, 'pgmaitre_classifier_cache_lookups_total', { result: 'hit' });
      assert.ok(hits >= N - 4 && hits <= lookups(m1) - lookups(m0), `repeated statements hit the cache (${hits} hits)`);
      const ratio = value(m1, 'pgmaitre_classifier_cache_hit_ratio');
      assert.ok(ratio > 0 && ratio <= 1, `hit ratio ${ratio}`);
      assert.ok(Math.abs(value(m1, 'pgmaitre_start_time_seconds') - Date.now() / 1000) < 600);
      await holder.query('COMMIT');
    } finally {
      await holder.end();
      await writer.end();
    }
    await eventually(async () => value(await metrics(), 'pgmaitre_client_sessions') === 0, 'client sessions back to 0');
    // Health checks keep counting (health_check_period = 1).
    await eventually(async () => value(await metrics(), 'pgmaitre_health_checks_total', { node: '1', result: 'success' })
      >= value(m0, 'pgmaitre_health_checks_total', { node: '1', result: 'success' }) + 2, 'health checks counted', 5000);
  });

  describe('status page in a browser', { skip: CHROMIUM === undefined ? 'chromium not installed' : false }, () => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    let browser: any;
    before(async () => {
      browser = await launchChromium();
    });
    after(async () => {
      await browser?.close();
    });

    test('a real standby stopped shows down within seconds, and up again after it restarts (auto_failback)', async () => {
      const page = await browser.newPage({ viewport: { width: 1280, height: 1000 }, httpCredentials: { username: 'ops', password: 's3cret' } });
      try {
        await page.goto(`${base}/`);
        assert.equal(await page.locator('#version').count(), 1);
        const statusOf = `(id) => document.querySelector('[data-node-id="' + id + '"] .status')?.textContent`;
        await page.waitForFunction("document.querySelectorAll('[data-node-id]').length === 3", undefined, { timeout: 5000 });
        for (const id of [0, 1, 2]) assert.equal(await page.locator(`[data-node-id="${id}"] .status`).textContent(), 'up');
        assert.equal(await page.locator('[data-node-id="0"] .role').textContent(), 'primary');
        assert.equal(await page.locator('[data-node-id="1"] .role').textContent(), 'standby');
        fs.mkdirSync(OUT, { recursive: true });
        await page.screenshot({ path: path.join(OUT, 'admin-status-page.png'), fullPage: true });

        await fx.cluster.stopNode('standby1');
        const stopped = Date.now();
        await page.waitForFunction(`(${statusOf})(1) === 'down'`, undefined, { timeout: 8000 });
        const took = Date.now() - stopped;
        assert.ok(took < 8000, `shown down after ${took} ms`);
        assert.match(await page.locator('[data-node-id="1"]').getAttribute('class'), /s-down/);
        assert.equal(await page.locator('[data-node-id="2"] .status').textContent(), 'up');
        await page.waitForFunction("/node 1/.test(document.querySelector('#events')?.textContent ?? '')", undefined, { timeout: 3000 });
        await page.screenshot({ path: path.join(OUT, 'admin-status-page-standby-down.png'), fullPage: true });
        assert.equal((await get('/replica')).status, 200, 'standby2 still serves');
        assert.equal((await fetch(`${base}/health`)).status, 200);

        await fx.cluster.startNode('standby1');
        await page.waitForFunction(`(${statusOf})(1) === 'up'`, undefined, { timeout: 30_000 });
        assert.match(await page.locator('[data-node-id="1"]').getAttribute('class'), /s-up/);
        await page.screenshot({ path: path.join(OUT, 'admin-status-page-failback.png'), fullPage: true });
      } finally {
        await page.close();
      }
    });
  });

  test('/primary is 503 while no primary is up (/replica, /health stay 200); POST attach brings it back', async () => {
    await fx.cluster.stopNode('primary');
    await eventually(async () => (await get('/primary')).status === 503, '/primary 503', 10_000);
    assert.equal((await get('/replica')).status, 200);
    const h = await fetch(`${base}/health`);
    assert.equal(h.status, 200);
    assert.equal(((await h.json()) as { primary_id: number }).primary_id, -1);
    await fx.cluster.startNode('primary');
    // As in pgpool, a detached primary stays detached until an admin attaches it (auto_failback is for standbys).
    assert.equal((await fetch(`${base}/api/nodes/0/attach`, { method: 'POST' })).status, 401);
    const attach = await get('/api/nodes/0/attach', { method: 'POST' });
    assert.equal(attach.status, 200, await attach.clone().text());
    assert.equal(((await attach.json()) as { ok: boolean }).ok, true);
    await eventually(async () => (await get('/primary')).status === 200, '/primary 200 after the restarted primary is attached', 15_000);
    const c = client();
    await c.connect();
    try {
      await c.query('INSERT INTO http_metrics VALUES (99)');
    } finally {
      await c.end();
    }
  });
});
