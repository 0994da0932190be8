/**
 * The grammar of the differential transaction-pooling fuzzer: for a seed, a script per client
 * "slot" (one or more generations, each a fresh connection), each a list of steps of raw protocol
 * messages. The same script runs through pgmaitre and on private direct connections; only the
 * names of shared objects differ per side (`{t}` table, `{ch}` channel, `{k}` advisory key), so
 * the oracle has no cross-client data race. Session-private objects (temporary tables, prepared
 * statements, cursors, settings, portals) use the SAME names in every client: through a shared
 * server connection, anything one client leaves behind shows up in another's answers.
 *
 * Every step belongs to a named class (STEP_CLASSES) so a run can exclude a class that is known
 * to fail (see FUZZ_EXCLUDE in ./differential.ts and the list in the npm-test run).
 */
import { Rng } from '../frontend-fuzz';

/** One client→server message, or an interactive COPY FROM STDIN. */
export type Msg =
  | { readonly k: 'Q'; readonly sql: string }
  | { readonly k: 'P'; readonly name: string; readonly sql: string }
  | { readonly k: 'B'; readonly portal: string; readonly stmt: string; readonly params: readonly (string | null)[] }
  | { readonly k: 'D'; readonly kind: 'S' | 'P'; readonly name: string }
  | { readonly k: 'E'; readonly portal: string; readonly maxRows: number }
  | { readonly k: 'C'; readonly kind: 'S' | 'P'; readonly name: string }
  | { readonly k: 'S' }
  | { readonly k: 'H' }
  /** Query `sql` (a COPY ... FROM STDIN); on CopyInResponse send `rows` then CopyDone, or CopyFail when `fail`. */
  | { readonly k: 'copyIn'; readonly sql: string; readonly rows: readonly string[]; readonly fail: boolean };

/** What the runner does with a step. */
export type StepMode =
  | 'normal'
  /**
   * Send, wait until the backend sleeps (pg_stat_activity, by the step's {tag}), then cancel
   * (repeatedly, each cancel complete before the next) until the error arrives.
   */
  | 'cancel'
  /** Send, then close the socket at once: the client ends here (nothing compared for the step). */
  | 'disconnect'
  /** Send, send one CancelRequest, close at once (a cancel still in flight at disconnect). */
  | 'cancel-disconnect';

/** One step: messages sent together, then every answer they owe is read. */
export interface Step {
  readonly cls: StepClass;
  readonly msgs: readonly Msg[];
  readonly mode: StepMode;
}

/**
 * Step classes (the unit of exclusion), plus features that are not a class of their own:
 * 'redefine' = Parse or SQL PREPARE of a name that may still exist (PostgreSQL: 42P05); excluded,
 * the generator closes or skips such a name first.
 */
export const STEP_CLASSES = [
  'simple', 'write', 'tx', 'error', 'extended', 'unnamed', 'flush', 'sql-prepare', 'sql-prepare-comment', 'set', 'set-config',
  'listen', 'advisory', 'temp', 'cursor', 'copy', 'cancel', 'disconnect', 'cancel-disconnect', 'discard', 'probe',
  'redefine',
  // Drawn only with ScenarioOptions.pipelines (--pipelines), so the older seeds keep their scripts:
  // several Sync-ended batches sent at once (pgjdbc's executeBatch, libpq's and psycopg's pipeline
  // mode), an explicit transaction begun and ended through the extended protocol (pgjdbc with
  // autocommit off: its BEGIN Parse/Bind/Execute in front of the first statement's batch), a
  // statement described before it is bound (psycopg, pgjdbc's parameter types).
  'pipeline', 'extended-tx', 'describe-first',
] as const;
export type StepClass = (typeof STEP_CLASSES)[number];

/** A generation: one connection's steps (it ends with a close, or earlier by a disconnect step). */
export interface Generation {
  readonly steps: readonly Step[];
}

/** One client slot: generations run one after the other, sharing the slot's table, channel and key. */
export interface SlotScript {
  readonly slot: number;
  readonly generations: readonly Generation[];
}

