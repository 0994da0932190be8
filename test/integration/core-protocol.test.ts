/**
 * Protocol coverage through pgmaitre against a real primary + 2 standbys: startup (SSL/GSS 'N'),
 * ParameterStatus/BackendKeyData, simple and multi-statement queries, the extended protocol
 * (named/unnamed statements and portals, portal suspension, Describe, Close, Flush), COPY both
 * ways, notices, LISTEN/NOTIFY, errors mid-pipeline, FunctionCall, Terminate and CancelRequest.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'pg';
import { withCluster } from '../harness/cluster';
import { backendLines, poolModeUnderTest, startInProcess, type InProcess } from '../harness/in-process';

/** Reads on the primary too: these tests are about the protocol and the drivers, not routing (see routing*.test.ts). */
const PRIMARY_ONLY = [1, 0, 0];
import { RawClient, types } from '../harness/raw-client';
import {
  encodeBind, encodeClose, encodeDescribe, encodeExecute, encodeFlush, encodeFunctionCall, encodeParse, encodeQuery,
  encodeSync, encodeTerminate, encodeCopyData, encodeCopyDone,
} from '../../src/protocol/frontend';
import { encodeCancelRequest, encodeSSLRequest, encodeGSSENCRequest, encodeStartupMessage } from '../../src/protocol/startup';
import { decodeDataRow } from '../../src/protocol/backend';

