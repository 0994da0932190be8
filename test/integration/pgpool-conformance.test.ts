/**
 * pgpool-II's own extended-query conformance transcripts (src/test/extended-query-test, kept in
 * ../shared/conformance/pgpool-extended-query beside the clone; see its README) run against
 * pgmaitre with pgproto: for each transcript, pgmaitre is started with the pgpool.conf settings
 * its `##` lines ask for, pgproto's output is compared line by line with pgpool's recorded one,
 * and the node each matching statement ran on (from pgmaitre's log_per_node_statement lines) is
 * compared with the README's table.
 *
 * Where pgmaitre deliberately differs, the expectation says so in CASES below instead of the
 * comparison being loosened. The main one: pgmaitre routes a request (the frames up to Sync,
 * Query or Flush) to one node as a whole, where pgpool-II routes each Parse/Bind/Execute; and a
 * request holding transaction control (BEGIN/COMMIT) goes to the primary. pgproto sends a whole
 * batch up to 'S' as one request, so in the extended-protocol transcripts a batch with a BEGIN
 * runs on the primary and logs one line per statement (not per message). The simple-query
 * transcripts route statement by statement, as pgpool does, and match its table exactly.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { withCluster, REPO_ROOT } from '../harness/cluster';
import { backendLines, startInProcess } from '../harness/in-process';
import { findPgproto, normaliseTranscript, nodeStatements, runPgproto, transcriptSettings } from '../harness/pgproto';

const DATA = path.join(REPO_ROOT, '..', 'shared', 'conformance', 'pgpool-extended-query');
const PGPROTO = findPgproto();
const SKIP = !fs.existsSync(path.join(DATA, 'tests')) ? `pgpool transcripts not found at ${DATA}`
  : PGPROTO === null ? 'pgproto not installed (Debian package pgpool2)' : false;

/**
 * What every transcript runs with, before its own `##` lines (later lines win):
 * - weights 1:1 as pgpool_setup's cluster had; the transcripts that care set their own;
 * - write_function_list = 'currval,lastval,nextval,setval': pgpool_setup copied
 *   pgpool.conf.sample-stream, which set it then. It matters for the white-function transcript:
 *   with a function list set, f1 (VOLATILE, not listed) is a read, with none pgmaitre (like
 *   pgpool 4.2+) would look its volatility up and send it to the primary;
 * - load_balance_in_transaction = on: pgpool's behaviour (reads balanced in a transaction until
 *   its first write), which is opt-in in pgmaitre;
 * - log_per_node_statement = on: where each statement ran, read from the log;
 * - read_your_writes = off: pgpool has no read-your-writes (pgmaitre's default sends the reads that
 *   follow a write to the primary until a standby has replayed it).
 */
const BASE = [
  'read_your_writes = off',
  "sr_check_user = 'postgres'",
  'enable_pool_hba = off',
  "write_function_list = 'currval,lastval,nextval,setval'",
  'load_balance_in_transaction = on',
  'log_per_node_statement = on',
];

/** Node sequence of the log lines whose statement contains `match` (and not `exclude`). */
interface NodeCheck {
  readonly match: string;
  readonly exclude?: string;
  /** pgpool-II's sequence (README table), one entry per logged Parse/Execute. */
  readonly pgpool: string;
  /** pgmaitre's, when it differs, one entry per logged statement; with the reason. */
  readonly ours?: string;
  readonly why?: string;
}

interface Case {
  readonly skip?: string;
  readonly nodes?: readonly NodeCheck[];
  /** A deliberate difference in the transcript itself: maps pgpool's expected lines to ours. */
  readonly transcript?: (expected: string[]) => string[];
  readonly transcriptWhy?: string;
}

const WHOLE_REQUEST = 'pgmaitre routes the batch up to Sync as one request (to the primary when it holds BEGIN, COMMIT '
  + 'or a write) and logs each statement once; pgpool routes and logs each Parse/Execute';

