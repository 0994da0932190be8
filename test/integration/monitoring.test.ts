/**
 * docs/monitoring/: every metric (and every label value matched by equality or regex) that the
 * Prometheus alert rules and the Grafana dashboard use is exported by a real pgmaitre's
 * /metrics, scraped after real traffic on a real cluster; the dashboard is well-formed; and,
 * when promtool is installed (.ci/run extracts it from Debian's prometheus package), the
 * rules pass `promtool check rules`, their unit tests pass `promtool test rules`, and the
 * scraped exposition passes `promtool check metrics`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Client } from 'pg';
import { freePort, withCluster } from '../harness/cluster';
import { backendLines, startInProcess, type InProcess } from '../harness/in-process';
import { parsePrometheus, type Sample } from '../harness/prometheus';
import { matches, selectorsOf, type Selector } from '../harness/promql';
import { exec, isExecutable } from '../harness/exec';

const DOCS = path.resolve(__dirname, '../../../docs/monitoring');
const RULES = path.join(DOCS, 'pgmaitre-alerts.yml');
const DASHBOARD = path.join(DOCS, 'grafana-dashboard.json');
const PROMTOOL = ['/usr/local/bin/promtool', '/usr/bin/promtool'].find(isExecutable);
/** Labels Prometheus adds at scrape time (or the rules' own scrape health metric). */
const SCRAPE_LABELS = new Set(['instance', 'job']);
const PROMETHEUS_METRICS = new Set(['up']);

interface Use { readonly where: string; readonly expr: string }

function ruleExprs(): Use[] {
  const doc = parseYaml(fs.readFileSync(RULES, 'utf8')) as { groups: { name: string; rules: { alert?: string; record?: string; expr: string }[] }[] };
  return doc.groups.flatMap((g) => g.rules.map((r) => ({ where: `alert ${r.alert ?? r.record}`, expr: String(r.expr) })));
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
function dashboard(): Json { return JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')); }

/** Grafana variables replaced by what they could be: any instance, a one-minute rate window. */
function grafanaToPromql(expr: string): string {
  return expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '1m').replace(/\$\{?instance\}?/g, '.*');
}

function dashboardExprs(): Use[] {
  const d = dashboard();
  const out: Use[] = [];
  for (const p of d.panels as Json[]) for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: grafanaToPromql(t.expr) });
  for (const a of d.annotations?.list ?? []) if (a.expr) out.push({ where: `annotation "${a.name}"`, expr: grafanaToPromql(a.expr) });
  for (const v of d.templating?.list ?? []) {
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    const m = /^label_values\(\s*([^,)]+)\s*,\s*(\w+)\s*\)$/.exec(q ?? '');
    if (m) out.push({ where: `variable ${v.name}`, expr: m[1]! });
  }
  return out;
}

/** What is wrong with one selector against a scrape, or null. */
function problem(sel: Selector, types: Map<string, string>, samples: readonly Sample[]): string | null {
  if (PROMETHEUS_METRICS.has(sel.metric)) return null;
  const family = sel.metric.replace(/_(bucket|sum|count)$/, '');
  const exported = types.has(sel.metric) || (family !== sel.metric && types.get(family) === 'histogram');
  if (!exported) return `${sel.metric} is not exported`;
  const of = samples.filter((s) => s.name === sel.metric);
  const own = sel.matchers.filter((m) => !SCRAPE_LABELS.has(m.label));
  if (of.length === 0) return `${sel.metric} has no sample`;
  if (!of.some((s) => own.every((m) => matches(m, s.labels[m.label])))) {
    return `no ${sel.metric} sample matches {${own.map((m) => `${m.label}${m.op}"${m.value}"`).join(', ')}}`;
  }
  return null;
}

