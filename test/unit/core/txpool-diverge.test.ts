/**
 * Transaction pooling divergences found by the differential fuzzer (seeds 101618, 98096, 101224,
 * ...; docs/fuzz-findings.md), each driven with no sockets: clients of one (user, database) share
 * the one connection of the pool, and each must get what its own direct connection would answer.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeCore, FakeConn, type CoreFixture } from './core-harness';
import { cstr, i16, i32, msg, u8 } from '../../fixtures/bytes';

const Q = (sql: string): Buffer => msg('Q', cstr(sql));
const P = (name: string, sql: string): Buffer => msg('P', cstr(name), cstr(sql), i16(0));
const B = (portal: string, stmt: string, ...params: string[]): Buffer => msg('B', cstr(portal), cstr(stmt), i16(0),
  i16(params.length), ...params.map((p) => Buffer.concat([i32(Buffer.byteLength(p)), Buffer.from(p)])), i16(0));
const E = (portal = ''): Buffer => msg('E', cstr(portal), i32(0));
const DS = (name: string): Buffer => msg('D', u8('S'), cstr(name));
const DP = (name: string): Buffer => msg('D', u8('P'), cstr(name));
const CS = (name: string): Buffer => msg('C', u8('S'), cstr(name));
const S = msg('S');
const Z = (s = 'I'): Buffer => msg('Z', u8(s));
const C = (tag: string): Buffer => msg('C', cstr(tag));
const rows = (s = 'I'): Buffer => Buffer.concat([msg('T', i16(0)), C('SELECT 1'), Z(s)]);
const ERR = (code: string, m = 'failed'): Buffer => msg('E', u8('S'), cstr('ERROR'), u8('V'), cstr('ERROR'), u8('C'), cstr(code), u8('M'), cstr(m), u8(0));
const PD = (...oids: number[]): Buffer => msg('t', i16(oids.length), ...oids.map((o) => i32(o)));
const H = msg('H');
const text = (b: Buffer): string => b.toString('latin1');
const serverNames = (b: Buffer): string[] => [...text(b).matchAll(/pgmq?_[0-9a-f]{24}/g)].map((m) => m[0]);

/** The messages of a byte stream, as their type letters (and an ErrorResponse's SQLSTATE). */
function kinds(b: Buffer): string[] {
  const out: string[] = [];
  for (let at = 0; at + 5 <= b.length; at += 1 + b.readInt32BE(at + 1)) {
    const c = String.fromCharCode(b[at]!);
    if (c === 'E') out.push(`E ${/C([0-9A-Z]{5})\0/.exec(text(b.subarray(at, at + 1 + b.readInt32BE(at + 1))))?.[1]}`);
    else if (c === 'Z') out.push(`Z ${String.fromCharCode(b[at + 5]!)}`);
    else out.push(c);
  }
  return out;
}

/** Two clients of one (user, database) and the one connection they share. */
async function pair(conf = ''): Promise<{ a: CoreFixture; b: CoreFixture; conn: FakeConn }> {
  const idle: FakeConn[] = [];
  const a = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', idle, conf });
  const conn = a.conns.get(0)!;
  a.send(Q('SELECT 0'));
  a.answer(0, rows());
  a.received();
  conn.take();
  assert.deepEqual(idle, [conn]);
  const b = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', idle, login: false, conf });
  return { a, b, conn };
}

