// cluster.ts — create and run REAL throw-away PostgreSQL streaming-replication clusters (a primary
// plus N hot standbys, loopback only) for the integration tests, `npm run demo` and the benchmark.
// Every node starts as a copy of the same cleanly stopped data directory (a cached initdb template,
// or a template the caller prepared): the primary as is, the standbys with standby.signal and a
// primary_conninfo, so they begin at the template's shutdown checkpoint and stream from the primary
// what it writes after it; no pg_basebackup, and the standbys start together once the primary runs.
// Each has its own port and application_name (standby1, standby2, ...). Every node logs to
// <dir>/<id>.log, and failures carry the tail of that log.

import fs from 'node:fs';
import path from 'node:path';
import {
  CONF_INCLUDE,
  confText,
  hbaText,
  initdbTemplate,
  readManifest,
  socketDirFor,
  sqlIdent,
  sqlLiteral,
  writeDataFile,
  writeManifest,
  type ClusterAuth,
  type ClusterManifest,
  type ClusterUser,
} from './cluster-files';
import { freePorts } from './free-port';
import { chownToServerUser, runCommand, runCommandSync, tailFile } from './pg-exec';
import { ensurePostgres, type PostgresBin } from './postgres-bin';

export type { ClusterAuth, ClusterUser } from './cluster-files';

/** One PostgreSQL server of a cluster. */
export interface ClusterNode {
  readonly id: string;
  role: 'primary' | 'standby';
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly dataDir: string;
  /** Path of this node's server log. */
  readonly logFile: string;
}

/** Options of createCluster. */
export interface ClusterOptions {
  readonly dir: string;
  readonly standbys?: number;
  readonly basePort?: number;
  readonly auth?: ClusterAuth;
  readonly users?: readonly ClusterUser[];
  readonly settings?: Record<string, string | number>;
  readonly reuse?: boolean;
  /**
   * A cleanly stopped data directory of the same major version (owned by the server OS user) that
   * every node is copied from; default the cached initdb template (cluster-files.ts).
   */
  readonly template?: string;
  /** Install PostgreSQL with apt-get when missing (root only). Default false. */
  readonly install?: boolean;
}

/** Options of Cluster.psql. */
export interface PsqlOptions {
  readonly db?: string;
  readonly user?: string;
  /** Password to send; default: the user's configured password when auth needs one. */
  readonly password?: string;
}

/** A running cluster and the handles to drive it. */
export interface Cluster {
  readonly dir: string;
  readonly nodes: readonly ClusterNode[];
  readonly primary: ClusterNode;
  readonly standbys: readonly ClusterNode[];
  readonly auth: ClusterAuth;
  readonly pg: PostgresBin;
  /** True when this cluster was reused from an earlier run instead of created. */
  readonly reused: boolean;
  stop(): Promise<void>;
  stopSync(): void;
  stopNode(id: string, mode?: 'fast' | 'immediate'): Promise<void>;
  startNode(id: string): Promise<void>;
  isRunning(id: string): boolean;
  promote(id: string): Promise<void>;
  follow(standbyId: string, primaryId: string): Promise<void>;
  psql(nodeId: string, sql: string, opts?: PsqlOptions): Promise<string>;
  waitForStreaming(timeoutMs?: number): Promise<void>;
  waitForReplay(timeoutMs?: number): Promise<void>;
  destroy(): Promise<void>;
}

const HOST = '127.0.0.1' as const;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The postmaster pid recorded in a data directory, if that process is alive. */
export function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    return processAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** True while `pid` is a live (non-zombie) process. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

async function withLogTail<T>(node: ClusterNode, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const tail = tailFile(node.logFile);
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(`${what} (${node.id}, port ${node.port}) failed: ${msg}${tail ? `\n--- tail of ${node.logFile} ---\n${tail}` : ''}`);
  }
}

class PgCluster implements Cluster {
  readonly nodes: ClusterNode[];

  constructor(
    readonly dir: string,
    readonly pg: PostgresBin,
    readonly auth: ClusterAuth,
    private readonly users: readonly ClusterUser[],
    nodes: ClusterNode[],
    readonly reused: boolean,
  ) {
    this.nodes = nodes;
  }

