/**
 * worker_processes = 2 against a real cluster, pgmaitre run as the CLI runs it (a supervisor
 * and two worker processes): one system to clients and admins. Sessions of both workers are
 * listed once by SHOW POOL_PROCESSES and counted by /metrics; a CancelRequest that lands on the
 * other worker still cancels; a node detached through the supervisor is avoided by every
 * worker; SIGHUP reaches every worker; limits hold for the instance; a worker killed under load
 * ends only its own clients' connections, is logged with its cause and restarted; SIGTERM
 * drains both workers and exits 0.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as net from 'node:net';
import { Client } from 'pg';
import { freePort, REPO_ROOT, startPgmaitre, withCluster, type PgmaitreProcess } from '../harness/cluster';
import { pcpHash } from '../../src/config/pcp-conf';
import { backendLines, eventually } from '../harness/in-process';
import { exec } from '../harness/exec';

const AUTH = 'admin:secret';

function client(port: number): Client {
  return new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
}

async function connectAll(port: number, n: number): Promise<Client[]> {
  const out: Client[] = [];
  // One at a time: the supervisor deals connections round-robin, so they alternate between the workers.
  for (let i = 0; i < n; i++) {
    const c = client(port);
    c.on('error', () => {});
    await c.connect();
    out.push(c);
  }
  return out;
}

async function endAll(cs: readonly Client[]): Promise<void> {
  await Promise.all(cs.map((c) => c.end().catch(() => {})));
}

async function httpGet(port: number, p: string): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${port}${p}`, { headers: { authorization: `Basic ${Buffer.from(AUTH).toString('base64')}` } });
  return r.text();
}

async function httpPost(port: number, p: string): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${port}${p}`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from(AUTH).toString('base64')}` } });
  await r.text();
  return r.status;
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  assert.ok(m, `metric ${name} in:\n${text.slice(0, 2000)}`);
  return Number(m[1]);
}

/** Sends a CancelRequest for (pid, secret) on a new connection. */
function sendCancel(port: number, pid: number, secret: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      const b = Buffer.alloc(16);
      b.writeInt32BE(16, 0); b.writeInt32BE(80877102, 4); b.writeInt32BE(pid, 8); b.writeInt32BE(secret, 12);
      s.end(b);
    });
    s.on('close', () => resolve());
    s.on('error', reject);
  });
}

/** The worker pids the supervisor logged (workers_ready, then each restart's exit). */
function workerPids(logs: string): number[] {
  const m = /"event":"workers_ready".*?"pids":\[([\d,]+)\]/.exec(logs);
  assert.ok(m, `workers_ready in the log:\n${logs.slice(-3000)}`);
  return m[1]!.split(',').map(Number);
}

