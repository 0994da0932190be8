/**
 * The fast I/O path (src/util/fast-read.ts, fast-write.ts) reaches into Node internals
 * (process.binding('stream_wrap'), the socket handle's useUserBuffer/writeBuffer and the
 * onread symbols) and falls back silently to 'data' events and socket.write() when they are
 * missing. On the Node versions pgmaitre supports (package.json engines: 20 and later, tested
 * on 20 and 22), the fast path must be the one in use: these tests fail if a Node upgrade takes
 * it away, so the loss of 10-20 µs per transaction cannot go unnoticed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { fastWrite, fastWriteAvailable, fastWriteRequestsMade } from '../../../src/util/fast-write';
import { switchToReadBuffer } from '../../../src/util/fast-read';

const major = Number(process.versions.node.split('.')[0]);
/** Majors on which the internals were checked; a newer one fails until it is checked too. */
const SUPPORTED = [20, 22, 24];

test('this Node is one the fast I/O path was checked on', () => {
  assert.ok(SUPPORTED.includes(major), `Node ${process.versions.node}: check src/util/fast-read.ts and fast-write.ts on it, then add ${major} to SUPPORTED`);
});

/** A connected pair: the accepted socket (server side) and the client socket. */
async function pair(): Promise<{ server: net.Server; accepted: net.Socket; client: net.Socket }> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const acceptedP = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect(port, '127.0.0.1');
  await new Promise<void>((r, j) => { client.once('connect', r); client.once('error', j); });
  return { server, accepted: await acceptedP, client };
}

test('fastWrite uses the handle, not socket.write()', async () => {
  assert.equal(fastWriteAvailable, true, "process.binding('stream_wrap') no longer gives WriteWrap/streamBaseState");
  const { server, accepted, client } = await pair();
  try {
    let viaWritable = 0;
    const original = accepted.write.bind(accepted);
    accepted.write = ((...args: Parameters<net.Socket['write']>) => { viaWritable++; return original(...args); }) as net.Socket['write'];
    const got: Buffer[] = [];
    const done = new Promise<void>((r) => client.on('data', (d: Buffer) => { got.push(d); if (Buffer.concat(got).length >= 10) r(); }));
    assert.equal(fastWrite(accepted, Buffer.from('hello')), true);
    assert.equal(fastWrite(accepted, Buffer.from('world')), true);
    await done;
    assert.equal(Buffer.concat(got).toString(), 'helloworld');
    assert.equal(viaWritable, 0, 'fastWrite fell back to socket.write()');
  } finally {
    client.destroy(); accepted.destroy(); server.close();
  }
});

test('fastWrite: writes the kernel takes whole share one request object; one that goes async gets its own, and the bytes arrive in order', async () => {
  const { server, accepted, client } = await pair();
  try {
    const before = fastWriteRequestsMade();
    const got: Buffer[] = [];
    client.on('data', (d: Buffer) => got.push(d));
    for (let i = 0; i < 100; i++) assert.equal(fastWrite(accepted, Buffer.from([i])), true);
    assert.ok(fastWriteRequestsMade() - before <= 1, `request objects made for 100 small writes: ${fastWriteRequestsMade() - before}`);
    // A write the kernel cannot take whole (the client does not read): async, its request kept
    // until done; the next write needs a new one.
    client.pause();
    const big = Buffer.alloc(8 * 1024 * 1024, 0x61);
    fastWrite(accepted, big);
    const afterBig = fastWriteRequestsMade();
    fastWrite(accepted, Buffer.from('end'));
    assert.equal(fastWriteRequestsMade(), afterBig + 1, 'a write after an async one reused the request the async write still holds');
    client.resume();
    const total = 100 + big.length + 3;
    await new Promise<void>((r) => { const t = setInterval(() => { if (Buffer.concat(got).length >= total) { clearInterval(t); r(); } }, 10); });
    const all = Buffer.concat(got);
    for (let i = 0; i < 100; i++) assert.equal(all[i], i);
    assert.equal(all.subarray(all.length - 3).toString(), 'end');
  } finally {
    client.destroy(); accepted.destroy(); server.close();
  }
});

test('switchToReadBuffer switches an accepted socket to reads into the shared buffer', async () => {
  const { server, accepted, client } = await pair();
  try {
    let dataEvents = 0;
    accepted.on('data', () => { dataEvents++; });
    const got: Buffer[] = [];
    let views = 0;
    const done = new Promise<void>((r) => {
      assert.equal(switchToReadBuffer(accepted, (view) => { views++; got.push(Buffer.from(view)); if (Buffer.concat(got).length >= 6) r(); }), true,
        'the onread symbols (kBuffer, kBufferCb, kBufferGen) or handle.useUserBuffer are gone');
    });
    client.write('abc');
    client.write('def');
    await done;
    assert.equal(Buffer.concat(got).toString(), 'abcdef');
    assert.ok(views >= 1);
    assert.equal(dataEvents, 0, "reads still came as 'data' events");
    // End of stream still arrives after the switch.
    const ended = new Promise<void>((r) => accepted.once('end', r));
    client.end();
    await ended;
  } finally {
    client.destroy(); accepted.destroy(); server.close();
  }
});

