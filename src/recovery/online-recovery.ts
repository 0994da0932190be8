/**
 * Online recovery (pcp_recovery_node, pgpool-II's PCP request 'O'): rebuild a detached standby —
 * or the old primary after a failover — from the current primary, start it, and attach it, while
 * clients keep being served by the other nodes.
 *
 * The steps are pgpool-II's (src/pcp_con/recovery.c), so the scripts DBAs already have run unchanged:
 *   1. log in to the primary as recovery_user on recovery_database;
 *   2. `SET statement_timeout To 0`, then `SELECT pgpool_recovery('<recovery_1st_stage_command>',
 *      '<target host>', '<target data dir>', '<primary port>', <node id>, '<target port>',
 *      '<primary host>')`: the pgpool_recovery extension runs $PGDATA/<script> on the primary;
 *   3. `SELECT pgpool_remote_start('<target host>', '<target data dir>')` runs $PGDATA/pgpool_remote_start;
 *   4. wait (recovery_timeout) until the node accepts connections;
 *   5. ours: wait (recovery_timeout again) until its replay lag is within delay_threshold, and
 *      record that lag, so the node takes reads only once it has caught up;
 *   6. attach it (failback: failback_command, role probe) and re-measure replication.
 * With recovery_script_dir set, steps 2–3 run the same scripts with the same arguments from
 * pgmaitre's own host instead (local-scripts.ts): no C code on the database server.
 *
 * One recovery at a time. Refused: the primary, a node that is up, no primary to copy from. While a
 * node is being recovered the failover manager does not attach it on its own (health_check_rise,
 * auto_failback), SHOW POOL_NODES shows it as `recovering`, and every stage is logged and emitted
 * as an event (status page). On any failure the node stays down and the error (with the script's
 * last output lines when pgmaitre can read them) goes to the log and to the caller.
 *
 * auto_recovery = on: a node that stays down auto_recovery_delay seconds (not detached by an
 * admin) is recovered without anyone asking — at most one attempt per auto_recovery_delay per
 * node, doubling after each failure (up to an hour), and in an HA pair only by the instance
 * holding the etcd command lease.
 */
import { EventEmitter } from 'node:events';
import { Client } from 'pg';
import type { Config } from '../config/load';
import type { PoolPasswdEntry } from '../config/pool-passwd';
import type { Logger } from '../log/logger';
import { logLine } from '../log/logger';
import { type BackendNode, type Cluster, NodeStatus } from '../cluster/cluster';
import { errorText, withProbeClient, type Credentials } from '../health/probe';
import { isAlive, Reason } from '../failover/policy';
import { recoveryPassword, RecoveryPasswordError } from './credentials';
import { LocalScripts } from './local-scripts';

/** Where a recovery is. */
export const RecoveryStage = {
  Connecting: 'connecting',
  FirstStage: '1st_stage',
  RemoteStart: 'remote_start',
  WaitingForStart: 'waiting_for_start',
  CatchingUp: 'catching_up',
  Attaching: 'attaching',
} as const;
export type RecoveryStage = (typeof RecoveryStage)[keyof typeof RecoveryStage];

/** The recovery running now. */
export interface RecoveryProgress {
  readonly nodeId: number;
  readonly stage: RecoveryStage;
  readonly origin: 'admin' | 'auto';
  readonly method: 'extension' | 'local';
  readonly startedAt: Date;
}

/** An event for the status page: recovery_started, recovery_stage, recovery_done, recovery_failed. */
export interface RecoveryEvent {
  readonly kind: string;
  readonly nodeId: number;
  readonly message: string;
}

/** A refused or failed recovery; message/detail are what the pcp client prints (pgpool-II's wording). */
export class RecoveryError extends Error {
  constructor(message: string, readonly detail: string, readonly severity: 'ERROR' | 'FATAL' = 'ERROR') {
    super(message);
  }
}

/** The file the shipped scripts copy their messages to, in the primary's data directory. */
export const SCRIPT_LOG_FILE = 'pgmaitre_recovery.log';