describe('worker_processes = 2', { timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  let px: PgmaitreProcess;
  let port: number;
  let httpPort: number;
  let pcpPort: number;

  /** A pcp_* equivalent (`pgmaitre proc-count ...`) against the supervisor's PCP port. */
  async function pcp(...args: string[]): Promise<string> {
    const pass = path.join(px.dir, '.pcppass');
    fs.writeFileSync(pass, `*:*:admin:s3cret\n`, { mode: 0o600 });
    const r = await exec(process.execPath, [path.join(REPO_ROOT, 'bin', 'pgmaitre.js'), args[0]!, '-h', '127.0.0.1', '-p', String(pcpPort), '-U', 'admin', '-w', ...args.slice(1)],
      { env: { PATH: process.env['PATH'], PCPPASSFILE: pass, LC_ALL: 'C' }, timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  }

  before(async () => {
    port = await freePort();
    httpPort = await freePort();
    pcpPort = await freePort();
    px = await startPgmaitre({
      files: { 'pcp.conf': `admin:${pcpHash('s3cret')}\n` },
      config: [
        `listen_addresses = '127.0.0.1'`, `port = ${port}`, "unix_socket_directories = ''",
        `pcp_listen_addresses = '127.0.0.1'`, `pcp_port = ${pcpPort}`, "pcp_socket_dir = ''",
        `http_port = ${httpPort}`, "http_listen_addresses = '127.0.0.1'", `http_auth = '${AUTH}'`,
        backendLines(fx.cluster), "sr_check_user = 'postgres'", "health_check_user = 'postgres'", 'health_check_period = 1',
        'sr_check_period = 1', 'worker_processes = 2', 'num_init_children = 10', 'client_idle_limit = 0', 'log_min_messages = info', '',
      ].join('\n'),
      timeoutMs: 60_000, // a worker's start (WASM classifier included) is slow on a loaded machine
    });
    await px.waitForLog(/"event":"workers_ready"/, 30_000);
  }, { timeout: 120_000 });
  after(async () => {
    await px?.stop();
  });

  test('two worker processes serve clients; SHOW POOL_PROCESSES and /metrics show every session of both, once', async () => {
    const pids = workerPids(px.logs());
    assert.equal(pids.length, 2);
    assert.equal(new Set([...pids, px.pid]).size, 3, 'supervisor and two workers are distinct processes');
    const cs = await connectAll(port, 6);
    try {
      for (const c of cs) assert.equal((await c.query('SELECT 1 AS n')).rows[0].n, 1);
      const rows = (await cs[0]!.query('SHOW POOL_PROCESSES')).rows as Record<string, string>[];
      assert.equal(rows.length, 10, 'one row per num_init_children slot of the instance');
      const busy = rows.filter((r) => r['pool_pid'] !== undefined ? r['database'] !== '' : true).filter((r) => r['database'] === 'postgres');
      assert.equal(busy.length, 6, JSON.stringify(rows));
      // Every slot number appears once across both workers' slots.
      const slotIds = rows.map((r) => Object.values(r)[0]);
      assert.equal(new Set(slotIds).size, rows.length, `unique rows: ${JSON.stringify(rows)}`);
      // The same answer whichever worker is asked.
      for (const c of cs.slice(1, 3)) assert.equal(((await c.query('SHOW POOL_PROCESSES')).rows as Record<string, string>[]).filter((r) => r['database'] === 'postgres').length, 6);
      const m = await httpGet(httpPort, '/metrics');
      assert.equal(metric(m, 'pgmaitre_client_sessions'), 6);
      assert.equal(metric(m, 'pgmaitre_client_slots'), 10, 'num_init_children is the instance\'s, split 5 + 5');
      // The latency histogram is the workers' summed (the supervisor serves no query itself):
      // every request of both workers' sessions is counted, once.
      const counted = [...m.matchAll(/^pgmaitre_query_duration_seconds_count\{[^}]*\} (\S+)$/gm)].reduce((a, x) => a + Number(x[1]), 0);
      const infBuckets = [...m.matchAll(/^pgmaitre_query_duration_seconds_bucket\{[^}]*le="\+Inf"[^}]*\} (\S+)$/gm)].reduce((a, x) => a + Number(x[1]), 0);
      assert.ok(counted >= 6, `query latency counted for both workers: ${counted}\n${m.split('\n').filter((l) => /duration/.test(l)).join('\n')}`);
      assert.equal(infBuckets, counted, 'the +Inf buckets add up to the count');
      // PCP (the supervisor's) answers for the instance: 10 slots, the 6 sessions of both workers.
      assert.equal((await pcp('proc-count')).trim().split(' ').length, 10);
      assert.equal((await pcp('proc-info', '-a')).split('\n').filter((l) => /^postgres postgres /.test(l)).length >= 6, true, await pcp('proc-info', '-a'));
      const status = JSON.parse(await httpGet(httpPort, '/api/status')) as { sessions: unknown[] };
      assert.equal(status.sessions.length, 6);
      // Statement counters summed over the workers (each of the 6 SELECT 1 went to some node).
      const nodes = (await cs[0]!.query('SHOW POOL_NODES')).rows as Record<string, string>[];
      assert.ok(nodes.reduce((a, r) => a + Number(r['select_cnt']), 0) >= 6, JSON.stringify(nodes));
    } finally {
      await endAll(cs);
    }
  });

  test('read_your_writes across workers: every session reads its own writes; WAL positions asked once per instance (one side connection per node)', async () => {
    const cs = await connectAll(port, 8);
    try {
      await cs[0]!.query('CREATE TABLE IF NOT EXISTS ryw_workers (c int, n int)');
      for (let round = 0; round < 4; round++) {
        await Promise.all(cs.map(async (c, i) => {
          await c.query('INSERT INTO ryw_workers VALUES ($1, $2)', [i, round]);
          for (let k = 0; k < 3; k++) {
            const r = await c.query('SELECT count(*)::int AS n FROM ryw_workers WHERE c = $1', [i]);
            assert.equal(r.rows[0].n, round + 1, `client ${i} round ${round}: its own writes`);
          }
        }));
        await new Promise((r) => setTimeout(r, 200));
      }
      // Once the standbys have replayed (positions pushed by the supervisor), the sessions that
      // balance their reads to a standby (session-level: some sessions' node is the primary) read
      // there again, and still see their own writes.
      const back = await Promise.all(cs.map(async (c, i) => {
        let onStandby = false;
        for (let k = 0; k < 100 && !onStandby; k++) {
          const r = await c.query('SELECT count(*)::int AS n, pg_is_in_recovery() AS s FROM ryw_workers WHERE c = $1', [i]);
          assert.equal(r.rows[0].n, 4, `client ${i}: its own writes`);
          onStandby = r.rows[0].s === true;
          if (!onStandby) await new Promise((res) => setTimeout(res, 50));
        }
        return onStandby;
      }));
      assert.ok(back.some((b) => b), `sessions read on a standby again once it replayed their writes: ${JSON.stringify(back)}`);
      // The side connections that ask WAL positions ('pgmaitre lsn'): the supervisor's only, at
      // most one per node, whichever worker's sessions needed them.
      let standbyAsked = 0;
      for (const n of fx.cluster.nodes) {
        const d = new Client({ host: n.host, port: n.port, user: 'postgres', database: 'postgres' });
        await d.connect();
        try {
          const r = await d.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'pgmaitre lsn'");
          assert.ok(r.rows[0].n <= 1, `node ${n.port}: ${r.rows[0].n} WAL position connections`);
          if (n !== fx.cluster.nodes[0]) standbyAsked += r.rows[0].n;
        } finally {
          await d.end();
        }
      }
      assert.ok(standbyAsked >= 1, 'a standby was asked its replay position (reads went there)');
    } finally {
      await cs[0]!.query('DROP TABLE IF EXISTS ryw_workers').catch(() => {});
      await endAll(cs);
    }
  });

  test('a CancelRequest cancels the query whichever worker accepts it', async () => {
    // Two sessions in a row (one per worker), each cancelled through the next connection:
    // with round-robin dealing at least one cancel lands on the other worker.
    for (let i = 0; i < 2; i++) {
      const c = client(port);
      await c.connect();
      try {
        const keys = c as unknown as { processID: number; secretKey: number };
        const q = c.query('SELECT pg_sleep(30)').then(() => null, (e: { code?: string }) => e.code ?? 'error');
        await new Promise((r) => setTimeout(r, 300));
        const t0 = Date.now();
        await sendCancel(port, keys.processID, keys.secretKey);
        assert.equal(await q, '57014');
        assert.ok(Date.now() - t0 < 10_000);
      } finally {
        await c.end().catch(() => {});
      }
    }
    // A wrong key cancels nothing, anywhere.
    const c = client(port);
    await c.connect();
    try {
      const keys = c as unknown as { processID: number; secretKey: number };
      const q = c.query('SELECT pg_sleep(1.5) AS s');
      await sendCancel(port, keys.processID, (keys.secretKey + 1) | 0);
      await sendCancel(port, keys.processID, (keys.secretKey + 1) | 0);
      assert.equal((await q).rows.length, 1);
    } finally {
      await c.end();
    }
  });

  test('a node detached through the supervisor is avoided by every worker, and comes back', async () => {
    assert.equal(await httpPost(httpPort, '/api/nodes/1/detach'), 200);
    assert.equal(await httpPost(httpPort, '/api/nodes/2/detach'), 200);
    try {
      const cs = await connectAll(port, 4);
      try {
        for (const c of cs) {
          for (let i = 0; i < 3; i++) assert.equal((await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, false, 'no standby left: reads on the primary');
        }
      } finally {
        await endAll(cs);
      }
    } finally {
      assert.equal(await httpPost(httpPort, '/api/nodes/1/attach'), 200);
      assert.equal(await httpPost(httpPort, '/api/nodes/2/attach'), 200);
    }
    await eventually(async () => {
      const cs = await connectAll(port, 2);
      try {
        const r = await Promise.all(cs.map(async (c) => (await c.query('SHOW POOL_NODES')).rows.filter((x: Record<string, string>) => x['status'] === 'up').length));
        return r.every((n) => n === 3);
      } finally {
        await endAll(cs);
      }
    }, 'both standbys attached again', 20_000);
  });

  test('SIGHUP reaches every worker', async () => {
    const conf = path.join(px.dir, 'pgpool.conf');
    fs.writeFileSync(conf, fs.readFileSync(conf, 'utf8').replace('client_idle_limit = 0', 'client_idle_limit = 3600'));
    process.kill(px.pid, 'SIGHUP');
    await eventually(async () => {
      const cs = await connectAll(port, 2);
      try {
        const v = await Promise.all(cs.map(async (c) => (await c.query('PGPOOL SHOW client_idle_limit')).rows[0]?.client_idle_limit));
        return v.every((x) => x === '3600');
      } finally {
        await endAll(cs);
      }
    }, 'both workers reloaded', 15_000);
  });

  test('a killed worker is logged and restarted; the other worker\'s clients see no error', async () => {
    const before = workerPids(px.logs());
    const cs = await connectAll(port, 6);
    const errors = cs.map(() => 0);
    const done = cs.map(() => 0);
    let running = true;
    const loops = cs.map(async (c, i) => {
      while (running) {
        try {
          await c.query('SELECT count(*) FROM generate_series(1, 100)');
          done[i]!++;
        } catch {
          errors[i]!++;
          return; // its connection ended
        }
      }
    });
    await new Promise((r) => setTimeout(r, 500));
    process.kill(before[1]!, 'SIGKILL');
    await px.waitForLog(/"event":"worker_died".*signal SIGKILL/, 10_000);
    const mark = done.slice();
    await new Promise((r) => setTimeout(r, 1500));
    running = false;
    await Promise.all(loops);
    await endAll(cs);
    const lost = errors.filter((e) => e > 0).length;
    assert.ok(lost >= 1 && lost <= 5, `only the killed worker's clients lost their connection: ${errors}`);
    for (let i = 0; i < cs.length; i++) {
      if (errors[i] === 0) assert.ok(done[i]! > mark[i]!, `client ${i} of the surviving worker went on working`);
    }
    await px.waitForLog(/"event":"worker_ready","worker":1/, 30_000);
    const now = workerPids(px.logs());
    assert.equal(now[0], before[0], 'the other worker was not restarted');
    // The slot is served again: new clients (on both workers) work.
    await eventually(async () => {
      try {
        const more = await connectAll(port, 4);
        await Promise.all(more.map((c) => c.query('SELECT 1')));
        await endAll(more);
        return true;
      } catch {
        return false;
      }
    }, 'the restarted worker serves clients', 20_000);
  });

  test('a worker killed under pgbench: the clients of the other worker fail no transaction and go on to the end', async () => {
    const dir = fs.mkdtempSync(path.join(px.dir, 'pgbench-'));
    fs.writeFileSync(path.join(dir, 'q.sql'), 'SELECT count(*) FROM generate_series(1, 200);\n');
    await px.waitForLog(/"event":"worker_ready","worker":1/, 30_000).catch(() => {});
    const victim = workerPids(px.logs())[0]!;
    // Per-transaction log (-l): client_id transaction_no latency script_no epoch_s epoch_us
    const run = exec(fx.cluster.pg.bin('pgbench'), ['-n', '-f', 'q.sql', '-c', '4', '-j', '1', '-T', '6', '-l', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'postgres'],
      { cwd: dir, env: { PATH: process.env['PATH'], LC_ALL: 'C', PGCONNECT_TIMEOUT: '10' }, timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 2500));
    const killedAt = Date.now() / 1000;
    process.kill(victim, 'SIGKILL');
    const r = await run;
    const aborted = [...r.stderr.matchAll(/client (\d+) aborted/g)].map((m) => Number(m[1]));
    assert.ok(aborted.length >= 1 && aborted.length <= 3, `only the killed worker's clients abort: ${r.stderr}`);
    assert.match(r.stdout, /number of failed transactions: 0 \(0\.000%\)/, r.stdout);
    const last = new Map<number, number>();
    for (const f of fs.readdirSync(dir).filter((x) => x.startsWith('pgbench_log'))) {
      for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
        const x = line.trim().split(/\s+/);
        if (x.length < 6) continue;
        const t = Number(x[4]) + Number(x[5]) / 1e6;
        last.set(Number(x[0]), Math.max(last.get(Number(x[0])) ?? 0, t));
      }
    }
    const survivors = [0, 1, 2, 3].filter((c) => !aborted.includes(c));
    assert.ok(survivors.length >= 1);
    for (const c of survivors) assert.ok((last.get(c) ?? 0) > killedAt + 1, `client ${c} went on after the kill (last transaction at ${last.get(c)}, kill at ${killedAt})`);
    await px.waitForLog(new RegExp(`"event":"worker_died","worker":0,"pid":${victim}`), 10_000);
    await px.waitForLog(/"event":"worker_ready","worker":0/, 30_000);
  });

  test('SIGTERM drains both workers and the supervisor exits 0', async () => {
    const cs = await connectAll(port, 2);
    const ended = cs.map((c) => new Promise<string>((resolve) => c.on('error', (e: Error & { code?: string }) => resolve(e.code ?? 'error'))));
    const status = await px.stop();
    assert.equal(status.code, 0, px.logs().split("\n").filter((l) => !/node_change|health_check|"event":"connect|"event":"disconnect/.test(l)).slice(-40).join("\n"));
    const codes = await Promise.race([Promise.all(ended), new Promise<string[]>((r) => setTimeout(() => r([]), 5000))]);
    assert.deepEqual(codes, ['57P01', '57P01']);
  });
});

