/**
 * The frontend holds against hostile input (real primary + standby behind an in-process pgmaitre):
 * limits with clear errors (startup packet size, a declared 1 GB message before and after login,
 * authentication_timeout counted from the accept, client_idle_limit, too many clients), a bounded
 * fuzz run with a fixed seed beside a well-behaved client (no uncaught exception, no leaked slot
 * or pooled connection, every good query answered), and a slowloris test (500 connections sending
 * their startup packet one byte per second do not keep a normal client out).
 * The long fuzz run is `npm run fuzz -- --seconds 300`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { Client } from 'pg';
import { withCluster } from '../harness/cluster';
import { eventually, type InProcess } from '../harness/in-process';
import { RawClient } from '../harness/raw-client';
import { encodeStartupMessage } from '../../src/protocol/startup';
import { encodeQuery } from '../../src/protocol/frontend';
import { fuzzFrontend } from '../fuzz/frontend-fuzz';
import { FUZZ_ROLES, FUZZ_USERS, startFuzzTarget, wellBehavedClient } from '../fuzz/setup';

const FUZZ_SECONDS = Number(process.env['PGMAITRE_FUZZ_SECONDS'] ?? 12);
const FUZZ_SEED = 20240601;

/**
 * Slots and every pool back to rest: no lease, no reset or connect still running (the reset
 * starts with a Sync, so an extended-protocol error a fuzz client left behind cannot stall it).
 */
async function assertIdle(px: InProcess): Promise<void> {
  await eventually(() => px.app.ctx.slots.inUse === 0, () => `client slots released (in use: ${px.app.ctx.slots.inUse}; `
    + `${(px.app.ctx.registry.list() as unknown as { debugState(): string }[]).map((s) => s.debugState()).join(' | ')})`, 20_000);
  await eventually(() => [...px.app.ctx.pools.values()].every((p) => {
    const c = p.counts();
    return c.active === 0 && c.connecting === 0 && c.resetting === 0;
  }), `pools idle (${JSON.stringify([...px.app.ctx.pools.values()].map((p) => p.counts()))})`, 5_000);
}

function header(type: number, length: number): Buffer {
  const b = Buffer.alloc(5);
  b[0] = type;
  b.writeInt32BE(length, 1);
  return b;
}

