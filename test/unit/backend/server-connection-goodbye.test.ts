/**
 * ServerConnection against a scripted server on loopback: a backend that says FATAL 57P01 and
 * goes away (pg_terminate_backend) while pgmaitre still writes to it. The write fails (EPIPE or
 * ECONNRESET) before the FATAL is read; the FATAL must still reach the session before the close,
 * so that the loss is the backend's goodbye, not a connection lost without a word (which
 * failover_on_backend_error reads as a failed node). Also: a connection whose FATAL came in the
 * login's last read is not revived by attach().
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { ServerConnection, type ServerSink } from '../../../src/backend/server-connection';
import { toClientError } from '../../../src/errors/client-errors';

/** A backend message: type byte, length, body. */
function msg(type: string, body: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h.write(type, 0, 'latin1');
  h.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([h, body]);
}
const authOk = msg('R', Buffer.from([0, 0, 0, 0]));
const ready = msg('Z', Buffer.from('I'));
const fatal57P01 = msg('E', Buffer.from('SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0', 'latin1'));

/** A server that logs the client in, then runs `after(socket)`. */
async function scripted(after: (s: net.Socket) => void, loginReply = Buffer.concat([authOk, ready])): Promise<{ port: number; close(): void }> {
  const server = net.createServer((s) => {
    s.once('data', () => {
      s.write(loginReply);
      after(s);
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

function connect(port: number): Promise<ServerConnection> {
  return ServerConnection.connect({
    nodeId: 0, host: '127.0.0.1', port, user: 'u', database: 'd', params: {}, connectTimeoutMs: 5000, key: 'k',
    authenticator: { answer: () => Buffer.alloc(0) },
  });
}

/** Records what reached the session, in order. */
function recorder(): ServerSink & { events: string[]; closed: Promise<void> } {
  const events: string[] = [];
  let done!: () => void;
  const closed = new Promise<void>((r) => { done = r; });
  return {
    events, closed,
    onServerData: (_c, chunk) => { events.push(chunk.includes(Buffer.from('57P01')) ? 'data 57P01' : `data ${chunk.length}`); },
    onServerClosed: (_c, reason) => { events.push(`closed: ${reason}`); done(); },
  };
}

test('a write that fails after the backend said FATAL 57P01 and left: the FATAL still reaches the session, then the close', async () => {
  let serverSide!: net.Socket;
  const srv = await scripted((s) => { serverSide = s; });
  try {
    const conn = await connect(srv.port);
    const sink = recorder();
    conn.attach(sink);
    conn.pause(); // the FATAL stays unread in the kernel's buffer, as under load
    // The backend is terminated: its FATAL, then its socket closed with our request unread (RST).
    serverSide.write(fatal57P01);
    await new Promise((r) => setTimeout(r, 50));
    serverSide.destroy();
    await new Promise((r) => setTimeout(r, 50));
    // Writes after the RST fail (EPIPE/ECONNRESET): the first may still be taken by the kernel.
    for (let i = 0; i < 3; i++) {
      conn.write(Buffer.from('Q\0\0\0\x0dSELECT 1\0', 'latin1'));
      await new Promise((r) => setTimeout(r, 20));
    }
    conn.resume();
    await sink.closed;
    assert.equal(sink.events[0], 'data 57P01', sink.events.join(' | '));
    assert.match(sink.events[sink.events.length - 1]!, /^closed: /);
    assert.equal(conn.usable, false);
  } finally {
    srv.close();
  }
});

test('a connection whose backend said FATAL in the login\'s last read is closed, and attach() does not revive it', async () => {
  const srv = await scripted((s) => s.end(), Buffer.concat([authOk, ready, fatal57P01]));
  try {
    const conn = await connect(srv.port);
    assert.equal(conn.usable, false);
    assert.equal(conn.goodbyeCode, '57P01');
    assert.match(conn.closedError().message, /closed right after its login \(57P01: terminating connection due to administrator command\)/);
    // A client whose login it was gets the server's FATAL, as directly (not 08001 "unable to connect").
    assert.deepEqual(toClientError(conn.closedError(), 0), { severity: 'FATAL', code: '57P01', message: 'terminating connection due to administrator command' });
    const sink = recorder();
    conn.attach(sink);
    await sink.closed;
    assert.equal(conn.usable, false, 'still closed');
    assert.equal(conn.write(Buffer.from('X\0\0\0\x04', 'latin1')), true, 'a write to it is dropped, not thrown');
  } finally {
    srv.close();
  }
});