describe('worker_processes = 2: limits hold for the instance', { timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 0 });
  let px: PgmaitreProcess;
  let port: number;

  before(async () => {
    port = await freePort();
    px = await startPgmaitre({
      config: [
        `listen_addresses = '127.0.0.1'`, `port = ${port}`, "unix_socket_directories = ''",
        backendLines(fx.cluster), "sr_check_user = 'postgres'", "health_check_user = 'postgres'",
        'worker_processes = 2', 'pool_mode = transaction', 'default_pool_size = 2', 'query_wait_timeout = 60', '',
      ].join('\n'),
      timeoutMs: 60_000, // a worker's start (WASM classifier included) is slow on a loaded machine
    });
    await px.waitForLog(/"event":"workers_ready"/, 30_000);
  }, { timeout: 120_000 });
  after(async () => {
    await px?.stop();
  });

  test('PGPOOL SHOW of a split key shows the configured value, not a worker\'s share', async () => {
    const cs = await connectAll(port, 2);
    try {
      for (const c of cs) {
        assert.equal((await c.query('PGPOOL SHOW default_pool_size')).rows[0].default_pool_size, '2');
        const all = (await c.query('PGPOOL SHOW ALL')).rows as { item: string; value: string }[];
        assert.equal(all.find((r) => r.item === 'default_pool_size')?.value, '2', JSON.stringify(all.filter((r) => /pool_size/.test(r.item))));
        // A PGPOOL SET override is still the session's own.
        await c.query('PGPOOL SET client_idle_limit = 77');
        assert.equal((await c.query('PGPOOL SHOW client_idle_limit')).rows[0].client_idle_limit, '77');
        await c.query('PGPOOL RESET client_idle_limit');
      }
    } finally {
      await endAll(cs);
    }
  });

  test('default_pool_size = 2 is the instance\'s: 8 busy clients on two workers use at most 2 backend connections', async () => {
    const cs = await connectAll(port, 8);
    const direct = new Client({ host: fx.cluster.nodes[0]!.host, port: fx.cluster.nodes[0]!.port, user: 'postgres', database: 'postgres' });
    await direct.connect();
    try {
      let peak = 0;
      let running = true;
      const watch = (async () => {
        while (running) {
          const r = await direct.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND usename = 'postgres' AND query LIKE '%pgm_limit%'");
          peak = Math.max(peak, r.rows[0].n);
          await new Promise((r2) => setTimeout(r2, 50));
        }
      })();
      await Promise.all(cs.map(async (c) => {
        for (let i = 0; i < 3; i++) await c.query('SELECT pg_sleep(0.2), \'pgm_limit\'');
      }));
      running = false;
      await watch;
      assert.ok(peak >= 1 && peak <= 2, `peak backend connections ${peak}`);
      const leases = (await cs[0]!.query('SHOW POOL_LEASES')).rows as Record<string, string>[];
      assert.equal(leases[0]?.['default_pool_size'], '2', JSON.stringify(leases));
      assert.equal(leases.reduce((a, r) => a + Number(r['clients']), 0), 8, 'clients of both workers counted');
    } finally {
      await direct.end();
      await endAll(cs);
    }
  });
});