/** The bytes `n` reads of `socket` (switched) delivered, and the handle's onread at the switch. */
function collect(socket: net.Socket, until: number): { done: Promise<string>; views: () => number } {
  const got: Buffer[] = [];
  let views = 0;
  let resolve!: (s: string) => void;
  const done = new Promise<string>((r) => { resolve = r; });
  assert.equal(switchToReadBuffer(socket, (view) => {
    views++;
    got.push(Buffer.from(view));
    const all = Buffer.concat(got);
    if (all.length >= until) resolve(all.toString());
  }), true);
  return { done, views: () => views };
}

test('a switched socket is read by its own onread, not through Node\'s onStreamRead (no timer walk, no stream getters per read)', async () => {
  const { server, accepted, client } = await pair();
  try {
    const handle = (accepted as unknown as { _handle: { onread: (...a: unknown[]) => unknown } })._handle;
    const nodes = handle.onread;
    const c = collect(accepted, 6);
    assert.notEqual(handle.onread, nodes, 'the handle still reads through Node\'s onStreamRead');
    // Without a socket timeout, a read refreshes no timer (Node's path called _unrefTimer every read).
    let refreshed = 0;
    const s = accepted as unknown as { _unrefTimer: () => void };
    const unref = s._unrefTimer.bind(accepted);
    s._unrefTimer = () => { refreshed++; unref(); };
    client.write('abc');
    await new Promise((r) => setTimeout(r, 20));
    client.write('def');
    assert.equal(await c.done, 'abcdef');
    assert.equal(refreshed, 0);
  } finally {
    client.destroy(); accepted.destroy(); server.close();
  }
});

test('a switched socket keeps setTimeout, pause/resume, end and errors', async () => {
  const { server, accepted, client } = await pair();
  try {
    let refreshed = 0;
    const s = accepted as unknown as { _unrefTimer: () => void };
    const unref = s._unrefTimer.bind(accepted);
    s._unrefTimer = () => { refreshed++; unref(); };
    accepted.setTimeout(60_000, () => {});
    refreshed = 0;
    const c = collect(accepted, 3);
    client.write('abc');
    assert.equal(await c.done, 'abc');
    assert.ok(refreshed >= 1, 'a read did not refresh the socket\'s timeout');
    accepted.setTimeout(0);
    // Paused: nothing is delivered until resume().
    accepted.pause();
    const before = c.views();
    client.write('x');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(c.views(), before, 'a paused socket delivered a read');
    accepted.resume();
    await new Promise<void>((r) => { const t = setInterval(() => { if (c.views() > before) { clearInterval(t); r(); } }, 5); });
    // End of stream goes through Node's own path: 'end' then 'close'.
    const ended = new Promise<void>((r) => accepted.once('end', r));
    client.end();
    await ended;
  } finally {
    client.destroy(); accepted.destroy(); server.close();
  }
});

test('a switched socket reports a reset as an error, and a destroyed one reads nothing more', async () => {
  const { server, accepted, client } = await pair();
  try {
    const c = collect(accepted, 1_000_000);
    const failed = new Promise<NodeJS.ErrnoException>((r) => accepted.once('error', r));
    client.resetAndDestroy();
    const e = await failed;
    assert.equal(e.code, 'ECONNRESET');
    assert.equal(c.views(), 0);
  } finally {
    client.destroy(); accepted.destroy(); server.close();
  }
  const p2 = await pair();
  try {
    const c = collect(p2.accepted, 1_000_000);
    p2.accepted.destroy();
    p2.client.write('late');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(c.views(), 0);
  } finally {
    p2.client.destroy(); p2.server.close();
  }
});

test('fastWrite on a destroyed socket: no handle, socket.write()\'s behaviour (nothing written, no throw)', async () => {
  const { server, accepted, client } = await pair();
  try {
    accepted.on('error', () => {});
    accepted.destroy();
    assert.equal((accepted as unknown as { _handle: unknown })._handle, null, 'a destroyed socket has no handle (what fastWrite relies on)');
    let viaWritable = 0;
    const original = accepted.write.bind(accepted);
    accepted.write = ((...args: Parameters<net.Socket['write']>) => { viaWritable++; return original(...args); }) as net.Socket['write'];
    fastWrite(accepted, Buffer.from('x'));
    assert.equal(viaWritable, 1, 'fell back to socket.write()');
  } finally {
    client.destroy(); server.close();
  }
});
