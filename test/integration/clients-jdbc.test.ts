/**
 * pgjdbc through pgmaitre: the extended protocol the way a JDBC driver drives it — unnamed then
 * named server statements (prepareThreshold), portals read in fetch-size steps, pipelined batches,
 * COPY through CopyManager, errors, transactions, Statement.cancel/setQueryTimeout and metadata.
 * test/fixtures/clients/JdbcCheck.java (single-file source launch, no javac step) runs every check
 * once and prints JSON; each test asserts one check. Skipped when java or the driver jar is missing.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, withCluster } from '../harness/cluster';
import { backendLines, startInProcess, type InProcess, poolModeUnderTest } from '../harness/in-process';

/** Reads on the primary too: these tests are about the protocol and the drivers, not routing (see routing*.test.ts). */
const PRIMARY_ONLY = [1, 0, 0];
import { DEBUG_POOL_LOG, poolCloseReasons, waitPoolsSettled } from '../harness/pool-check';
import { DriverRun, type Check } from '../harness/driver-report';
import { describeResult, exec, type ExecResult } from '../harness/exec';

const JAR = process.env['PGMAITRE_TEST_JDBC_JAR'] ?? '/usr/share/java/postgresql.jar';
const JAVA = process.env['PGMAITRE_TEST_JAVA'] ?? 'java';
const SOURCE = path.join(REPO_ROOT, 'test', 'fixtures', 'clients', 'JdbcCheck.java');
/** javac of the same JDK as JAVA (classes of a newer javac would not load in an older java). */
const JAVAC = process.env['PGMAITRE_TEST_JAVAC'] ?? (JAVA.includes('/') ? path.join(path.dirname(JAVA), 'javac') : 'javac');

/**
 * What runs JdbcCheck: its classes compiled once by javac into a directory kept next to the
 * cluster templates (keyed by the source, the driver jar and `java -version`), so the file's three
 * runs of `npm test` (session pooling, transaction pooling, query cache) do not each compile it
 * (seconds of CPU); the single-file source launch when javac is missing or fails.
 */