/** A whole run. */
export interface Scenario {
  readonly seed: number;
  readonly poolSize: number;
  readonly slots: readonly SlotScript[];
}

/** Sizes of a scenario. */
export interface ScenarioOptions {
  readonly clients: number;
  readonly generations: number;
  readonly steps: number;
  readonly exclude?: ReadonlySet<string>;
  /** default_pool_size for every seed (1 widens the timing: every client waits for the one connection); else 1-3 from the seed. */
  readonly poolSize?: number;
  /** Also draw the classes real drivers' pipelines need ('pipeline', 'extended-tx', 'describe-first'): other scripts per seed. */
  readonly pipelines?: boolean;
}

/** Statement texts shared by all clients (so pgmaitre's statement cache is shared), with their arity. */
const TEXTS: readonly { sql: string; n: number; param?: () => string }[] = [
  { sql: 'SELECT $1::int + 1 AS n', n: 1 },
  { sql: "SELECT $1::text || 'x' AS s", n: 1 },
  { sql: 'SELECT g FROM generate_series(1, 5) g', n: 0 },
  { sql: 'SELECT count(*)::int AS c FROM {t}', n: 0 },
  { sql: 'INSERT INTO {t} VALUES ($1::int)', n: 1 },
  { sql: 'DELETE FROM {t} WHERE v = $1::int', n: 1 },
  { sql: 'SELECT 10 / $1::int AS q', n: 1 },
  { sql: 'SELECT * FROM fz_missing_table', n: 0 },
  { sql: 'SHOW work_mem', n: 0 },
  { sql: "SET work_mem = '4MB'", n: 0 },
  { sql: 'SELECT v FROM {t} ORDER BY v', n: 0 },
  { sql: "SELECT current_setting('search_path') AS p", n: 0 },
];

/** Probes: answers that depend only on the client's own session (what a leak would change). */
export const PROBE_SQL =
  "SELECT current_setting('work_mem') AS wm, current_setting('search_path') AS sp, current_setting('application_name') AS an, "
  + "current_setting('statement_timeout') AS st, to_regclass('pg_temp.fz_tmp') IS NOT NULL AS tmp, "
  + '(SELECT count(*) FROM pg_cursors)::int AS curs, (SELECT count(*) FROM pg_listening_channels())::int AS lis, '
  + "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())::int AS locks";

const STMT_NAMES = ['s1', 's2', 'fz_stmt', ''];
const PORTALS = ['', 'p1'];
const COMMENTS = ['/* app */ ', '-- c\n', '/* a */ /* b */ '];

const q = (sql: string): Msg => ({ k: 'Q', sql });
const step = (cls: StepClass, msgs: Msg[], mode: StepMode = 'normal'): Step => ({ cls, msgs, mode });

/** Generates one client's generation, tracking just enough session state to keep it meaningful. */
class ClientGen {
  private readonly arity = new Map<string, number>();
  /** SQL PREPAREd names (conservative: only a DEALLOCATE by this generator removes one). */
  private readonly sqlNames = new Set<string>();
  private unsynced = false;
  private inTx = false;
  constructor(private readonly rng: Rng, private readonly exclude: ReadonlySet<string>, private readonly pipelines = false) {}

  generation(n: number, first: boolean, successor: boolean): Generation {
    const steps: Step[] = [];
    // A successor first checks the slot's advisory key is free: this waits out the previous
    // connection's exit on the oracle, and finds a lock a shared connection kept.
    if (successor && !this.exclude.has('advisory')) {
      steps.push(step('advisory', [q("BEGIN; SET LOCAL lock_timeout = '5s'; SELECT pg_advisory_lock({k}); SELECT pg_advisory_unlock({k}); COMMIT")]));
    }
    if (!first || successor) steps.push(step('probe', [q(PROBE_SQL)]));
    let guard = 0;
    while (steps.length < n && guard++ < n * 20) {
      const s = this.any();
      if (s === null || this.exclude.has(s.cls)) continue;
      steps.push(s);
      this.track(s);
      if (s.mode === 'disconnect' || s.mode === 'cancel-disconnect') return { steps };
    }
    // end cleanly: sync what is pending; a probe shows the session state at the end
    if (this.unsynced) steps.push(step('extended', [{ k: 'S' }]));
    if (this.rng.int(2) === 0) steps.push(step('probe', [q(PROBE_SQL)]));
    return { steps };
  }

