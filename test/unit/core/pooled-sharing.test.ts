/**
 * Transaction pooling with several clients on one server connection (default_pool_size = 1),
 * driven with no sockets: each test is a scenario from the review of 2026-12-07 (H1-H4, M1,
 * M4-M7, L1-L3) where one client could see or change what another left on the connection, or
 * one client could end the process. Two cores share the idle list of one key.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeCore, FakeConn, type CoreFixture } from './core-harness';
import { cstr, i16, i32, msg, u8 } from '../../fixtures/bytes';

const Q = (sql: string): Buffer => msg('Q', cstr(sql));
const P = (name: string, sql: string): Buffer => msg('P', cstr(name), cstr(sql), i16(0));
const B = (portal: string, stmt: string): Buffer => msg('B', cstr(portal), cstr(stmt), i16(0), i16(0), i16(0));
const E = (): Buffer => msg('E', cstr(''), i32(0));
const S = msg('S');
const Z = (s = 'I'): Buffer => msg('Z', u8(s));
const C = (tag: string): Buffer => msg('C', cstr(tag));
const D = (): Buffer => msg('D', i16(1), i32(1), Buffer.from('1'));
const rows = (s = 'I'): Buffer => Buffer.concat([msg('T', i16(0)), C('SELECT 1'), Z(s)]);
const ERR = (code: string, m = 'failed'): Buffer => msg('E', u8('S'), cstr('ERROR'), u8('V'), cstr('ERROR'), u8('C'), cstr(code), u8('M'), cstr(m), u8(0));
const text = (b: Buffer): string => b.toString('latin1');
const serverNames = (b: Buffer): string[] => [...text(b).matchAll(/pgmq?_[0-9a-f]{24}/g)].map((m) => m[0]);

/** Two clients of one (user, database) and the one connection they share. */
async function pair(conf = ''): Promise<{ a: CoreFixture; b: CoreFixture; conn: FakeConn }> {
  const idle: FakeConn[] = [];
  const a = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', idle, conf });
  const conn = a.conns.get(0)!;
  // The login connection goes back after the first statement: from then on one connection, two clients.
  a.send(Q('SELECT 0'));
  a.answer(0, rows());
  a.received();
  conn.take();
  assert.deepEqual(idle, [conn]);
  const b = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', idle, login: false, conf });
  return { a, b, conn };
}