  get primary(): ClusterNode {
    const p = this.nodes.find((n) => n.role === 'primary');
    if (!p) throw new Error('cluster has no primary');
    return p;
  }

  get standbys(): ClusterNode[] {
    return this.nodes.filter((n) => n.role === 'standby');
  }

  node(id: string): ClusterNode {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node '${id}' in cluster ${this.dir} (have ${this.nodes.map((x) => x.id).join(', ')})`);
    return n;
  }

  isRunning(id: string): boolean {
    return postmasterPid(this.node(id).dataDir) !== undefined;
  }

  async startNode(id: string): Promise<void> {
    const n = this.node(id);
    if (this.isRunning(id)) return;
    await withLogTail(n, 'pg_ctl start', () =>
      runCommand(this.pg.bin('pg_ctl'), ['start', '-w', '-t', '60', '-s', '-D', n.dataDir, '-l', n.logFile], {
        asPostgres: true,
      }),
    );
  }

  async stopNode(id: string, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    const n = this.node(id);
    const pid = postmasterPid(n.dataDir);
    if (pid === undefined) return;
    await withLogTail(n, `pg_ctl stop -m ${mode}`, () =>
      runCommand(this.pg.bin('pg_ctl'), ['stop', '-w', '-t', '60', '-s', '-m', mode, '-D', n.dataDir], {
        asPostgres: true,
      }),
    );
    // pg_ctl returns once postmaster.pid is gone; the process itself exits a moment later
    for (let i = 0; i < 250 && processAlive(pid); i++) await sleep(20);
  }

  async stop(): Promise<void> {
    // standbys first, so they do not log reconnect attempts to a vanished primary
    for (const n of [...this.standbys, ...this.nodes.filter((x) => x.role === 'primary')]) {
      await this.stopNode(n.id, 'fast').catch(() => this.stopNode(n.id, 'immediate'));
    }
  }

  stopSync(): void {
    for (const n of this.nodes) {
      if (postmasterPid(n.dataDir) === undefined) continue;
      runCommandSync(this.pg.bin('pg_ctl'), ['stop', '-w', '-t', '20', '-s', '-m', 'fast', '-D', n.dataDir], {
        asPostgres: true,
      });
    }
  }

  async promote(id: string): Promise<void> {
    const n = this.node(id);
    await withLogTail(n, 'pg_ctl promote', () =>
      runCommand(this.pg.bin('pg_ctl'), ['promote', '-w', '-t', '60', '-s', '-D', n.dataDir], { asPostgres: true }),
    );
    // bookkeeping: the former primary no longer counts as the primary (the caller stops or rebuilds it)
    for (const other of this.nodes) if (other.role === 'primary' && other !== n) other.role = 'standby';
    n.role = 'primary';
  }

  async follow(standbyId: string, primaryId: string): Promise<void> {
    const s = this.node(standbyId);
    const p = this.node(primaryId);
    writeDataFile(s.dataDir, 'postgresql.auto.conf', `primary_conninfo = ${sqlLiteral(conninfo(p.port, s.id))}\n`, true);
    if (this.isRunning(s.id)) await this.psql(s.id, 'select pg_reload_conf()');
  }

  async psql(nodeId: string, sql: string, opts: PsqlOptions = {}): Promise<string> {
    const n = this.node(nodeId);
    const user = opts.user ?? 'postgres';
    const env: NodeJS.ProcessEnv = { ...process.env, PGCONNECT_TIMEOUT: '10' };
    delete env['PGPASSWORD'];
    const password = opts.password ?? (this.auth === 'trust' ? undefined : this.passwordOf(user));
    if (password !== undefined) env['PGPASSWORD'] = password;
    const args = ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-h', HOST, '-p', String(n.port), '-U', user];
    args.push('-d', opts.db ?? 'postgres', '-c', sql);
    const { stdout } = await runCommand(this.pg.bin('psql'), args, { env });
    return stdout.replace(/\n$/, '');
  }

  private passwordOf(user: string): string | undefined {
    return this.users.find((u) => u.name === user)?.password ?? (user === 'postgres' ? 'postgres' : undefined);
  }

  async waitForStreaming(timeoutMs = 60_000): Promise<void> {
    const want = this.standbys.filter((s) => this.isRunning(s.id)).map((s) => s.id);
    if (want.length === 0) return;
    const deadline = Date.now() + timeoutMs;
    let got: string[] = [];
    for (;;) {
      const out = await this.psql(this.primary.id, "select application_name from pg_stat_replication where state = 'streaming'");
      got = out.split('\n').filter(Boolean);
      if (want.every((w) => got.includes(w))) return;
      if (Date.now() > deadline) break;
      await sleep(100);
    }
    const missing = want.filter((w) => !got.includes(w));
    const tails = missing.map((m) => `--- tail of ${this.node(m).logFile} ---\n${tailFile(this.node(m).logFile, 15)}`);
    throw new Error(`standbys not streaming after ${timeoutMs} ms: ${missing.join(', ')}\n${tails.join('\n')}`);
  }

  async waitForReplay(timeoutMs = 60_000): Promise<void> {
    // the insert position also covers records not yet written out (e.g. asynchronous commits)
    const lsn = await this.psql(this.primary.id, 'select pg_current_wal_insert_lsn()');
    const deadline = Date.now() + timeoutMs;
    for (const s of this.standbys.filter((x) => this.isRunning(x.id))) {
      for (;;) {
        const ok = await this.psql(s.id, `select coalesce(pg_last_wal_replay_lsn() >= ${sqlLiteral(lsn)}::pg_lsn, false)`);
        if (ok === 't') break;
        if (Date.now() > deadline) throw new Error(`${s.id} did not replay ${lsn} within ${timeoutMs} ms`);
        await sleep(20);
      }
    }
  }

  async destroy(): Promise<void> {
    // The data is thrown away: every node at once, immediate (no shutdown checkpoint to wait for).
    // An immediate shutdown is SIGQUIT to the postmaster (what `pg_ctl stop -m immediate` sends),
    // sent here directly and its exit polled every 10 ms, instead of a pg_ctl per node that checks
    // every 100 ms (the tests destroy about 90 clusters a run); pg_ctl if one is still up after 30 s.
    const pids = this.nodes.map((n) => postmasterPid(n.dataDir)).filter((p): p is number => p !== undefined);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGQUIT');
      } catch {
        // gone already
      }
    }
    const deadline = Date.now() + 30_000;
    while (pids.some(processAlive) && Date.now() < deadline) await sleep(10);
    if (pids.some(processAlive)) {
      await Promise.all(this.nodes.map((n) => this.stopNode(n.id, 'immediate'))).catch(() => this.stopSync());
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  manifest(): ClusterManifest {
    return {
      version: 1,
      major: this.pg.major,
      auth: this.auth,
      users: this.users,
      nodes: this.nodes.map((n) => ({ id: n.id, role: n.role, port: n.port, dataDir: n.dataDir })),
    };
  }
}

function conninfo(primaryPort: number, appName: string): string {
  return `host=${HOST} port=${primaryPort} user=postgres application_name=${appName} connect_timeout=5`;
}

function makeNode(dir: string, id: string, role: 'primary' | 'standby', port: number): ClusterNode {
  return { id, role, host: HOST, port, dataDir: path.join(dir, id), logFile: path.join(dir, `${id}.log`) };
}

async function reuseCluster(dir: string, pg: PostgresBin, m: ClusterManifest): Promise<PgCluster> {
  // the role on disk wins over the manifest (a standby may have been promoted since)
  const nodes = m.nodes.map((n) =>
    makeNode(dir, n.id, fs.existsSync(path.join(n.dataDir, 'standby.signal')) ? 'standby' : 'primary', n.port),
  );
  const c = new PgCluster(dir, pg, m.auth, m.users, nodes, true);
  await c.startNode(c.primary.id);
  await Promise.all(c.standbys.map((s) => c.startNode(s.id)));
  await c.waitForStreaming();
  return c;
}

/** Create (or, with `reuse`, restart) a primary + `standbys` streaming cluster under `dir`; resolves once all stream. */
export async function createCluster(opts: ClusterOptions): Promise<Cluster> {
  const pg = ensurePostgres({ install: opts.install ?? false });
  const dir = path.resolve(opts.dir);
  if (opts.reuse) {
    const m = readManifest(dir);
    if (m) return reuseCluster(dir, pg, m);
  }
  if (fs.existsSync(path.join(dir, 'primary'))) {
    throw new Error(`${dir} already holds a cluster; pass reuse: true or destroy it first`);
  }
  const nStandbys = opts.standbys ?? 2;
  const auth = opts.auth ?? 'trust';
  const users = opts.users ?? [];
  const ports =
    opts.basePort !== undefined
      ? Array.from({ length: nStandbys + 1 }, (_, i) => (opts.basePort ?? 0) + i)
      : await freePorts(nStandbys + 1);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  chownToServerUser(dir);
  const socketDir = socketDirFor(dir);
  const ids = ['primary', ...Array.from({ length: nStandbys }, (_, i) => `standby${i + 1}`)];
  const nodes = ids.map((id, i) => makeNode(dir, id, i === 0 ? 'primary' : 'standby', ports[i] ?? 0));
  const c = new PgCluster(dir, pg, auth, users, nodes, false);
  const primary = c.primary;
  try {
    const tpl = opts.template ?? (await initdbTemplate(pg));
    // cp -a keeps the postgres ownership and the 0700 mode of the template
    await Promise.all(nodes.map((n) => runCommand('cp', ['-a', tpl, n.dataDir])));
    for (const n of nodes) {
      writeDataFile(n.dataDir, CONF_INCLUDE, confText({ port: n.port, id: n.id, socketDir, auth, settings: opts.settings }));
      writeDataFile(n.dataDir, 'postgresql.conf', `\ninclude = '${CONF_INCLUDE}'\n`, true);
    }
    // the primary trusts everyone until the roles have their passwords; standbys get the final rules
    writeDataFile(primary.dataDir, 'pg_hba.conf', hbaText('trust'));
    for (const s of c.standbys) {
      writeDataFile(s.dataDir, 'pg_hba.conf', hbaText(auth));
      writeDataFile(s.dataDir, 'standby.signal', '');
      // postgresql.auto.conf is read last: primary_conninfo there wins
      writeDataFile(s.dataDir, 'postgresql.auto.conf', `primary_conninfo = ${sqlLiteral(conninfo(primary.port, s.id))}\n`, true);
    }
    // the primary first: a standby that finds no primary retries only after wal_retrieve_retry_interval (5 s)
    await c.startNode(primary.id);
    const roles = async (): Promise<boolean> => {
      const wrote = await setupRoles(c, auth, users);
      if (auth !== 'trust') {
        writeDataFile(primary.dataDir, 'pg_hba.conf', hbaText(auth));
        await c.psql(primary.id, 'select pg_reload_conf()', { password: undefined });
      }
      return wrote;
    };
    // a standby copied from a shutdown checkpoint is consistent (and open for reads) at once
    const [wrote] = await Promise.all([roles(), ...c.standbys.map((s) => c.startNode(s.id))]);
    await c.waitForStreaming();
    // the roles exist on every node before the first test, as they would on a base backup
    if (wrote) await c.waitForReplay();
    writeManifest(dir, c.manifest());
    return c;
  } catch (err) {
    c.stopSync();
    throw err;
  }
}

/** Create the roles (and passwords) on the primary; true when there was anything to do. */
async function setupRoles(c: PgCluster, auth: ClusterAuth, users: readonly ClusterUser[]): Promise<boolean> {
  const stmts: string[] = [];
  if (auth !== 'trust') stmts.push(`alter role postgres password 'postgres'`);
  for (const u of users) {
    if (u.name === 'postgres') {
      stmts.push(`alter role postgres password ${sqlLiteral(u.password)}`);
      continue;
    }
    const su = u.superuser ? ' superuser' : '';
    stmts.push(`create role ${sqlIdent(u.name)} login${su} password ${sqlLiteral(u.password)}`);
    stmts.push(`grant all on schema public to ${sqlIdent(u.name)}`);
  }
  if (stmts.length > 0) await c.psql(c.primary.id, stmts.join('; '), { password: undefined });
  return stmts.length > 0;
}

/** Remove a cluster directory left by an earlier run, stopping its servers first. */
export async function destroyClusterDir(dir: string): Promise<void> {
  const m = readManifest(dir);
  if (m) {
    const pg = ensurePostgres({ install: false });
    const nodes = m.nodes.map((n) => makeNode(dir, n.id, n.role, n.port));
    await new PgCluster(dir, pg, m.auth, m.users, nodes, true).destroy();
  } else {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
