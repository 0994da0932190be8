/**
 * psql through pgmaitre: -c strings (single and multi-statement), a -f script with a
 * transaction, \copy both ways, ON_ERROR_STOP, \conninfo and a 100k-row result.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { withCluster } from '../harness/cluster';
import { backendLines, startInProcess, type InProcess } from '../harness/in-process';

/** Reads on the primary too: these tests are about the protocol and the drivers, not routing (see routing*.test.ts). */
const PRIMARY_ONLY = [1, 0, 0];
import { DEBUG_POOL_LOG, poolCloseReasons, waitPoolsSettled } from '../harness/pool-check';
import { describeResult, exec, type ExecResult } from '../harness/exec';

describe('psql through pgmaitre', { timeout: 240_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  let px: InProcess;
  let tmp: string;

  before(async () => {
    px = await startInProcess(`${backendLines(fx.cluster, PRIMARY_ONLY)}\nsr_check_user = 'postgres'\nenable_pool_hba = off\n${DEBUG_POOL_LOG}\n`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-psql-'));
  });
  after(async () => {
    await px?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** Runs psql against pgmaitre with ON_ERROR_STOP; extra args after the connection options. */
  function psql(args: readonly string[], input?: string): Promise<ExecResult> {
    const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'], HOME: tmp, PGCONNECT_TIMEOUT: '10', LC_ALL: 'C' };
    return exec(fx.cluster.pg.bin('psql'),
      ['-X', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(px.port), '-U', 'postgres', '-d', 'postgres', ...args],
      { env, ...(input !== undefined ? { input } : {}) });
  }

  async function ok(args: readonly string[], input?: string): Promise<string> {
    const r = await psql(args, input);
    assert.equal(r.code, 0, describeResult(r));
    return r.stdout;
  }

  test('-c with a single statement', async () => {
    assert.equal((await ok(['-At', '-c', 'SELECT 40 + 2'])).trim(), '42');
  });

  test('-c with a multi-statement string shows every result (psql >= 15)', async () => {
    const out = await ok(['-At', '-c', "CREATE TABLE psql_multi (a int); INSERT INTO psql_multi VALUES (1), (2), (3); SELECT sum(a) FROM psql_multi"]);
    assert.deepEqual(out.trim().split('\n'), ['CREATE TABLE', 'INSERT 0 3', '6']);
    // One Query message: an error in the middle aborts the whole implicit transaction.
    const bad = await psql(['-At', '-c', 'INSERT INTO psql_multi VALUES (4); SELECT 1/0; INSERT INTO psql_multi VALUES (5)']);
    assert.equal(bad.code, 1, describeResult(bad));
    assert.match(bad.stderr, /division by zero/);
    // Several -c options run one after the other, each in its own round trip.
    const out2 = await ok(['-At', '-c', 'SELECT count(*) FROM psql_multi', '-c', 'DROP TABLE psql_multi', '-c', "SELECT 'done'"]);
    assert.deepEqual(out2.trim().split('\n'), ['3', 'DROP TABLE', 'done'], 'row 4 was rolled back with the failed string');
  });

  test('-f script with a committed and a rolled-back transaction', async () => {
    const script = path.join(tmp, 'script.sql');
    fs.writeFileSync(script, [
      'CREATE TABLE psql_tx (id int PRIMARY KEY, v text);',
      'BEGIN;',
      "INSERT INTO psql_tx VALUES (1, 'kept'), (2, 'kept');",
      'COMMIT;',
      'BEGIN;',
      "INSERT INTO psql_tx VALUES (3, 'gone');",
      'SAVEPOINT sp;',
      "INSERT INTO psql_tx VALUES (4, 'gone too');",
      'ROLLBACK TO SAVEPOINT sp;',
      'ROLLBACK;',
      "SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM psql_tx;",
      'SELECT current_setting(\'transaction_isolation\');',
      '',
    ].join('\n'));
    const out = await ok(['-At', '-f', script]);
    const lines = out.trim().split('\n');
    assert.equal(lines.at(-2), '1:kept,2:kept');
    assert.equal(lines.at(-1), 'read committed');
    assert.equal((await ok(['-At', '-c', 'SELECT count(*) FROM psql_tx'])).trim(), '2');
  });

  test('\\copy from stdin and to stdout with a few thousand rows', async () => {
    const N = 5000;
    await ok(['-c', 'CREATE TABLE psql_copy (id int PRIMARY KEY, name text, note text)']);
    const rows: string[] = [];
    for (let i = 1; i <= N; i++) rows.push(`${i}\tname ${i}\t${i % 7 === 0 ? '\\N' : `tab\\there ${'x'.repeat(i % 50)}`}`);
    // psql reads the data from its own stdin after the \copy command in the same script.
    const script = `\\copy psql_copy from stdin\n${rows.join('\n')}\n\\.\nSELECT count(*), count(note), sum(id) FROM psql_copy;\n`;
    const loaded = await ok(['-At'], script);
    assert.match(loaded, new RegExp(`^${N}\\|${N - Math.floor(N / 7)}\\|${(N * (N + 1)) / 2}$`, 'm'));
    const out = await ok(['-c', '\\copy (SELECT * FROM psql_copy ORDER BY id) to stdout']);
    const got = out.split('\n');
    assert.equal(got.at(-1), '');
    got.pop();
    assert.equal(got.length, N);
    assert.deepEqual(got, rows);
    // A file round trip, as people use it for exports.
    const file = path.join(tmp, 'export.tsv');
    await ok(['-c', `\\copy psql_copy to '${file}' with (format csv, header)`]);
    const csv = fs.readFileSync(file, 'utf8').trimEnd().split('\n');
    assert.equal(csv.length, N + 1);
    assert.equal(csv[0], 'id,name,note');
    await ok(['-c', 'TRUNCATE psql_copy', '-c', `\\copy psql_copy from '${file}' with (format csv, header)`]);
    assert.equal((await ok(['-At', '-c', 'SELECT count(*) FROM psql_copy'])).trim(), String(N));
  });

  test('basic meta-commands and variables', async () => {
    const out = await ok(['-At'], [
      '\\set answer 42',
      'SELECT :answer * 2 AS doubled;',
      "SELECT :'answer'::text || '!' AS quoted;",
      '\\echo echoed',
      '\\dt psql_*',
      '\\pset format unaligned',
      "SELECT 'a' AS x, 'b' AS y \\g",
      '',
    ].join('\n'));
    const lines = out.trim().split('\n');
    assert.equal(lines[0], '84');
    assert.equal(lines[1], '42!');
    assert.equal(lines[2], 'echoed');
    assert.ok(lines.some((l) => l.startsWith('public|psql_copy|table|postgres')), out);
    assert.equal(lines.at(-1), 'a|b');
  });

  test('an error with ON_ERROR_STOP exits 3 with the error text, and stops the script', async () => {
    const r = await psql(['-At'], "SELECT 1;\nSELECT * FROM psql_no_such_table;\nSELECT 'not reached';\n");
    assert.equal(r.code, 3, describeResult(r));
    assert.match(r.stderr, /ERROR: {2}relation "psql_no_such_table" does not exist/);
    assert.equal(r.stdout.trim(), '1');
    assert.doesNotMatch(r.stdout, /not reached/);
    // -c: exit 1 for an error in a -c string, per psql's documentation.
    const c = await psql(['-c', 'SELECT 1/0']);
    assert.equal(c.code, 1, describeResult(c));
    assert.match(c.stderr, /division by zero/);
  });

  test('\\conninfo shows the pgmaitre endpoint', async () => {
    const out = await ok(['-c', '\\conninfo']);
    assert.match(out, new RegExp(`database "postgres" as user "postgres" on host "127\\.0\\.0\\.1" at port "${px.port}"`));
  });

  test('a 100k-row result comes back intact', async () => {
    const out = await ok(['-At', '-c', "SELECT g, md5(g::text) FROM generate_series(1, 100000) g"]);
    const lines = out.split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, 100_000);
    assert.equal(lines[0], '1|c4ca4238a0b923820dcc509a6f75849b');
    assert.equal(lines[99_999], '100000|14ee22eaba297944c96afdbe5b16c65b');
    for (let i = 0; i < lines.length; i += 997) assert.ok(lines[i]!.startsWith(`${i + 1}|`), lines[i]);
    // The same through a cursor-less wide row set in aligned format: count the footer.
    const aligned = await ok(['-c', "SELECT g, repeat('y', 200) FROM generate_series(1, 100000) g"]);
    assert.match(aligned, /\(100000 rows\)\n*$/);
  });

  test('afterwards every backend connection is back in the pool, none discarded as unclean', async () => {
    const idle = await waitPoolsSettled(px);
    assert.ok(idle > 0, 'connections are cached for reuse');
    assert.deepEqual(poolCloseReasons(px), []);
  });
});
