/**
 * The query cache and PostgreSQL's skip-until-Sync. After an error in an extended-protocol
 * request sent without a Sync (Flush), PostgreSQL discards every message until the next Sync and
 * answers that Sync with ReadyForQuery alone. A cached request arriving then must get the same:
 * ReadyForQuery, not the stored rows. Compared with the primary, message for message, in session
 * and transaction pooling, for a request the cache knows from its bytes (sent twice before) and
 * for a simple Query.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'pg';
import { withCluster } from '../harness/cluster';
import { backendLines, startInProcess, type InProcess } from '../harness/in-process';
import { RawClient, type ServerMessage } from '../harness/raw-client';
import { encodeBind, encodeDescribe, encodeExecute, encodeFlush, encodeParse, encodeQuery, encodeSync } from '../../src/protocol/frontend';

const SQL = 'SELECT v FROM qk_t WHERE id = 1';
const hot = (): Buffer[] => [encodeParse('', SQL), encodeBind('', ''), encodeDescribe('P', ''), encodeExecute('', 0), encodeSync()];
const failing = (): Buffer[] => [encodeParse('', 'SELECT 1/0'), encodeBind('', ''), encodeExecute('', 0), encodeFlush()];
const types = (ms: readonly ServerMessage[]): string => ms.map((m) => m.type).join('');

/** Reads up to the ErrorResponse (a Flush's answer has no ReadyForQuery). */
async function untilError(c: RawClient): Promise<ServerMessage[]> {
  const out: ServerMessage[] = [];
  while (out[out.length - 1]?.type !== 'E') out.push(await c.next(10_000));
  return out;
}

/** The sequence: the hot request twice (stored, then a hit), an error under Flush, then each probe. */
async function run(port: number): Promise<string[]> {
  const c = await RawClient.connect(port, { user: 'postgres', database: 'postgres' });
  try {
    const seen: string[] = [];
    for (let i = 0; i < 3; i++) {
      c.send(...hot());
      seen.push(types(await c.untilReady()));
    }
    c.send(encodeQuery(SQL));
    seen.push(types(await c.untilReady()));
    c.send(encodeQuery(SQL));
    seen.push(types(await c.untilReady()));
    // Skip-until-Sync, then the hot extended request: only its Sync is answered.
    c.send(...failing());
    seen.push(types(await untilError(c)));
    c.send(...hot());
    seen.push(types(await c.untilReady()));
    // Skip-until-Sync, then a simple Query (discarded too), then a Sync.
    c.send(...failing());
    seen.push(types(await untilError(c)));
    c.send(encodeQuery(SQL));
    c.send(encodeSync());
    seen.push(types(await c.untilReady()));
    // Back to normal.
    c.send(...hot());
    seen.push(types(await c.untilReady()));
    // An INSERT in an unsynced sequence, then the hot request: its Sync commits the INSERT.
    c.send(encodeParse('', 'INSERT INTO qk_log VALUES (1)'), encodeBind('', ''), encodeExecute('', 0), encodeFlush());
    const ins: ServerMessage[] = [];
    while (ins[ins.length - 1]?.type !== 'C') ins.push(await c.next(10_000));
    seen.push(types(ins));
    c.send(...hot());
    seen.push(types(await c.untilReady()));
    return seen;
  } finally {
    c.close();
  }
}

describe('query cache: a request in skip-until-Sync is not answered from the cache', { timeout: 180_000 }, () => {
  const fx = withCluster({ standbys: 1 });
  let direct: string[];

  before(async () => {
    await fx.cluster.psql(fx.cluster.primary.id, 'CREATE TABLE qk_t (id int PRIMARY KEY, v int); INSERT INTO qk_t VALUES (1, 7); CREATE TABLE qk_log (n int);');
    await fx.cluster.waitForReplay();
    direct = await run(fx.cluster.primary.port);
  });

  for (const mode of ['session', 'transaction'] as const) {
    describe(`pool_mode = ${mode}`, () => {
      let px: InProcess;
      before(async () => {
        px = await startInProcess([
          backendLines(fx.cluster), "sr_check_user = 'postgres'", 'enable_pool_hba = off',
          `pool_mode = '${mode}'`, `default_pool_size = ${mode === 'transaction' ? 1 : 2}`,
          'memory_cache_enabled = on', "memqcache_method = 'shmem'",
        ].join('\n'));
      });
      after(async () => { await px?.stop(); });

      test('the same messages as the primary, hits included; the Sync after an unsynced INSERT commits it', async () => {
        const rows = async (): Promise<number> => Number((await fx.cluster.psql(fx.cluster.primary.id, 'SELECT count(*) FROM qk_log')).trim());
        const before = await rows();
        const got = await run(px.port);
        assert.deepEqual(got, direct);
        assert.equal(await rows(), before + 1, 'the INSERT was committed by the hot request\'s Sync');
        const admin = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres' });
        await admin.connect();
        try {
          const row = (await admin.query<{ num_cache_hits: string }>('SHOW POOL_CACHE')).rows[0]!;
          assert.ok(Number(row.num_cache_hits) >= 3, `hits: ${row.num_cache_hits} (the hot requests were answered from the cache)`);
        } finally {
          await admin.end();
        }
      });

      if (mode === 'transaction') {
        test('two clients on the pool\'s one connection: the second is served once the first one\'s Sync reached the server', async () => {
          const a = await RawClient.connect(px.port, { user: 'postgres', database: 'postgres' });
          const b = await RawClient.connect(px.port, { user: 'postgres', database: 'postgres' });
          try {
            for (let i = 0; i < 2; i++) {
              a.send(...hot());
              await a.untilReady();
            }
            a.send(...failing()); // a holds the only connection until its Sync
            assert.equal(types(await untilError(a)).slice(-1), 'E');
            b.send(encodeQuery('SELECT 2 AS two'));
            a.send(...hot());
            assert.equal(types(await a.untilReady()), 'Z', 'skip-until-Sync: the Sync alone is answered');
            assert.equal(types(await b.untilReady()), 'TDCZ', 'b got the connection after a\'s Sync');
          } finally {
            a.close();
            b.close();
          }
        });
      }
    });
  }
});