describe('worker_processes = 2: the query cache (shmem) stays exact across workers', { timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 0 });
  let px: PgmaitreProcess;
  let port: number;

  before(async () => {
    port = await freePort();
    const setup = new Client({ host: fx.cluster.nodes[0]!.host, port: fx.cluster.nodes[0]!.port, user: 'postgres', database: 'postgres' });
    await setup.connect();
    await setup.query('CREATE TABLE IF NOT EXISTS qcw (id int PRIMARY KEY, v int); TRUNCATE qcw; INSERT INTO qcw VALUES (1, 0)');
    await setup.end();
    px = await startPgmaitre({
      config: [
        `listen_addresses = '127.0.0.1'`, `port = ${port}`, "unix_socket_directories = ''",
        backendLines(fx.cluster), "sr_check_user = 'postgres'", "health_check_user = 'postgres'",
        'worker_processes = 2', 'memory_cache_enabled = on', "memqcache_method = 'shmem'",
        // The bounds are the instance's: split between the workers (4 + 3 entries, 500000 bytes each).
        'memqcache_max_num_cache = 7', 'memqcache_total_size = 1000000', '',
      ].join('\n'),
      timeoutMs: 60_000, // a worker's start (WASM classifier included) is slow on a loaded machine
    });
    await px.waitForLog(/"event":"workers_ready"/, 30_000);
  }, { timeout: 120_000 });
  after(async () => {
    await px?.stop();
  });

  test('a write committed through one worker: the clients of the other worker see it right after the COMMIT returned', async () => {
    // Dealt round-robin: the clients alternate between the two workers.
    const cs = await connectAll(port, 6);
    const direct = new Client({ host: fx.cluster.nodes[0]!.host, port: fx.cluster.nodes[0]!.port, user: 'postgres', database: 'postgres' });
    await direct.connect();
    const read = async (c: Client): Promise<number> => (await c.query('SELECT v FROM qcw WHERE id = 1')).rows[0].v as number;
    try {
      for (let round = 1; round <= 4; round++) {
        // Every worker caches the answer...
        for (const c of cs) assert.equal(await read(c), round - 1);
        // ...and serves it from its cache: a write behind pgmaitre's back is not seen.
        await direct.query('UPDATE qcw SET v = -1 WHERE id = 1');
        for (const c of cs) assert.equal(await read(c), round - 1, 'the answer comes from each worker\'s cache');
        await direct.query('UPDATE qcw SET v = $1 WHERE id = 1', [round - 1]);
        // A write through one client (a different worker each round, alternately), in a transaction
        // or alone; right after its COMMIT returned, every client of both workers sees it.
        const writer = cs[round % cs.length]!;
        if (round % 2 === 0) {
          await writer.query('BEGIN');
          await writer.query('UPDATE qcw SET v = $1 WHERE id = 1', [round]);
          await writer.query('COMMIT');
        } else {
          await writer.query('UPDATE qcw SET v = $1 WHERE id = 1', [round]);
        }
        const seen = await Promise.all(cs.map(read));
        assert.deepEqual(seen, cs.map(() => round), `round ${round}: every client sees the write at once`);
      }
      // SHOW POOL_CACHE counts the hits of both workers (6 clients answered from cache per round at least).
      const row = (await cs[0]!.query('SHOW POOL_CACHE')).rows[0] as Record<string, string>;
      assert.ok(Number(row['num_cache_hits']) >= 24, JSON.stringify(row));
    } finally {
      await direct.end();
      await endAll(cs);
    }
  });

  test('memqcache_max_num_cache and memqcache_total_size bound the instance: 20 answers cached through both workers, 7 kept', async () => {
    const cs = await connectAll(port, 4);
    try {
      for (let i = 0; i < 20; i++) {
        for (const c of cs.slice(0, 2)) await c.query(`SELECT v, ${i} AS k FROM qcw WHERE id = 1`);
      }
      const row = (await cs[0]!.query('SHOW POOL_CACHE')).rows[0] as Record<string, string>;
      assert.equal(row['num_hash_entries'], '7', `the instance's bound, summed over the workers: ${JSON.stringify(row)}`);
      const kept = Number(row['num_cache_entries']);
      assert.ok(kept >= 2 && kept <= 7, `at most 7 answers in the instance: ${JSON.stringify(row)}`);
      assert.equal(Number(row['used_cache_entries_size']) + Number(row['free_cache_entries_size']), 1000000, JSON.stringify(row));
    } finally {
      await endAll(cs);
    }
  });
});