const CASES: Record<string, Case> = {
  'parse-before-bind.data': { nodes: [{ match: 'SELECT 1', pgpool: '1 0 0', ours: '0', why: WHOLE_REQUEST }] },
  'parse-before-bind-2.data': { nodes: [{ match: 'SELECT 1', pgpool: '1 0 0', ours: '0', why: WHOLE_REQUEST }] },
  // Lines matching SELECT include CREATE FUNCTION f1 ... 'SELECT $1' (on the primary).
  'disable-load-balance.data': { nodes: [{ match: 'SELECT', pgpool: '1 0 0 0 0 1 1 0 0 0 0', ours: '0 0 1 0', why: WHOLE_REQUEST }] },
  'disable-load-balance-default.data': { nodes: [{ match: 'SELECT', pgpool: '1 0 0 0 0 1 1 0 1 1', ours: '0 0 1 0', why: WHOLE_REQUEST }] },
  'disable-load-balance-default-simple.data': { nodes: [{ match: 'SELECT', pgpool: '1 0 1 1' }] },
  'disable-load-balance-simple.data': { nodes: [{ match: 'SELECT', pgpool: '1 0 1 0' }] },
  'disable-load-balance-off.data': {
    nodes: [{ match: 'SELECT', pgpool: '1 1 1 1 1 1 1 1 1 1 1 1 1 1', ours: '0 0 1 0 1 1 1 1', why: `${WHOLE_REQUEST}; the simple-query half matches` }],
  },
  'disable-load-balance-always.data': {
    nodes: [{
      match: 'SELECT', pgpool: '1 0 0 0 0 0 0 0 0 0 0 0 0 0', ours: '0 0 1 0 1 1 1 1',
      why: `${WHOLE_REQUEST}; and the transcript's "write" is SET debug_print_parse = off, which pgpool counts as a write `
        + 'while pgmaitre treats SET as session state (sent to every node, not a write), so later reads stay balanced',
    }],
  },
  'disable-load-balance-default-black-function.data': {
    nodes: [{ match: 'SELECT', pgpool: '0 1 0 0 0 0 0 0 1 1 0 1 1', ours: '0 0 0 0 1 0', why: WHOLE_REQUEST }],
  },
  'disable-load-balance-off-black-function.data': {
    nodes: [{ match: 'SELECT', pgpool: '0 1 0 0 1 1 1 1 1 1 1 1 1', ours: '0 0 0 0 1 0', why: WHOLE_REQUEST }],
  },
  'disable-load-balance-always-black-function.data': { nodes: [{ match: 'SELECT', pgpool: '0 0 0 0 0 0 0 0 0 0 0 0', ours: '0 0 0 0 0 0', why: WHOLE_REQUEST }] },
  'disable-load-balance-simple-black-function.data': { nodes: [{ match: 'SELECT', pgpool: '0 1 0 0 1 1' }] },
  'disable-load-balance-trans-black-function.data': {
    nodes: [{ match: 'SELECT', pgpool: '0 1 0 0 0 0 0 0 1 1 0 0 0', ours: '0 0 0 0 1 0', why: WHOLE_REQUEST }],
  },
  'disable-load-balance-white-function.data': {
    nodes: [{ match: 'SELECT', exclude: 'pg_sleep', pgpool: '0 1 1 1 1 1 1 1 1 1 1 1 1 1', ours: '0 0 0 0 1 0', why: WHOLE_REQUEST }],
  },
  'statement_level_load_balance.data': {
    nodes: [
      { match: 'BEGIN', pgpool: '0 1 2 0 1 2', ours: '0', why: `${WHOLE_REQUEST}; pgpool also sends BEGIN/COMMIT to every node, pgmaitre only to the nodes a session holds` },
      { match: 'COMMIT', pgpool: '0 1 2 0 1 2', ours: '0', why: WHOLE_REQUEST },
    ],
  },
  'unable_to_bind.data': {
    // pgpool cannot find the Parse of "S1" (never sent) and ends the session with its own FATAL.
    // pgmaitre forwards the Bind, so the client gets PostgreSQL's own answer, as it would without
    // a middleware: ParseComplete for BEGIN, 26000 for the Bind, the rest skipped up to Sync;
    // the session lives on and the transcript runs to its end.
    transcriptWhy: 'PostgreSQL\'s answer instead of pgpool\'s FATAL "unable to bind"',
    transcript: (expected) => [
      ...expected.slice(0, expected.findIndex((l) => l.includes('unable to bind'))),
      '<= BE ParseComplete',
      '<= BE ErrorResponse(S ERROR V ERROR C 26000 M prepared statement "S1" does not exist F xxx L xxx R xxx )',
      '<= BE ReadyForQuery(I)',
      'FE=> Query (query="DROP TABLE pgproto_test1")',
      '<= BE CommandComplete(DROP TABLE)',
      '<= BE ReadyForQuery(I)',
      'FE=> Terminate',
    ],
  },
  // memory_cache_enabled = on (their ## line): the second 'SELECT * FROM pgproto_test1' is answered
  // from the cache (it runs on a backend once); the extended-protocol batches, several statements
  // up to one Sync, are not a shape the cache answers and run as they are.
  'query-cache.data': { nodes: [{ match: 'SELECT * FROM pgproto_test1', pgpool: '1', ours: '0', why: 'the first run fills the cache and runs on the primary (the cache is filled from the primary only); the second is a hit' }] },
  'query-cache-notrans.data': {},
};

