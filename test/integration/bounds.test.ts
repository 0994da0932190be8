/**
 * What pgmaitre buffers for one client is bounded, whatever the client sends or fails to read
 * (issue 17, item 5), against a real primary and standby:
 *  - a transaction-pooled client that pipelines answers bigger than its socket's high-water mark
 *    and reads slowly, sharing its one server connection (default_pool_size = 1) with another
 *    client: each new lease is paused while the client's socket is full;
 *  - 200k Bind/Execute without a Sync and then 180 MB of stray CopyData: sent on, not kept;
 *  - a client that streams bytes after its StartupMessage while its login waits (for a slot), on
 *    the main port and on a dedicated port: its socket is not read.
 * Measured as bytes buffered or bytes the process holds (Buffer memory), never as timings.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { Client } from 'pg';
import { freePort, withCluster } from '../harness/cluster';
import { backendLines, eventually, startInProcess, type InProcess } from '../harness/in-process';
import { RawClient } from '../harness/raw-client';
import { encodeStartupMessage } from '../../src/protocol/startup';
import { cstr, i16, i32, msg } from '../fixtures/bytes';
import type { ClientSession } from '../../src/frontend/session';

const Q = (sql: string): Buffer => msg('Q', cstr(sql));
const MB = 1024 * 1024;

/** Writes `total` bytes made of `piece` repeated, honouring backpressure; resolves with what the socket took. */
function stream(socket: net.Socket, piece: Buffer, total: number, stallMs = 0): Promise<number> {
  return new Promise((resolve) => {
    let sent = 0;
    let timer: NodeJS.Timeout | null = null;
    const done = (): void => {
      if (timer !== null) clearTimeout(timer);
      socket.off('drain', pump);
      resolve(sent);
    };
    const pump = (): void => {
      if (timer !== null) clearTimeout(timer);
      while (sent < total && !socket.destroyed) {
        sent += piece.length;
        if (!socket.write(piece)) {
          // Stalled: the peer does not read. Give up after stallMs without a drain (0: wait).
          if (stallMs > 0) timer = setTimeout(done, stallMs);
          return;
        }
      }
      done();
    };
    socket.on('drain', pump);
    socket.once('close', done);
    pump();
  });
}

/** Samples `f` every 20 ms until stopped; returns the maximum seen. */
function peak(f: () => number): { stop(): number } {
  let max = f();
  const t = setInterval(() => { max = Math.max(max, f()); }, 20);
  return { stop: () => { clearInterval(t); return Math.max(max, f()); } };
}

