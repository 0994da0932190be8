/**
 * The container image, tested without a Docker engine (none on these machines): what the image
 * relies on. The container configuration (docker/pgpool.conf) passes `pgmaitre check` with no
 * warning and listens on all addresses; the Dockerfile ships it where CMD and HEALTHCHECK look,
 * exposes its ports and copies only files that exist; docker/compose.yaml names the services,
 * ports and passwords that configuration uses; the helper scripts parse. Then the container
 * configuration itself — only the backend addresses, listen addresses and ports changed to this
 * machine's loopback — runs against a real cluster with password (SCRAM) logins as in compose,
 * and the HEALTHCHECK command answers 0, then 1 once every backend is down.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Client } from 'pg';
import { freePort, REPO_ROOT, startPgmaitre, withCluster, type PgmaitreProcess } from '../harness/cluster';
import { exec } from '../harness/exec';
import { loadConfig } from '../../src/config/load';

const DOCKER = path.join(REPO_ROOT, 'docker');
const CONF = path.join(DOCKER, 'pgpool.conf');
const BIN = path.join(REPO_ROOT, 'bin', 'pgmaitre.js');
const IMAGE_CONF = '/etc/pgmaitre/pgpool.conf';

/** Dockerfile instructions of the final stage, continuation lines joined. */
function finalStage(): { op: string; args: string }[] {
  const text = fs.readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8').replace(/\\\n\s*/g, ' ');
  const all = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => { const m = /^(\w+)\s+(.*)$/.exec(l)!; return { op: m[1]!.toUpperCase(), args: m[2]! }; });
  const lastFrom = all.map((i) => i.op).lastIndexOf('FROM');
  return all.slice(lastFrom);
}

function execForm(args: string): string[] {
  return JSON.parse(args.replace(/^CMD\s+/, '')) as string[];
}

describe('container image: configuration, Dockerfile, compose', () => {
  test('the container configuration passes pgmaitre check with no warning and listens on all addresses', async () => {
    const r = await exec(process.execPath, [BIN, 'check', '--strict', '-f', CONF]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.doesNotMatch(r.stdout, /WARNING/);
    const { config } = loadConfig(CONF);
    assert.equal(config.listen_addresses, '*');
    assert.equal(config.http_listen_addresses, '*');
    assert.ok(config.http_port > 0, 'HTTP on: the HEALTHCHECK needs /health');
    assert.equal(config.pid_file_name, '');
  });

  test('the Dockerfile ships that configuration where CMD and HEALTHCHECK read it, exposes its ports, copies files that exist', () => {
    const stage = finalStage();
    const { config } = loadConfig(CONF);
    const copies = stage.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'));
    assert.ok(copies.some((c) => c.args === `docker/pgpool.conf ${IMAGE_CONF}`), 'container configuration copied to /etc/pgmaitre');
    for (const c of copies) {
      const src = c.args.split(/\s+/)[0]!;
      assert.ok(fs.existsSync(path.join(REPO_ROOT, src)), `COPY source ${src} exists`);
    }
    const expose = stage.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/).map(Number));
    assert.ok(expose.includes(config.port) && expose.includes(config.http_port), `EXPOSE ${expose.join(' ')}`);
    const user = stage.find((i) => i.op === 'USER');
    assert.ok(user !== undefined && user.args !== 'root' && user.args !== '0', 'runs as a non-root user');
    const entry = execForm(stage.find((i) => i.op === 'ENTRYPOINT')!.args);
    assert.deepEqual(entry, ['node', 'bin/pgmaitre.js']);
    assert.deepEqual(execForm(stage.find((i) => i.op === 'CMD')!.args), ['-n', '-f', IMAGE_CONF]);
    const hc = stage.find((i) => i.op === 'HEALTHCHECK');
    assert.ok(hc !== undefined, 'HEALTHCHECK present');
    const m = /^(.*?)CMD\s+(\[.*\])$/.exec(hc.args)!;
    assert.match(m[1]!, /--interval=\d+s/);
    assert.deepEqual(JSON.parse(m[2]!), ['node', 'bin/pgmaitre.js', 'healthcheck', '-f', IMAGE_CONF]);
  });

  test('compose.yaml: services, ports and passwords match the container configuration', () => {
    const compose = parseYaml(fs.readFileSync(path.join(DOCKER, 'compose.yaml'), 'utf8')) as {
      services: Record<string, { image?: string; build?: { context: string; dockerfile: string }; ports?: string[];
        environment?: Record<string, string>; volumes?: string[]; depends_on?: Record<string, { condition: string }>; entrypoint?: string[] }>;
    };
    const { config } = loadConfig(CONF);
    const s = compose.services;
    assert.deepEqual(Object.keys(s).sort(), ['pgmaitre', 'primary', 'standby']);
    assert.deepEqual(config.backends.map((b) => [b.hostname, b.port]), [['primary', 5432], ['standby', 5432]]);
    const password = s.primary!.environment!['POSTGRES_PASSWORD'];
    assert.equal(config.sr_check_user, 'postgres');
    assert.equal(config.sr_check_password, password);
    assert.equal(config.health_check_password, password);
    const build = s.pgmaitre!.build!;
    assert.ok(fs.existsSync(path.join(DOCKER, build.context, build.dockerfile)), 'build context holds the Dockerfile');
    assert.deepEqual(s.pgmaitre!.ports!.sort(), [`${config.http_port}:${config.http_port}`, `${config.port}:${config.port}`].sort());
    assert.deepEqual(Object.keys(s.pgmaitre!.depends_on!).sort(), ['primary', 'standby']);
    for (const svc of ['primary', 'standby'] as const) {
      for (const v of s[svc]!.volumes ?? []) {
        const src = v.split(':')[0]!;
        if (src.startsWith('.')) assert.ok(fs.existsSync(path.join(DOCKER, src)), `${svc} mounts ${src}, which exists`);
      }
    }
    // The standby's replication login and its application_name are the ones the primary and
    // pgmaitre expect.
    const initdb = fs.readFileSync(path.join(DOCKER, 'initdb', '10-replication.sh'), 'utf8');
    const standby = fs.readFileSync(path.join(DOCKER, 'standby', 'standby.sh'), 'utf8');
    assert.match(initdb, new RegExp(`CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '${s.standby!.environment!['PGPASSWORD']}'`));
    assert.match(standby, new RegExp(`application_name=${config.backends[1]!.applicationName}'`));
    assert.deepEqual(s.standby!.entrypoint, ['bash', '/standby/standby.sh']);
  });

  test('the helper scripts parse (bash -n)', async () => {
    for (const f of ['initdb/10-replication.sh', 'standby/standby.sh']) {
      const r = await exec('/bin/bash', ['-n', path.join(DOCKER, f)]);
      assert.equal(r.code, 0, `${f}: ${r.stderr}`);
    }
  });
});