describe('alert rules and dashboard', () => {
  test('the selector reader finds metrics and matchers, and flags what is not exported', () => {
    assert.deepEqual(selectorsOf('histogram_quantile(0.99, sum by (le, node) (rate(pgmaitre_query_duration_seconds_bucket{instance=~".*"}[1m])))'),
      [{ metric: 'pgmaitre_query_duration_seconds_bucket', matchers: [{ label: 'instance', op: '=~', value: '.*' }] }]);
    assert.deepEqual(selectorsOf('a > on (instance, job) group_left () b and on (instance) b > 1e6').map((s) => s.metric), ['a', 'b', 'b']);
    const types = new Map([['pgmaitre_x', 'gauge']]);
    const samples: Sample[] = [{ name: 'pgmaitre_x', labels: { kind: 'a' }, value: 1 }];
    assert.equal(problem({ metric: 'pgmaitre_y', matchers: [] }, types, samples), 'pgmaitre_y is not exported');
    assert.match(problem({ metric: 'pgmaitre_x', matchers: [{ label: 'kind', op: '=', value: 'b' }] }, types, samples)!, /no pgmaitre_x sample matches/);
    assert.equal(problem({ metric: 'pgmaitre_x', matchers: [{ label: 'kind', op: '=~', value: 'a|b' }, { label: 'instance', op: '=', value: 'h' }] }, types, samples), null);
  });

  test('the Grafana dashboard is well-formed: unique ids, 24-column grid, every target on the datasource variable', () => {
    const d = dashboard();
    assert.equal(d.uid, 'pgmaitre');
    const ids = (d.panels as Json[]).map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'unique panel ids');
    for (const p of d.panels as Json[]) {
      assert.ok(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `panel "${p.title}" fits the grid`);
      if (p.type === 'row') continue;
      assert.ok(p.targets.length > 0, `panel "${p.title}" has queries`);
      assert.equal(p.datasource.uid, '${datasource}');
      for (const t of p.targets) {
        assert.equal(t.datasource.uid, '${datasource}');
        assert.match(t.expr, /\$instance/, `panel "${p.title}" ${t.refId} follows the instance variable`);
      }
    }
    assert.deepEqual((d.templating.list as Json[]).map((v) => v.name), ['datasource', 'instance']);
  });

  test('promtool: rules and their unit tests', { skip: PROMTOOL === undefined ? 'promtool not installed (.ci/run extracts it from Debian\'s prometheus package)' : false }, async () => {
    const check = await exec(PROMTOOL!, ['check', 'rules', RULES]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /SUCCESS: 9 rules found/);
    const unit = await exec(PROMTOOL!, ['test', 'rules', 'pgmaitre-alerts.test.yml'], { cwd: DOCS });
    assert.equal(unit.code, 0, unit.stdout + unit.stderr);
  });
});

describe('metrics used by the rules and the dashboard are exported by a real pgmaitre', { timeout: 120_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  let px: InProcess;
  let httpPort: number;
  before(async () => {
    httpPort = await freePort();
    px = await startInProcess(`${backendLines(fx.cluster, [0, 1, 1])}\nsr_check_user = 'postgres'\nhealth_check_user = 'postgres'\n` +
      `health_check_period = 1\nsr_check_period = 1\ndelay_threshold = 16MB\ndelay_threshold_by_time = 2000\n` +
      `http_port = ${httpPort}\nhttp_listen_addresses = '127.0.0.1'\n`);
  });
  after(async () => { await px?.stop(); });

  test('every selector of the alert rules and the dashboard matches a sample of /metrics', async () => {
    const c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres' });
    await c.connect();
    await c.query('CREATE TABLE IF NOT EXISTS mon_t (i int)');
    await c.query('INSERT INTO mon_t VALUES (1)');
    for (let i = 0; i < 20; i++) await c.query('SELECT 1');
    await c.end();
    // let the streaming-replication check measure the lag once (bytes and seconds)
    await new Promise((r) => setTimeout(r, 1500));
    const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    const { types, samples } = parsePrometheus(text);
    const uses = [...ruleExprs(), ...dashboardExprs()];
    assert.ok(uses.length >= 30, `expressions read: ${uses.length}`);
    const problems: string[] = [];
    const seen = new Set<string>();
    for (const u of uses) {
      const sels = selectorsOf(u.expr);
      assert.ok(sels.length > 0, `${u.where}: no selector read in ${u.expr}`);
      for (const s of sels) {
        seen.add(s.metric);
        const p = problem(s, types, samples);
        if (p !== null) problems.push(`${u.where}: ${p}`);
      }
    }
    assert.deepEqual(problems, []);
    // The alerts the issue asks for are there, on the metrics that carry them.
    const alerts = ruleExprs().map((u) => u.where);
    for (const a of ['PgmaitreBackendNodeDown', 'PgmaitreNoPrimary', 'PgmaitreReplicationLagAboveThreshold', 'PgmaitreClientsWaiting', 'PgmaitreFailover']) {
      assert.ok(alerts.includes(`alert ${a}`), `alert ${a}`);
    }
    for (const m of ['pgmaitre_node_up', 'pgmaitre_node_primary', 'pgmaitre_delay_threshold_bytes', 'pgmaitre_client_waiting', 'pgmaitre_cluster_events_total', 'pgmaitre_query_duration_seconds_bucket']) {
      assert.ok(seen.has(m), `${m} is used`);
    }
    if (PROMTOOL !== undefined) {
      const lint = await exec(PROMTOOL, ['check', 'metrics'], { input: text });
      assert.equal(lint.code, 0, `promtool check metrics:\n${lint.stdout}${lint.stderr}`);
    }
  });
});
