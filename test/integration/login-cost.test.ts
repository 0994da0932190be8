/**
 * What one login costs on the backend side, for applications that connect per request
 * (`pgbench -C`): a new client that logs in, runs one query and leaves must not open a backend
 * connection nor add round trips once its (user, database) is known. Transaction pooling: the
 * greeting is known, so the login sends nothing to the backend and the query is its one write.
 * Session pooling: the pooled connection is reused; the query, then reset_query_list at the
 * disconnect (pgpool-II and PgBouncer reset too), are its backend round trips.
 * Counted on ServerConnection itself (connect, write, runInternal) while real node-postgres
 * clients connect through pgmaitre to a real primary.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'pg';
import { withCluster } from '../harness/cluster';
import { backendLines, eventually, startInProcess, type InProcess } from '../harness/in-process';
import { ServerConnection } from '../../src/backend/server-connection';
import { RawSocket } from '../../src/util/raw-socket';
import * as startup from '../../src/protocol/startup';
import type { ClientSession } from '../../src/frontend/session';
import * as hbaLoginModule from '../../src/frontend/hba-login';

const LOGINS = 10;

/** Counts backend connects, request writes and internal round trips while `run` runs. */
async function counted(run: () => Promise<void>): Promise<{ connects: number; writes: number; internal: number }> {
  const n = { connects: 0, writes: 0, internal: 0 };
  const connect = ServerConnection.connect;
  const write = ServerConnection.prototype.write;
  const runInternal = ServerConnection.prototype.runInternal;
  ServerConnection.connect = function (this: typeof ServerConnection, ...a: Parameters<typeof connect>) { n.connects++; return connect.apply(this, a); };
  ServerConnection.prototype.write = function (this: ServerConnection, ...a: Parameters<typeof write>) { n.writes++; return write.apply(this, a); };
  ServerConnection.prototype.runInternal = function (this: ServerConnection, ...a: Parameters<typeof runInternal>) { n.internal++; return runInternal.apply(this, a); };
  try {
    await run();
  } finally {
    ServerConnection.connect = connect;
    ServerConnection.prototype.write = write;
    ServerConnection.prototype.runInternal = runInternal;
  }
  return n;
}

/**
 * Logins one after the other, each waiting (`between`) until its connection is back in the pool:
 * a login that arrives while the previous one's reset still runs would open a second connection
 * (the pool grows to what the load needs; that is not what is counted here).
 */
async function connectPerRequest(port: number, times: number, between: () => Promise<void>): Promise<void> {
  for (let i = 0; i < times; i++) {
    const c = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    c.on('error', () => {});
    await c.connect();
    const r = await c.query('SELECT 1 AS one');
    assert.equal(r.rows[0].one, 1);
    await c.end();
    await between();
  }
}