  private track(s: Step): void {
    for (const m of s.msgs) {
      if (m.k === 'S' || m.k === 'Q' || m.k === 'copyIn') this.unsynced = false;
      else if (m.k !== 'H') this.unsynced = true;
      if (m.k === 'Q' || m.k === 'P') {
        const t = m.sql.toUpperCase();
        if (/\b(BEGIN|START TRANSACTION)\b/.test(t) && !/\bCOMMIT\b|\bROLLBACK\b/.test(t.slice(t.lastIndexOf('BEGIN')))) this.inTx = true;
        if (/^(COMMIT|ROLLBACK|END)\b/.test(t.trim()) || /;\s*(COMMIT|ROLLBACK)\s*$/.test(t)) this.inTx = false;
      }
    }
  }

  private text(): { sql: string; n: number } {
    return this.rng.pick(TEXTS);
  }

  private params(n: number): string[] {
    return Array.from({ length: n }, () => String(this.rng.pick([0, 1, 2, 3, 7, 42])));
  }

  /** One random step; null when it does not fit the current state. */
  private any(): Step | null {
    const r = this.rng;
    // while an extended pipeline is open without Sync, only extended messages may follow
    if (this.unsynced) return this.rng.int(3) === 0 ? this.disconnect() : this.extended(r.int(2) === 0);
    // (Drawn only then: without it the random stream, and so every older seed's script, is unchanged.)
    if (this.pipelines && r.int(4) === 0) {
      switch (r.int(3)) {
        case 0: return this.pipeline();
        case 1: return this.extendedTx();
        default: return this.describeFirst();
      }
    }
    switch (r.int(22)) {
      case 0: case 1: return step('simple', [q(r.pick(['SELECT 1 AS one', "SELECT 'a' || 'b' AS ab", 'SELECT count(*)::int AS c FROM {t}', 'SELECT v FROM {t} ORDER BY v', 'SELECT 1; SELECT 2', '']))]);
      case 2: return step('write', [q(r.pick(['INSERT INTO {t} VALUES (' + r.int(10) + ')', 'UPDATE {t} SET v = v + 1 WHERE v < 3', 'DELETE FROM {t} WHERE v > 8', 'INSERT INTO {t} SELECT g FROM generate_series(1, 3) g']))]);
      case 3: return this.tx();
      case 4: return this.error();
      case 5: case 6: case 7: return this.extended(true);
      case 8: return this.extended(false);
      case 9: return this.sqlPrepare();
      case 10: return this.set();
      case 11: return this.setConfig();
      case 12: return this.listen();
      case 13: return this.advisory();
      case 14: return this.temp();
      case 15: return this.cursor();
      case 16: return this.copy();
      case 17: return this.cancel();
      case 18: return r.int(3) === 0 ? this.disconnect() : step('probe', [q(PROBE_SQL)]);
      case 19: return step('discard', [q(r.pick(['DISCARD ALL', 'DEALLOCATE ALL', 'DISCARD TEMP', 'RESET ALL']))]);
      case 20: return this.unnamed();
      default: return step('probe', [q(PROBE_SQL)]);
    }
  }

  private tx(): Step {
    const r = this.rng;
    if (this.inTx) return step('tx', [q(r.pick(['COMMIT', 'ROLLBACK', 'SAVEPOINT sp1', 'ROLLBACK TO SAVEPOINT sp1', 'RELEASE SAVEPOINT sp1', 'SELECT 1/0', 'INSERT INTO {t} VALUES (5)']))]);
    return step('tx', [q(r.pick(['BEGIN', 'BEGIN ISOLATION LEVEL REPEATABLE READ', 'START TRANSACTION', 'BEGIN; INSERT INTO {t} VALUES (1); COMMIT', 'BEGIN; SELECT 1/0; COMMIT']))]);
  }