/** What OnlineRecovery needs from the composition root. */
export interface OnlineRecoveryOptions {
  readonly cluster: Cluster;
  readonly log: Logger;
  readonly config: () => Config;
  readonly poolPasswd: () => ReadonlyMap<string, PoolPasswdEntry>;
  /** Attaches the node (the failover manager's failback). */
  readonly attach: (id: number) => Promise<string>;
  /** Keeps the failover manager from attaching the node on its own while it is being recovered. */
  readonly holdAttach: (id: number, hold: boolean) => void;
  /** Re-measures replication after the attach (optional). */
  readonly checkReplication?: () => Promise<unknown>;
  /** HA pair: auto_recovery runs only while this is true (undefined: always). */
  readonly leading?: () => boolean;
  /** Poll interval while waiting for the node (default 1000 ms). */
  readonly pollMs?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** pgpool-II passes 'localhost' for a node reached through a Unix socket directory. */
function hostArg(h: string): string {
  return h === '' || h.startsWith('/') ? 'localhost' : h;
}

/** The online recovery service; see the file header. */
export class OnlineRecovery extends EventEmitter<{ event: [RecoveryEvent] }> {
  private current: { nodeId: number; stage: RecoveryStage; origin: 'admin' | 'auto'; method: 'extension' | 'local'; startedAt: Date } | null = null;
  private readonly scripts: LocalScripts;
  private readonly abort = new AbortController();
  private autoTimer: NodeJS.Timeout | null = null;
  /** auto_recovery: per node, when it was last tried and how many tries in a row failed. */
  private readonly autoAttempts = new Map<number, { at: number; failures: number }>();
  private stopped = false;
  private running: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: OnlineRecoveryOptions) {
    super();
    this.scripts = new LocalScripts((script, line) => logLine(this.o.log, { event: 'recovery_script_output', script }, `${script}: ${line}`));
  }

  /** The recovery running now, or null. */
  progress(): RecoveryProgress | null {
    return this.current === null ? null : { ...this.current };
  }

  /** True while node `id` is being recovered. */
  isRecovering(id: number): boolean {
    return this.current?.nodeId === id;
  }

  /** Recovers node `id`; resolves when it is attached, rejects with a RecoveryError otherwise. */
  recover(id: number, origin: 'admin' | 'auto' = 'admin'): Promise<string> {
    const c = this.o.config();
    if (this.stopped) return this.refuse(id, new RecoveryError('process recovery request failed', 'pgmaitre is shutting down'));
    const cur = this.current;
    if (cur !== null) {
      return this.refuse(id, new RecoveryError('process recovery request failed',
        `pgmaitre is already processing another recovery request (node ${cur.nodeId}, ${cur.stage})`, 'FATAL'));
    }
    const n = this.o.cluster.node(id);
    if (n === undefined) return this.refuse(id, new RecoveryError('process recovery request failed', `node id ${id} is not valid`));
    const primary = this.o.cluster.primaryId();
    if (primary === id) return this.refuse(id, new RecoveryError('process recovery request failed', 'primary server cannot be recovered by online recovery.'));
    if (n.status === NodeStatus.Unused) return this.refuse(id, new RecoveryError(`node recovery failed, node id: ${id} is unused`, 'the node is not in use'));
    if (isAlive(n)) return this.refuse(id, new RecoveryError(`node recovery failed, node id: ${id} is alive`, `node ${id} is ${n.status}: detach it first (pcp_detach_node) if it must be rebuilt`));
    const p = primary >= 0 ? this.o.cluster.node(primary) : undefined;
    if (p === undefined) return this.refuse(id, new RecoveryError('node recovery failed', 'there is no primary node to recover from'));
    if (c.recovery_user === '') return this.refuse(id, new RecoveryError('node recovery failed', 'recovery_user is not set'));
    if (n.dataDirectory === '') return this.refuse(id, new RecoveryError('node recovery failed', `backend_data_directory${id} is not set: the scripts need the data directory of the node to rebuild`));
    const method = c.recovery_script_dir !== '' ? 'local' : 'extension';
    this.current = { nodeId: id, stage: RecoveryStage.Connecting, origin, method, startedAt: new Date() };
    this.o.holdAttach(id, true);
    this.emit('event', { kind: 'recovery_started', nodeId: id, message: `online recovery of node ${id} started (${origin === 'auto' ? 'auto_recovery' : 'admin request'}, ${method === 'local' ? `scripts run from ${c.recovery_script_dir}` : 'pgpool_recovery extension'})` });
    logLine(this.o.log, { event: 'recovery_started', node_id: id, primary_id: p.id, origin, method }, `starting recovering node ${id} from primary node ${p.id}`);
    const run = this.run(c, n, p, method).then((msg) => {
      logLine(this.o.log, { event: 'recovery_done', node_id: id, seconds: this.elapsed() }, `recovery done: node ${id} ${msg}`);
      this.emit('event', { kind: 'recovery_done', nodeId: id, message: `online recovery of node ${id} done in ${this.elapsed()} s: ${msg}` });
      return `node ${id} recovered and attached`;
    }, (e: unknown) => {
      const err = e instanceof RecoveryError ? e : new RecoveryError('node recovery failed', errorText(e));
      this.o.log.error({ event: 'recovery_failed', node_id: id, stage: this.current?.stage, err: err.message, detail: err.detail },
        `node recovery of node ${id} failed at ${this.current?.stage ?? '?'}: ${err.message}: ${err.detail}`);
      this.emit('event', { kind: 'recovery_failed', nodeId: id, message: `online recovery of node ${id} failed (${this.current?.stage ?? '?'}): ${err.message}: ${err.detail}; the node stays down` });
      throw err;
    }).finally(() => {
      this.current = null;
      this.o.holdAttach(id, false);
    });
    this.running = run.catch(() => undefined);
    return run;
  }

