/**
 * The Link's account of answers, over backend byte streams split at every offset and fed byte
 * by byte: what reaches the client (exact bytes), what is swallowed, which expects complete, and
 * the protocol rules (skip until Sync after an extended-protocol error, Sync ignored during COPY
 * IN, Flush requests without ReadyForQuery, goodbyes held for the owner).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ExpectKind, Link, Term } from '../../../src/core/link';
import type { ForwardSink } from '../../../src/core/ports';
import { cstr, msg, u8 } from '../../fixtures/bytes';

// Backend messages, built by hand (test/fixtures/bytes.ts), never by the code under test.
const Z = (s: 'I' | 'T' | 'E' = 'I'): Buffer => msg('Z', u8(s));
const C = (tag: string): Buffer => msg('C', cstr(tag));
const T1 = msg('T', Buffer.from([0, 0]));
const D1 = msg('D', Buffer.from([0, 1, 0, 0, 0, 1, 0x31]));
const P1 = msg('1');
const B2 = msg('2');
const ND = msg('n');
const PD = msg('t', Buffer.from([0, 0]));
const G = msg('G', Buffer.from([0, 0, 0]));
const A = msg('A', Buffer.from([0, 0, 0, 7]), cstr('chan'), cstr('x'));
const S = msg('S', cstr('application_name'), cstr('app'));
const err = (severity: string, code: string, text = 'boom'): Buffer =>
  msg('E', u8('S'), cstr(severity), u8('V'), cstr(severity), u8('C'), cstr(code), u8('M'), cstr(text), u8(0));
const notice = (severity: string, code: string): Buffer =>
  msg('N', u8('S'), cstr(severity), u8('V'), cstr(severity), u8('C'), cstr(code), u8('M'), cstr('note'), u8(0));

class Recorder implements ForwardSink {
  readonly parts: Buffer[] = [];
  forward(buf: Buffer, start: number, end: number): void {
    this.parts.push(Buffer.from(buf.subarray(start, end)));
  }
  get bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

interface Outcome {
  forwarded: string;
  done: string[];
  owed: number;
  clientOwed: number;
  txStatus: number;
  goodbye: string | null;
  goodbyeFrame: string | null;
}

type Setup = (l: Link) => void;

/** Feeds `stream` in the given pieces to a fresh link prepared by `setup`. */
function run(setup: Setup, pieces: Buffer[], forwardAsync = false): Outcome {
  const l = new Link(0);
  l.forwardAsync = forwardAsync;
  setup(l);
  const rec = new Recorder();
  const done: string[] = [];
  for (const p of pieces) {
    l.feed(p, rec);
    for (const e of l.done) done.push(`${e.kind}${e.swallow ? 's' : 'c'}${e.errored ? 'E' : ''}${e.skipped ? 'K' : ''}${e.status ? String.fromCharCode(e.status) : ''}`);
    l.done.length = 0;
  }
  return {
    forwarded: rec.bytes.toString('hex'), done, owed: l.owed, clientOwed: l.clientOwed, txStatus: l.txStatus,
    goodbye: l.goodbye?.code ?? null, goodbyeFrame: l.goodbye?.frame ? l.goodbye.frame.toString('hex') : null,
  };
}

/** Every way to cut `stream`: whole, in two at every offset, in three around each offset pair sample, byte by byte. */
function splits(stream: Buffer): Buffer[][] {
  const out: Buffer[][] = [[stream]];
  for (let i = 1; i < stream.length; i++) out.push([stream.subarray(0, i), stream.subarray(i)]);
  for (let i = 1; i < stream.length; i += 3) {
    for (let j = i + 1; j < stream.length; j += 5) out.push([stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]);
  }
  out.push([...stream].map((b) => Buffer.from([b])));
  return out;
}

/** Asserts the same outcome for every split, and returns it. */
function same(setup: Setup, stream: Buffer, forwardAsync = false): Outcome {
  const ref = run(setup, [stream], forwardAsync);
  for (const pieces of splits(stream)) {
    assert.deepEqual(run(setup, pieces, forwardAsync), ref, `split ${pieces.map((p) => p.length).join('+')}`);
  }
  return ref;
}

const hex = (...b: Buffer[]): string => Buffer.concat(b).toString('hex');
const client = (completions: number, term: Term) => (l: Link) => { l.expect(ExpectKind.Client, false, completions, term); };