describe('transaction pooling: what the fuzzer found (docs/fuzz-findings.md)', () => {
  test('seed 101618: a statement parsed before a duplicate Parse of its name in the same request stays on the connection', async () => {
    const { a, b, conn } = await pair();
    a.send(Q('BEGIN'));
    await a.settle();
    assert.deepEqual(kinds(a.received()), ['C', 'Z T']);
    // fz is parsed, then parsed again (42P05): the transaction is aborted, fz (the first) exists.
    a.send(P('fz', 'SELECT v FROM t'), B('p1', 'fz'), E('p1'), P('fz', "SET work_mem = '4MB'"), B('p1', 'fz'), E('p1'), S);
    await a.settle();
    const sent = conn.take();
    const server = serverNames(sent)[0]!;
    a.answer(0, Buffer.concat([C('BEGIN'), Z('T'), msg('1'), msg('2'), C('SELECT 0'), ERR('42P05', `prepared statement "${server}" already exists`), Z('E')]));
    await a.settle();
    assert.deepEqual(kinds(a.received()), ['1', '2', 'C', 'E 42P05', 'Z E']);
    a.send(B('p1', 'fz'), E('p1'), CS('fz'), S);
    await a.settle();
    const next = conn.take();
    assert.ok(!next.includes(CS(server)), 'fz is not closed before the Bind: the server has it');
    assert.ok(next.includes(server), 'the Bind goes to fz\'s server statement');
    a.answer(0, Buffer.concat([ERR('25P02'), Z('E')]));
    await a.settle();
    assert.deepEqual(kinds(a.received()), ['E 25P02', 'Z E']);
    a.send(Q('ROLLBACK'));
    await a.settle();
    conn.take();
    a.answer(0, Buffer.concat([C('ROLLBACK'), Z('I')]));
    await a.settle();
    a.received();
    // The other client's own fz on that connection is another statement, parsed there.
    b.send(P('fz', 'SELECT v FROM t'), B('', 'fz'), E(), S);
    await b.settle();
    assert.ok(conn.take().includes(server), 'the same text: the same server name');
  });

  for (const [seed, sql, term] of [['98096', 'DELETE FROM t WHERE v = $1::int', H], ['101224', 'INSERT INTO t VALUES ($1::int)', S]] as const) {
    test(`seed ${seed}: in an aborted transaction, Describe S of a statement the connection lacks is described as the server inferred it; only its Bind fails`, async () => {
      const { a, b, conn } = await pair();
      // The server infers the parameter's type ($1::int: int4, OID 23); nothing in the Parse says it.
      a.send(P('s2', sql), B('', 's2', '7'), E(), S);
      await a.settle();
      const first = conn.take();
      const server = serverNames(first)[0]!;
      // (What the server answers to everything pgmaitre sent: the client's request, and a Describe
      // of s2 if pgmaitre asked for one.)
      const described = first.includes(DS(server));
      a.answer(0, Buffer.concat([msg('1'), msg('2'), C('DELETE 0'), Z(), ...(described ? [PD(23), msg('n'), Z()] : [])]));
      await a.settle();
      assert.deepEqual(kinds(a.received()), ['1', '2', 'C', 'Z I']);
      // Another client's DISCARD ALL (a reset) leaves the connection without s2.
      b.send(Q('SELECT 1'));
      await b.settle();
      conn.take();
      b.answer(0, rows());
      await b.settle();
      b.received();
      conn.statements.clear();
      a.send(Q('BEGIN'));
      await a.settle();
      a.received();
      a.send(Q('SELECT 1/0'));
      await a.settle();
      conn.take();
      a.answer(0, Buffer.concat([C('BEGIN'), Z('T'), ERR('22012'), Z('E')]));
      await a.settle();
      assert.deepEqual(kinds(a.received()), ['E 22012', 'Z E']);
      a.send(DS('s2'), B('', 's2', '2'), DP(''), E(), term);
      await a.settle();
      const sent = conn.take();
      // The server refuses whatever reached it: 25P02 (a re-parse or the Bind), skipping to Sync.
      if (sent.length > 0) a.answer(0, Buffer.concat([ERR('25P02'), ...(term === S ? [Z('E')] : [])]));
      await a.settle();
      const got = a.received();
      assert.deepEqual(kinds(got), ['t', 'n', 'E 25P02', ...(term === S ? ['Z E'] : [])]);
      assert.ok(got.includes(PD(23)), 'the parameter type the server inferred');
    });
  }

  test('seed 132154: Close S \'\' then an unnamed Parse that fails leaves no unnamed statement (a Bind \'\' gets 26000, not the older one)', async () => {
    const { a, conn } = await pair();
    a.send(P('', "SET work_mem = '4MB'"), S);
    await a.settle();
    conn.take();
    a.answer(0, Buffer.concat([msg('1'), Z()]));
    await a.settle();
    a.received();
    a.send(CS(''), P('', 'SELECT * FROM fz_missing_table'), B('p1', ''), E('p1'), S);
    await a.settle();
    // (pgmaitre may parse the client's unnamed statement again first: it is answered.)
    const reparsed = /^P\0\0\0.\0SET work_mem/s.test(text(conn.take()));
    a.answer(0, Buffer.concat([...(reparsed ? [msg('1')] : []), msg('3'), ERR('42P01'), Z()]));
    await a.settle();
    assert.deepEqual(kinds(a.received()), ['3', 'E 42P01', 'Z I']);
    a.send(B('', ''), E(), S);
    await a.settle();
    const sent = conn.take();
    assert.doesNotMatch(text(sent), /SET work_mem/, 'the older unnamed statement is not parsed again');
    // (An empty Query of pgmaitre's may drop another client's unnamed statement first.)
    const dropped = sent[0] === 0x51 ? [msg('I'), Z()] : [];
    if (sent.length > 0) a.answer(0, Buffer.concat([...dropped, ERR('26000', 'unnamed prepared statement does not exist'), Z()]));
    await a.settle();
    assert.deepEqual(kinds(a.received()), ['E 26000', 'Z I']);
  });

  test('seed 133155: in an aborted transaction, an unnamed Parse refused 25P02 leaves no unnamed statement, also when the request goes in two parts', async () => {
    const { a, conn } = await pair();
    a.send(Q('BEGIN'));
    await a.settle();
    a.received();
    a.send(Q('SELECT 1/0'));
    await a.settle();
    conn.take();
    a.answer(0, Buffer.concat([C('BEGIN'), Z('T'), ERR('22012'), Z('E')]));
    await a.settle();
    a.received();
    a.send(P('', 'INSERT INTO t VALUES ($1::int)'), B('', '', '42'), E(), P('', 'SELECT $1::int + 1 AS n'), B('p1', '', '3'), E('p1'), S);
    await a.settle();
    conn.take();
    a.answer(0, Buffer.concat([ERR('25P02'), Z('E')]));
    await a.settle();
    assert.deepEqual(kinds(a.received()), ['E 25P02', 'Z E']);
    a.send(B('p1', '', '0'), E('p1'), S);
    await a.settle();
    const sent = conn.take();
    // The server refuses a re-parse of a statement (25P02); a Bind of the unnamed statement it lacks: 26000.
    if (sent.length > 0) a.answer(0, Buffer.concat([ERR(sent[0] === 0x50 ? '25P02' : '26000'), Z('E')]));
    await a.settle();
    assert.deepEqual(kinds(a.received()), ['E 26000', 'Z E']);
  });
  test('seed 134527: a SET that is only parsed (never bound) is not the client\'s setting: what follows it on a shared connection replays the SET that ran', async () => {
    const { a, b, conn } = await pair();
    a.send(Q("SET work_mem = '8MB'"));
    await a.settle();
    conn.take();
    a.answer(0, Buffer.concat([C('SET'), Z('I')]));
    await a.settle();
    a.received();
    // Parsed, described, closed: never executed.
    a.send(P('', "SET work_mem = '4MB'"), DS(''), CS(''), S);
    await a.settle();
    conn.take();
    a.answer(0, Buffer.concat([msg('1'), PD(), msg('n'), msg('3'), Z('I')]));
    await a.settle();
    assert.deepEqual(kinds(a.received()), ['1', 't', 'n', '3', 'Z I']);
    // B takes the connection (its state is reset for B), then A comes back to it.
    b.send(Q('SELECT 1'));
    await b.settle();
    const forB = text(conn.take());
    assert.ok(!forB.includes('4MB'), `nothing of the parsed SET is sent for B: ${forB}`);
    b.answer(0, Buffer.concat(forB.includes('RESET') || forB.includes('DISCARD') ? [C('RESET'), Z('I'), ...[rows()]] : [rows()]));
    await b.settle();
    b.received();
    a.send(Q('SHOW work_mem'));
    await a.settle();
    const forA = text(conn.take());
    assert.ok(!forA.includes('4MB'), `the parsed SET is not replayed: ${forA}`);
  });
});
