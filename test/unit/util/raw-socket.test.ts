/**
 * RawSocket (src/util/raw-socket.ts): accepted TCP connections driven through their handle, with
 * real loopback sockets. Like the fast I/O path, it reaches into Node internals and declines
 * silently when they are missing: the first test fails if a Node upgrade takes it away.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { makeTestCerts } from '../../harness/certs';
import { RawSocket, rawAcceptAvailable, takeOverAccept, writeRequestsMade } from '../../../src/util/raw-socket';

/** A listening server whose accepted connections come as RawSockets, and a connected client. */
async function pair(): Promise<{ server: net.Server; raw: RawSocket; client: net.Socket }> {
  const server = net.createServer(() => assert.fail('a net.Socket was made for an accepted connection'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  let got!: (s: RawSocket) => void;
  const rawP = new Promise<RawSocket>((r) => { got = r; });
  assert.equal(takeOverAccept(server, (s) => got(s), () => assert.fail('handle lacks a method')), true);
  const port = (server.address() as net.AddressInfo).port;
  const client = net.connect(port, '127.0.0.1');
  client.on('error', () => {});
  await new Promise<void>((r, j) => { client.once('connect', r); client.once('error', j); });
  const raw = await rawP;
  return { server, raw, client };
}

const collect = (s: net.Socket, bytes: number): Promise<Buffer> => new Promise((resolve) => {
  const got: Buffer[] = [];
  let n = 0;
  const on = (d: Buffer): void => {
    got.push(d);
    n += d.length;
    if (n >= bytes) {
      s.off('data', on);
      resolve(Buffer.concat(got));
    }
  };
  s.on('data', on);
});

test('raw accept is available on this Node', () => {
  assert.equal(rawAcceptAvailable, true, "process.binding('stream_wrap') no longer gives WriteWrap/ShutdownWrap/streamBaseState");
});

test('reads (owned chunks, then views of the shared buffer), writes, the peer\'s address', async () => {
  const { server, raw, client } = await pair();
  try {
    assert.equal(raw.remoteAddress, '127.0.0.1');
    assert.equal(raw.remotePort, client.localPort);
    const chunks: Buffer[] = [];
    let first!: () => void;
    const firstP = new Promise<void>((r) => { first = r; });
    raw.onRead = (c) => { chunks.push(c); first(); };
    raw.start();
    client.write('hello');
    await firstP;
    assert.equal(Buffer.concat(chunks).toString(), 'hello');
    // Shared buffer: views valid during the call only (copied here).
    const views: string[] = [];
    let second!: () => void;
    const secondP = new Promise<void>((r) => { second = r; });
    raw.onRead = (v) => { views.push(v.toString()); second(); };
    raw.useSharedBuffer();
    client.write('world');
    await secondP;
    assert.deepEqual(views, ['world']);
    const answer = collect(client, 6);
    assert.equal(raw.write(Buffer.from('abc')), true);
    assert.equal(raw.write(Buffer.from('def')), true);
    assert.equal((await answer).toString(), 'abcdef');
  } finally {
    client.destroy();
    raw.destroy();
    server.close();
  }
});

test('writes the kernel takes whole share one request object (a login\'s, a result\'s): none made per write', async () => {
  const { server, raw, client } = await pair();
  try {
    raw.start();
    const answer = collect(client, 300);
    const before = writeRequestsMade();
    for (let i = 0; i < 100; i++) assert.equal(raw.write(Buffer.from('abc')), true);
    assert.ok(writeRequestsMade() - before <= 1, `request objects made for 100 small writes: ${writeRequestsMade() - before}`);
    assert.equal((await answer).toString(), 'abc'.repeat(100));
    assert.equal(raw.writeDone, true, 'writes taken whole: nothing queued');
    // One that goes async keeps its request (and its bytes) until done: the next write makes another.
    client.pause();
    const big = Buffer.alloc(8 * 1024 * 1024, 0x62);
    raw.write(big);
    assert.equal(raw.writeDone, false, 'a write the kernel did not take whole: its buffer is still in use');
    const afterBig = writeRequestsMade();
    raw.write(Buffer.from('z'));
    assert.equal(writeRequestsMade(), afterBig + 1);
    const rest = collect(client, big.length + 1);
    client.resume();
    const got = await rest;
    assert.equal(got[0], 0x62);
    assert.equal(got[got.length - 1], 0x7a);
  } finally {
    client.destroy();
    raw.destroy();
    server.close();
  }
});

test('backpressure: write() returns false above the high-water mark, onDrain once the queue is empty', async () => {
  const { server, raw, client } = await pair();
  try {
    raw.start();
    client.pause();
    const big = Buffer.alloc(1024 * 1024, 0x61);
    let full = false;
    for (let i = 0; i < 64 && !full; i++) full = !raw.write(big);
    assert.ok(full, 'write() never reported a full queue');
    const drained = new Promise<void>((r) => { raw.onDrain = r; });
    client.resume();
    client.on('data', () => {});
    await drained;
    assert.equal(raw._handle.writeQueueSize, 0);
  } finally {
    client.destroy();
    raw.destroy();
    server.close();
  }
});

test('end(): the last bytes arrive, the client sees EOF, the handle closes once the client closes too', async () => {
  const { server, raw, client } = await pair();
  try {
    const ended: (string | null)[] = [];
    raw.onEnd = (r) => ended.push(r);
    raw.start();
    const all = collect(client, 4);
    const eof = new Promise<void>((r) => client.once('end', r));
    raw.end(Buffer.from('bye!'));
    assert.equal(raw.writable, false);
    assert.equal((await all).toString(), 'bye!');
    await eof;
    client.end();
    await new Promise<void>((r) => { const t = setInterval(() => { if (raw.destroyed) { clearInterval(t); r(); } }, 5); });
    assert.deepEqual(ended, [null]);
  } finally {
    client.destroy();
    server.close();
  }
});

test('the peer closes: onEnd(null) once; a reset: onEnd with the error', async () => {
  {
    const { server, raw, client } = await pair();
    const ended = new Promise<string | null>((r) => { raw.onEnd = r; });
    raw.start();
    client.end();
    assert.equal(await ended, null);
    raw.end();
    await new Promise<void>((r) => { const t = setInterval(() => { if (raw.destroyed) { clearInterval(t); r(); } }, 5); });
    server.close();
  }
  {
    const { server, raw, client } = await pair();
    const ended = new Promise<string | null>((r) => { raw.onEnd = r; });
    raw.start();
    client.resetAndDestroy();
    assert.match(String(await ended), /client socket error: ECONNRESET/);
    assert.equal(raw.destroyed, true);
    server.close();
  }
});

test('pause() stops reading until resume()', async () => {
  const { server, raw, client } = await pair();
  try {
    const got: string[] = [];
    raw.onRead = (c) => got.push(c.toString());
    raw.start();
    raw.pause();
    client.write('x');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(got.length, 0);
    const more = new Promise<void>((r) => { raw.onRead = (c) => { got.push(c.toString()); r(); }; });
    raw.resume();
    await more;
    assert.deepEqual(got, ['x']);
  } finally {
    client.destroy();
    raw.destroy();
    server.close();
  }
});

test('toNetSocket(): the connection goes on as a net.Socket (TLS, handovers)', async () => {
  const { server, raw, client } = await pair();
  try {
    raw.start();
    const s = raw.toNetSocket();
    assert.ok(s instanceof net.Socket);
    assert.equal(raw.destroyed, true, 'the RawSocket no longer drives the handle');
    const back = collect(client, 4);
    s.on('data', (d: Buffer) => s.write(d));
    client.write('ping');
    assert.equal((await back).toString(), 'ping');
    s.destroy();
  } finally {
    client.destroy();
    server.close();
  }
});

test('TCP_NODELAY: set once on the listener (Linux: accepted sockets inherit it), not per accepted connection', async () => {
  const calls: boolean[] = [];
  // (Node's TCP handle class: listening and accepted handles alike.)
  const proto = (process as unknown as { binding(n: string): { TCP: { prototype: { setNoDelay(on: boolean): number } } } }).binding('tcp_wrap').TCP.prototype;
  const setNoDelay = proto.setNoDelay;
  proto.setNoDelay = function (this: unknown, on: boolean) { calls.push(on); return setNoDelay.call(this, on); };
  let conns: Awaited<ReturnType<typeof pair>>[] = [];
  try {
    conns = [await pair(), await pair()];
  } finally {
    proto.setNoDelay = setNoDelay;
    for (const { server, raw, client } of conns) {
      client.destroy();
      raw.destroy();
      server.close();
    }
  }
  // Per pair: its listener once (accepted handle: none on Linux, once elsewhere); the clients
  // made by net.connect set nothing (noDelay not asked).
  assert.deepEqual(calls.length, process.platform === 'linux' ? 2 : 4, `setNoDelay calls: ${calls.length}`);
});

test('shared buffer from the first read: every read a view of the same memory, no buffer per read', async () => {
  const { server, raw, client } = await pair();
  try {
    raw.useSharedBuffer();
    const memory = new Set<ArrayBufferLike>();
    let text = '';
    let done!: () => void;
    const all = new Promise<void>((r) => { done = r; });
    raw.onRead = (v) => { memory.add(v.buffer); text += v.toString(); if (text.length >= 3) done(); };
    raw.start();
    for (const c of ['a', 'b', 'c']) {
      client.write(c);
      await new Promise((r) => setTimeout(r, 20));
    }
    await all;
    assert.equal(text, 'abc');
    assert.equal(memory.size, 1, 'reads landed in more than one buffer');
  } finally {
    client.destroy();
    raw.destroy();
    server.close();
  }
});

test('toNetSocket() after useSharedBuffer(): \'data\' brings copies (kept intact), pause() and resume() work', async () => {
  const { server, raw, client } = await pair();
  try {
    raw.useSharedBuffer();
    let first!: () => void;
    const firstP = new Promise<void>((r) => { first = r; });
    raw.onRead = (v) => { assert.equal(v.toString(), 'startup'); first(); };
    raw.start();
    client.write('startup');
    await firstP;
    const s = raw.toNetSocket();
    const kept: Buffer[] = [];
    s.on('data', (d: Buffer) => kept.push(d));
    client.write('one');
    await new Promise<void>((r) => { const t = setInterval(() => { if (kept.length >= 1) { clearInterval(t); r(); } }, 5); });
    s.pause();
    client.write('two');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(kept.length, 1, 'read while paused');
    s.resume();
    await new Promise<void>((r) => { const t = setInterval(() => { if (kept.length >= 2) { clearInterval(t); r(); } }, 5); });
    assert.deepEqual(kept.map((b) => b.toString()), ['one', 'two'], 'a kept chunk was overwritten by a later read');
    const back = collect(client, 4);
    s.write('pong');
    assert.equal((await back).toString(), 'pong');
    s.destroy();
  } finally {
    client.destroy();
    server.close();
  }
});

test('a TLS upgrade over a connection read through the shared buffer (SSLRequest, then TLS)', async () => {
  const certs = makeTestCerts();
  const { server, raw, client } = await pair();
  try {
    raw.useSharedBuffer();
    let asked!: () => void;
    const askedP = new Promise<void>((r) => { asked = r; });
    raw.onRead = (v) => { assert.equal(v.length, 8); asked(); };
    raw.start();
    client.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])); // SSLRequest
    await askedP;
    const answer = collect(client, 1);
    raw.write(Buffer.from('S'));
    assert.equal((await answer).toString(), 'S');
    client.removeAllListeners('data');
    const s = raw.toNetSocket();
    const secure = new tls.TLSSocket(s, { isServer: true, key: fs.readFileSync(certs.serverKey), cert: fs.readFileSync(certs.serverCert) });
    secure.on('data', (d: Buffer) => secure.write(Buffer.concat([Buffer.from('echo:'), d])));
    secure.on('error', () => {});
    const c = tls.connect({ socket: client, ca: fs.readFileSync(certs.caCert), servername: 'localhost' });
    await new Promise<void>((r, j) => { c.once('secureConnect', () => r()); c.once('error', j); });
    const got = new Promise<string>((r) => c.once('data', (d: Buffer) => r(d.toString())));
    c.write('hello');
    assert.equal(await got, 'echo:hello');
    c.destroy();
    secure.destroy();
  } finally {
    client.destroy();
    server.close();
    fs.rmSync(certs.dir, { recursive: true, force: true });
  }
});