for (const mode of ['transaction', 'session'] as const) {
  describe(`login cost, pool_mode = ${mode}`, { timeout: 180_000 }, () => {
    const fx = withCluster({ standbys: 0 });
    let px: InProcess;

    before(async () => {
      px = await startInProcess(`${backendLines(fx.cluster, [1])}\nenable_pool_hba = off\npool_mode = ${mode}\n`
        + "default_pool_size = 2\nsr_check_user = 'postgres'\nhealth_check_period = 0\nhealth_check_user = 'postgres'\n");
      await connectPerRequest(px.port, 2, settled); // the first login opens the connection and learns the greeting
    });
    after(async () => { await px?.stop(); });

    const pool = () => px.app.ctx.pools.get(0)!;
    const settled = () => eventually(async () => pool().counts().total === pool().counts().idle, 'every backend connection back in the pool', 10_000);

    test(`${LOGINS} logins, one query each: no backend connection opened, one backend write per query`, async () => {
      await settled();
      const n = await counted(async () => {
        await connectPerRequest(px.port, LOGINS, settled);
      });
      assert.equal(n.connects, 0, 'a login opened a backend connection');
      assert.equal(n.writes, LOGINS, `backend writes for ${LOGINS} logins + queries`);
      // Session pooling resets the connection at each disconnect; transaction pooling gives a
      // clean lease back as it is.
      assert.equal(n.internal, mode === 'session' ? LOGINS : 0, 'internal round trips (reset_query_list)');
    });

    test(`${LOGINS} logins back to back, each arriving while the previous one's connection is being reset: none opens a backend connection`, async () => {
      await settled();
      // The reset (reset_query_list, an internal round trip) is made slow, so each next login
      // surely arrives while it runs.
      const runInternal = ServerConnection.prototype.runInternal;
      ServerConnection.prototype.runInternal = async function (this: ServerConnection, ...a: Parameters<typeof runInternal>) {
        await new Promise((r) => setTimeout(r, 150));
        return runInternal.apply(this, a);
      };
      let n: Awaited<ReturnType<typeof counted>>;
      try {
        n = await counted(async () => {
          await connectPerRequest(px.port, LOGINS, async () => {});
        });
      } finally {
        ServerConnection.prototype.runInternal = runInternal;
      }
      // Session pooling: the login waits for the connection its previous client left (PgBouncer
      // reuses it too) instead of opening another while reset_query_list runs.
      assert.equal(n.connects, 0, 'a login opened a backend connection');
      assert.equal(n.writes, LOGINS, `backend writes for ${LOGINS} logins + queries`);
      await settled();
    });

    test(`${LOGINS} logins: no net.Socket per client, the StartupMessage decoded once for identical logins, the login answered in one write`, async () => {
      await settled();
      // What a login costs pgmaitre itself, counted (not timed): the client's connection is
      // driven through its handle (util/raw-socket.ts); identical StartupMessages are decoded
      // once (their keys derived once); AuthenticationOk, the ParameterStatus messages,
      // BackendKeyData and ReadyForQuery go out as one write. Its reads, the login's too, land in
      // the shared read buffer from the accept on (no 64 KiB buffer of Node's per read).
      const mod = startup as { decodeStartupPacket: typeof startup.decodeStartupPacket };
      const decode = mod.decodeStartupPacket;
      const write = RawSocket.prototype.write;
      const start = RawSocket.prototype.start;
      let decoded = 0;
      let writes = 0;
      let started = 0;
      let ownBuffers = 0;
      mod.decodeStartupPacket = (...a: Parameters<typeof decode>) => { decoded++; return decode(...a); };
      RawSocket.prototype.write = function (this: RawSocket, ...a: Parameters<typeof write>) { writes++; return write.apply(this, a); };
      RawSocket.prototype.start = function (this: RawSocket) { started++; if (!this.shared) ownBuffers++; return start.apply(this); };
      const kinds = new Set<string>();
      const keys = new Set<string>();
      let loginWrites = 0;
      try {
        for (let i = 0; i < LOGINS; i++) {
          const c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres' });
          c.on('error', () => {});
          const w0 = writes;
          await c.connect();
          loginWrites += writes - w0;
          for (const s of px.app.ctx.registry.list() as ClientSession[]) kinds.add(s.socket instanceof RawSocket ? 'raw' : s.socket.constructor.name);
          // Each login's BackendKeyData is its own (the reply buffer is reused from login to
          // login: only its key and status change): the session registered under that key.
          const key = c as unknown as { processID: number; secretKey: number };
          const own = (px.app.ctx.registry.list() as ClientSession[]).find((s) => s.pid === key.processID && (s.secret | 0) === key.secretKey);
          assert.ok(own !== undefined, `no session with the key the client was given (${key.processID}/${key.secretKey})`);
          keys.add(`${key.processID}/${key.secretKey}`);
          assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1);
          await c.end();
          await settled();
        }
      } finally {
        mod.decodeStartupPacket = decode;
        RawSocket.prototype.write = write;
        RawSocket.prototype.start = start;
      }
      assert.deepEqual([...kinds], ['raw'], 'client connections driven through their handle');
      assert.ok(started >= LOGINS, `each client's reads started (${started})`);
      assert.equal(ownBuffers, 0, 'reads started into buffers of Node\'s (not the shared read buffer) before the login');
      assert.equal(decoded, 0, 'StartupMessages decoded again (the same bytes as the logins before)');
      assert.equal(loginWrites, LOGINS, 'writes to the clients during their logins: one per login');
      assert.equal(keys.size, LOGINS, 'distinct keys given to the logins');
    });

    test(`${LOGINS} logins without a query: transaction pooling takes no backend connection at all`, async () => {
      await settled();
      const p = pool();
      let taken = 0;
      const { acquire, tryAcquire, lease, tryLease } = p;
      let waited = 0;
      p.acquire = (...a: Parameters<typeof acquire>) => { taken++; waited++; return acquire.apply(p, a); };
      p.tryAcquire = (...a: Parameters<typeof tryAcquire>) => { const c = tryAcquire.apply(p, a); if (c !== null) taken++; return c; };
      p.lease = (...a: Parameters<typeof lease>) => { taken++; return lease.apply(p, a); };
      p.tryLease = (...a: Parameters<typeof tryLease>) => { taken++; return tryLease.apply(p, a); };
      try {
        for (let i = 0; i < LOGINS; i++) {
          const c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres' });
          c.on('error', () => {});
          await c.connect();
          await c.end();
          await settled();
        }
      } finally {
        p.acquire = acquire;
        p.tryAcquire = tryAcquire;
        p.lease = lease;
        p.tryLease = tryLease;
      }
      assert.equal(taken, mode === 'session' ? LOGINS : 0, 'backend connections taken from the pool by logins alone');
      // Session pooling: each login found its key's cached connection free (the previous one's
      // reset was over) and took it in the read that brought its StartupMessage, without the
      // asynchronous acquire().
      assert.equal(waited, 0, 'logins that went through the asynchronous acquire()');
    });

    if (mode === 'session') {
      test('reset_query_list: ABORT only for a connection left inside a transaction block (as pgpool-II)', async () => {
        await settled();
        const sent: string[][] = [];
        const runInternal = ServerConnection.prototype.runInternal;
        ServerConnection.prototype.runInternal = function (this: ServerConnection, ...a: Parameters<typeof runInternal>) {
          sent.push([...a[0]]);
          return runInternal.apply(this, a);
        };
        try {
          for (const inTx of [false, true]) {
            const c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres' });
            c.on('error', () => {});
            await c.connect();
            if (inTx) await c.query('BEGIN');
            await c.query('SELECT 1');
            await c.end();
            await settled();
          }
        } finally {
          ServerConnection.prototype.runInternal = runInternal;
        }
        assert.deepEqual(sent[0], ['DISCARD ALL'], 'reset queries of a session that left outside a transaction block');
        // A session that left inside BEGIN: its connection is closed (not reused), or reset with ABORT.
        assert.ok(sent.length === 1 || sent[1]![0] === 'ABORT', `reset queries of a session left inside BEGIN: ${JSON.stringify(sent[1])}`);
        // Whatever became of it, the next session is outside any transaction.
        const c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres' });
        await c.connect();
        assert.equal((await c.query('SELECT now() = statement_timestamp() AS fresh')).rows[0].fresh, true);
        await c.end();
      });
    }
  });
}