async function jdbcCheckProgram(javaVersion: string): Promise<string[]> {
  const launch = ['-cp', JAR, SOURCE];
  const jar = fs.statSync(JAR);
  const key = crypto.createHash('sha256').update(fs.readFileSync(SOURCE)).update(`${JAR} ${jar.size} ${jar.mtimeMs}\n${javaVersion}`).digest('hex').slice(0, 16);
  const dir = path.join(os.tmpdir(), `pgmaitre-jdbccheck-${key}`);
  const program = ['-cp', `${JAR}${path.delimiter}${dir}`, 'JdbcCheck'];
  if (fs.existsSync(path.join(dir, 'JdbcCheck.class'))) return program;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pgmaitre-jdbccheck-build-'));
  try {
    const javac = await exec(JAVAC, ['-cp', JAR, '-d', work, SOURCE], { timeoutMs: 120_000 }).catch(() => undefined);
    if (javac?.code !== 0 || !fs.existsSync(path.join(work, 'JdbcCheck.class'))) return launch;
    try {
      fs.renameSync(work, dir); // concurrent builders: the first rename wins, the others find it there
    } catch {
      if (!fs.existsSync(path.join(dir, 'JdbcCheck.class'))) return launch;
    }
    return program;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}


/**
 * Names of named statements as the server lists them: the driver's own (S_n) when the session
 * has its connection; with transaction pooling, shared server names (pgm_<hash>) — the
 * connection is not the client's own (core/statement-names.ts).
 */
const SERVER_NAME = poolModeUnderTest() === 'session' ? /^S_\d+$/ : /^pgm_[0-9a-f]{24}$/;

describe('pgjdbc through pgmaitre', { timeout: 240_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  let px: InProcess | undefined;
  const d = new DriverRun('JdbcCheck.java');

  before(async () => {
    if (!fs.existsSync(JAR)) {
      d.skipReason = `${JAR} not found (apt-get install libpostgresql-jdbc-java)`;
      return;
    }
    let java: ExecResult;
    try {
      java = await exec(JAVA, ['-version']);
    } catch {
      d.skipReason = `${JAVA} not found (a JDK is needed: single-file source launch)`;
      return;
    }
    if (java.code !== 0) {
      d.skipReason = `java -version failed: ${java.stderr.trim()}`;
      return;
    }
    const modules = await exec(JAVA, ['--list-modules']);
    if (!/^jdk\.compiler@/m.test(modules.stdout)) {
      d.skipReason = `${JAVA} has no jdk.compiler module (a JRE): cannot launch JdbcCheck.java from source`;
      return;
    }
    px = await startInProcess(`${backendLines(fx.cluster, PRIMARY_ONLY)}\nsr_check_user = 'postgres'\nenable_pool_hba = off\n${DEBUG_POOL_LOG}\n`);
    const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'], LC_ALL: 'C.UTF-8', HOME: process.env['HOME'] };
    const program = await jdbcCheckProgram(java.stderr);
    d.finished(await exec(JAVA, ['-Xshare:auto', '-XX:TieredStopAtLevel=1', ...program, '127.0.0.1', String(px.port)], { env, timeoutMs: 120_000 }));
  }, { timeout: 150_000 });
  after(async () => { await px?.stop(); });

  const result = (t: TestContext, name: string): Check | undefined => d.check(t, name);

  test('connect (SSLRequest answered N, startup parameters, isValid)', (t) => {
    const c = result(t, 'connect_info');
    if (!c) return;
    assert.equal(c['user'], 'postgres');
    assert.equal(c['application_name'], 'jdbc-check');
    assert.equal(c['extra_float_digits'], '3');
    assert.equal(c['product'], 'PostgreSQL');
    assert.equal(c['major'], 15);
    assert.equal(c['valid'], true);
  });

  test('PreparedStatement reused past the default prepareThreshold (5) becomes a named S_n statement', (t) => {
    const c = result(t, 'prepared_threshold_default');
    if (!c) return;
    assert.equal(c['threshold'], 5);
    let expected = 0;
    for (let i = 1; i <= 10; i++) expected += i * 2 + 1;
    assert.equal(c['sum'], expected);
    const names = c['named_statements'] as string[];
    assert.ok(names.length >= 1 && names.every((n) => SERVER_NAME.test(n)), `server statements: ${names.join(',')}`);
  });

  test('prepareThreshold=1: named statements from the first execution, binary results', (t) => {
    const c = result(t, 'prepared_threshold_one');
    if (!c) return;
    let expected = 0;
    for (let round = 0; round < 3; round++) for (let i = 0; i < 20; i++) expected += i + 1000 * round;
    assert.equal(c['sum'], expected);
    assert.equal(c['last'], 'r2-3.14|true|0.1');
    const names = c['named_statements'] as string[];
    assert.ok(names.length >= 2 && names.every((n) => SERVER_NAME.test(n)), `server statements: ${names.join(',')}`);
  });

  test('setFetchSize(10) over 1000 rows: portal suspension, interleaved statements, two open portals', (t) => {
    const c = result(t, 'fetch_size_portal');
    if (!c) return;
    assert.equal(c['count'], 1000);
    assert.equal(c['sum'], 500_500);
    assert.equal(c['interleaved'], 4, 'a suspended portal C_n was open on the server at each of the 4 probes');
    assert.equal(c['alternating'], 100);
  });

  test('executeBatch of 500 inserts, plain and with reWriteBatchedInserts=true; a failing batch', (t) => {
    const c = result(t, 'batches');
    if (!c) return;
    for (const mode of ['plain', 'rewrite']) {
      const m = c[mode] as Record<string, unknown>;
      assert.equal(m['results'], 500, mode);
      assert.equal(m['ok_results'], 500, mode);
      assert.equal(m['count'], 500, mode);
      assert.equal(m['sum'], 125_250, mode);
      assert.equal(m['batch_error'], '23505', mode);
    }
    assert.equal((c['plain'] as Record<string, unknown>)['no_info'], 0);
    assert.equal((c['rewrite'] as Record<string, unknown>)['no_info'], 500, 'rewritten multi-row inserts report SUCCESS_NO_INFO');
  });

  test('CopyManager copyIn / copyOut, a failing copyIn', (t) => {
    const c = result(t, 'copy');
    if (!c) return;
    assert.equal(c['copied_in'], 4000);
    assert.equal(c['copied_out'], 4000);
    assert.equal(c['roundtrip'], true);
    assert.equal(c['bad_copy'], '22P02');
    assert.equal(c['count'], 4000);
  });

  test('SQLException 42P01, then continued use (autocommit and in a transaction)', (t) => {
    const c = result(t, 'error_then_continue');
    if (!c) return;
    assert.equal(c['state'], '42P01');
    assert.match(String(c['message']), /relation "jdbc_no_such_table" does not exist/);
    assert.equal(c['after'], 42);
    assert.equal(c['prepared_state'], '42P01');
    assert.equal(c['aborted'], '25P02');
    assert.equal(c['after_tx'], 7);
  });

  test('transactions: commit, rollback, savepoint, isolation level', (t) => {
    const c = result(t, 'transactions');
    if (!c) return;
    assert.deepEqual(c['ids'], [1, 2, 4]);
    assert.equal(c['isolation'], 'serializable');
  });

  test('Statement.cancel() and setQueryTimeout on pg_sleep(10) give 57014', (t) => {
    const c = result(t, 'cancel');
    if (!c) return;
    assert.equal(c['state'], '57014');
    assert.ok(Number(c['elapsed']) < 5, `cancel took ${c['elapsed']} s`);
    assert.equal(c['timeout_state'], '57014');
    assert.ok(Number(c['total']) < 8, `cancel + timeout took ${c['total']} s`);
    assert.equal(c['after'], 5);
  });

  test('DatabaseMetaData.getTables/getColumns/getPrimaryKeys, generated keys', (t) => {
    const c = result(t, 'metadata');
    if (!c) return;
    assert.ok((c['tables'] as string[]).includes('jdbc_meta'), String(c['tables']));
    assert.deepEqual(c['columns'], ['id:serial:0', 'label:varchar:0', 'amount:numeric:1']);
    assert.deepEqual(c['primary_key'], ['id']);
    assert.equal(c['generated_key'], 1);
    assert.equal(c['rsmd'], '3:varchar:2');
  });

  test('the program exits 0 and ran every check', (t) => {
    if (d.skipReason) {
      t.skip(d.skipReason);
      return;
    }
    const r = d.report;
    if (r) t.diagnostic(`driver ${String(r.driver)}; ms per check: ${Object.entries(r.checks).map(([k, v]) => `${k}=${String(v['ms'])}`).join(' ')}`);
    assert.equal(d.run?.code, 0, d.run ? describeResult(d.run) : 'not run');
    assert.equal(Object.keys(d.report?.checks ?? {}).length, 10);
  });

  test('afterwards every backend connection is back in the pool, none discarded as unclean', async (t) => {
    if (!px) {
      t.skip(d.skipReason);
      return;
    }
    const idle = await waitPoolsSettled(px);
    assert.ok(idle > 0, 'connections are cached for reuse');
    assert.deepEqual(poolCloseReasons(px), []);
  });
});