  /** A refused request: logged (pgpool-II logs it too), then the caller's rejection. */
  private refuse(id: number, e: RecoveryError): Promise<never> {
    this.o.log.warn({ event: 'recovery_refused', node_id: id, err: e.message, detail: e.detail }, `recovery request for node ${id} refused: ${e.message}: ${e.detail}`);
    return Promise.reject(e);
  }

  private elapsed(): number {
    return this.current === null ? 0 : Math.round((Date.now() - this.current.startedAt.getTime()) / 100) / 10;
  }

  private stage(stage: RecoveryStage, message: string): void {
    if (this.current === null) return;
    this.current.stage = stage;
    logLine(this.o.log, { event: 'recovery_stage', node_id: this.current.nodeId, stage }, `node recovery, node ${this.current.nodeId}: ${message}`);
    this.emit('event', { kind: 'recovery_stage', nodeId: this.current.nodeId, message: `node ${this.current.nodeId}: ${message}` });
  }

  private credentials(c: Config): Credentials {
    try {
      return { user: c.recovery_user, password: recoveryPassword(c.recovery_user, c.recovery_password, this.o.poolPasswd(), c.key_file), database: c.recovery_database || 'postgres' };
    } catch (e) {
      if (e instanceof RecoveryPasswordError) throw new RecoveryError(e.message, e.detail);
      throw e;
    }
  }

  private async run(c: Config, n: BackendNode, p: BackendNode, method: 'extension' | 'local'): Promise<string> {
    const cred = this.credentials(c);
    const args = {
      script: c.recovery_1st_stage_command, host: hostArg(n.host), dataDir: n.dataDirectory,
      primaryPort: String(p.port), id: n.id, port: String(n.port), primaryHost: hostArg(p.host),
    };
    if (method === 'local') await this.runLocal(c, p, args);
    else await this.runExtension(c, p, cred, args);
    const deadline = Date.now() + c.recovery_timeout * 1000;
    this.stage(RecoveryStage.WaitingForStart, `waiting up to ${c.recovery_timeout} s (recovery_timeout) for the node to accept connections`);
    await this.waitStarted(n, cred, deadline, c);
    logLine(this.o.log, { event: 'recovery_node_started', node_id: n.id }, `node recovery, node: ${n.id} restarted`);
    await this.catchUp(c, n, p, cred);
    this.stage(RecoveryStage.Attaching, 'attaching the node (failback)');
    const msg = await this.o.attach(n.id);
    void this.o.checkReplication?.().catch(() => undefined);
    return msg;
  }