  private error(): Step {
    const r = this.rng;
    const sql = r.pick(['SELECT 1/0', 'SELECT * FROM fz_missing_table', 'SELEC 1', "SELECT 'x'::int", 'INSERT INTO {t} VALUES (1); SELECT 1/0; INSERT INTO {t} VALUES (2)']);
    if (this.inTx || r.int(3) > 0) return step('error', [q(sql)]);
    // an error inside a transaction, then a Parse in the aborted transaction (25P02), then ROLLBACK
    const t = this.text();
    const name = r.pick(['s1', 's2', 'fz_stmt']);
    this.arity.set(name, t.n);
    return step('error', [q('BEGIN'), q(sql), { k: 'P', name, sql: t.sql }, { k: 'B', portal: '', stmt: name, params: this.params(t.n) }, { k: 'E', portal: '', maxRows: 0 }, { k: 'S' }, q('ROLLBACK')]);
  }

  /** A pipeline of Parse/Bind/Describe/Execute/Close, ended by Sync or by Flush (answers read, Sync later). */
  private extended(sync: boolean): Step {
    const r = this.rng;
    const msgs: Msg[] = [];
    const units = 1 + r.int(3);
    for (let u = 0; u < units; u++) {
      const name = r.pick(STMT_NAMES);
      if (r.int(3) > 0 || !this.arity.has(name)) {
        const t = this.text();
        // without 'redefine', a named statement is always closed before it is parsed (a Close
        // skipped after an error leaves a name this generator cannot know about)
        if (name !== '' && this.exclude.has('redefine')) msgs.push({ k: 'C', kind: 'S', name });
        this.arity.set(name, t.n);
        msgs.push({ k: 'P', name, sql: t.sql });
      }
      if (r.int(4) === 0) msgs.push({ k: 'D', kind: 'S', name });
      if (r.int(5) === 0) { msgs.push({ k: 'C', kind: 'S', name }); this.arity.delete(name); continue; }
      const portal = r.pick(PORTALS);
      const n = this.arity.get(name) ?? 0;
      msgs.push({ k: 'B', portal, stmt: name, params: this.params(r.int(12) === 0 ? n + 1 : n) });
      if (r.int(3) === 0) msgs.push({ k: 'D', kind: 'P', name: portal });
      const suspend = r.int(4) === 0;
      msgs.push({ k: 'E', portal, maxRows: suspend ? 2 : 0 });
      if (suspend) msgs.push({ k: 'E', portal, maxRows: 0 });
      if (portal !== '' && r.int(2) === 0) msgs.push({ k: 'C', kind: 'P', name: portal });
    }
    msgs.push(sync ? { k: 'S' } : { k: 'H' });
    return step(sync ? 'extended' : 'flush', msgs);
  }

  /**
   * 2-4 batches, each ended by Sync, sent at once (a driver's pipeline): an error in one skips to
   * its own Sync only, the batches after it run.
   */
  private pipeline(): Step {
    const r = this.rng;
    const msgs: Msg[] = [];
    const batches = 2 + r.int(3);
    for (let i = 0; i < batches; i++) {
      const name = r.pick(STMT_NAMES);
      const t = this.text();
      if (name !== '' && this.exclude.has('redefine')) msgs.push({ k: 'C', kind: 'S', name });
      this.arity.set(name, t.n);
      msgs.push({ k: 'P', name, sql: t.sql });
      msgs.push({ k: 'B', portal: '', stmt: name, params: this.params(t.n) });
      if (r.int(2) === 0) msgs.push({ k: 'D', kind: 'P', name: '' });
      msgs.push({ k: 'E', portal: '', maxRows: 0 });
      msgs.push({ k: 'S' });
    }
    return step('pipeline', msgs);
  }

