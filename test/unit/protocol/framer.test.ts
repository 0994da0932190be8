/** Framer: every split of a stream gives the same frames; bad lengths are violations, not buffers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Framer, startupPacketLength } from '../../../src/protocol/framer';

/** Hand-built typed frame: type byte, int32 length (including itself), body. */
function frame(type: string, body: Buffer | string): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
  const h = Buffer.alloc(5);
  h[0] = type.charCodeAt(0);
  h.writeInt32BE(b.length + 4, 1);
  return Buffer.concat([h, b]);
}

type Mode = 'push' | 'view';

/**
 * Feeds chunks with push(), or with pushView() out of one scratch buffer that is scribbled over
 * after every call (so a frame that still points into a read buffer shows up as wrong bytes).
 * Frames are rendered only at the end.
 */
function collect(chunks: Buffer[], max = 1 << 20, mode: Mode = 'push'): { frames: string[]; result: number; copied: number } {
  const f = new Framer(max);
  const held: [number, Buffer, number, number][] = [];
  const sink = { onFrame: (code: number, buf: Buffer, s: number, e: number) => void held.push([code, buf, s, e]) };
  const scratch = Buffer.alloc(1 << 16);
  let copied = 0;
  let result = 0;
  for (const c of chunks) {
    if (mode === 'push') result = f.push(c, sink);
    else {
      const view = scratch.subarray(0, c.length);
      c.copy(view);
      result = f.pushView(view, sink, (n) => (copied += n));
      scratch.fill(0xee);
    }
    if (result !== 0) break;
  }
  const frames = held.map(([code, buf, s, e]) => `${String.fromCharCode(code)}:${buf.subarray(s, e).toString('hex')}`);
  return { frames, result, copied };
}

const stream = Buffer.concat([
  frame('P', 'S1\0SELECT 1\0\0\0'),
  frame('B', '\0S1\0\0\0\0\0\0\0'),
  frame('E', '\0\0\0\0\0'),
  frame('S', ''),
  frame('Q', 'select 2;\0'),
  frame('d', Buffer.alloc(3000, 7)),
  frame('X', ''),
]);

test('whole stream yields every frame in order', () => {
  const { frames } = collect([stream]);
  assert.equal(frames.length, 7);
  assert.deepEqual(frames.map((f) => f[0]), ['P', 'B', 'E', 'S', 'Q', 'd', 'X']);
});

for (const mode of ['push', 'view'] as const) {
  test(`${mode}: every two-way split gives identical frames`, () => {
    const expected = collect([stream]).frames;
    for (let i = 0; i <= stream.length; i++) {
      assert.deepEqual(collect([stream.subarray(0, i), stream.subarray(i)], 1 << 20, mode).frames, expected, `split at ${i}`);
    }
  });

  test(`${mode}: byte-by-byte gives identical frames`, () => {
    const expected = collect([stream]).frames;
    const bytes: Buffer[] = [];
    for (let i = 0; i < stream.length; i++) bytes.push(stream.subarray(i, i + 1));
    assert.deepEqual(collect(bytes, 1 << 20, mode).frames, expected);
  });

  test(`${mode}: three-way splits around the header boundaries`, () => {
    const expected = collect([stream]).frames;
    for (let i = 0; i < 40; i++) {
      for (let j = i; j < 60; j++) {
        assert.deepEqual(collect([stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)], 1 << 20, mode).frames, expected);
      }
    }
  });

  test(`${mode}: a declared length above the limit is a violation, not a buffer`, () => {
    const h = Buffer.alloc(5);
    h[0] = 'Q'.charCodeAt(0);
    h.writeInt32BE(0x40000000, 1); // 1 GB
    const { frames, result } = collect([h], 0x3fffffff, mode);
    assert.equal(frames.length, 0);
    assert.equal(result, 0x40000000);
  });

  test(`${mode}: a length below 4 is a violation`, () => {
    const h = Buffer.from([0x51, 0, 0, 0, 3]);
    assert.notEqual(collect([h], 1 << 20, mode).result, 0);
    assert.notEqual(collect([frame('S', ''), h], 1 << 20, mode).result, 0);
    assert.notEqual(collect([Buffer.concat([frame('S', ''), h])], 1 << 20, mode).result, 0);
  });

  test(`${mode}: violation split across chunks is still detected`, () => {
    const h = Buffer.alloc(5);
    h[0] = 0x51;
    h.writeInt32BE(2_000_000, 1);
    const { result } = collect([h.subarray(0, 2), h.subarray(2)], 1_000_000, mode);
    assert.equal(result, 2_000_000);
  });
}

test('view: a large frame over many reads is copied once, in frames of its own', () => {
  const big = frame('Q', Buffer.alloc(1_000_000, 0x61));
  const input = Buffer.concat([frame('S', ''), big, frame('S', '')]);
  const reads: Buffer[] = [];
  for (let i = 0; i < input.length; i += 65536) reads.push(input.subarray(i, i + 65536));
  const expected = collect([input], 2 << 20).frames;
  const got = collect(reads, 2 << 20, 'view');
  assert.deepEqual(got.frames, expected);
  assert.equal(got.copied, input.length);
  // Above the in-place assembly size the pieces are joined once, still correct.
  const huge = frame('Q', Buffer.alloc(9_000_000, 0x62));
  const hugeReads: Buffer[] = [];
  for (let i = 0; i < huge.length; i += 65536) hugeReads.push(huge.subarray(i, i + 65536));
  assert.deepEqual(collect(hugeReads, 16 << 20, 'view').frames, collect([huge], 16 << 20).frames);
});

test('frames of a chunk are not copied', () => {
  const f = new Framer(1 << 20);
  const bufs: Buffer[] = [];
  f.push(stream, { onFrame: (_c, buf) => bufs.push(buf) });
  assert.ok(bufs.every((b) => b === stream));
});

test('startupPacketLength', () => {
  const p = Buffer.alloc(8);
  p.writeInt32BE(8, 0);
  p.writeInt32BE(80877103, 4);
  assert.equal(startupPacketLength(p.subarray(0, 3), 10000), 0);
  assert.equal(startupPacketLength(p.subarray(0, 6), 10000), 0);
  assert.equal(startupPacketLength(p, 10000), 8);
  const big = Buffer.alloc(4);
  big.writeInt32BE(10001, 0);
  assert.equal(startupPacketLength(big, 10000), -1);
  const small = Buffer.alloc(4);
  small.writeInt32BE(4, 0);
  assert.equal(startupPacketLength(small, 10000), -1);
});