test('setIdleTimeout: called after the idle time, not while there is traffic', async () => {
  const { server, raw, client } = await pair();
  try {
    raw.onRead = () => {};
    raw.start();
    let fired = 0;
    raw.setIdleTimeout(150, () => { fired++; });
    for (let i = 0; i < 6; i++) {
      client.write('.');
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(fired, 0, 'fired during traffic');
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(fired, 1);
    raw.setIdleTimeout(0, () => {});
  } finally {
    client.destroy();
    raw.destroy();
    server.close();
  }
});

test('end(last, peerDone): the client said goodbye and nothing waits: closed at once, the last bytes still arrive', async () => {
  const { server, raw, client } = await pair();
  try {
    raw.start();
    let shutdowns = 0;
    const shutdown = raw._handle.shutdown;
    raw._handle.shutdown = function (this: typeof raw._handle, ...a: Parameters<typeof shutdown>) { shutdowns++; return shutdown.apply(this, a); };
    let ended: string | null | undefined;
    raw.onEnd = (reason) => { ended = reason; };
    const got = collect(client, 3);
    const closed = new Promise<void>((r) => client.once('close', () => r()));
    raw.end(Buffer.from('bye'), true);
    assert.equal(raw.destroyed, true, 'closed in the call (no wait for the client\'s EOF)');
    assert.equal(shutdowns, 0, 'no shutdown() before the close');
    assert.equal(ended, null, 'onEnd: a clean end');
    assert.equal((await got).toString(), 'bye');
    await closed;
    // The address asked after the close: '' (nothing asked it while the connection was open).
    assert.equal(raw.remoteAddress, '');
  } finally {
    client.destroy();
    raw.destroy();
    server.close();
  }
});

test('end() without peerDone: shutdown first, closed once the client\'s EOF comes', async () => {
  const { server, raw, client } = await pair();
  try {
    raw.start();
    let ended = false;
    raw.onEnd = () => { ended = true; };
    const eof = new Promise<void>((r) => client.once('end', () => r()));
    raw.end();
    assert.equal(raw.destroyed, false, 'open until the client\'s EOF');
    await eof; // the client saw the shutdown's FIN
    client.end();
    await new Promise<void>((r) => { const t = setInterval(() => { if (raw.destroyed) { clearInterval(t); r(); } }, 5); });
    assert.equal(ended, true);
  } finally {
    client.destroy();
    raw.destroy();
    server.close();
  }
});

test('writes that complete at once reuse one request object; one that waits keeps its own: every byte arrives, in order, on both connections', async () => {
  const a = await pair();
  const b = await pair();
  try {
    // Small writes (taken at once), a large one the kernel cannot take at once on `a` (its
    // client does not read yet: it waits), then small writes on both again.
    const small = (tag: string, i: number): Buffer => Buffer.from(`${tag}${String(i).padStart(4, '0')};`);
    const big = Buffer.alloc(8 * 1024 * 1024, 0x61);
    const sentA: Buffer[] = [];
    const sentB: Buffer[] = [];
    for (let i = 0; i < 200; i++) {
      sentA.push(small('a', i));
      a.raw.write(sentA[sentA.length - 1]!);
      sentB.push(small('b', i));
      b.raw.write(sentB[sentB.length - 1]!);
    }
    sentA.push(big);
    assert.equal(a.raw.write(big), false, 'the large write waits (above the high-water mark)');
    for (let i = 200; i < 400; i++) {
      sentA.push(small('a', i));
      a.raw.write(sentA[sentA.length - 1]!);
      sentB.push(small('b', i));
      b.raw.write(sentB[sentB.length - 1]!);
    }
    const wantA = Buffer.concat(sentA);
    const wantB = Buffer.concat(sentB);
    const [gotA, gotB] = await Promise.all([collect(a.client, wantA.length), collect(b.client, wantB.length)]);
    assert.ok(gotB.equals(wantB));
    assert.equal(gotA.length, wantA.length);
    assert.ok(gotA.equals(wantA), 'the bytes after the write that waited follow it, intact');
  } finally {
    for (const p of [a, b]) {
      p.client.destroy();
      p.server.close();
    }
  }
});

test('shared buffer: reads of the same length come as the same view object (no Buffer made per read), each with that read\'s bytes', async () => {
  const { server, raw, client } = await pair();
  try {
    raw.useSharedBuffer();
    const views: Buffer[] = [];
    const texts: string[] = [];
    let done!: () => void;
    const all = new Promise<void>((r) => { done = r; });
    raw.onRead = (v) => { views.push(v); texts.push(v.toString()); if (texts.join('').length >= 9) done(); };
    raw.start();
    // Three reads of 3 bytes (a login's SSLRequest, StartupMessage, Terminate come so, one by one).
    for (const c of ['abc', 'def', 'ghi']) {
      client.write(c);
      await new Promise((r) => setTimeout(r, 20));
    }
    await all;
    assert.deepEqual(texts, ['abc', 'def', 'ghi']);
    assert.equal(new Set(views).size, 1, 'a new view was made for a read of a length seen before');
  } finally {
    client.destroy();
    raw.destroy();
    server.close();
  }
});
