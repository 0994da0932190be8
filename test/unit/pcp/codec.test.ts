import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { PcpFramer, decodeError, encodeError, encodeStrings, splitStrings } from '../../../src/pcp/codec';
import { pcpAuthResponse, verifyPcpAuth } from '../../../src/pcp/auth';
import { atoi } from '../../../src/pcp/handlers';

test('framer yields the same packets for every split of the stream', () => {
  const stream = Buffer.concat([encodeStrings('L'), encodeStrings('I', '1'), encodeStrings('R', 'admin', 'abc')]);
  for (let cut = 0; cut <= stream.length; cut++) {
    const f = new PcpFramer();
    const got = [...f.push(stream.subarray(0, cut)), ...f.push(stream.subarray(cut))];
    assert.deepEqual(got.map((p) => [p.type, splitStrings(p.payload)]), [['L', []], ['I', ['1']], ['R', ['admin', 'abc']]]);
  }
  const f = new PcpFramer();
  const bytes = [...stream].map((b) => f.push(Buffer.from([b]))).flat();
  assert.equal(bytes.length, 3);
});

test('packet layout: type, int32 length counting itself, payload', () => {
  const b = encodeStrings('l', 'CommandComplete', '3');
  assert.equal(b.toString('latin1', 0, 1), 'l');
  assert.equal(b.readInt32BE(1), 4 + 16 + 2);
  assert.throws(() => new PcpFramer().push(Buffer.from([0x4c, 0, 0, 0, 1])), /incorrect packet length/);
});

test('error packets', () => {
  const e = encodeError('ERROR', 'boom', 'why');
  assert.deepEqual([...decodeError(e.subarray(5))], [['S', 'ERROR'], ['C', 'XX000'], ['M', 'boom'], ['D', 'why']]);
});

test('md5 auth matches pgpool: md5(md5(md5(pw) + user) + salt), pcp.conf stores md5(pw)', () => {
  const salt = Buffer.from([1, 2, 3, 4]);
  const md5 = (x: Buffer | string) => createHash('md5').update(x).digest('hex');
  const expected = md5(Buffer.concat([Buffer.from(md5(md5('pw') + 'admin')), salt]));
  assert.equal(pcpAuthResponse('admin', 'pw', salt), expected);
  const users = new Map([['admin', md5('pw')]]);
  assert.equal(verifyPcpAuth(users, 'admin', expected, salt), true);
  assert.equal(verifyPcpAuth(users, 'admin', expected, Buffer.from([1, 2, 3, 5])), false);
  assert.equal(verifyPcpAuth(users, 'other', expected, salt), false);
});

test('atoi', () => {
  assert.equal(atoi('12 '), 12);
  assert.equal(atoi('-1'), -1);
  assert.equal(atoi('x'), 0);
});
