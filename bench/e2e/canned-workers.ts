// canned-workers.ts — calibration target of bench/workers.sh for the cache workload: a PostgreSQL
// "server" that answers every request from constant bytes (what a query cache hit is, minus the
// cache), on pgmaitre's own accept and socket path (util/raw-socket.ts: takeOverAccept, reads into
// the shared buffer, one write per request), in W processes behind one port exactly as
// worker_processes runs (Node's cluster module, round-robin dealing by the primary).
//
// Each transaction costs it one read and one write of a loopback socket, the event loop's wake-up
// and the few bytes of framing: the floor of any Node.js process answering the request itself.
// Its CPU per transaction against pgmaitre's on hot-key-cache is what pgmaitre's own hit adds, and
// its throughput 2 processes / 1 is what this host allows a Node.js server on that workload with
// pgbench on the same cores (docs/performance.md, "Worker processes").
//   node dist/bench/e2e/canned-workers.js <workers> <listenPort>
// Understands what pgbench sends: SSLRequest (refused), StartupMessage (trust), Query, and
// Parse/Bind/Describe/Execute/Sync/Close/Flush; every row is one int4 column "abalance" = 0.
// Prints `"event":"workers_ready"` once every process listens; SIGTERM stops them all.
import cluster from 'node:cluster';
import net from 'node:net';
import { runWorkers } from './worker-fork';
import { takeOverAccept, type RawSocket } from '../../src/util/raw-socket';

const workers = Number(process.argv[2]);
const listenPort = Number(process.argv[3]);

function msg(code: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.write(code, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}
function cstr(s: string): Buffer {
  return Buffer.from(`${s}\0`, 'utf8');
}
function param(k: string, v: string): Buffer {
  return msg('S', Buffer.concat([cstr(k), cstr(v)]));
}

const AUTH_OK = Buffer.concat([
  msg('R', Buffer.from([0, 0, 0, 0])),
  param('server_version', '15.0'), param('client_encoding', 'UTF8'), param('server_encoding', 'UTF8'),
  param('standard_conforming_strings', 'on'), param('integer_datetimes', 'on'), param('DateStyle', 'ISO, MDY'),
  msg('K', Buffer.from([0, 0, 0, 1, 0, 0, 0, 2])),
  msg('Z', Buffer.from('I')),
]);
// RowDescription: one column "abalance", int4 (oid 23, size 4, typmod -1, text format).
const ROW_DESC = (() => {
  const b = Buffer.alloc(2 + 9 + 18);
  b.writeInt16BE(1, 0);
  b.write('abalance\0', 2, 'latin1');
  b.writeInt32BE(0, 11); b.writeInt16BE(0, 15); b.writeInt32BE(23, 17); b.writeInt16BE(4, 21); b.writeInt32BE(-1, 23); b.writeInt16BE(0, 27);
  return msg('T', b);
})();
const DATA_ROW = msg('D', Buffer.from([0, 1, 0, 0, 0, 1, 0x30]));
const SELECT_1 = msg('C', cstr('SELECT 1'));
const PARSE_DONE = msg('1');
const BIND_DONE = msg('2');
const CLOSE_DONE = msg('3');
const PARAM_DESC = msg('t', Buffer.from([0, 1, 0, 0, 0, 23]));
const READY = msg('Z', Buffer.from('I'));
const SIMPLE = Buffer.concat([ROW_DESC, DATA_ROW, SELECT_1, READY]);
const DESCRIBE_S = Buffer.concat([PARAM_DESC, ROW_DESC]);
const EXECUTED = Buffer.concat([DATA_ROW, SELECT_1]);
const SSL_NO = Buffer.from('N');

const out = Buffer.allocUnsafe(64 * 1024);

function serve(s: RawSocket): void {
  let started = false;
  let rest: Buffer | null = null;
  s.onEnd = () => {};
  s.onRead = (chunk: Buffer) => {
    let data = chunk;
    if (rest !== null) {
      data = Buffer.concat([rest, chunk]);
      rest = null;
    }
    let at = 0;
    let n = 0;
    while (at < data.length) {
      if (!started) {
        if (data.length - at < 8) break;
        const len = data.readInt32BE(at);
        if (data.length - at < len) break;
        const code = data.readInt32BE(at + 4);
        at += len;
        if (code === 80877103 || code === 80877104) { s.write(SSL_NO); continue; } // SSLRequest / GSSENCRequest
        if (code === 80877102) { s.end(); return; } // CancelRequest
        started = true;
        s.write(AUTH_OK);
        continue;
      }
      if (data.length - at < 5) break;
      const len = data.readInt32BE(at + 1);
      if (data.length - at < len + 1) break;
      const t = data[at]!;
      let add: Buffer | null = null;
      switch (t) {
        case 0x51: add = SIMPLE; break; // Query
        case 0x50: add = PARSE_DONE; break; // Parse
        case 0x42: add = BIND_DONE; break; // Bind
        case 0x44: add = data[at + 5] === 0x53 ? DESCRIBE_S : ROW_DESC; break; // Describe S / P
        case 0x45: add = EXECUTED; break; // Execute
        case 0x43: add = CLOSE_DONE; break; // Close
        case 0x53: add = READY; break; // Sync
        case 0x58: s.end(undefined, true); return; // Terminate
        default: break; // Flush and the rest: nothing to say
      }
      at += len + 1;
      if (add !== null) {
        add.copy(out, n);
        n += add.length;
      }
    }
    if (at < data.length) rest = Buffer.from(data.subarray(at));
    if (n > 0) s.write(Buffer.from(out.subarray(0, n)));
  };
  s.useSharedBuffer();
  s.start();
}

function listen(): void {
  const server = net.createServer({ noDelay: true }, (socket) => socket.destroy());
  server.listen(listenPort, '127.0.0.1', () => {
    if (!takeOverAccept(server, serve, (socket) => socket.destroy())) {
      process.stderr.write('canned-workers: this Node has no raw accept\n');
      process.exit(1);
    }
    if (cluster.isPrimary) process.stdout.write('"event":"workers_ready"\n');
  });
}

if (!(workers >= 1) || !listenPort) {
  process.stderr.write('usage: node canned-workers.js <workers> <listenPort>\n');
  process.exit(2);
}
runWorkers(workers, listen);
