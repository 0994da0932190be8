/** The HTTP face over real sockets: status codes, auth, admin actions, JSON and a strict /metrics parse. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHttpServer, type HttpServer } from '../../src/http/server';
import { observeQueryLatency } from '../../src/http/metrics';
import { addSession, makeContext, type TestContext } from '../fixtures/admin/context';
import { parsePrometheus } from '../harness/prometheus';

describe('HTTP status, health and metrics endpoints', () => {
  let t: TestContext;
  let open: HttpServer;
  let secured: HttpServer;
  let base: string;
  let sbase: string;
  const basic = `Basic ${Buffer.from('ops:pa:ss').toString('base64')}`;

  before(async () => {
    t = makeContext();
    addSession(t);
    open = createHttpServer(t.ctx, { port: 0, listenAddresses: '127.0.0.1' });
    secured = createHttpServer(t.ctx, { port: 0, listenAddresses: '127.0.0.1', auth: () => 'ops:pa:ss' });
    base = `http://127.0.0.1:${await open.listen()}`;
    sbase = `http://127.0.0.1:${await secured.listen()}`;
  });
  after(async () => {
    await open.close();
    await secured.close();
  });

  test('/primary, /replica (with lag), /health follow the cluster', async () => {
    assert.equal((await fetch(`${base}/primary`)).status, 200);
    assert.equal((await fetch(`${base}/replica`)).status, 200);
    assert.equal((await fetch(`${base}/replica?lag=1024`)).status, 200);
    assert.equal((await fetch(`${base}/replica?lag=100`)).status, 503);
    assert.equal((await fetch(`${base}/replica?lag=1MB`)).status, 200);
    assert.equal((await fetch(`${base}/health`)).status, 200);
    t.cluster.setStatus(0, 'down', 'test');
    try {
      assert.equal((await fetch(`${base}/primary`)).status, 503);
      t.cluster.setStatus(1, 'down', 'test');
      assert.equal((await fetch(`${base}/replica`)).status, 503);
      assert.equal((await fetch(`${base}/health`)).status, 503);
    } finally {
      t.cluster.setStatus(0, 'up', 'test');
      t.cluster.setStatus(1, 'up', 'test');
    }
    assert.equal((await fetch(`${base}/nope`)).status, 404);
  });

  test('/ serves the page and /api/status the snapshot', async () => {
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await page.text(), /<title>pgmaitre status<\/title>/);
    const s = await (await fetch(`${base}/api/status`)).json() as { nodes: { id: number; status: string; role: string; lagBytes: number }[]; sessions: unknown[]; actionsEnabled: boolean; classifier: { hitRatio: number } };
    assert.deepEqual(s.nodes.map((n) => [n.id, n.status, n.role]), [[0, 'up', 'primary'], [1, 'up', 'standby'], [2, 'down', 'standby']]);
    assert.equal(s.nodes[1]?.lagBytes, 1024);
    assert.equal(s.sessions.length, 1);
    assert.equal(s.actionsEnabled, false);
    assert.equal(s.classifier.hitRatio, 0.9);
    // The status page shows the pgpool-II version of pgpool_compatibility (default 4.7).
    assert.equal((s as unknown as { version: string }).version, '4.7.0');
  });

  test('/metrics parses strictly and carries the per-node series', async () => {
    Object.assign(t.cluster.node(1)!.counters, { select_cnt: 42, error_cnt: 3 });
    observeQueryLatency(1, 0.003);
    observeQueryLatency(1, 0.2);
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const { types, samples } = parsePrometheus(await res.text());
    const get = (name: string, labels: Record<string, string>) =>
      samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
    assert.equal(types.get('pgmaitre_node_queries_total'), 'counter');
    assert.equal(get('pgmaitre_node_queries_total', { node: '1', kind: 'select' }), 42);
    assert.equal(get('pgmaitre_node_errors_total', { node: '1', severity: 'error' }), 3);
    assert.equal(get('pgmaitre_node_up', { node: '2' }), 0);
    assert.equal(get('pgmaitre_node_status', { node: '2', status: 'down' }), 1);
    assert.equal(get('pgmaitre_node_primary', { node: '0' }), 1);
    assert.equal(get('pgmaitre_node_replication_lag_bytes', { node: '1' }), 1024);
    assert.equal(get('pgmaitre_pool_connections', { node: '0', state: 'idle' }), 2);
    assert.equal(get('pgmaitre_client_sessions', {}), 1);
    assert.equal(get('pgmaitre_classifier_cache_hit_ratio', {}), 0.9);
    assert.equal(types.get('pgmaitre_query_duration_seconds'), 'histogram');
    assert.ok((get('pgmaitre_query_duration_seconds_count', { node: '1' }) ?? 0) >= 2);
    assert.ok((get('pgmaitre_query_duration_seconds_bucket', { node: '1', le: '0.005' }) ?? 0) >= 1);
  });

  test('http_auth: everything but /health needs Basic auth; admin actions only with auth', async () => {
    assert.equal((await fetch(`${sbase}/health`)).status, 200);
    for (const p of ['/', '/api/status', '/metrics', '/primary', '/replica']) {
      const r = await fetch(`${sbase}${p}`);
      assert.equal(r.status, 401, p);
      assert.match(r.headers.get('www-authenticate') ?? '', /^Basic/);
    }
    assert.equal((await fetch(`${sbase}/metrics`, { headers: { authorization: `Basic ${Buffer.from('ops:wrong').toString('base64')}` } })).status, 401);
    assert.equal((await fetch(`${sbase}/primary`, { headers: { authorization: basic } })).status, 200);
    t.calls.length = 0;
    assert.equal((await fetch(`${base}/api/nodes/1/detach`, { method: 'POST' })).status, 403);
    assert.equal((await fetch(`${sbase}/api/nodes/1/detach`, { method: 'POST' })).status, 401);
    const ok = await fetch(`${sbase}/api/nodes/2/attach`, { method: 'POST', headers: { authorization: basic } });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { ok: true, message: 'node 2 attached' });
    assert.equal((await fetch(`${sbase}/api/nodes/1/promote`, { method: 'POST', headers: { authorization: basic } })).status, 200);
    assert.equal((await fetch(`${sbase}/api/nodes/9/detach`, { method: 'POST', headers: { authorization: basic } })).status, 404);
    assert.equal((await fetch(`${sbase}/api/nodes/1/detach`, { headers: { authorization: basic } })).status, 405);
    assert.deepEqual(t.calls, ['attach 2', 'promote 1']);
    const s = await (await fetch(`${sbase}/api/status`, { headers: { authorization: basic } })).json() as { actionsEnabled: boolean };
    assert.equal(s.actionsEnabled, true);
  });
});
