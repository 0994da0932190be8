/**
 * What the session core holds is bounded: a lease attached while the client's socket is full is
 * not read; frames waiting for a Sync and stray CopyData are sent on instead of piling up.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeCore } from './core-harness';
import { cstr, i16, i32, msg, u8 } from '../../fixtures/bytes';

const Q = (sql: string): Buffer => msg('Q', cstr(sql));
const P = (name: string, sql: string): Buffer => msg('P', cstr(name), cstr(sql), i16(0));
const B = (portal: string, stmt: string): Buffer => msg('B', cstr(portal), cstr(stmt), i16(0), i16(0), i16(0));
const E = (): Buffer => msg('E', cstr(''), i32(0));
const S = msg('S');
const Z = (s = 'I'): Buffer => msg('Z', u8(s));
const rows = (s = 'I'): Buffer => Buffer.concat([msg('T', i16(0)), msg('C', cstr('SELECT 1')), Z(s)]);

describe('SessionCore, bounded buffering', () => {
  test('a lease attached while the client\'s socket is full is paused at once (M2)', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction' });
    f.send(Q('SELECT 1'));
    await f.settle();
    const first = f.conns.get(0)!;
    f.clientFull = true;
    f.answer(0, rows());
    assert.equal(first.paused, true, 'the lease that filled the client is paused');
    assert.deepEqual(f.host.idle, [first], 'and given back at its ReadyForQuery');
    first.resume(); // the pool resumes what it takes back
    f.send(Q('SELECT 2'));
    const second = f.conns.get(0)!;
    assert.equal(second, first);
    assert.equal(second.paused, true, 'the next lease is not read while the client is still full');
    f.clientFull = false;
    f.core.onClientDrain();
    assert.equal(second.paused, false);
  });

  test('a pipeline without Sync beyond 256 KB goes to its node at once, and the Sync after it follows (M3)', async () => {
    const f = await makeCore({ weights: [0, 1, 1] });
    const pairs: Buffer[] = [P('s', 'SELECT 1')];
    for (let i = 0; i < 12_000; i++) pairs.push(B('', 's'), E());
    const pipeline = Buffer.concat(pairs);
    for (let off = 0; off < pipeline.length; off += 65_536) f.send(pipeline.subarray(off, off + 65_536));
    await f.settle();
    const [node, conn] = [...f.conns].find(([, c]) => c.written.length > 0) ?? [-1, null];
    assert.ok(conn !== null, 'sent before any Sync');
    const sent = conn.take().length;
    assert.ok(sent > 256 * 1024 && sent <= pipeline.length, `${sent} bytes sent`);
    assert.ok((f.core as unknown as { rBytes: number }).rBytes <= 256 * 1024, 'what is held waiting for a cut is bounded');
    f.send(S);
    await f.settle();
    const rest = conn.take();
    assert.equal(sent + rest.length, pipeline.length + S.length, 'every byte, in order, on one node');
    assert.equal(rest.subarray(rest.length - 5).toString('hex'), S.toString('hex'));
    for (const [n, c] of f.conns) if (n !== node) assert.equal(c.written.length, 0);
  });

  test('stray CopyData (no COPY running) is not kept: it follows the previous request to its node (M3)', async () => {
    const f = await makeCore({ weights: [1, 0, 0] });
    f.send(Q('SELECT 1'));
    f.answer(0, rows());
    const conn = f.conns.get(0)!;
    conn.take();
    const d = msg('d', Buffer.alloc(65_000, 0x61));
    for (let i = 0; i < 64; i++) f.send(d);
    const held = (f.core as unknown as { rBytes: number }).rBytes;
    assert.ok(held <= 256 * 1024, `${held} bytes held`);
    assert.ok(conn.take().length >= 64 * d.length - 256 * 1024 - d.length, 'the rest reached the node (which ignores it, as a direct connection\'s would)');
  });
});



describe('SessionCore, the client\'s own backend after a pg_terminate_backend (item 8)', () => {
  const fatal = (code: string): Buffer => msg('E', Buffer.from(`SFATAL\0VFATAL\0C${code}\0Mterminating connection due to administrator command\0\0`, 'latin1'));

  test('a read for a standby waits for a Sync on the client\'s own backend; its FATAL ends the session first', async () => {
    const admin = await makeCore({ weights: [0, 1, 1] });
    const f = await makeCore({ weights: [0, 1, 1] });
    admin.send(Q('SELECT pg_terminate_backend(1234)'));
    await admin.settle();
    f.send(Q('SELECT 1'));
    await f.settle();
    const own = f.conns.get(0)!;
    assert.equal(own.take().toString('hex'), msg('S').toString('hex'), 'a Sync to its own backend first');
    for (const n of [1, 2]) assert.equal(f.conns.get(n)?.written.length ?? 0, 0, 'nothing sent to a standby yet');
    f.answer(0, fatal('57P01'));
    f.core.onBackendClosed(0, 'closed by server');
    await f.settle();
    assert.equal(f.received().toString('hex'), fatal('57P01').toString('hex'));
    assert.ok(f.host.ended !== null);
  });

  test('alive: its ReadyForQuery is swallowed and the read goes on to the standby', async () => {
    const admin = await makeCore({ weights: [0, 1, 1] });
    const f = await makeCore({ weights: [0, 1, 1] });
    admin.send(Q('SELECT pg_terminate_backend(1234)'));
    await admin.settle();
    f.send(Q('SELECT 1'));
    await f.settle();
    f.conns.get(0)!.take();
    f.answer(0, Z());
    await f.settle();
    const node = [1, 2].find((n) => (f.conns.get(n)?.written.length ?? 0) > 0)!;
    assert.ok(node !== undefined, 'the read went to a standby');
    f.answer(node, rows());
    assert.equal(f.received().toString('hex'), rows().toString('hex'));
    f.send(Q('SELECT 2'));
    await f.settle();
    assert.equal(f.conns.get(0)!.written.length, 0, 'no second check without a new termination');
  });
});