  /**
   * pgjdbc with autocommit off: BEGIN as Parse/Bind/Execute of the unnamed statement in front of
   * the first statement, one batch; inside the transaction, the end the same way (or any step).
   */
  private extendedTx(): Step {
    const r = this.rng;
    const ext = (sql: string): Msg[] => [{ k: 'P', name: '', sql }, { k: 'B', portal: '', stmt: '', params: [] }, { k: 'E', portal: '', maxRows: 0 }];
    if (this.inTx) return step('extended-tx', [...ext(r.pick(['COMMIT', 'ROLLBACK', 'COMMIT', 'SAVEPOINT sp1'])), { k: 'S' }]);
    const t = this.text();
    const name = r.pick(['s1', 's2', 'fz_stmt']);
    const msgs: Msg[] = [...ext('BEGIN')];
    if (this.exclude.has('redefine')) msgs.push({ k: 'C', kind: 'S', name });
    this.arity.set(name, t.n);
    msgs.push({ k: 'P', name, sql: t.sql }, { k: 'B', portal: '', stmt: name, params: this.params(t.n) }, { k: 'D', kind: 'P', name: '' }, { k: 'E', portal: '', maxRows: 0 });
    // Sometimes the whole transaction in the one pipeline (a batch per statement, COMMIT last).
    if (r.int(3) === 0) msgs.push({ k: 'S' }, { k: 'B', portal: '', stmt: name, params: this.params(t.n) }, { k: 'E', portal: '', maxRows: 0 }, { k: 'S' }, ...ext('COMMIT'));
    msgs.push({ k: 'S' });
    return step('extended-tx', msgs);
  }

  /** A statement parsed and described (its parameter types) in one batch, bound and run in the next. */
  private describeFirst(): Step {
    const r = this.rng;
    const name = r.pick(STMT_NAMES);
    const t = this.text();
    const msgs: Msg[] = [];
    if (name !== '' && this.exclude.has('redefine')) msgs.push({ k: 'C', kind: 'S', name });
    this.arity.set(name, t.n);
    msgs.push({ k: 'P', name, sql: t.sql }, { k: 'D', kind: 'S', name }, { k: 'S' },
      { k: 'B', portal: '', stmt: name, params: this.params(t.n) }, { k: 'E', portal: '', maxRows: 0 }, { k: 'S' });
    return step('describe-first', msgs);
  }

  /** The unnamed statement parsed and synced, then bound in a later request (another lease). */
  private unnamed(): Step {
    const t = this.text();
    this.arity.set('', t.n);
    return step('unnamed', [{ k: 'P', name: '', sql: t.sql }, { k: 'S' }, { k: 'B', portal: '', stmt: '', params: this.params(t.n) }, { k: 'D', kind: 'P', name: '' }, { k: 'E', portal: '', maxRows: 0 }, { k: 'S' }]);
  }

  private sqlPrepare(): Step {
    const r = this.rng;
    const withComment = r.int(2) === 0;
    const c = withComment ? r.pick(COMMENTS) : '';
    const name = r.pick(['p', 'fz_p']);
    let sql = r.pick([
      `${c}PREPARE ${name}(int) AS SELECT $1 * 10 AS v`,
      `${c}PREPARE ${name} AS SELECT count(*)::int AS c FROM {t}`,
      `${c}EXECUTE ${name}(${r.int(5)})`,
      `${c}EXECUTE ${name}`,
      `${c}DEALLOCATE ${name}`,
      `${c}DEALLOCATE PREPARE ${name}`,
      `${c}DEALLOCATE ALL`,
      `${c}PREPARE ${name}(int) AS SELECT $1 * 10 AS v; ${c}EXECUTE ${name}(3)`,
    ]);
    // without 'redefine', a name that may be prepared is not PREPAREd again (EXECUTE instead)
    if (/PREPARE \w+(\(int\))? AS/.test(sql)) {
      if (this.exclude.has('redefine') && this.sqlNames.has(name)) sql = `${c}EXECUTE ${name}(1)`;
      else this.sqlNames.add(name);
    } else if (!this.inTx && /DEALLOCATE ALL/.test(sql)) this.sqlNames.clear();
    else if (!this.inTx && /DEALLOCATE/.test(sql)) this.sqlNames.delete(name);
    return step(withComment ? 'sql-prepare-comment' : 'sql-prepare', [q(sql)]);
  }