describe('Link: the account of a backend\'s answers', () => {
  test('a simple query: forwarded whole, completed by ReadyForQuery', () => {
    const stream = Buffer.concat([T1, D1, D1, C('SELECT 2'), Z('I')]);
    const o = same(client(0, Term.Query), stream);
    assert.equal(o.forwarded, hex(stream));
    assert.deepEqual(o.done, ['0cI']);
    assert.equal(o.owed, 0);
  });

  test('a swallowed side answer before the client\'s: only the client\'s bytes leave', () => {
    const side = Buffer.concat([C('SET'), S, Z('I')]);
    const answer = Buffer.concat([T1, D1, C('SELECT 1'), Z('T')]);
    const o = same((l) => { l.expect(ExpectKind.State, true, 0, Term.Query); l.expect(ExpectKind.Client, false, 0, Term.Query); },
      Buffer.concat([side, answer]));
    assert.equal(o.forwarded, hex(answer));
    assert.deepEqual(o.done, ['2sI', '0cT']);
    assert.equal(o.txStatus, 'T'.charCodeAt(0));
  });

  test('a Sync request then a Flush request: both answers reach the client (issue 9 item 7)', () => {
    const stream = Buffer.concat([P1, B2, C('INSERT 0 1'), Z('I'), P1, PD, ND]);
    const o = same((l) => { client(3, Term.Sync)(l); client(2, Term.None)(l); }, stream);
    assert.equal(o.forwarded, hex(stream));
    assert.deepEqual(o.done, ['0cI', '0c']);
    assert.equal(o.owed, 0);
  });

  test('a re-parse swallowed before a Flush request: the Flush answer is forwarded', () => {
    const stream = Buffer.concat([P1, Z('T'), B2, T1, D1, C('SELECT 1')]);
    const o = same((l) => { l.expect(ExpectKind.Reparse, true, 1, Term.Sync); client(3, Term.None)(l); }, stream);
    assert.equal(o.forwarded, hex(B2, T1, D1, C('SELECT 1')));
    assert.deepEqual(o.done, ['1sT', '0c']);
  });

  test('an extended-protocol error: the backend skips every request up to Sync', () => {
    // P/B/E/Flush fails at Execute; the following Query and Execute/Flush are skipped; Sync answers.
    const stream = Buffer.concat([P1, B2, err('ERROR', '22012'), Z('E')]);
    const o = same((l) => { client(3, Term.None)(l); client(0, Term.Query)(l); client(2, Term.None)(l); client(0, Term.Sync)(l); }, stream);
    assert.equal(o.forwarded, hex(stream));
    assert.deepEqual(o.done, ['0cE', '0cK', '0cK', '0cKE']);
    assert.equal(o.owed, 0);
  });

  test('a swallowed side request written while the backend skips to Sync does not swallow that Sync\'s ReadyForQuery (F20)', () => {
    // P/B/Flush fails at Bind; then a re-parse (swallowed, no Sync of its own) and the client's Parse/Sync
    // are written: the backend skips both Parses and answers the Sync alone, which goes to the client.
    const l = new Link(0);
    const rec = new Recorder();
    l.expect(ExpectKind.Client, false, 2, Term.None);
    l.feed(Buffer.concat([P1, err('ERROR', '26000')]), rec);
    l.expect(ExpectKind.Reparse, true, 1, Term.None);
    l.expect(ExpectKind.Client, false, 1, Term.Sync);
    const before = rec.bytes.length;
    l.feed(Z('I'), rec);
    assert.equal(rec.bytes.subarray(before).toString('hex'), hex(Z('I')));
    assert.equal(l.owed, 0);
    assert.equal(l.clientOwed, 0);
  });

  test('a simple-query error does not skip anything', () => {
    const stream = Buffer.concat([err('ERROR', '42601'), Z('I'), T1, C('SELECT 0'), Z('I')]);
    const o = same((l) => { client(0, Term.Query)(l); client(0, Term.Query)(l); }, stream);
    assert.equal(o.forwarded, hex(stream));
    assert.deepEqual(o.done, ['0cEI', '0cI']);
  });

  test('COPY IN started by an Execute: its Sync is never answered', () => {
    const stream = Buffer.concat([P1, B2, G, C('COPY 3'), Z('I')]);
    const o = same((l) => { client(3, Term.Sync)(l); client(0, Term.Sync)(l); }, stream);
    assert.equal(o.forwarded, hex(stream));
    assert.deepEqual(o.done, ['0c', '0cI']);
  });

  test('a retryable read whose node says goodbye first: nothing forwarded, the goodbye held', () => {
    const fatal = err('FATAL', '57P01', 'terminating connection due to administrator command');
    const o = same((l) => { l.expect(ExpectKind.Client, false, 0, Term.Query).retry = {}; }, fatal);
    assert.equal(o.forwarded, '');
    assert.equal(o.goodbye, '57P01');
    assert.equal(o.goodbyeFrame, hex(fatal));
    assert.equal(o.clientOwed, 1, 'still owed: the owner re-runs it elsewhere');
  });

  test('an immediate shutdown\'s WARNING at the head of a retryable read is not forwarded', () => {
    const o = same((l) => { l.expect(ExpectKind.Client, false, 0, Term.Query).retry = {}; }, notice('WARNING', '57P01'));
    assert.equal(o.forwarded, '');
    assert.equal(o.goodbye, '57P01');
  });

  describe('a shutdown flushing a retryable read\'s unfinished answer (PostgreSQL sends its buffered messages with the WARNING or FATAL, then exits)', () => {
    const retry = (l: Link): void => { l.expect(ExpectKind.Client, false, 0, Term.Query).retry = {}; };
    const warning = notice('WARNING', '57P01');
    for (const [name, stream] of [
      ['T D then the WARNING', Buffer.concat([T1, D1, warning])],
      ['T D C then the WARNING', Buffer.concat([T1, D1, C('SELECT 1'), warning])],
      ['T D then a FATAL 57P01', Buffer.concat([T1, D1, err('FATAL', '57P01')])],
    ] as const) {
      test(`${name}, in one chunk: taken back whole, the read stays owed`, () => {
        const o = run(retry, [stream]);
        assert.equal(o.forwarded, '');
        assert.equal(o.goodbye, '57P01');
        assert.equal(o.clientOwed, 1);
      });
    }

    test('split anywhere: either nothing of it reaches the client, or all of it (never a part)', () => {
      const stream = Buffer.concat([T1, D1, C('SELECT 1'), warning]);
      for (const pieces of splits(stream)) {
        const o = run(retry, pieces);
        if (o.forwarded === '') assert.equal(o.goodbye, '57P01');
        else assert.equal(o.forwarded, hex(stream), `split ${pieces.map((p) => p.length).join('+')}`);
      }
      assert.equal(run(retry, [stream.subarray(0, 3), stream.subarray(3)]).forwarded, hex(stream), 'begun in an earlier chunk: forwarded');
    });

    test('an answer completed before it in the same chunk still reaches the client', () => {
      const first = Buffer.concat([T1, D1, C('SELECT 1'), Z('I')]);
      const o = run((l) => { l.expect(ExpectKind.Client, false, 0, Term.Query); retry(l); }, [Buffer.concat([first, T1, D1, warning])]);
      assert.equal(o.forwarded, hex(first));
      assert.deepEqual(o.done, ['0cI']);
      assert.equal(o.clientOwed, 1);
    });

    test('an ordinary notice inside the answer is forwarded in place', () => {
      const stream = Buffer.concat([T1, D1, notice('NOTICE', '00000'), C('SELECT 1'), Z('I')]);
      const o = same(retry, stream);
      assert.equal(o.forwarded, hex(stream));
      assert.equal(o.goodbye, null);
    });

    test('a backend that goes on after the WARNING breaks the link', () => {
      const l = new Link(0);
      retry(l);
      l.feed(Buffer.concat([T1, D1, warning, D1, C('SELECT 2'), Z('I')]), new Recorder());
      assert.equal(l.broken, true);
    });
  });

  test('a retryable read\'s ordinary error and notices are forwarded in place', () => {
    const stream = Buffer.concat([notice('NOTICE', '00000'), err('ERROR', '42P01'), Z('I')]);
    const o = same((l) => { l.expect(ExpectKind.Client, false, 0, Term.Query).retry = {}; }, stream);
    assert.equal(o.forwarded, hex(stream));
    assert.equal(o.goodbye, null);
  });

  test('a FATAL inside an answer is forwarded and remembered', () => {
    const fatal = err('FATAL', '57P01');
    const stream = Buffer.concat([T1, D1, fatal]);
    const o = same(client(0, Term.Query), stream);
    assert.equal(o.forwarded, hex(stream));
    assert.equal(o.goodbye, '57P01');
  });

  test('nothing asked: notifications and notices go to the client only from the forwarding node; a FATAL is held', () => {
    const fatal = err('FATAL', '57P01');
    const stream = Buffer.concat([A, notice('NOTICE', '00000'), S, fatal]);
    const on = same(() => {}, stream, true);
    assert.equal(on.forwarded, hex(A, notice('NOTICE', '00000'), S));
    assert.equal(on.goodbye, '57P01');
    assert.equal(on.goodbyeFrame, hex(fatal));
    const off = same(() => {}, stream, false);
    assert.equal(off.forwarded, '');
  });

  test('a notification during a swallowed side answer still reaches the client', () => {
    const stream = Buffer.concat([C('SET'), A, Z('I')]);
    const o = same((l) => { l.expect(ExpectKind.State, true, 0, Term.Query); }, stream, true);
    assert.equal(o.forwarded, hex(A));
  });

  test('a failed re-parse inside an open sequence: its error goes to the client', () => {
    const e = err('ERROR', '42P01');
    const o = same((l) => { l.expect(ExpectKind.Reparse, true, 1, Term.None).errorsToClient = true; client(2, Term.None)(l); client(0, Term.Sync)(l); },
      Buffer.concat([e, Z('E')]));
    assert.equal(o.forwarded, hex(e, Z('E')));
    assert.deepEqual(o.done, ['1sE', '0cK', '0cKE']);
  });

  test('a pipeline of many small answers, byte by byte', () => {
    const one = Buffer.concat([P1, B2, T1, D1, C('SELECT 1'), Z('I')]);
    const stream = Buffer.concat([one, one, one, one]);
    const o = same((l) => { for (let i = 0; i < 4; i++) client(3, Term.Sync)(l); }, stream);
    assert.equal(o.forwarded, hex(stream));
    assert.equal(o.done.length, 4);
  });

  test('a length below 4 breaks the link', () => {
    const l = new Link(0);
    client(0, Term.Query)(l);
    l.feed(Buffer.from([0x44, 0, 0, 0, 2]), new Recorder());
    assert.equal(l.broken, true);
  });
});