describe('worker_processes = 2: least_connections balances on the instance\'s sessions', { timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  let px: PgmaitreProcess;
  let port: number;

  before(async () => {
    port = await freePort();
    px = await startPgmaitre({
      config: [
        `listen_addresses = '127.0.0.1'`, `port = ${port}`, "unix_socket_directories = ''",
        backendLines(fx.cluster, [0, 1, 1]), "sr_check_user = 'postgres'", "health_check_user = 'postgres'",
        'worker_processes = 2', "load_balance_algorithm = 'least_connections'", "app_name_redirect_preference_list = 'parked:1'", '',
      ].join('\n'),
      timeoutMs: 60_000, // a worker's start (WASM classifier included) is slow on a loaded machine
    });
    await px.waitForLog(/"event":"workers_ready"/, 30_000);
  }, { timeout: 120_000 });
  after(async () => {
    await px?.stop();
  });

  test('sessions parked on standby1 by one worker: new sessions of both workers go to standby2', async () => {
    const [s1, s2] = [fx.cluster.standbys[0]!.port, fx.cluster.standbys[1]!.port];
    const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 1500)); // a report and a push (250 ms each), with room
    const nodePort = async (c: Client): Promise<number> => (await c.query('SELECT inet_server_port() AS p')).rows[0].p as number;
    // 8 sessions parked on standby1 (app_name_redirect_preference_list), dealt alternately to the
    // two workers; those of the first worker end: the second worker holds the instance's 4.
    const parked: Client[] = [];
    const fresh: Client[] = [];
    try {
      for (let i = 0; i < 8; i++) {
        const c = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', application_name: 'parked' });
        c.on('error', () => {});
        await c.connect();
        assert.equal(await nodePort(c), s1);
        parked.push(c);
      }
      await endAll(parked.filter((_, i) => i % 2 === 0));
      await settle();
      // Each worker sees standby1 holding 4 (its own or the other worker's) and standby2 none:
      // the next sessions, on both workers, all go to standby2 until it holds as many. A worker
      // that counted only its own sessions would send the first worker's (0 vs 0) to standby1.
      const seen: number[] = [];
      for (let i = 0; i < 3; i++) {
        const c = client(port);
        c.on('error', () => {});
        await c.connect();
        fresh.push(c);
        seen.push(await nodePort(c));
        await settle();
      }
      assert.deepEqual(seen, [s2, s2, s2], `standby1 ${s1}, standby2 ${s2}`);
    } finally {
      await endAll([...parked, ...fresh]);
    }
  });
});

