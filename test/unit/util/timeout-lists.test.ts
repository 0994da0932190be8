import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

/** Waits until `cond` holds (polling), at most `ms`. */
async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(5);
}
import { TimeoutLists } from '../../../src/util/timeout-lists';

test('TimeoutLists: each entry fires once after its duration, cancelled ones never', async () => {
  const t = new TimeoutLists();
  const fired: string[] = [];
  const start = performance.now();
  const at: Record<string, number> = {};
  const mark = (name: string) => () => { fired.push(name); at[name] = performance.now() - start; };
  t.schedule(40, mark('a'));
  const b = t.schedule(40, mark('b'));
  t.schedule(15, mark('short'));
  await sleep(5);
  t.schedule(40, mark('c'));
  t.cancel(b);
  t.cancel(b); // twice: nothing
  assert.equal(t.size, 3);
  await sleep(120);
  assert.deepEqual(fired, ['short', 'a', 'c']);
  assert.ok(at.short! >= 14, `short fired at ${at.short}`);
  assert.ok(at.a! >= 39, `a fired at ${at.a}`);
  assert.ok(at.c! >= 44, `c fired at ${at.c}`);
  assert.equal(t.size, 0);
});

test('TimeoutLists: cancelling the head re-arms for the next; a list emptied and refilled still fires', async () => {
  const t = new TimeoutLists();
  const fired: string[] = [];
  const a = t.schedule(20, () => fired.push('a'));
  await sleep(10);
  t.schedule(20, () => fired.push('b'));
  t.cancel(a);
  await sleep(15); // a's deadline passed: nothing fired, b still waits
  assert.equal(fired.length, 0);
  await sleep(40);
  assert.deepEqual(fired, ['b']);
  const c = t.schedule(10, () => fired.push('c'));
  t.cancel(c);
  t.schedule(10, () => fired.push('d'));
  await sleep(50);
  assert.deepEqual(fired, ['b', 'd']);
});

test('TimeoutLists: an entry scheduled from a firing callback, and a callback that throws, leave the rest on time', async () => {
  const t = new TimeoutLists();
  const fired: string[] = [];
  t.schedule(10, () => { fired.push('a'); t.schedule(10, () => fired.push('nested')); });
  await until(() => fired.length >= 2); // (not a fixed sleep: a loaded machine runs timers late)
  assert.deepEqual(fired, ['a', 'nested']);
  const errors: unknown[] = [];
  const onErr = (e: unknown): void => { errors.push(e); };
  const listeners = process.listeners('uncaughtException');
  process.removeAllListeners('uncaughtException');
  process.on('uncaughtException', onErr);
  try {
    t.schedule(10, () => { throw new Error('boom'); });
    t.schedule(10, () => fired.push('after'));
    await until(() => fired.includes('after') && errors.length > 0);
  } finally {
    process.removeListener('uncaughtException', onErr);
    for (const l of listeners) process.on('uncaughtException', l);
  }
  assert.equal(errors.length, 1);
  assert.deepEqual(fired, ['a', 'nested', 'after']);
});

test('TimeoutLists: waiting entries do not keep the process alive (unref)', async () => {
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(process.execPath, ['-e', `const { TimeoutLists } = require(${JSON.stringify(require.resolve('../../../src/util/timeout-lists'))}); new TimeoutLists().schedule(60000, () => {}); console.log('done');`], { encoding: 'utf8', timeout: 20000 });
  assert.equal(r.status, 0);
  assert.equal(r.stdout.trim(), 'done');
});

test('TimeoutLists: schedule() does not read the global `performance` (an accessor of Node\'s: a getter call each time)', () => {
  const desc = Object.getOwnPropertyDescriptor(globalThis, 'performance')!;
  const real = globalThis.performance;
  let reads = 0;
  Object.defineProperty(globalThis, 'performance', { configurable: true, enumerable: true, get: () => { reads++; return real; } });
  try {
    const t = new TimeoutLists();
    for (let i = 0; i < 100; i++) t.cancel(t.schedule(60_000, () => {}));
  } finally {
    Object.defineProperty(globalThis, 'performance', desc);
  }
  assert.equal(reads, 0, `the global performance was read ${reads} times for 100 schedules`);
});
