/** PCP 'G' (pcp_invalidate_query_cache, pgpool-II 4.6) and SHOW POOL_CACHE without a cache. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { handlePcpRequest } from '../../../src/pcp/handlers';
import { runAdminCommand } from '../../../src/admin/registry';
import { makeContext, makeSession } from '../../fixtures/admin/context';
import type { QueryCacheAdmin } from '../../../src/admin/types';

test("PCP 'G' invalidates the whole cache and answers 'g' CommandComplete; refused when the cache is off", async () => {
  const t = makeContext();
  let all = 0;
  const qc = { invalidateAll: async () => { all++; } } as unknown as QueryCacheAdmin;
  const ok = await handlePcpRequest({ ...t.ctx, queryCache: () => qc }, 'G', Buffer.alloc(0));
  assert.equal(all, 1);
  assert.equal(ok.packets[0]!.toString('latin1', 0, 1), 'g');
  assert.match(ok.packets[0]!.toString('latin1'), /CommandComplete/);
  const off = await handlePcpRequest(t.ctx, 'G', Buffer.alloc(0));
  assert.match(Buffer.concat(off.packets).toString('latin1'), /query cache is not enabled/);
});

test('SHOW POOL_CACHE and PGPOOL SET CACHE DELETE say so when the cache is off', async () => {
  const t = makeContext();
  const s = makeSession(t.ctx, 1);
  for (const sql of ['SHOW POOL_CACHE', "PGPOOL SET CACHE DELETE 'SELECT 1'"]) {
    const r = await runAdminCommand(t.ctx, s, sql);
    assert.ok('error' in r && /query cache is not enabled/.test(r.error.message), sql);
  }
});
