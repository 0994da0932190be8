/**
 * Session pooling in pgpool's sense, against a real cluster: connections are reused without a
 * new login and reset in between; unclean ones are closed; num_init_children caps sessions with
 * a queue and 53300 beyond it; client_idle_limit and connection_life_time; and nothing leaks when
 * a client or a backend vanishes mid-query.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { Client } from 'pg';
import { withCluster } from '../harness/cluster';
import { backendLines, eventually, startInProcess, type InProcess } from '../harness/in-process';
import { RawClient } from '../harness/raw-client';
import { encodeQuery } from '../../src/protocol/frontend';
import { encodeStartupMessage } from '../../src/protocol/startup';

describe('pooling and robustness', { timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  // Standbys get weight 0: these tests are about the primary's pool (reads included).
  const base = (): string => `${backendLines(fx.cluster, [1, 0, 0])}\nsr_check_user = 'postgres'\nenable_pool_hba = off\n`;

  async function connect(px: InProcess, extra: Record<string, unknown> = {}): Promise<Client> {
    const c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres', ...extra });
    c.on('error', () => {});
    await c.connect();
    return c;
  }
  async function backendPid(c: Client): Promise<number> {
    return (await c.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]!.p;
  }
  const primaryPool = (px: InProcess) => px.app.ctx.pools.get(0)!;
  const idleAgain = (px: InProcess) => eventually(() => [...px.app.ctx.pools.values()].every((p) => {
    const c = p.counts();
    return c.active === 0 && c.resetting === 0 && c.connecting === 0;
  }) && px.app.ctx.slots.inUse === 0, 'every pool and the slots back to idle');

  describe('reuse and reset', () => {
    let px: InProcess;
    before(async () => { px = await startInProcess(`${base()}num_init_children = 4\nmax_pool = 2\n`); });
    after(async () => { await px.stop(); });

    test('the next client reuses the connection without a new backend login', async () => {
      const a = await connect(px);
      const pidA = await backendPid(a);
      await a.end();
      await idleAgain(px);
      const created = primaryPool(px).created;
      const b = await connect(px);
      assert.equal(await backendPid(b), pidA);
      assert.equal(primaryPool(px).created, created, 'no new connection was opened');
      await b.end();
    });

    test('session state is reset between clients (DISCARD ALL)', async () => {
      const a = await connect(px);
      const pid = await backendPid(a);
      await a.query('CREATE TEMP TABLE tmp_x (i int)');
      await a.query("SET work_mem = '7MB'");
      await a.query({ name: 'stmt1', text: 'SELECT 1' });
      await a.query('LISTEN some_channel');
      await a.end();
      await idleAgain(px);
      const b = await connect(px);
      assert.equal(await backendPid(b), pid);
      assert.equal((await b.query("SELECT count(*)::int AS n FROM pg_class WHERE relname = 'tmp_x'")).rows[0].n, 0);
      assert.equal((await b.query('SHOW work_mem')).rows[0].work_mem, '4MB');
      assert.equal((await b.query('SELECT count(*)::int AS n FROM pg_prepared_statements')).rows[0].n, 0);
      assert.equal((await b.query('SELECT count(*)::int AS n FROM pg_listening_channels()')).rows[0].n, 0);
      await b.end();
    });

    test('a client leaving inside a transaction gets its connection closed, not reused', async () => {
      const a = await connect(px);
      const pid = await backendPid(a);
      await a.query('BEGIN');
      await a.query('SELECT 1');
      await a.end();
      await idleAgain(px);
      const b = await connect(px);
      assert.notEqual(await backendPid(b), pid);
      const alive = await fx.cluster.psql('primary', `SELECT count(*) FROM pg_stat_activity WHERE pid = ${pid}`);
      assert.equal(alive.trim(), '0');
      await b.end();
    });

    test('different startup parameters get different pooled connections', async () => {
      const a = await connect(px, { application_name: 'app-one' });
      const pidA = await backendPid(a);
      await a.end();
      await idleAgain(px);
      const b = await connect(px, { application_name: 'app-two' });
      assert.notEqual(await backendPid(b), pidA);
      assert.equal((await b.query('SHOW application_name')).rows[0].application_name, 'app-two');
      await b.end();
    });
  });

  describe('num_init_children and the wait queue', () => {
    let px: InProcess;
    before(async () => { px = await startInProcess(`${base()}num_init_children = 2\nlisten_backlog_multiplier = 1\nmax_pool = 1\n`); });
    after(async () => { await px.stop(); });

    test('clients past num_init_children wait; past the queue they get 53300', async () => {
      const a = await connect(px);
      const b = await connect(px);
      const waiting = [connect(px), connect(px)];
      await eventually(() => px.app.ctx.slots.waiting === 2, 'two clients queued');
      await assert.rejects(connect(px), (e: { code?: string }) => e.code === '53300');
      await a.end();
      const c = await waiting[0]!;
      assert.equal((await c.query('SELECT 1 AS x')).rows[0].x, 1);
      await b.end();
      const d = await waiting[1]!;
      await c.end();
      await d.end();
      await idleAgain(px);
    });
  });

  describe('the 53300 limit after queued clients time out or leave', () => {
    // num_init_children = 2, listen_backlog_multiplier = 2: 2 served, 4 queued, the 7th refused.
    let px: InProcess;
    before(async () => {
      px = await startInProcess(`${base()}num_init_children = 2\nlisten_backlog_multiplier = 2\nmax_pool = 1\nauthentication_timeout = 2\n`);
    });
    after(async () => { await px.stop(); });

    /**
     * A client that sends its startup packet and then neither reads on nor closes: the server's
     * FATAL and FIN leave its socket half-open, so only pgmaitre's own bookkeeping ends the wait.
     */
    function silentClient(): Promise<{ socket: net.Socket; data: () => Buffer }> {
      return new Promise((resolve, reject) => {
        const chunks: Buffer[] = [];
        const socket = net.connect({ host: '127.0.0.1', port: px.port, allowHalfOpen: true }, () => {
          socket.write(encodeStartupMessage({ user: 'postgres', database: 'postgres' }));
          resolve({ socket, data: () => Buffer.concat(chunks) });
        });
        socket.on('data', (c: Buffer) => chunks.push(c));
        socket.on('error', reject);
      });
    }

    /**
     * Fills the slots and then the queue with node-postgres clients until one gets 53300; lets
     * them all through and ends them. Returns how many were queued before the refusal.
     */
    async function queuedBeforeRefusal(): Promise<number> {
      const holders = [await connect(px), await connect(px)];
      const waiting: Promise<Client>[] = [];
      let refused = false;
      while (!refused && waiting.length < 10) {
        const c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres' });
        c.on('error', () => {});
        const p = c.connect().then(() => c);
        refused = await Promise.race([
          p.then(() => false, (e: { code?: string }) => e.code === '53300'),
          eventually(() => px.app.ctx.slots.waiting === waiting.length + 1, 'queued').then(() => false, () => false),
        ]);
        if (!refused) waiting.push(p);
      }
      assert.equal(refused, true, 'a client got 53300');
      for (const h of holders) await h.end();
      // FIFO: each queued client gets a slot as an earlier one ends.
      for (const p of waiting) await (await p).end();
      return waiting.length;
    }

    test('queued clients that time out in authentication or disconnect leave the limit at exactly 2 + 4', async () => {
      assert.equal(await queuedBeforeRefusal(), 4, 'before: 4 queued, the next refused');
      await idleAgain(px);

      // 1. Two holders; four silent clients queue and time out in authentication while queued.
      const holders = [await connect(px), await connect(px)];
      const silent = await Promise.all(Array.from({ length: 4 }, () => silentClient()));
      await eventually(() => px.app.ctx.slots.waiting === 4, 'four silent clients queued');
      await eventually(() => silent.every((c) => c.data().includes('canceling authentication due to timeout')),
        'authentication_timeout ended every queued silent client', 5000);
      // The holders leave: their slots must not go to (or be lost with) the clients that timed out.
      for (const h of holders) await h.end();
      await eventually(() => px.app.ctx.slots.inUse === 0 && px.app.ctx.slots.waiting === 0, 'no slot held, nobody waiting');

      // 2. Two holders; four clients queue and go away while queued.
      const holders2 = [await connect(px), await connect(px)];
      const leaving = await Promise.all(Array.from({ length: 4 }, () => RawClient.open(px.port)));
      for (const c of leaving) c.send(encodeStartupMessage({ user: 'postgres', database: 'postgres' }));
      await eventually(() => px.app.ctx.slots.waiting === 4, 'four clients queued');
      for (const c of leaving) c.close();
      await eventually(() => px.app.ctx.slots.waiting === 0, 'the clients that left are no longer waiting');
      for (const h of holders2) await h.end();
      await eventually(() => px.app.ctx.slots.inUse === 0, 'slots free');
      assert.equal(px.app.ctx.slots.waiting, 0);

      // 3. The limit is exactly num_init_children × listen_backlog_multiplier queued, as before.
      assert.equal(await queuedBeforeRefusal(), 4, 'after: still 4 queued, the next refused');
      for (const c of silent) c.socket.destroy();
      await idleAgain(px);
      assert.equal(px.app.ctx.slots.waiting, 0);
    });
  });

  describe('idle limits', () => {
    let px: InProcess;
    before(async () => { px = await startInProcess(`${base()}client_idle_limit = 1\nconnection_life_time = 1\nnum_init_children = 4\n`); });
    after(async () => { await px.stop(); });

    test('client_idle_limit disconnects an idle client with 57P05', async () => {
      const c = await RawClient.connect(px.port, { user: 'postgres', database: 'postgres' });
      const msgs = await c.waitClosed(5000);
      assert.equal(msgs.find((m) => m.type === 'E')?.error?.code, '57P05');
      await idleAgain(px);
    });

    test('connection_life_time closes cached connections', async () => {
      const a = await connect(px);
      await a.end();
      await eventually(() => primaryPool(px).counts().idle >= 1, 'connection cached');
      await eventually(() => primaryPool(px).counts().idle === 0, 'cached connection expired', 5000);
    });
  });

  describe('failures mid-query', () => {
    let px: InProcess;
    before(async () => { px = await startInProcess(`${base()}num_init_children = 8\n`); });
    after(async () => { await px.stop(); });

    test('a client vanishing mid-query: its query is cancelled, nothing leaks, others are served', async () => {
      const other = await connect(px);
      const c = await RawClient.connect(px.port, { user: 'postgres', database: 'postgres', application_name: 'vanisher' });
      c.send(encodeQuery('SELECT pg_sleep(30)'));
      await eventually(async () => (await fx.cluster.psql('primary', "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'vanisher' AND query LIKE '%pg_sleep%' AND state = 'active'")).trim() === '1', 'sleep running');
      c.close();
      await eventually(async () => (await fx.cluster.psql('primary', "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'vanisher'")).trim() === '0', 'backend gone', 10_000);
      assert.equal((await other.query('SELECT 5 AS x')).rows[0].x, 5);
      await other.end();
      await idleAgain(px);
    });

    test('a backend dying mid-query: the client gets an error, others keep working, nothing leaks', async () => {
      const other = await connect(px);
      const victim = await connect(px, { application_name: 'victim' });
      const pid = await backendPid(victim);
      const running = victim.query('SELECT pg_sleep(30)').then(() => null, (e: { code?: string }) => e);
      await eventually(async () => (await fx.cluster.psql('primary', `SELECT count(*) FROM pg_stat_activity WHERE pid = ${pid} AND state = 'active'`)).trim() === '1', 'victim running');
      await fx.cluster.psql('primary', `SELECT pg_terminate_backend(${pid})`);
      const err = await running;
      assert.ok(err !== null, 'the victim query failed');
      assert.equal(err!.code, '57P01');
      assert.equal((await other.query('SELECT 6 AS x')).rows[0].x, 6);
      await other.end();
      await victim.end().catch(() => {});
      await idleAgain(px);
    });

    test('a malformed Flush leaves the backend skipping until Sync: the reset still cleans it up', async () => {
      const c = await RawClient.connect(px.port, { user: 'postgres', database: 'postgres' });
      const badFlush = Buffer.from([0x48, 0, 0, 0, 8, 1, 2, 3, 4]); // 'H' with a body: PostgreSQL errors, then ignores all until Sync
      c.send(encodeQuery('SELECT 1'), badFlush);
      await c.untilReady();
      await new Promise((r) => setTimeout(r, 100));
      c.close();
      // Without a Sync first, the reset queries would wait 10 s for answers that never come.
      await eventually(() => primaryPool(px).counts().resetting === 0 && primaryPool(px).counts().idle >= 1, 'connection reset and cached', 3000);
      const other = await connect(px);
      assert.equal((await other.query('SELECT 8 AS x')).rows[0].x, 8);
      await other.end();
      await idleAgain(px);
    });

    test('many concurrent clients connecting and leaving leave the pool idle', async () => {
      await Promise.all(Array.from({ length: 20 }, async (_, i) => {
        const c = await connect(px);
        await c.query('SELECT $1::int AS i', [i]);
        if (i % 3 === 0) await c.query('BEGIN');
        await c.end();
      }));
      await idleAgain(px);
      const counts = primaryPool(px).counts();
      assert.ok(counts.idle <= px.app.ctx.config.num_init_children * px.app.ctx.config.max_pool);
    });
  });
});