describe('worker_processes = 2: client_connection_rate_limit is the instance\'s', { timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 0 });
  let px: PgmaitreProcess;
  let port: number;

  before(async () => {
    port = await freePort();
    px = await startPgmaitre({
      config: [
        `listen_addresses = '127.0.0.1'`, `port = ${port}`, "unix_socket_directories = ''",
        backendLines(fx.cluster), "sr_check_user = 'postgres'", "health_check_user = 'postgres'",
        'worker_processes = 2', 'client_connection_rate_limit = 4', 'client_connection_rate_window = 300', '',
      ].join('\n'),
      timeoutMs: 60_000, // a worker's start (WASM classifier included) is slow on a loaded machine
    });
    await px.waitForLog(/"event":"workers_ready"/, 30_000);
  }, { timeout: 120_000 });
  after(async () => {
    await px?.stop();
  });

  test('4 per window from one address, not 4 per worker: 10 connections in a row, 4 admitted, the others refused with 53300', async () => {
    const outcomes: string[] = [];
    for (let i = 0; i < 10; i++) {
      const c = client(port);
      c.on('error', () => {});
      try {
        await c.connect();
        outcomes.push('ok');
        await c.end();
      } catch (e) {
        outcomes.push((e as { code?: string }).code ?? String(e));
      }
    }
    const admitted = outcomes.filter((o) => o === 'ok').length;
    // Each worker admits its share (2); connections dealt alternately reach both: 4 in all. A
    // limit applied per worker would admit 8.
    assert.ok(admitted <= 4 && admitted >= 2, outcomes.join(' '));
    assert.ok(outcomes.filter((o) => o !== 'ok').every((o) => o === '53300'), outcomes.join(' '));
  });
});