  private set(): Step {
    const r = this.rng;
    return step('set', [q(r.pick([
      `SET work_mem = '${r.pick(['1MB', '2MB', '8MB'])}'`, 'RESET work_mem', "SET search_path = fz_none, public", 'RESET search_path',
      "SET application_name = 'fz_app'", 'RESET application_name', "SET statement_timeout = '11s'", 'RESET ALL', 'SHOW work_mem',
      "BEGIN; SET LOCAL work_mem = '3MB'; SHOW work_mem; COMMIT", "SET SESSION work_mem = '5MB'", 'SET work_mem TO DEFAULT',
    ]))]);
  }

  private setConfig(): Step {
    const r = this.rng;
    return step('set-config', [q(r.pick([
      "SELECT set_config('work_mem', '6MB', false) AS v", "SELECT set_config('work_mem', '7MB', true) AS v",
      "SELECT set_config('statement_timeout', '12s', false) AS v",
      "DO $$BEGIN PERFORM set_config('work_mem', '9MB', false); END$$",
      "DO $$BEGIN SET search_path = fz_do, public; END$$",
      "BEGIN; SELECT set_config('work_mem', '10MB', false) AS v; COMMIT",
    ]))]);
  }

  private listen(): Step {
    const r = this.rng;
    return step('listen', [q(r.pick([
      'LISTEN {ch}', 'UNLISTEN {ch}', 'UNLISTEN *', "NOTIFY {ch}, 'hi'", "SELECT pg_notify('{ch}', 'fn') AS n",
      "LISTEN {ch}; NOTIFY {ch}, 'self'", "BEGIN; NOTIFY {ch}, 'tx'; COMMIT", 'SELECT count(*)::int AS n FROM pg_listening_channels()',
    ]))]);
  }

  private advisory(): Step {
    const r = this.rng;
    return step('advisory', [q(r.pick([
      'SELECT pg_advisory_lock({k})', 'SELECT pg_advisory_unlock({k}) AS u', 'SELECT pg_advisory_unlock_all()',
      'SELECT pg_advisory_lock({k}), pg_advisory_lock({k2})', 'SELECT pg_advisory_unlock({k2}) AS u',
      'BEGIN; SELECT pg_advisory_xact_lock({k}); COMMIT', 'SELECT pg_try_advisory_xact_lock({k2}) AS t',
      "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
    ]))]);
  }

  private temp(): Step {
    const r = this.rng;
    return step('temp', [q(r.pick([
      'CREATE TEMP TABLE fz_tmp (x int)', 'INSERT INTO fz_tmp VALUES (1)', 'SELECT count(*)::int AS n FROM fz_tmp', 'DROP TABLE fz_tmp',
      'DROP TABLE IF EXISTS fz_tmp', 'BEGIN; CREATE TEMP TABLE fz_tmp2 (x int) ON COMMIT DROP; INSERT INTO fz_tmp2 VALUES (1); COMMIT',
      "SELECT to_regclass('pg_temp.fz_tmp') IS NOT NULL AS e", 'CREATE TEMP TABLE IF NOT EXISTS fz_tmp (x int)',
    ]))]);
  }

  private cursor(): Step {
    const r = this.rng;
    return step('cursor', [q(r.pick([
      'DECLARE fz_cur CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 5) g', 'FETCH 2 FROM fz_cur', 'CLOSE fz_cur', 'CLOSE ALL',
      'BEGIN; DECLARE fz_c2 CURSOR FOR SELECT 1; FETCH ALL FROM fz_c2; COMMIT', 'SELECT count(*)::int AS n FROM pg_cursors',
    ]))]);
  }

  private copy(): Step {
    const r = this.rng;
    switch (r.int(5)) {
      case 0: return step('copy', [{ k: 'copyIn', sql: 'COPY {t} FROM STDIN', rows: ['1\n', '2\n', '3\n'], fail: false }]);
      case 1: return step('copy', [{ k: 'copyIn', sql: 'COPY {t} FROM STDIN', rows: ['4\n'], fail: true }]);
      case 2: return step('copy', [{ k: 'copyIn', sql: 'COPY {t} FROM STDIN', rows: ['5\n', 'abc\n'], fail: false }]);
      case 3: return step('copy', [q('COPY (SELECT v FROM {t} ORDER BY v) TO STDOUT')]);
      default: return step('copy', [q('COPY (SELECT g FROM generate_series(1, 3) g) TO STDOUT WITH (FORMAT csv)')]);
    }
  }