  /** Steps 1–3 through the pgpool_recovery extension on the primary. */
  private async runExtension(c: Config, p: BackendNode, cred: Credentials, a: { script: string; host: string; dataDir: string; primaryPort: string; id: number; port: string; primaryHost: string }): Promise<void> {
    const client = new Client({
      host: p.host, port: p.port, user: cred.user, database: cred.database, application_name: 'pgmaitre recovery',
      ...(cred.password !== '' ? { password: cred.password } : {}),
      connectionTimeoutMillis: c.connect_timeout > 0 ? c.connect_timeout : 0,
    });
    client.on('error', () => undefined); // a connection lost mid-query also rejects that query
    const onAbort = (): void => { void client.end().catch(() => undefined); };
    this.abort.signal.addEventListener('abort', onAbort);
    try {
      try {
        await client.connect();
      } catch (e) {
        throw new RecoveryError(`node recovery failed, unable to connect to main node: ${p.id}`, `${cred.user}@${p.host}:${p.port}/${cred.database}: ${errorText(e)}`);
      }
      const has = (await client.query<{ rec: boolean; start: boolean; any: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'pgpool_recovery' AND pronargs = 7) AS rec,
                EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'pgpool_remote_start') AS start,
                EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'pgpool_recovery') AS any`)).rows[0];
      if (has === undefined || !has.rec || !has.start) {
        const what = has?.any === true
          ? `the pgpool_recovery extension in database "${cred.database}" on the primary (node ${p.id}) is too old (no 7-argument pgpool_recovery): run ALTER EXTENSION pgpool_recovery UPDATE there`
          : `the pgpool_recovery extension is not installed in database "${cred.database}" on the primary (node ${p.id}): run CREATE EXTENSION pgpool_recovery there (Debian/Ubuntu package postgresql-<version>-pgpool2)`;
        throw new RecoveryError('node recovery failed, the pgpool_recovery extension is missing',
          `${what}, or set recovery_script_dir to run recovery_1st_stage_command and pgpool_remote_start from pgmaitre's host instead (README: "Online recovery")`);
      }
      const lit = (s: string): string => client.escapeLiteral(s);
      if (a.script !== '') {
        const sql = `SELECT pgpool_recovery(${lit(a.script)}, ${lit(a.host)}, ${lit(a.dataDir)}, ${lit(a.primaryPort)}, ${a.id}, ${lit(a.port)}, ${lit(a.primaryHost)})`;
        this.stage(RecoveryStage.FirstStage, `executing recovery: starting recovery command: "${sql}"`);
        logLine(this.o.log, { event: 'recovery_stage', node_id: a.id }, 'executing recovery: disabling statement_timeout');
        await client.query('SET statement_timeout To 0');
        try {
          await client.query(sql);
        } catch (e) {
          const out = await this.scriptLog(client);
          throw new RecoveryError('executing recovery, execution of command failed at "1st stage"',
            `command:"${a.script}": ${errorText(e)}${out !== '' ? `; its last output (${SCRIPT_LOG_FILE} in the primary's data directory): ${out}` : "; the script's output is in the primary's server log"}`);
        }
        logLine(this.o.log, { event: 'recovery_stage', node_id: a.id }, 'node recovery, 1st stage is done');
      }
      this.stage(RecoveryStage.RemoteStart, `starting the node: SELECT pgpool_remote_start(${lit(a.host)}, ${lit(a.dataDir)})`);
      try {
        await client.query(`SELECT pgpool_remote_start(${lit(a.host)}, ${lit(a.dataDir)})`);
      } catch (e) {
        const out = await this.scriptLog(client);
        throw new RecoveryError(`executing remote start failed with error: "${errorText(e)}"`,
          out !== '' ? `its last output (${SCRIPT_LOG_FILE} in the primary's data directory): ${out}` : "pgpool_remote_start's output is in the primary's server log");
      }
    } finally {
      this.abort.signal.removeEventListener('abort', onAbort);
      // Bounded: a server started by pgpool_remote_start() could hold the backend's socket open.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([client.end().catch(() => undefined), new Promise((r) => { timer = setTimeout(r, 5000); })]);
      clearTimeout(timer);
    }
  }

  /** The last lines the shipped scripts copied to SCRIPT_LOG_FILE ('' when unreadable). */
  private async scriptLog(client: Client): Promise<string> {
    try {
      const r = await client.query<{ t: string | null }>(`SELECT pg_read_file('${SCRIPT_LOG_FILE}', 0, 1000000, true) AS t`);
      const lines = (r.rows[0]?.t ?? '').split('\n').filter((l) => l.trim() !== '');
      return lines.slice(-8).join(' | ');
    } catch {
      return '';
    }
  }

