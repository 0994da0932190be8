/**
 * A startup packet PostgreSQL refuses gets PostgreSQL's own FATAL through pgmaitre, on the smart
 * endpoint and the dedicated write port alike: an unsupported protocol major version is 0A000
 * "unsupported frontend protocol 4.0: server supports 3.0 to 3.0", a startup packet without a
 * user name 28000 "no PostgreSQL user name specified in startup packet" (both were 08P01
 * "invalid startup packet: ..."). Each answer is compared with the primary's own, byte for byte
 * in its severity, code and message, from a raw client.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { freePort, withCluster } from '../harness/cluster';
import { backendLines, startInProcess, type InProcess } from '../harness/in-process';

function startup(params: Record<string, string>, major: number, minor: number): Buffer {
  const body = Buffer.concat([...Object.entries(params).map(([k, v]) => Buffer.from(`${k}\0${v}\0`)), Buffer.from([0])]);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt16BE(major, 4);
  head.writeInt16BE(minor, 6);
  return Buffer.concat([head, body]);
}

/** Sends `packet` and returns the S, C and M fields of the ErrorResponse the server answers before it closes. */
function refusal(port: number, packet: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(packet));
    let got = Buffer.alloc(0);
    s.on('data', (d: Buffer) => { got = Buffer.concat([got, d]); });
    s.on('error', reject);
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`no close within 10 s; got ${got.toString('latin1')}`)); }, 10_000);
    s.on('close', () => {
      clearTimeout(timer);
      if (got[0] !== 0x45) { resolve(`not an ErrorResponse: ${got.toString('latin1')}`); return; }
      const f: Record<string, string> = {};
      let p = 5;
      while (p < got.length && got[p] !== 0) {
        const e = got.indexOf(0, p + 1);
        f[String.fromCharCode(got[p]!)] = got.toString('utf8', p + 1, e);
        p = e + 1;
      }
      resolve(`${f['S']} ${f['C']} ${f['M']}`);
    });
  });
}

describe('startup packets PostgreSQL refuses', { timeout: 120_000 }, () => {
  const fx = withCluster({ standbys: 0 });
  let px: InProcess;
  let writePort: number;

  before(async () => {
    writePort = await freePort();
    px = await startInProcess([backendLines(fx.cluster), "sr_check_user = 'postgres'", 'enable_pool_hba = off', `write_port = ${writePort}`].join('\n'));
  });
  after(async () => {
    await px?.stop();
  });

  const cases: [string, Buffer][] = [
    ['protocol 4.0', startup({ user: 'postgres', database: 'postgres' }, 4, 0)],
    ['protocol 3.0 without a user', startup({ database: 'postgres' }, 3, 0)],
    ['protocol 3.0 with an empty user', startup({ user: '', database: 'postgres' }, 3, 0)],
  ];
  for (const [name, packet] of cases) {
    test(`${name}: PostgreSQL's FATAL, on the smart endpoint and the write port`, async () => {
      const direct = await refusal(fx.cluster.primary.port, packet);
      assert.match(direct, /^FATAL (0A000|28000) /, 'the primary refuses it');
      assert.equal(await refusal(px.port, packet), direct, 'smart endpoint');
      assert.equal(await refusal(writePort, packet), direct, 'write port');
    });
  }
});