describe('the container configuration against a real cluster (SCRAM logins, as in compose)', { timeout: 120_000 }, () => {
  const fx = withCluster({ standbys: 1, auth: 'scram-sha-256' });
  let px: PgmaitreProcess;
  let conf: string;
  let httpPort: number;

  before(async () => {
    const port = await freePort();
    httpPort = await freePort();
    const [primary, standby] = fx.cluster.nodes;
    // Only what differs between a compose network and this machine's loopback.
    const text = fs.readFileSync(CONF, 'utf8')
      .replace("listen_addresses = '*'", "listen_addresses = '127.0.0.1'")
      .replace("http_listen_addresses = '*'", "http_listen_addresses = '127.0.0.1'")
      .replace(/^port = 9999/m, `port = ${port}`)
      .replace(/^http_port = 8404/m, `http_port = ${httpPort}`)
      .replace("unix_socket_directories = '/tmp'", "unix_socket_directories = ''")
      .replace("backend_hostname0 = 'primary'", `backend_hostname0 = '${primary!.host}'`)
      .replace('backend_port0 = 5432', `backend_port0 = ${primary!.port}`)
      .replace("backend_hostname1 = 'standby'", `backend_hostname1 = '${standby!.host}'`)
      .replace('backend_port1 = 5432', `backend_port1 = ${standby!.port}`)
      .replace("backend_application_name1 = 'standby'", `backend_application_name1 = '${standby!.id}'`)
      .replace('health_check_period = 5', 'health_check_period = 1')
      .replace('sr_check_period = 5', 'sr_check_period = 1')
      .replace('health_check_max_retries = 2', 'health_check_max_retries = 0');
    // startPgmaitre prepends its test defaults (no PCP/HTTP/pid file): this file's lines come after and win.
    px = await startPgmaitre({ config: text });
    conf = path.join(px.dir, 'pgpool.conf');
  });
  after(async () => { await px?.stop(); });

  test('clients get through, the standby is found streaming, the HEALTHCHECK command answers 0, then 1 with every backend down', async () => {
    const c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', password: 'postgres', database: 'postgres' });
    await c.connect();
    assert.equal((await c.query('SELECT 1 AS n')).rows[0]?.n, 1);
    let rows: { node_id: string; status: string; role: string; replication_state: string }[] = [];
    for (let i = 0; i < 40; i++) {
      rows = (await c.query('SHOW POOL_NODES')).rows;
      if (rows[1]?.replication_state === 'streaming') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await c.end();
    assert.deepEqual(rows.map((r) => [r.status, r.role]), [['up', 'primary'], ['up', 'standby']]);
    assert.equal(rows[1]!.replication_state, 'streaming', 'the standby matched by backend_application_name1 in pg_stat_replication');
    const ok = await exec(process.execPath, [BIN, 'healthcheck', '-f', conf]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    await fx.cluster.stopNode(fx.cluster.standbys[0]!.id, 'immediate');
    await fx.cluster.stopNode(fx.cluster.primary.id, 'immediate');
    let down = ok;
    for (let i = 0; i < 60 && down.code === 0; i++) {
      await new Promise((r) => setTimeout(r, 250));
      down = await exec(process.execPath, [BIN, 'healthcheck', '-f', conf]);
    }
    assert.equal(down.code, 1, down.stdout + down.stderr);
    assert.match(down.stderr, /\/health: 503 .*"state":"no backend up"/);
  });
});