  /** Steps 2–3 from pgmaitre's host (recovery_script_dir). */
  private async runLocal(c: Config, p: BackendNode, a: { script: string; host: string; dataDir: string; primaryPort: string; id: number; port: string; primaryHost: string }): Promise<void> {
    const dir = c.recovery_script_dir;
    if (a.script !== '') {
      const first = LocalScripts.resolve(dir, a.script);
      if ('error' in first) throw new RecoveryError('executing recovery, execution of command failed at "1st stage"', `recovery_1st_stage_command: ${first.error}`);
      const argv = [p.dataDirectory, a.host, a.dataDir, a.primaryPort, String(a.id), a.port, a.primaryHost];
      this.stage(RecoveryStage.FirstStage, `executing recovery: ${first.file} ${argv.join(' ')} (from pgmaitre's host)`);
      const r = await this.scripts.run(first.file, argv, dir);
      if (r.code !== 0) {
        throw new RecoveryError('executing recovery, execution of command failed at "1st stage"',
          `command:"${a.script}" ${r.signal !== null ? `killed by ${r.signal}` : `exited with status ${r.code}`}${r.tail.length > 0 ? `: ${r.tail.slice(-8).join(' | ')}` : ''}`);
      }
      logLine(this.o.log, { event: 'recovery_stage', node_id: a.id }, 'node recovery, 1st stage is done');
    }
    const start = LocalScripts.resolve(dir, 'pgpool_remote_start');
    if ('error' in start) throw new RecoveryError('executing remote start failed with error: "pgpool_remote_start not found"', start.error);
    this.stage(RecoveryStage.RemoteStart, `starting the node: ${start.file} ${a.host} ${a.dataDir} (from pgmaitre's host)`);
    const r = await this.scripts.run(start.file, [a.host, a.dataDir], dir);
    if (r.code !== 0) {
      throw new RecoveryError('executing remote start failed with error: "pgpool_remote_start failed"',
        `${r.signal !== null ? `killed by ${r.signal}` : `exited with status ${r.code}`}${r.tail.length > 0 ? `: ${r.tail.slice(-8).join(' | ')}` : ''}`);
    }
  }

  /** Step 4: the node accepts connections (postgres, then template1, as pgpool-II tries). */
  private async waitStarted(n: BackendNode, cred: Credentials, deadline: number, c: Config): Promise<void> {
    let last = '';
    for (;;) {
      if (this.stopped) throw new RecoveryError('node recovery failed', 'pgmaitre is shutting down');
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      try {
        await withProbeClient(n, { ...cred, database: '' }, { connectTimeoutMs: Math.min(remaining, c.connect_timeout > 0 ? c.connect_timeout : remaining), totalTimeoutMs: Math.min(remaining, 10_000) },
          (cl) => cl.query('SELECT 1'), this.abort.signal);
        return;
      } catch (e) {
        last = errorText(e);
      }
      await sleep(Math.min(this.o.pollMs ?? 1000, Math.max(0, deadline - Date.now())));
    }
    throw new RecoveryError('recovery is checking if postmaster is started',
      `postmaster on hostname:"${n.host}" database:"postgres" user:"${cred.user}" failed to start in ${c.recovery_timeout} second${last !== '' ? ` (last error: ${last})` : ''}`);
  }