  private cancel(): Step {
    const r = this.rng;
    // {tag} lets the runner see the sleep running in pg_stat_activity before it cancels
    return step('cancel', [q(r.pick(['SELECT pg_sleep(20) /* {tag} */', 'BEGIN; SELECT pg_sleep(20) /* {tag} */; COMMIT']))], 'cancel');
  }

  /** Disconnects at some point: with nothing pending, inside a transaction, mid-pipeline, mid-COPY. */
  private disconnect(): Step {
    const r = this.rng;
    if (r.int(4) === 0) return step('cancel-disconnect', [q('SELECT pg_sleep(3)')], 'cancel-disconnect');
    const msgs = r.pick<Msg[]>([
      [],
      [q('BEGIN')],
      [q('BEGIN'), q('INSERT INTO {t} VALUES (99)')],
      [{ k: 'P', name: 's1', sql: 'INSERT INTO {t} VALUES ($1::int)' }, { k: 'B', portal: '', stmt: 's1', params: ['98'] }, { k: 'E', portal: '', maxRows: 0 }],
      [q('SELECT pg_advisory_lock({k})')],
      [q('LISTEN {ch}')],
      [q('CREATE TEMP TABLE fz_tmp (x int)')],
      [q('DECLARE fz_cur CURSOR WITH HOLD FOR SELECT 1')],
      [q("SET work_mem = '12MB'")],
      [q('COPY {t} FROM STDIN')],
    ]);
    return step('disconnect', msgs, 'disconnect');
  }
}

/** Builds the scenario of a seed. */
export function generateScenario(seed: number, o: ScenarioOptions): Scenario {
  const rng = new Rng(seed);
  const exclude = o.exclude ?? new Set<string>();
  const drawn = 1 + rng.int(3); // (drawn even when overridden: the scripts stay those of the seed)
  const poolSize = o.poolSize ?? drawn;
  const slots: SlotScript[] = [];
  for (let i = 0; i < o.clients; i++) {
    const gens: Generation[] = [];
    const ng = 1 + rng.int(o.generations);
    for (let g = 0; g < ng; g++) {
      const gen = new ClientGen(new Rng(rng.int(2 ** 31)), exclude, o.pipelines === true);
      gens.push(gen.generation(2 + rng.int(o.steps), g === 0, g > 0));
    }
    slots.push({ slot: i, generations: gens });
  }
  return { seed, poolSize, slots };
}

/** A message as text (for reports). */
export function describeMsg(m: Msg): string {
  switch (m.k) {
    case 'Q': return `Query ${JSON.stringify(m.sql)}`;
    case 'P': return `Parse ${JSON.stringify(m.name)} ${JSON.stringify(m.sql)}`;
    case 'B': return `Bind portal=${JSON.stringify(m.portal)} stmt=${JSON.stringify(m.stmt)} ${JSON.stringify(m.params)}`;
    case 'D': return `Describe ${m.kind} ${JSON.stringify(m.name)}`;
    case 'E': return `Execute ${JSON.stringify(m.portal)}${m.maxRows ? ` max ${m.maxRows}` : ''}`;
    case 'C': return `Close ${m.kind} ${JSON.stringify(m.name)}`;
    case 'S': return 'Sync';
    case 'H': return 'Flush';
    case 'copyIn': return `Query ${JSON.stringify(m.sql)} + ${m.fail ? 'CopyFail' : `${m.rows.length} CopyData + CopyDone`}`;
  }
}

/** A step as text. */
export function describeStep(s: Step): string {
  return `[${s.cls}${s.mode === 'normal' ? '' : ` ${s.mode}`}] ${s.msgs.map(describeMsg).join('; ') || '(nothing)'}`;
}