describe('hostile input', { timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 1, auth: 'scram-sha-256', users: FUZZ_ROLES });
  let px: InProcess;
  const crashes: unknown[] = [];
  const onCrash = (e: unknown): void => { crashes.push(e); };

  before(async () => {
    process.on('uncaughtException', onCrash);
    process.on('unhandledRejection', onCrash);
    px = await startFuzzTarget(fx.cluster, 'client_idle_limit = 2');
  });
  after(async () => {
    process.off('uncaughtException', onCrash);
    process.off('unhandledRejection', onCrash);
    await px?.stop();
  });

  test('startup packet over 10000 bytes: closed at once, without a word (as PostgreSQL does), and logged', async () => {
    const raw = await RawClient.open(px.port);
    const b = Buffer.alloc(8);
    b.writeInt32BE(10001, 0);
    b.writeInt32BE(196608, 4);
    raw.send(b);
    const started = Date.now();
    assert.deepEqual(await raw.waitClosed(3000), []);
    assert.ok(Date.now() - started < 1000, 'closed at once, nothing buffered');
    assert.match(px.logs(), /invalid length of startup packet/);
  });

  test('a declared 1 GB message: 08P01 without buffering, during login and after it', async () => {
    // During login (a password message): the bound is 64 kB before authentication.
    const during = await RawClient.open(px.port);
    during.send(encodeStartupMessage({ user: FUZZ_USERS.md5.user, database: 'postgres' }));
    assert.equal((await during.next()).type, 'R');
    during.send(header(0x70, 1 << 30));
    let msgs = await during.waitClosed(3000);
    assert.equal(msgs[0]?.error?.code, '08P01');
    assert.match(msgs[0]?.error?.message ?? '', /invalid message length/);
    // Also a 100 kB "password": refused before authentication.
    const big = await RawClient.open(px.port);
    big.send(encodeStartupMessage({ user: FUZZ_USERS.md5.user, database: 'postgres' }));
    await big.next();
    big.send(header(0x70, 100_000));
    msgs = await big.waitClosed(3000);
    assert.equal(msgs[0]?.error?.code, '08P01');
    // After login: a Query declaring 1 GB (over max_message_size) is refused at once.
    const after = await RawClient.open(px.port);
    after.send(encodeStartupMessage({ user: FUZZ_USERS.trust, database: 'postgres' }));
    for (;;) if ((await after.next()).type === 'Z') break;
    const t0 = Date.now();
    after.send(header(0x51, 1 << 30), Buffer.alloc(1000));
    msgs = await after.waitClosed(3000);
    assert.equal(msgs.find((m) => m.error)?.error?.code, '08P01');
    assert.ok(Date.now() - t0 < 1000);
    await assertIdle(px);
  });

  test('authentication_timeout counts from the accept: a silent client and a half startup packet are cut off', async () => {
    const silent = await RawClient.open(px.port);
    const half = await RawClient.open(px.port);
    half.send(encodeStartupMessage({ user: FUZZ_USERS.trust, database: 'postgres' }).subarray(0, 10));
    const [a, b] = await Promise.all([silent.waitClosed(6000), half.waitClosed(6000)]);
    for (const msgs of [a, b]) {
      assert.equal(msgs[0]?.error?.code, '08P01');
      assert.match(msgs[0]?.error?.message ?? '', /canceling authentication due to timeout/);
    }
    assert.equal(px.app.ctx.slots.inUse, 0, 'an incomplete startup packet must not take a slot');
  });

  test('client_idle_limit: an idle client is disconnected with 57P05', async () => {
    const raw = await RawClient.open(px.port);
    raw.send(encodeStartupMessage({ user: FUZZ_USERS.trust, database: 'postgres' }));
    for (;;) if ((await raw.next()).type === 'Z') break;
    const msgs = await raw.waitClosed(6000);
    assert.equal(msgs[0]?.error?.code, '57P05');
    await assertIdle(px);
  });

  test('slowloris: 500 connections sending their startup one byte per second do not keep a client out', { timeout: 60_000 }, async () => {
    const startup = encodeStartupMessage({ user: FUZZ_USERS.trust, database: 'postgres', application_name: 'slowloris' });
    const sockets: net.Socket[] = [];
    const timers: NodeJS.Timeout[] = [];
    for (let i = 0; i < 500; i++) {
      const s = net.connect({ host: '127.0.0.1', port: px.port });
      s.on('error', () => undefined);
      let pos = 0;
      const t = setInterval(() => {
        if (pos < startup.length && !s.destroyed) s.write(startup.subarray(pos, ++pos));
      }, 1000);
      timers.push(t);
      sockets.push(s);
    }
    try {
      await new Promise((r) => setTimeout(r, 1500));
      for (let i = 0; i < 3; i++) {
        const t0 = Date.now();
        const c = new Client({ host: '127.0.0.1', port: px.port, user: 'fz_good', password: 'fz good pw', database: 'postgres', connectionTimeoutMillis: 5000 });
        await c.connect();
        assert.equal((await c.query('select 1 as one')).rows[0].one, 1);
        await c.end();
        assert.ok(Date.now() - t0 < 4000, `login + query took ${Date.now() - t0} ms beside the slow clients`);
      }
      assert.ok(px.app.ctx.slots.inUse <= 1, `slow clients hold ${px.app.ctx.slots.inUse} slots`);
    } finally {
      for (const t of timers) clearInterval(t);
      for (const s of sockets) s.destroy();
    }
    await assertIdle(px);
    assert.deepEqual(crashes, []);
  });
  test('messages that owe no answer, or make the server skip to Sync, then a read, then the client leaves: nothing held', async () => {
    const f = (type: string, body = ''): Buffer => {
      const b = Buffer.alloc(5 + body.length);
      b[0] = type.charCodeAt(0);
      b.writeInt32BE(4 + body.length, 1);
      b.write(body, 5, 'latin1');
      return b;
    };
    const login = (): Promise<RawClient> => RawClient.connect(px.port, { user: FUZZ_USERS.trust, database: 'postgres' });
    // The read goes to either node: a few rounds meet both (the Flush stays on the login's).
    for (let round = 0; round < 4; round++) {
      for (const pre of [[f('H')], [f('d', 'xx'), f('H')]]) {
        // A Flush owes nothing: the read behind it is answered as on a direct connection.
        const c = await login();
        c.send(...pre, encodeQuery('select 1'));
        assert.equal((await c.untilReady(5000)).map((m) => m.type).join(''), 'TDCZ');
        c.send(...pre, encodeQuery('select 1'));
        c.close();
      }
      // A Flush with a body, a Parse of garbage: the server answers 08P01 and skips the Query
      // (as PostgreSQL does, the client would wait for its Sync); then the client leaves.
      for (const bad of [f('H', 'junk'), f('P', 'zz')]) {
        const c = await login();
        c.send(bad, encodeQuery('select 1'));
        assert.equal((await c.next(5000)).error?.code, '08P01');
        c.close();
      }
    }
    await assertIdle(px);
    assert.deepEqual(crashes, []);
  });

  test(`fuzz: ${FUZZ_SECONDS} s of random and mutated streams (seed ${FUZZ_SEED}) beside a well-behaved client`, { timeout: 120_000 }, async (t) => {
    const good = wellBehavedClient(px.port);
    const stats = await fuzzFrontend({ port: px.port, seconds: FUZZ_SECONDS, seed: FUZZ_SEED, users: FUZZ_USERS, concurrency: 12 });
    const g = await good.stop();
    assert.deepEqual(crashes, [], 'uncaught exceptions in pgmaitre');
    assert.deepEqual(g.errors, [], 'the well-behaved client saw errors');
    assert.ok(g.queries > 50, `only ${g.queries} good queries`);
    assert.ok(stats.cases > 200, `only ${stats.cases} fuzz cases`);
    // No leak: every slot and every lease comes back, and no reset or connect is left hanging.
    await assertIdle(px);
    t.diagnostic(`fuzz: ${stats.cases} cases, ${g.queries} good queries; pools ${JSON.stringify([...px.app.ctx.pools.values()].map((p) => p.counts()))}`);
  });

});
