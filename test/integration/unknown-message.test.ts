/**
 * A frame of a type PostgreSQL does not know ('?', or 'p' after login) is answered at once with
 * FATAL 08P01 "invalid frontend message type N" and the connection closes, as on a direct
 * connection: through pgmaitre the frame waited for a sync point that never came (no answer,
 * no close), in session and transaction pooling.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { withCluster } from '../harness/cluster';
import { backendLines, startInProcess, type InProcess } from '../harness/in-process';

function startup(): Buffer {
  const body = Buffer.from('user\0postgres\0database\0postgres\0\0');
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt16BE(3, 4);
  return Buffer.concat([head, body]);
}

/**
 * Logs in, writes `bytes` once ReadyForQuery came, and gives what the server sent after it, once
 * it closed (null: no close within 10 s).
 */
function afterLogin(port: number, bytes: Buffer): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(startup()));
    let got = Buffer.alloc(0);
    let sent = -1;
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (sent < 0 && got.includes(Buffer.from('Z\0\0\0\x05I'))) {
        sent = got.length;
        s.write(bytes);
      }
    });
    s.on('error', reject);
    const timer = setTimeout(() => { s.destroy(); resolve(null); }, 10_000);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got.subarray(sent));
    });
  });
}

/** Logs in, sends a bare frame of `type`, and returns the answer's S C M once the server closes. */
async function afterFrame(port: number, type: string): Promise<string> {
  const a = await afterLogin(port, Buffer.from([type.charCodeAt(0), 0, 0, 0, 4]));
  if (a === null) return 'no answer and no close within 10 s';
  if (a[0] !== 0x45) return `closed with ${JSON.stringify(a.toString('latin1'))}`;
  const f: Record<string, string> = {};
  for (let p = 5; p < a.length && a[p] !== 0;) {
    const e = a.indexOf(0, p + 1);
    f[String.fromCharCode(a[p]!)] = a.toString('utf8', p + 1, e);
    p = e + 1;
  }
  return `${f['S']} ${f['C']} ${f['M']}`;
}

/**
 * Logs in, sends `select 1` and a bare '?' frame in one write; the message types answered until
 * the close. PostgreSQL answers the query then the FATAL, or only the FATAL when the '?' was read
 * while the query's answer was still in its output buffer (it flushes before waiting for input).
 */
async function afterQueryThenUnknown(port: number): Promise<string> {
  const q = Buffer.from('select 1\0');
  const head = Buffer.from([0x51, 0, 0, 0, 0]);
  head.writeInt32BE(4 + q.length, 1);
  const a = await afterLogin(port, Buffer.concat([head, q, Buffer.from([0x3f, 0, 0, 0, 4])]));
  if (a === null) return 'no close within 10 s';
  const types: string[] = [];
  for (let p = 0; p + 5 <= a.length; p += 1 + a.readInt32BE(p + 1)) types.push(String.fromCharCode(a[p]!));
  return types.join('');
}

describe('a frame of an unknown type', { timeout: 120_000 }, () => {
  const fx = withCluster({ standbys: 1 });
  for (const mode of ['session', 'transaction']) {
    describe(`pool_mode = ${mode}`, () => {
      let px: InProcess;
      before(async () => {
        px = await startInProcess([backendLines(fx.cluster), "sr_check_user = 'postgres'", 'enable_pool_hba = off', `pool_mode = '${mode}'`].join('\n'));
      });
      after(async () => { await px?.stop(); });
      test('a query in the same write: its answer (or none, as PostgreSQL drops an unflushed one), then the FATAL and the close', async () => {
        const direct = await afterQueryThenUnknown(fx.cluster.primary.port);
        // PostgreSQL itself answers either way (whether the '?' was read before it flushed the
        // query's answer), and so may pgmaitre; never a hang, never more than that.
        assert.match(direct, /^(TDCZ)?E$/);
        assert.match(await afterQueryThenUnknown(px.port), /^(TDCZ)?E$/);
      });
      for (const type of ['?', 'p']) {
        test(`'${type}': PostgreSQL's FATAL at once`, async () => {
          const direct = await afterFrame(fx.cluster.primary.port, type);
          assert.equal(direct, `FATAL 08P01 invalid frontend message type ${type.charCodeAt(0)}`);
          assert.equal(await afterFrame(px.port, type), direct);
        });
      }
    });
  }
});
