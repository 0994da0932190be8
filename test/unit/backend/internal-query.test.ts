/**
 * ServerConnection.runInternal (reset_query_list at every session-pooled disconnect, DISCARD ALL,
 * startup settings) against a scripted server on loopback: the exchange's bytes are encoded once
 * per frozen list of statements, its timeout still fires without a Node timer of its own, and a
 * server that answers completes it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { ServerConnection } from '../../../src/backend/server-connection';
import * as frontend from '../../../src/protocol/frontend';

function msg(type: string, body: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h.write(type, 0, 'latin1');
  h.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([h, body]);
}
const authOk = msg('R', Buffer.from([0, 0, 0, 0]));
const ready = msg('Z', Buffer.from('I'));
const complete = msg('C', Buffer.from('DISCARD ALL\0', 'latin1'));

/**
 * A server that logs the client in, then answers every Sync with ReadyForQuery and every Query
 * with CommandComplete + ReadyForQuery (unless `silent`), recording the frame types it got.
 */
async function scripted(silent = false): Promise<{ port: number; got: string[]; close(): void }> {
  const got: string[] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    let loggedIn = false;
    let pending = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      if (!loggedIn) {
        loggedIn = true;
        s.write(Buffer.concat([authOk, ready]));
        return;
      }
      pending = Buffer.concat([pending, d]);
      while (pending.length >= 5 && pending.length >= 1 + pending.readInt32BE(1)) {
        const type = String.fromCharCode(pending[0]!);
        pending = pending.subarray(1 + pending.readInt32BE(1));
        got.push(type);
        if (silent) continue;
        if (type === 'S') s.write(ready);
        else if (type === 'Q') s.write(Buffer.concat([complete, ready]));
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, got, close: () => { for (const s of sockets) s.destroy(); server.close(); } };
}

function connect(port: number): Promise<ServerConnection> {
  return ServerConnection.connect({
    nodeId: 0, host: '127.0.0.1', port, user: 'u', database: 'd', params: {}, connectTimeoutMs: 5000, key: 'k',
    authenticator: { answer: () => Buffer.alloc(0) },
  });
}

test('a frozen list of statements is encoded once, however many times it runs; others every time', async () => {
  const srv = await scripted();
  const conn = await connect(srv.port);
  const mod = frontend as { encodeQuery: typeof frontend.encodeQuery };
  const encode = mod.encodeQuery;
  let encoded = 0;
  mod.encodeQuery = (...a: Parameters<typeof encode>) => { encoded++; return encode(...a); };
  try {
    const reset = Object.freeze(['DISCARD ALL']);
    for (let i = 0; i < 5; i++) assert.deepEqual(await conn.runInternal(reset, 5000, { sync: true }), []);
    assert.equal(encoded, 1, 'encodings of a frozen list run 5 times');
    for (let i = 0; i < 3; i++) assert.deepEqual(await conn.runInternal(['DISCARD ALL'], 5000, { sync: true }), []);
    assert.equal(encoded, 4, 'a list that is not frozen is encoded at each run');
    // The same frozen list without the leading Sync: its own bytes.
    assert.deepEqual(await conn.runInternal(reset, 5000), []);
    assert.equal(encoded, 5);
    assert.deepEqual(srv.got, ['S', 'Q', 'S', 'Q', 'S', 'Q', 'S', 'Q', 'S', 'Q', 'S', 'Q', 'S', 'Q', 'S', 'Q', 'Q']);
    assert.equal(conn.clean, true);
  } finally {
    mod.encodeQuery = encode;
    conn.destroy('test over');
    srv.close();
  }
});

test('a server that does not answer: the internal exchange times out (shared timer list), the connection is not clean', async () => {
  const srv = await scripted(true);
  const conn = await connect(srv.port);
  try {
    const t0 = Date.now();
    await assert.rejects(conn.runInternal(Object.freeze(['DISCARD ALL']), 150, { sync: true }), /internal query timed out after 150 ms/);
    const took = Date.now() - t0;
    assert.ok(took >= 140, `timed out after ${took} ms`);
    assert.equal(conn.clean, false, 'answers still owed: the connection must not be reused as is');
  } finally {
    conn.destroy('test over');
    srv.close();
  }
});

test('a connection whose write failed: the internal exchange fails at once, no timeout to wait for', async () => {
  const srv = await scripted(true);
  const conn = await connect(srv.port);
  try {
    (conn as unknown as { writeFailed: string }).writeFailed = 'write failed: EPIPE';
    const t0 = Date.now();
    await assert.rejects(conn.runInternal(Object.freeze(['DISCARD ALL']), 5000, { sync: true }), /EPIPE/);
    assert.ok(Date.now() - t0 < 1000);
  } finally {
    conn.destroy('test over');
    srv.close();
  }
});