describe('bounded buffering', { timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 1 });
  let px: InProcess;
  let pxTx: InProcess;
  let pxOneSlot: InProcess;
  let writePort = 0;
  const common = "sr_check_user = 'postgres'\nenable_pool_hba = off\nhealth_check_period = 0\n";

  before(async () => {
    px = await startInProcess(`${backendLines(fx.cluster, [1, 0])}\n${common}`);
    pxTx = await startInProcess(`${backendLines(fx.cluster, [1, 0])}\n${common}pool_mode = transaction\ndefault_pool_size = 1\nquery_wait_timeout = 60\n`);
    writePort = await freePort();
    pxOneSlot = await startInProcess(`${backendLines(fx.cluster, [1, 0])}\n${common}num_init_children = 1\nwrite_port = ${writePort}\n`);
  });
  after(async () => {
    await px?.stop();
    await pxTx?.stop();
    await pxOneSlot?.stop();
  });

  test('transaction pooling, two clients on one connection: a slow reader\'s next leases wait for its socket (M2)', async (t) => {
    const slow = await RawClient.connect(pxTx.port, { user: 'postgres', database: 'postgres' });
    const other = new Client({ host: '127.0.0.1', port: pxTx.port, user: 'postgres', database: 'postgres' });
    other.on('error', () => {});
    await other.connect();
    const session = pxTx.app.ctx.registry.list().find((s) => s.pid === slow.pid) as ClientSession;
    assert.ok(session !== undefined);
    // 600 answers of ~60 KB each (36 MB, more than loopback's socket buffers take), one query
    // every few ms (each its own lease: the connection goes back between them), while the client
    // does not read.
    slow.socket.pause();
    const n = 600;
    // What pgmaitre holds for this client: the stream's buffer and the handle's write queue (fast-write.ts writes there).
    const out = session.socket as unknown as { writableLength: number; _handle: { writeQueueSize: number } | null };
    const buffered = peak(() => out.writableLength + (out._handle?.writeQueueSize ?? 0));
    const others = (async () => { for (let i = 0; i < 20; i++) await other.query('SELECT 1'); })();
    for (let i = 0; i < n; i++) {
      slow.send(Q("SELECT repeat('x', 60000)"));
      await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, 2000));
    const held = buffered.stop();
    t.diagnostic(`buffered for the slow reader: ${(held / MB).toFixed(2)} MB`);
    assert.ok(held < 4 * MB, `pgmaitre buffered ${(held / MB).toFixed(1)} MB for a client that does not read (36 MB were asked for)`);
    slow.socket.resume();
    let readies = 0;
    while (readies < n) if ((await slow.next(60_000)).type === 'Z') readies++;
    await others;
    await other.end();
    slow.socket.end();
  });

  test('200k Bind/Execute without Sync, then 180 MB of stray CopyData: sent on, not held (M3)', async (t) => {
    const c = await RawClient.connect(px.port, { user: 'postgres', database: 'postgres' });
    const base = process.memoryUsage().arrayBuffers;
    const mem = peak(() => process.memoryUsage().arrayBuffers - base);
    // Bind to a statement that does not exist: the server reports one error and skips the rest until Sync.
    const pair = Buffer.concat([msg('B', cstr(''), cstr('nope'), i16(0), i16(0), i16(0)), msg('E', cstr(''), i32(0))]);
    const binds = Buffer.concat(Array.from({ length: 1000 }, () => pair));
    await stream(c.socket, binds, 200 * binds.length);
    const copy = msg('d', Buffer.alloc(64 * 1024 - 5, 0x61));
    await stream(c.socket, copy, 180 * MB);
    c.send(msg('S'));
    const answer: string[] = [];
    for (;;) {
      const m = await c.next(120_000);
      answer.push(m.error ? `E ${m.error.code}` : m.type);
      if (m.type === 'Z') break;
    }
    const grew = mem.stop();
    t.diagnostic(`Buffer memory growth: ${(grew / MB).toFixed(1)} MB`);
    assert.deepEqual(answer, ['E 26000', 'Z'], 'the server saw it all, as a direct connection\'s would');
    assert.ok(grew < 64 * MB, `Buffer memory grew by ${(grew / MB).toFixed(0)} MB for 186 MB sent`);
    c.socket.end();
  });

  for (const which of ['main', 'write'] as const) {
    test(`bytes streamed after the StartupMessage while the login waits for a slot are not read (${which} port, H5)`, async (t) => {
      const port = which === 'main' ? pxOneSlot.port : writePort;
      const holder = await RawClient.connect(pxOneSlot.port, { user: 'postgres', database: 'postgres' });
      const s = net.connect({ host: '127.0.0.1', port });
      s.on('error', () => {});
      await new Promise((r) => s.once('connect', r));
      s.write(encodeStartupMessage({ user: 'postgres', database: 'postgres' }));
      await eventually(() => pxOneSlot.app.ctx.slots.waiting === 1, 'the second client waits for the slot');
      const frame = msg('p', Buffer.alloc(60_000, 0x62));
      const sent = await stream(s, frame, 50 * MB, 1500);
      t.diagnostic(`taken from the client: ${(sent / MB).toFixed(2)} MB`);
      assert.ok(sent < 20 * MB, `${(sent / MB).toFixed(1)} MB taken from a client whose login waits (50 MB offered)`);
      s.destroy();
      holder.socket.end();
      await eventually(() => pxOneSlot.app.ctx.slots.inUse === 0 && pxOneSlot.app.ctx.slots.waiting === 0, 'slots free again');
    });
  }
});
