/**
 * read_your_writes' bookkeeping (issue 9 item 10): a commit made while an earlier commit's WAL
 * position is being fetched is not covered by that fetch, and a failed fetch is retried after a
 * pause instead of keeping the session on the primary for good. The LsnSource here is a plain
 * object whose promises the test settles by hand; the integration side (a real primary and
 * standbys) is in test/integration/failover-e2e.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReadYourWrites, type LsnSource } from '../../../src/core/read-your-writes';

interface Pending { resolve(l: bigint): void; reject(e: Error): void }

function source(): { src: LsnSource; fetches: Pending[]; replay: Map<number, bigint> } {
  const fetches: Pending[] = [];
  const replay = new Map<number, bigint>();
  const src: LsnSource = {
    currentLsnAfter: () => new Promise<bigint>((resolve, reject) => { fetches.push({ resolve, reject }); }),
    replayLsn: (node) => replay.get(node) ?? null,
    refreshReplay: async () => {},
  };
  return { src, fetches, replay };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('no write yet: every standby is fresh enough', () => {
  const { src } = source();
  const ryw = new ReadYourWrites(() => src);
  assert.equal(ryw.freshEnough(1), true);
});

test('a write not yet committed keeps reads on the primary', () => {
  const { src, fetches } = source();
  const ryw = new ReadYourWrites(() => src);
  ryw.noteWrite();
  assert.equal(ryw.freshEnough(1), false);
  assert.equal(fetches.length, 0, 'nothing to fetch before the commit');
});

test('after a commit, a standby is fresh once it has replayed the fetched position', async () => {
  const { src, fetches, replay } = source();
  const ryw = new ReadYourWrites(() => src);
  ryw.noteWrite();
  ryw.onPrimaryIdle(0);
  assert.equal(ryw.freshEnough(1), false);
  assert.equal(fetches.length, 1);
  fetches[0]!.resolve(100n);
  await tick();
  replay.set(1, 99n);
  assert.equal(ryw.freshEnough(1), false, 'behind the commit');
  replay.set(1, 100n);
  assert.equal(ryw.freshEnough(1), true);
});

test('a second commit during the first fetch waits for a fetch of its own', async () => {
  const { src, fetches, replay } = source();
  const ryw = new ReadYourWrites(() => src);
  ryw.noteWrite();
  ryw.onPrimaryIdle(0);
  ryw.freshEnough(1);
  assert.equal(fetches.length, 1);
  // the second commit lands while the first position is still on its way
  ryw.noteWrite();
  ryw.onPrimaryIdle(0);
  fetches[0]!.resolve(100n);
  await tick();
  replay.set(1, 100n);
  assert.equal(ryw.freshEnough(1), false, 'the first position does not cover the second commit');
  assert.equal(fetches.length, 2, 'a new fetch for the second commit');
  fetches[1]!.resolve(200n);
  await tick();
  assert.equal(ryw.freshEnough(1), false, 'standby at 100 < 200');
  replay.set(1, 200n);
  assert.equal(ryw.freshEnough(1), true);
});

test('a failed fetch is retried after a pause, not given up for good', async () => {
  const { src, fetches, replay } = source();
  let now = 1_000_000;
  const ryw = new ReadYourWrites(() => src, () => now);
  ryw.noteWrite();
  ryw.onPrimaryIdle(0);
  ryw.freshEnough(1);
  fetches[0]!.reject(new Error('side connection lost'));
  await tick();
  assert.equal(ryw.freshEnough(1), false);
  assert.equal(fetches.length, 1, 'no retry storm right after a failure');
  now += 1500;
  assert.equal(ryw.freshEnough(1), false);
  assert.equal(fetches.length, 2, 'retried after the pause');
  fetches[1]!.resolve(50n);
  await tick();
  replay.set(2, 50n);
  assert.equal(ryw.freshEnough(2), true, 'the session goes back to the standbys');
});

test('concurrent reads share one fetch', () => {
  const { src, fetches } = source();
  const ryw = new ReadYourWrites(() => src);
  ryw.noteWrite();
  ryw.onPrimaryIdle(0);
  for (let i = 0; i < 10; i++) ryw.freshEnough(1 + (i % 2));
  assert.equal(fetches.length, 1);
});
