/**
 * The query cache never stores what a REPEATABLE READ transaction read. Such a transaction reads
 * its own snapshot: after another client commits a write, it still reads the old rows, and the
 * cache's generations (looked up after that write's invalidation) would file that old answer as
 * current — served to every later client, for ever with memqcache_expire = 0. Found by trying it
 * as a user would: in transaction pooling, a BEGIN ISOLATION LEVEL REPEATABLE READ is answered by
 * pgmaitre and sent later in front of the first statement, so the cache never saw its text; the
 * same in session pooling passed. Two clients, one cache, session and transaction pooling.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'pg';
import { withCluster } from '../harness/cluster';
import { backendLines, startInProcess, type InProcess } from '../harness/in-process';

describe('query cache and REPEATABLE READ transactions', { timeout: 180_000 }, () => {
  const fx = withCluster({ standbys: 1 });

  before(async () => {
    await fx.cluster.psql(fx.cluster.primary.id, 'CREATE TABLE qs_t (id int PRIMARY KEY, v int); INSERT INTO qs_t VALUES (1, 0);');
    await fx.cluster.waitForReplay();
  });

  for (const mode of ['session', 'transaction'] as const) {
    describe(`pool_mode = ${mode}`, () => {
      let px: InProcess;
      const clients: Client[] = [];
      const connect = async (): Promise<Client> => {
        const c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres' });
        c.on('error', () => {});
        await c.connect();
        clients.push(c);
        return c;
      };
      const read = async (c: Client): Promise<number> => (await c.query<{ v: number }>('SELECT v FROM qs_t WHERE id = 1')).rows[0]!.v;

      before(async () => {
        px = await startInProcess([
          backendLines(fx.cluster), "sr_check_user = 'postgres'", 'enable_pool_hba = off',
          `pool_mode = '${mode}'`, 'default_pool_size = 2',
          'memory_cache_enabled = on', "memqcache_method = 'shmem'",
        ].join('\n'));
      });
      after(async () => {
        await Promise.all(clients.map((c) => c.end().catch(() => {})));
        await px?.stop();
      });

      for (const begin of ['BEGIN ISOLATION LEVEL REPEATABLE READ', 'START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY']) {
        test(`${begin}: its snapshot's answer is not stored after another client's write`, async () => {
          const writer = await connect();
          const reader = await connect();
          const base = (await writer.query<{ v: number }>('UPDATE qs_t SET v = v + 1 WHERE id = 1 RETURNING v')).rows[0]!.v;
          await reader.query(begin);
          assert.equal(await read(reader), base, 'the snapshot is taken');
          await writer.query('UPDATE qs_t SET v = v + 1 WHERE id = 1'); // committed
          assert.equal(await read(reader), base, 'the transaction reads its snapshot, as on a direct connection');
          await reader.query('COMMIT');
          assert.equal(await read(reader), base + 1, 'after its COMMIT the reader sees the write');
          const other = await connect();
          assert.equal(await read(other), base + 1, 'a later client sees the write');
          assert.equal(await read(writer), base + 1, 'the writer sees its own write');
        });
      }
    });
  }
});