  /**
   * Step 5 (ours): until the node's replay lag is within delay_threshold (or, with
   * delay_threshold_by_time, until it replayed what the primary had written when it started),
   * at most recovery_timeout; the lag measured last is recorded so reads avoid a node still behind.
   */
  private async catchUp(c: Config, n: BackendNode, p: BackendNode, cred: Credentials): Promise<void> {
    if (c.delay_threshold <= 0 && c.delay_threshold_by_time <= 0) return;
    this.stage(RecoveryStage.CatchingUp, `waiting up to ${c.recovery_timeout} s for the node's replay lag to fall within ${c.delay_threshold > 0 ? `delay_threshold (${c.delay_threshold} bytes)` : `delay_threshold_by_time (${c.delay_threshold_by_time} ms)`}`);
    const limits = { connectTimeoutMs: c.connect_timeout, totalTimeoutMs: 10_000 };
    const lsnOf = (node: BackendNode, sql: string): Promise<bigint> => withProbeClient(node, { ...cred, database: '' }, limits, async (cl) => {
      const r = await cl.query<{ d: string | null }>(sql);
      return BigInt(r.rows[0]?.d ?? '0');
    }, this.abort.signal);
    const primaryLsn = (): Promise<bigint> => lsnOf(p, "SELECT (pg_current_wal_lsn() - '0/0')::numeric::text AS d");
    const replayLsn = (): Promise<bigint> => lsnOf(n, "SELECT (coalesce(pg_last_wal_replay_lsn(), '0/0') - '0/0')::numeric::text AS d");
    const deadline = Date.now() + c.recovery_timeout * 1000;
    const target = c.delay_threshold > 0 ? null : await primaryLsn().catch(() => null);
    let lag = -1;
    while (!this.stopped) {
      try {
        const [pl, rl] = await Promise.all([primaryLsn(), replayLsn()]);
        lag = Number(pl > rl ? pl - rl : 0n);
        if (target === null ? lag <= c.delay_threshold : rl >= target) break;
      } catch {
        // not answering for a moment: try again until the deadline
      }
      if (Date.now() >= deadline) {
        this.o.log.warn({ event: 'recovery_lagging', node_id: n.id, lag }, `node ${n.id} is still ${lag} bytes behind after recovery_timeout: attaching it; reads avoid it until it catches up`);
        break;
      }
      await sleep(this.o.pollMs ?? 1000);
    }
    if (lag >= 0) this.o.cluster.setReplication(n.id, { delayBytes: lag, delaySeconds: target === null ? null : lag === 0 ? 0 : null, measuredAt: new Date() });
  }

  // --- auto_recovery ---------------------------------------------------------------------------

  /** Starts the auto_recovery scan (it does nothing while auto_recovery is off). */
  startAuto(periodMs = 2000): void {
    if (this.autoTimer !== null) return;
    this.autoTimer = setInterval(() => this.scan(), periodMs);
    this.autoTimer.unref();
  }

  /** One pass of auto_recovery: the first node down long enough is recovered. */
  scan(now = Date.now()): void {
    const c = this.o.config();
    if (!c.auto_recovery || this.stopped || this.current !== null) return;
    if (this.o.leading !== undefined && !this.o.leading()) return;
    if (this.o.cluster.primaryId() < 0) return;
    const delayMs = c.auto_recovery_delay * 1000;
    for (const n of this.o.cluster.nodes) {
      if (n.status !== NodeStatus.Down || n.id === this.o.cluster.primaryId()) continue;
      if (n.statusReason.startsWith(Reason.AdminDetach) || n.dataDirectory === '') continue;
      if (now - n.lastStatusChange.getTime() < delayMs) continue;
      // After a failure, twice as long before each new try (at most an hour): a node whose host is
      // gone is not rebuilt, and logged, every auto_recovery_delay forever.
      const prev = this.autoAttempts.get(n.id);
      if (prev !== undefined && now - prev.at < Math.min(delayMs * 2 ** Math.max(0, prev.failures - 1), Math.max(delayMs, 3_600_000))) continue;
      const attempt = { at: now, failures: prev?.failures ?? 0 };
      this.autoAttempts.set(n.id, attempt);
      this.o.log.warn({ event: 'auto_recovery', node_id: n.id, down_since: n.lastStatusChange.toISOString(), failures: attempt.failures },
        `node ${n.id} has been down for ${Math.round((now - n.lastStatusChange.getTime()) / 1000)} s (auto_recovery_delay = ${c.auto_recovery_delay}): recovering it`);
      // Logged and emitted by recover(); here only the count of failures in a row.
      this.recover(n.id, 'auto').then(() => { this.autoAttempts.delete(n.id); }, () => { attempt.failures++; });
      return;
    }
  }

  /** Stops auto_recovery, kills a running local script, ends the connection, waits for the end. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.autoTimer !== null) clearInterval(this.autoTimer);
    this.autoTimer = null;
    this.abort.abort();
    this.scripts.killAll();
    await this.running;
  }
}