describe('transaction pooling, two clients on one connection', () => {
  test('H1: a comment before PREPARE neither crashes nor reaches the shared connection unrenamed', async () => {
    const { a, b, conn } = await pair();
    a.send(Q('/* app */ PREPARE p AS SELECT 1'));
    const sent = text(conn.take());
    assert.match(sent, /\/\* app \*\/ PREPARE pgmq_[0-9a-f]{24} AS SELECT 1/);
    a.answer(0, Buffer.concat([C('PREPARE'), Z()]));
    a.received();
    a.send(Q('EXECUTE p'));
    assert.match(text(conn.take()), /EXECUTE pgmq_[0-9a-f]{24}/);
    a.answer(0, rows());
    assert.match(text(a.received()), /SELECT 1/);
    // The other client's own p is another statement.
    b.send(Q('-- b\nPREPARE p AS SELECT 2'));
    const other = serverNames(conn.take());
    assert.equal(other.length, 1);
    assert.notEqual(other[0], serverNames(Buffer.from(sent))[0]);
  });

  test('item 1: a throw inside one session ends it with FATAL XX000; the other keeps the connection pool working', async () => {
    const { a, b, conn } = await pair();
    // (a BEGIN alone would be answered here, with no connection yet: item 10)
    a.send(Q('BEGIN; SELECT 1'));
    a.answer(0, Buffer.concat([C('BEGIN'), C('SELECT 1'), Z('T')]));
    a.received();
    conn.take();
    a.core.guard(() => { throw new TypeError('injected'); });
    const got = text(a.received());
    assert.match(got, /FATAL/);
    assert.match(got, /XX000/);
    assert.match(a.host.ended ?? '', /internal error: injected/);
    assert.deepEqual(a.host.closed.at(-1), { node: 0, reusable: false, why: 'session 7 ended after an internal error', reset: false },
      'its connection (in a transaction) is closed, never handed on');
    // The other client gets a fresh connection and works.
    b.host.idle.push(new FakeConn(0, 999));
    b.send(Q('SELECT 1'));
    b.answer(0, rows());
    assert.match(text(b.received()), /SELECT 1/);
    assert.equal(conn.written.length, 0);
  });

  test('item 1: a rejected wait (a bug in openLink) ends the session instead of a warning and a retry', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', login: false, leaseLater: false });
    f.host.openLink = async () => { throw new TypeError('openLink bug'); };
    f.send(Q('SELECT 1'));
    await f.settle();
    assert.match(text(f.received()), /XX000/);
    assert.match(f.host.ended ?? '', /openLink bug/);
  });

  test('H2: a Parse that failed is not taken for a statement the connection has', async () => {
    const { a, b, conn } = await pair();
    a.send(Buffer.concat([P('S_1', 'SELECT * FROM missing'), B('', 'S_1'), E(), S]));
    const first = serverNames(conn.take());
    a.answer(0, Buffer.concat([ERR('42P01', 'relation "missing" does not exist'), Z()]));
    assert.match(text(a.received()), /42P01/);
    assert.deepEqual(conn.statements.list(), [], 'the failed name is gone');
    b.send(Buffer.concat([P('S_9', 'SELECT * FROM missing'), B('', 'S_9'), E(), S]));
    const again = text(conn.take());
    assert.ok(again.includes(text(P(first[0]!, 'SELECT * FROM missing'))), 'parsed again, not answered with a local ParseComplete');
    assert.equal(b.received().length, 0);
  });

  test('H2: a statement is a fact once its request succeeded; a skipped Parse leaves nothing', async () => {
    const { a, conn } = await pair();
    a.send(Buffer.concat([P('S_1', 'SELECT 1'), B('', 'S_1'), E(), S]));
    const name = serverNames(conn.take())[0]!;
    assert.ok(conn.statements.pending(name), 'tentative while unanswered');
    a.answer(0, Buffer.concat([msg('1'), msg('2'), C('SELECT 1'), Z()]));
    assert.ok(conn.statements.has(name) && !conn.statements.pending(name), 'confirmed');
    a.received();
    a.send(Buffer.concat([Q('SELECT 1/0')]));
    a.answer(0, Buffer.concat([ERR('22012'), Z()]));
    a.received();
    // A pipeline: an error in the first request skips the Parse of the second.
    a.send(Buffer.concat([B('', 'S_1'), E(), P('S_2', 'SELECT 2'), S]));
    const skipped = serverNames(conn.take()).find((n) => n !== name)!;
    a.answer(0, Buffer.concat([ERR('22012'), Z()]));
    a.received();
    assert.equal(conn.statements.has(skipped), false);
  });

  test('H2: a Parse written after an error and a Flush (the server skips it until Sync) is not registered', async () => {
    const { a, b, conn } = await pair();
    const H = msg('H');
    a.send(Buffer.concat([P('', 'SELECT * FROM missing'), B('', ''), E(), H]));
    a.answer(0, ERR('42P01'));
    a.send(Buffer.concat([P('s1', 'SELECT 42'), B('', 's1'), E(), S]));
    a.answer(0, Z());
    assert.deepEqual(conn.statements.list(), [], 'skipped: nothing was parsed');
    conn.take();
    a.received();
    b.send(Buffer.concat([P('s9', 'SELECT 42'), B('', 's9'), E(), S]));
    assert.match(text(conn.take()), /^P/, 'the next client\'s Parse is sent, not answered locally');
  });

  test('SQL PREPARE that waits for a connection (a standby) is renamed once, and EXECUTE finds it', async () => {
    const f = await makeCore({ pooling: 'transaction' });
    f.send(Q('PREPARE p(int) AS SELECT $1 * 2'));
    await f.settle();
    const node = [...f.conns.keys()].find((n) => n !== 0)!;
    const sent = text(f.conns.get(node)!.take());
    assert.match(sent, /PREPARE pgmq_[0-9a-f]{24}\(int\)/);
    f.answer(node, Buffer.concat([C('PREPARE'), Z()]));
    f.received();
    f.send(Q('EXECUTE p(21)'));
    await f.settle();
    const all = [...f.conns.values()].map((c) => text(c.take())).join('');
    assert.match(all, new RegExp(`EXECUTE ${serverNames(Buffer.from(sent))[0]}\\(21\\)`));
  });

  test('H3: the unnamed statement another client left on the connection is never executed', async () => {
    const { a, b, conn } = await pair();
    a.send(Buffer.concat([P('', 'SELECT secret FROM t WHERE id = $1'), S]));
    a.answer(0, Buffer.concat([msg('1'), Z()]));
    a.received();
    conn.take();
    b.send(Buffer.concat([P('', 'DELETE FROM t WHERE id = $1'), S]));
    b.answer(0, Buffer.concat([msg('1'), Z()]));
    b.received();
    conn.take();
    a.send(Buffer.concat([B('', ''), E(), S]));
    const w = text(conn.take());
    assert.match(w, /^P[^]{4}\0SELECT secret FROM t WHERE id = \$1\0/, 'the client\'s own unnamed Parse first');
    assert.doesNotMatch(w, /pgm_/, 'never under a named server statement');
    a.answer(0, Buffer.concat([msg('1'), msg('2'), C('SELECT 1'), Z()]));
    assert.equal(text(a.received()), text(Buffer.concat([msg('2'), C('SELECT 1'), Z()])));
  });

  for (const [what, sql, tag] of [
    ['a session advisory lock', 'SELECT pg_advisory_lock(42)', 'SELECT 1'],
    ['LISTEN', 'LISTEN chan', 'LISTEN'],
    ['a temporary table', 'CREATE TEMP TABLE tt (x int)', 'CREATE TABLE'],
  ] as const) {
    test(`H4: ${what} does not outlive its client: the connection is reset (DISCARD ALL) before the next one gets it`, async () => {
      const { a, b, conn } = await pair();
      a.send(Q(sql));
      a.answer(0, Buffer.concat([C(tag), Z()]));
      a.received();
      assert.deepEqual(a.host.idle, [], 'pinned while connected');
      a.core.close();
      assert.equal(a.host.closed.at(-1)?.reset, true);
      assert.equal(conn.discards, 1);
      b.send(Q('SELECT 1'));
      assert.equal(b.conns.get(0), conn);
    });
  }

  test('M1: a connection whose cancel is in flight when its client leaves is held until the server took it', async () => {
    let taken!: () => void;
    const cancelTaken = new Promise<void>((r) => { taken = r; });
    const idle: FakeConn[] = [];
    const a = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', idle, cancelTaken });
    a.send(Q('SELECT pg_sleep(10)'));
    a.core.cancel();
    a.answer(0, Buffer.concat([ERR('57014', 'canceling statement due to user request'), Z()]));
    a.core.close();
    await a.settle();
    assert.deepEqual(idle, [], 'not handed on while the cancel may still arrive');
    taken();
    await a.settle();
    assert.equal(idle.length, 1, 'back once the server took the cancel');
  });

  test('M4: advisory locks pin until pg_advisory_unlock_all, whatever was unlocked one by one', async () => {
    const { a } = await pair();
    a.send(Q('SELECT pg_advisory_lock(1), pg_advisory_lock(2)'));
    a.answer(0, rows());
    a.send(Q('SELECT pg_advisory_unlock(1)'));
    a.answer(0, rows());
    assert.equal(a.host.idle.length, 0, 'lock 2 is still held');
    a.send(Q('SELECT pg_advisory_unlock_all()'));
    a.answer(0, rows());
    assert.equal(a.host.idle.length, 1);
  });

  test('M5: DISCARD ALL / DEALLOCATE ALL that reached the server clear its statement registry', async () => {
    const { a, conn } = await pair();
    a.send(Buffer.concat([P('S_1', 'SELECT 1'), S]));
    a.answer(0, Buffer.concat([msg('1'), Z()]));
    a.send(Q('LISTEN chan'));
    a.answer(0, Buffer.concat([C('LISTEN'), Z()]));
    assert.equal(conn.statements.size, 1);
    a.send(Q('DISCARD ALL'));
    assert.match(text(conn.take()), /DISCARD ALL/, 'pinned: it goes to the server');
    a.answer(0, Buffer.concat([C('DISCARD ALL'), Z()]));
    assert.equal(conn.statements.size, 0);
    assert.equal(conn.applied, null, 'settings unknown: replayed in full next time');
    assert.equal(a.host.idle.length, 1, 'nothing pins any more');
  });

  test('M6: a temporary-table pin lifts when the server says no temporary relation is left', async () => {
    const { a, conn } = await pair();
    a.send(Q('CREATE TEMP TABLE tt (x int)'));
    a.answer(0, Buffer.concat([C('CREATE TABLE'), Z()]));
    conn.take();
    a.send(Q('DROP TABLE tt'));
    a.answer(0, Buffer.concat([C('DROP TABLE'), Z()]));
    assert.match(text(conn.take()), /pg_my_temp_schema/, 'asked');
    assert.equal(a.host.idle.length, 0);
    a.answer(0, Buffer.concat([msg('T', i16(0)), C('SELECT 0'), Z()]));
    assert.equal(a.host.idle.length, 1, 'none left: given back');
    assert.equal(text(a.received()).includes('SELECT 0'), false, 'the probe\'s answer is pgmaitre\'s own');
  });

  test('M6: the pin stays while a temporary relation is left', async () => {
    const { a, conn } = await pair();
    a.send(Q('CREATE TEMP TABLE t1 (x int)'));
    a.answer(0, Buffer.concat([C('CREATE TABLE'), Z()]));
    a.send(Q('CREATE TEMP TABLE t2 (x int)'));
    a.answer(0, Buffer.concat([C('CREATE TABLE'), Z()]));
    a.send(Q('DROP TABLE t1'));
    a.answer(0, Buffer.concat([C('DROP TABLE'), Z()]));
    conn.take();
    a.answer(0, Buffer.concat([msg('T', i16(0)), D(), C('SELECT 1'), Z()]));
    assert.equal(a.host.idle.length, 0);
  });

  test('M7: max_prepared_statements caps each connection; the least recently used is closed first', async () => {
    const { a, conn } = await pair('max_prepared_statements = 2\n');
    const names: string[] = [];
    for (const i of [1, 2, 3]) {
      a.send(Buffer.concat([P(`S_${i}`, `SELECT ${i}`), S]));
      const w = conn.take();
      names.push(serverNames(w).at(-1)!);
      if (i === 3) assert.match(text(w), new RegExp(`^C[^]{4}S${names[0]}\\0S`), 'Close of the oldest, then the new Parse');
      a.answer(0, Buffer.concat(i === 3 ? [msg('3'), Z(), msg('1'), Z()] : [msg('1'), Z()]));
    }
    assert.deepEqual(conn.statements.list(), names.slice(1));
    assert.equal(text(a.received()), text(Buffer.concat([msg('1'), Z(), msg('1'), Z(), msg('1'), Z()])));
  });

  test('L1: set_config(..., false) and SET inside DO pin (fail closed); set_config(..., true) does not', async () => {
    for (const [sql, pinned] of [
      ["SELECT set_config('app.user', '42', false)", true],
      ["SELECT set_config('app.user', '42', true)", false],
      ["SELECT set_config('app.user', $1, is_local)", true],
      ["DO $$BEGIN SET work_mem = '8MB'; END$$", true],
      ["DO $$BEGIN PERFORM 1; END$$", false],
    ] as const) {
      const { a } = await pair();
      a.send(Q(sql));
      a.answer(0, Buffer.concat([C('SELECT 1'), Z()]));
      assert.equal(a.host.idle.length === 0, pinned, sql);
    }
  });

  test('L2: a failed state replay leaves the connection\'s settings unknown and reset when given back', async () => {
    const { a, b, conn } = await pair();
    b.send(Q('SET search_path = nowhere'));
    b.answer(0, Buffer.concat([C('SET'), Z()]));
    conn.take();
    a.send(Q('SELECT 1'));
    assert.match(text(conn.take()), /RESET search_path/);
    a.answer(0, Buffer.concat([ERR('XX000', 'replay failed'), Z()]));
    assert.equal(conn.applied, null);
    assert.equal(a.host.closed.at(-1)?.reset === true || a.host.closed.at(-1)?.reusable === false, true);
  });

  test('L3: a statement re-parsed on a leased connection reports its own error, not 26000 at Bind', async () => {
    const { a, conn } = await pair();
    a.send(Buffer.concat([P('S_1', 'SELECT * FROM t'), S]));
    a.answer(0, Buffer.concat([msg('1'), Z()]));
    a.received();
    // Another connection this time (the first is busy elsewhere).
    a.host.idle.length = 0;
    a.host.idle.push(new FakeConn(0, 4343));
    a.send(Buffer.concat([B('', 'S_1'), E(), S]));
    const fresh = a.conns.get(0)!;
    assert.notEqual(fresh, conn);
    assert.match(text(fresh.take()), /^P[^]*B[^]*E[^]*S/, 'Parse, then the Bind in the same Sync');
    fresh.take();
    a.answer(0, Buffer.concat([ERR('42P01', 'relation "t" does not exist'), Z()]));
    const got = text(a.received());
    assert.match(got, /42P01/);
    assert.doesNotMatch(got, /26000/);
  });
});
