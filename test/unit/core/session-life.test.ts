/**
 * A connection per request, after its login (issue 21 item 5): what a session core costs from
 * its making to its end, and that what it now makes lazily still works when it is needed.
 *  - the login node's link exists from the login (transaction pooling), empty; the first request
 *    leases on it as later ones do;
 *  - a Link's buffer for a message header split across chunks is made only when one is;
 *  - the young-generation bytes of a whole life (made, one request answered, Terminate) stay
 *    under a bound: a session's objects are made per login, and each collection of the young
 *    generation is paid for by every connection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { makeCore, FakeConn } from './core-harness';
import { encodeQuery } from '../../../src/protocol/frontend';
import { encodeReadyForQuery } from '../../../src/protocol/backend';
import { TxStatus } from '../../../src/protocol/codes';
import { SessionCore } from '../../../src/core/session-core';
import { Framer } from '../../../src/protocol/framer';

v8.setFlagsFromString('--expose-gc');
v8.setFlagsFromString('--no-allocation-site-pretenuring');
const gc = vm.runInNewContext('gc') as (o?: { type: 'minor' | 'major' }) => void;

function frame(code: string, body: Buffer): Buffer {
  const b = Buffer.alloc(5 + body.length);
  b[0] = code.charCodeAt(0);
  b.writeInt32BE(body.length + 4, 1);
  body.copy(b, 5);
  return b;
}

const ROWS = Buffer.concat([
  frame('T', Buffer.from([0, 1, 0x61, 0, 0, 0, 0, 0x40, 0, 3, 0, 0, 0, 0x17, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0])),
  frame('D', Buffer.from([0, 1, 0, 0, 0, 1, 0x30])), frame('C', Buffer.from('SELECT 1\0')), encodeReadyForQuery(TxStatus.Idle),
]);

test('transaction pooling: the login node\'s link is made at login, empty; the first request leases on it and gives it back', async () => {
  const idle = [new FakeConn(0, 501)];
  const f = await makeCore({ pooling: 'transaction', login: false, idle, weights: [1, 0, 0] });
  f.core.loginNode(0);
  const link = f.core.link(0);
  assert.ok(link !== undefined, 'made at login');
  assert.equal(link.conn, null);
  assert.equal(f.core.txStatus(), TxStatus.Idle);
  assert.equal(f.core.busy, false);
  f.send(encodeQuery('SELECT abalance FROM pgbench_accounts WHERE aid = 1;'));
  assert.equal(f.core.link(0), link, 'the same link takes the lease');
  assert.ok(link.conn !== null);
  f.answer(0, ROWS);
  assert.deepEqual(f.received(), ROWS);
  assert.equal(link.conn, null, 'given back at the end of its transaction');
  assert.equal(idle.length, 1);
  assert.equal(f.core.leave(() => {}), false, 'nothing left to run');
  f.core.close();
  assert.equal(idle.length, 1);
});

test('a server message whose header is split across chunks is read as one (the header buffer is made then)', async () => {
  const f = await makeCore({ pooling: 'session', weights: [1, 0, 0] });
  const link = f.core.link(0)!;
  assert.equal((link as unknown as { hdr: Buffer | null }).hdr, null, 'no header buffer before one is needed');
  f.send(encodeQuery('SELECT abalance FROM pgbench_accounts WHERE aid = 1;'));
  f.conns.get(0)!.take();
  // One byte per chunk: every header straddles chunks.
  for (let i = 0; i < ROWS.length; i++) f.answer(0, ROWS.subarray(i, i + 1));
  assert.deepEqual(f.received(), ROWS);
  assert.ok((link as unknown as { hdr: Buffer | null }).hdr !== null);
  // And again, on the buffer made then.
  f.send(encodeQuery('SELECT abalance FROM pgbench_accounts WHERE aid = 2;'));
  for (let i = 0; i < ROWS.length; i += 3) f.answer(0, ROWS.subarray(i, i + 3));
  assert.deepEqual(f.received(), ROWS);
});

test('a connection per request: young-generation bytes per session life (made, one request, Terminate) stay bounded', async () => {
  const idle = [new FakeConn(0, 601), new FakeConn(0, 602)];
  const f = await makeCore({ pooling: 'transaction', login: false, idle, weights: [1, 0, 0] });
  const host = f.host;
  const port = { write: (): boolean => true };
  let aid = 1;
  const texts = Array.from({ length: 64 }, () => encodeQuery(`SELECT abalance FROM pgbench_accounts WHERE aid = ${aid++};`));
  const life = (k: number): void => {
    const core = new SessionCore(host, port);
    core.loginNode(0);
    if (host.routing.router.loadBalanceMode) core.pickReadNode();
    const framer = new Framer(1 << 30);
    framer.push(texts[k % 64]!, core);
    core.endOfInput();
    core.onBackendData(0, ROWS);
    if (!core.leave(() => {})) core.close();
  };
  for (let k = 0; k < 2000; k++) life(k);
  const newSpace = (): number => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_used_size;
  let best = Infinity;
  for (let t = 0; t < 20; t++) {
    gc({ type: 'minor' });
    const before = newSpace();
    for (let k = 0; k < 50; k++) life(k);
    const after = newSpace();
    if (after >= before) best = Math.min(best, (after - before) / 50);
  }
  // Measured 9.6 KB after this work (the core with its planner, statement registry, session
  // state and link, the load-balance pick, the request's frames and plan, the framer); 10.8 KB
  // before it (a Buffer per link, a Map per session state, a Set and two generators per close).
  assert.ok(best < 10 * 1024, `${best.toFixed(0)} B per session life`);
});
