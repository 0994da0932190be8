import { test } from 'node:test';
import assert from 'node:assert/strict';
import { changedRelations } from '../../../src/cache/change-stream';

test('changedRelations: the relations test_decoding lines name (quoted names, TRUNCATE of several, BEGIN/COMMIT ignored)', () => {
  const got = changedRelations([
    'BEGIN',
    "table public.t: INSERT: id[integer]:1 v[text]:'a: b'",
    "table public.t: UPDATE: id[integer]:1 v[text]:'x'",
    'table "My Schema"."we: ird, ""t""": DELETE: (no-tuple-data)',
    'table public.a, public."B", s.c: TRUNCATE: cascade',
    'message: transactional: 1 prefix: p, sz: 1 content:x',
    'COMMIT',
  ]);
  assert.deepEqual([...got], ['public.t', '"My Schema"."we: ird, ""t"""', 'public.a', 'public."B"', 's.c']);
});
