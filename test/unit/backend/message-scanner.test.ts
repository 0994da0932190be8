/** MessageScanner: wanted messages come out whole and identical for every split; others are skipped. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageScanner, wantTable, WANT_ALL } from '../../../src/backend/message-scanner';

function msg(type: string, body: Buffer | string): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
  const h = Buffer.alloc(5);
  h[0] = type.charCodeAt(0);
  h.writeInt32BE(b.length + 4, 1);
  return Buffer.concat([h, b]);
}

const stream = Buffer.concat([
  msg('T', Buffer.alloc(40, 1)),
  msg('D', Buffer.alloc(5000, 2)),
  msg('C', 'SELECT 1\0'),
  msg('S', 'TimeZone\0UTC\0'),
  msg('Z', 'I'),
  msg('G', '\0\0\0'),
  msg('Z', 'T'),
]);

function scan(chunks: Buffer[], want = wantTable('ZSG')): string[] {
  const s = new MessageScanner(want);
  const out: string[] = [];
  for (const c of chunks) s.scan(c, { onMessage: (code, buf, a, b) => out.push(`${String.fromCharCode(code)}:${buf.subarray(a, b).toString('hex')}`) });
  assert.ok(s.atBoundary);
  return out;
}

test('only wanted messages are delivered', () => {
  const out = scan([stream]);
  assert.deepEqual(out.map((m) => m[0]), ['S', 'Z', 'G', 'Z']);
});

test('every split yields the same messages, including WANT_ALL', () => {
  for (const want of [wantTable('ZSG'), WANT_ALL]) {
    const expected = scan([stream], want);
    for (let i = 0; i <= stream.length; i++) {
      assert.deepEqual(scan([stream.subarray(0, i), stream.subarray(i)], want), expected, `split at ${i}`);
    }
  }
});

test('byte by byte', () => {
  const expected = scan([stream], WANT_ALL);
  const parts: Buffer[] = [];
  for (let i = 0; i < stream.length; i++) parts.push(stream.subarray(i, i + 1));
  assert.deepEqual(scan(parts, WANT_ALL), expected);
});

test('a bad length marks the stream broken', () => {
  const s = new MessageScanner(WANT_ALL);
  s.scan(Buffer.from([0x5a, 0, 0, 0, 1]), { onMessage: () => assert.fail('no message expected') });
  assert.equal(s.broken, true);
});