describe('core protocol through pgmaitre', { timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  let px: InProcess;

  before(async () => {
    px = await startInProcess(`${backendLines(fx.cluster, PRIMARY_ONLY)}\nsr_check_user = 'postgres'\nenable_pool_hba = off\nnum_init_children = 8\nmax_pool = 2\n`);
  });
  after(async () => { await px?.stop(); });

  function pg(extra: Record<string, unknown> = {}): Client {
    return new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres', ...extra });
  }

  const LOGIN = { user: 'postgres', database: 'postgres' };

  describe('startup', () => {
    test('SSLRequest and GSSENCRequest are answered N, then the startup proceeds', async () => {
      const c = await RawClient.open(px.port);
      const got: Buffer[] = [];
      c.socket.prependListener('data', (d: Buffer) => got.push(d));
      c.send(encodeSSLRequest());
      await new Promise((r) => setTimeout(r, 100));
      c.send(encodeGSSENCRequest());
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(Buffer.concat(got).toString('latin1'), 'NN');
      c.close();
    });

    test('ParameterStatus and BackendKeyData (the backend pid, pgmaitre\'s secret) are sent', async () => {
      const c = await RawClient.connect(px.port, LOGIN);
      assert.equal(c.params.get('server_encoding'), 'UTF8');
      assert.ok(c.params.has('server_version'));
      assert.ok(c.pid > 0 && c.secret !== 0);
      c.send(encodeQuery('SELECT pg_backend_pid()'));
      const rows = (await c.untilReady()).filter((m) => m.type === 'D');
      const backendPid = Number(decodeDataRow(rows[0]!.frame, 0, rows[0]!.frame.length)[0]);
      if (poolModeUnderTest() === 'session') assert.equal(backendPid, c.pid, 'the key carries the client\'s primary backend pid, as PostgreSQL\'s does');
      else assert.notEqual(backendPid, c.pid, 'transaction pooling: no backend is the client\'s own, the pid is pgmaitre\'s');
      c.send(encodeTerminate());
      await c.waitClosed();
    });

    test('a startup packet with an impossible length is closed without a word, as PostgreSQL does; the next client is fine', async () => {
      for (const port of [fx.cluster.primary.port, px.port]) {
        const c = await RawClient.open(port);
        const bad = Buffer.alloc(8);
        bad.writeInt32BE(2_000_000_000, 0);
        c.send(bad);
        assert.deepEqual(await c.waitClosed(), [], `port ${port}`);
      }
      const ok = pg();
      await ok.connect();
      assert.equal((await ok.query('SELECT 1 AS x')).rows[0].x, 1);
      await ok.end();
    });

    test('unsupported protocol version is refused', async () => {
      const c = await RawClient.open(px.port);
      c.send(encodeStartupMessage(LOGIN, { major: 2, minor: 0 }));
      const msgs = await c.waitClosed();
      assert.equal(msgs[0]?.type, 'E');
    });
  });

  describe('simple query', () => {
    test('single and multi-statement strings', async () => {
      const c = pg();
      await c.connect();
      const r = await c.query('SELECT 1 AS a; SELECT 2 AS b; SELECT 3 AS c');
      assert.ok(Array.isArray(r));
      assert.deepEqual((r as unknown as { rows: unknown[] }[]).map((x) => x.rows[0]), [{ a: 1 }, { b: 2 }, { c: 3 }]);
      await c.query('CREATE TABLE IF NOT EXISTS core_t (id int primary key, v text)');
      await c.query('TRUNCATE core_t');
      await c.query("INSERT INTO core_t VALUES (1, 'one'), (2, 'two')");
      assert.equal((await c.query('SELECT count(*)::int AS n FROM core_t')).rows[0].n, 2);
      await c.end();
    });

    test('notices reach the client', async () => {
      const c = pg();
      await c.connect();
      const notices: string[] = [];
      c.on('notice', (n) => notices.push(n.message ?? ''));
      await c.query("DO $$ BEGIN RAISE NOTICE 'hello from plpgsql'; END $$");
      assert.deepEqual(notices, ['hello from plpgsql']);
      await c.end();
    });

    test('a server error keeps the session usable', async () => {
      const c = pg();
      await c.connect();
      await assert.rejects(c.query('SELECT * FROM no_such_table'), (e: { code?: string }) => e.code === '42P01');
      assert.equal((await c.query('SELECT 42 AS x')).rows[0].x, 42);
      await c.end();
    });
  });

  describe('extended protocol', () => {
    test('named and unnamed statements, parameters, reuse', async () => {
      const c = pg();
      await c.connect();
      for (let i = 0; i < 3; i++) {
        const r = await c.query({ name: 'add', text: 'SELECT $1::int + $2::int AS s', values: [i, 10] });
        assert.equal(r.rows[0].s, i + 10);
      }
      const u = await c.query('SELECT $1::text AS t', ['unnamed']);
      assert.equal(u.rows[0].t, 'unnamed');
      await c.end();
    });

    test('portal suspension with a row limit, Describe, Close, Flush', async () => {
      const c = await RawClient.connect(px.port, LOGIN);
      c.send(
        encodeParse('s1', 'SELECT g FROM generate_series(1, 5) g'),
        encodeDescribe('S', 's1'),
        encodeFlush(),
      );
      assert.equal(types([await c.next(), await c.next(), await c.next()]), '1tT');
      c.send(encodeQuery('BEGIN'));
      await c.untilReady();
      c.send(encodeBind('p1', 's1'), encodeExecute('p1', 2), encodeSync());
      assert.equal(types(await c.untilReady()), '2DDsZ');
      c.send(encodeExecute('p1', 2), encodeSync());
      assert.equal(types(await c.untilReady()), 'DDsZ');
      c.send(encodeExecute('p1', 0), encodeClose('P', 'p1'), encodeClose('S', 's1'), encodeSync());
      assert.equal(types(await c.untilReady()), 'DC33Z');
      c.send(encodeQuery('COMMIT'));
      await c.untilReady();
      c.close();
    });

    test('an error mid-pipeline skips to Sync, then the session works', async () => {
      const c = await RawClient.connect(px.port, LOGIN);
      c.send(
        encodeParse('', 'SELECT 1/0'), encodeBind('', ''), encodeExecute('', 0),
        encodeParse('', 'SELECT 1'), encodeBind('', ''), encodeExecute('', 0),
        encodeSync(),
        encodeParse('', 'SELECT 7'), encodeBind('', ''), encodeExecute('', 0), encodeSync(),
      );
      const first = await c.untilReady();
      // 1/0 is folded when the plan is made, at Bind: ParseComplete, then the error, then skip to Sync.
      assert.equal(types(first), '1EZ');
      assert.equal(first[1]!.error?.code, '22012');
      const second = await c.untilReady();
      assert.equal(types(second), '12DCZ');
      c.close();
    });

    test('FunctionCall', async () => {
      const c = await RawClient.connect(px.port, LOGIN);
      c.send(encodeQuery("SELECT 'int4abs'::regproc::oid"));
      const oidRow = (await c.untilReady()).find((m) => m.type === 'D')!;
      const oid = Number(decodeDataRow(oidRow.frame, 0, oidRow.frame.length)[0]);
      const arg = Buffer.alloc(4);
      arg.writeInt32BE(-17);
      c.send(encodeFunctionCall(oid, [arg], 1));
      const res = await c.untilReady();
      assert.equal(types(res), 'VZ');
      const v = res[0]!.frame;
      assert.equal(v.readInt32BE(5), 4);
      assert.equal(v.readInt32BE(9), 17);
      c.close();
    });
  });

  describe('COPY', () => {
    test('COPY FROM STDIN and TO STDOUT', async () => {
      const c = await RawClient.connect(px.port, LOGIN);
      c.send(encodeQuery('CREATE TABLE IF NOT EXISTS copy_t (a int, b text); TRUNCATE copy_t'));
      await c.untilReady();
      c.send(encodeQuery('COPY copy_t FROM STDIN'));
      assert.equal((await c.next()).type, 'G');
      const lines: Buffer[] = [];
      for (let i = 0; i < 2000; i++) lines.push(encodeCopyData(`${i}\trow ${i}\n`));
      c.send(...lines, encodeCopyDone());
      const done = await c.untilReady();
      assert.equal(types(done), 'CZ');
      c.send(encodeQuery('COPY (SELECT a FROM copy_t ORDER BY a LIMIT 3) TO STDOUT'));
      const out = await c.untilReady();
      assert.equal(types(out), 'HdddcCZ');
      c.close();
    });
  });

  describe('notifications and cancel', () => {
    test('LISTEN/NOTIFY across two sessions', async () => {
      const a = pg();
      const b = pg();
      await a.connect();
      await b.connect();
      const got = new Promise<string>((resolve) => a.on('notification', (n) => resolve(`${n.channel}:${n.payload}`)));
      await a.query('LISTEN chan1');
      await b.query("NOTIFY chan1, 'payload-1'");
      assert.equal(await got, 'chan1:payload-1');
      await a.end();
      await b.end();
    });

    test('CancelRequest with the pgmaitre key cancels the running query', async () => {
      const c = await RawClient.connect(px.port, LOGIN);
      c.send(encodeQuery('SELECT pg_sleep(20)'));
      await new Promise((r) => setTimeout(r, 300));
      const t0 = Date.now();
      const k = await RawClient.open(px.port);
      k.send(encodeCancelRequest(c.pid, c.secret));
      const res = await c.untilReady(10_000);
      assert.equal(res.find((m) => m.type === 'E')?.error?.code, '57014');
      assert.ok(Date.now() - t0 < 5000);
      c.close();
    });

    test('a wrong cancel key does nothing', async () => {
      const c = await RawClient.connect(px.port, LOGIN);
      c.send(encodeQuery('SELECT pg_sleep(0.5)'));
      const k = await RawClient.open(px.port);
      k.send(encodeCancelRequest(c.pid, c.secret ^ 1));
      const res = await c.untilReady(10_000);
      assert.equal(res.some((m) => m.type === 'E'), false);
      c.close();
    });
  });
});