/** The transcripts: [directory, file name], tests_n3 needing three nodes. */
function transcripts(): [string, string][] {
  if (SKIP !== false) return [];
  return ['tests', 'tests_n3'].flatMap((d) => fs.existsSync(path.join(DATA, d))
    ? fs.readdirSync(path.join(DATA, d)).filter((f) => f.endsWith('.data')).sort().map((f): [string, string] => [d, f])
    : []);
}

/**
 * pgproto's 'z' (read whatever arrives, used by flush.data after each Flush) is newer than the
 * pgproto Debian ships, which prints "Unknown kind: z" and reads nothing. 'y' reads the same way
 * (until nothing arrives for a while), so the input is rewritten for the older tool.
 *
 * disable-load-balance-white-function.data waits `SELECT pg_sleep(5)` after its CREATE FUNCTION f1
 * (time for the standbys to replay it, should pgpool send f1 to one). pgmaitre runs every
 * statement calling f1 on the primary (a batch holding BEGIN: the node checks in CASES say so),
 * so it waits pg_sleep(0) (shorterSleep, applied to the input and to the recorded transcript alike:
 * the same answers, a void row either way), 5 s less; a routing mistake that sent f1 to a standby
 * would now also fail on the missing function.
 */
function inputFor(file: string, tmp: string): string {
  const text = fs.readFileSync(file, 'utf8');
  if (!/^'z'/m.test(text) && shorterSleep(text) === text) return file;
  const out = path.join(tmp, path.basename(file));
  fs.writeFileSync(out, shorterSleep(text.replace(/^'z'/gm, "'y'")));
  return out;
}

/** `SELECT pg_sleep(5)` becomes `SELECT pg_sleep(0)` (see inputFor). */
function shorterSleep(text: string): string {
  return text.replace(/SELECT pg_sleep\(5\)/g, 'SELECT pg_sleep(0)');
}

describe('pgpool-II extended-query transcripts through pgmaitre', { skip: SKIP, timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  let tmp = '';
  before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-pgproto-')); });
  after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

  for (const [dir, name] of transcripts()) {
    const spec = CASES[name] ?? {};
    test(`${dir}/${name}`, { skip: spec.skip ?? false, timeout: 30_000 }, async () => {
      const file = path.join(DATA, dir, name);
      const c = fx.cluster;
      const nodes = dir === 'tests_n3' ? c.nodes : c.nodes.slice(0, 2);
      // What the transcripts assume: none of their objects exist yet (their DROP ... IF EXISTS
      // NOTICEs are part of the expected output), on the primary and replayed on the standbys.
      await c.psql('primary', 'DROP TABLE IF EXISTS pgproto_test1; DROP FUNCTION IF EXISTS f1(integer)');
      await c.waitForReplay();
      const text = fs.readFileSync(file, 'utf8');
      const px = await startInProcess([backendLines({ nodes }, nodes.map(() => 1)), ...BASE, ...transcriptSettings(text)].join('\n'));
      try {
        const r = await runPgproto(PGPROTO!, px.port, inputFor(file, tmp), 20_000);
        assert.equal(r.signal, null, `pgproto was killed (hang?)\n${r.stderr}`);
        // pgproto writes its whole transcript (FE=> and <= BE lines) to stderr; pgpool's runner
        // captured 2>&1. stdout stays empty; it is kept in case a version writes there.
        const got = normaliseTranscript(r.stdout + r.stderr);
        const recorded = normaliseTranscript(shorterSleep(fs.readFileSync(path.join(DATA, 'expected', name), 'utf8')));
        const expected = spec.transcript ? spec.transcript(recorded) : recorded;
        assert.deepEqual(got, expected, spec.transcriptWhy);

        const log = nodeStatements(px.logs());
        for (const check of spec.nodes ?? []) {
          const seq = log.filter((s) => s.statement.includes(check.match) && !(check.exclude && s.statement.includes(check.exclude)))
            .map((s) => s.node).join(' ');
          assert.equal(seq, check.ours ?? check.pgpool, `nodes of "${check.match}" statements${check.why ? ` (differs from pgpool's ${check.pgpool}: ${check.why})` : ''}`);
        }
      } finally {
        await px.stop();
      }
    });
  }
});