/**
 * enable_pool_hba = on: a client whose pool_hba.conf line is `trust` is let in without the
 * asynchronous authentication (hbaLogin) once its greeting (transaction pooling) or a cached
 * connection (session pooling) is at hand; an md5 line still runs its exchange.
 */
for (const mode of ['transaction', 'session'] as const) {
  describe(`login cost with pool_hba.conf, pool_mode = ${mode}`, { timeout: 180_000 }, () => {
    const fx = withCluster({ standbys: 0 });
    let px: InProcess;

    before(async () => {
      await fx.cluster.psql(fx.cluster.primary.id, "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lc_md5') THEN CREATE ROLE lc_md5 LOGIN PASSWORD 'pw5'; END IF; END $$");
      px = await startInProcess(`${backendLines(fx.cluster, [1])}\nenable_pool_hba = on\npool_mode = ${mode}\n`
        + "default_pool_size = 2\nsr_check_user = 'postgres'\nhealth_check_period = 0\nhealth_check_user = 'postgres'\n",
      { 'pool_hba.conf': 'host all lc_md5 127.0.0.1/32 md5\nhost all all 127.0.0.1/32 trust\n', 'pool_passwd': 'lc_md5:pw5\n' });
      await connectPerRequest(px.port, 2, settled);
    });
    after(async () => { await px?.stop(); });

    const pool = () => px.app.ctx.pools.get(0)!;
    const settled = () => eventually(async () => pool().counts().total === pool().counts().idle, 'every backend connection back in the pool', 10_000);

    test('trust logins skip the asynchronous authentication; md5 logins still run it', async () => {
      await settled();
      let calls = 0;
      const real = hbaLoginModule.hbaLogin;
      (hbaLoginModule as { hbaLogin: typeof real }).hbaLogin = (...a: Parameters<typeof real>) => { calls++; return real(...a); };
      try {
        await connectPerRequest(px.port, 3, settled);
        assert.equal(calls, 0, 'hbaLogin calls for trust logins');
        const c = new Client({ host: '127.0.0.1', port: px.port, user: 'lc_md5', password: 'pw5', database: 'postgres' });
        await c.connect();
        assert.equal((await c.query('SELECT current_user AS u')).rows[0].u, 'lc_md5');
        await c.end();
        assert.equal(calls, 1, 'hbaLogin calls for an md5 login');
        const bad = new Client({ host: '127.0.0.1', port: px.port, user: 'lc_md5', password: 'nope', database: 'postgres' });
        await assert.rejects(bad.connect(), /password authentication failed/);
      } finally {
        (hbaLoginModule as { hbaLogin: typeof real }).hbaLogin = real;
      }
    });
  });
}
