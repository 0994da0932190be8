// cluster-files.ts — the on-disk pieces of a throw-away cluster: the cached initdb template, the
// postgresql.conf include and pg_hba.conf we write, and the cluster.json manifest used to reuse a
// cluster. Running initdb costs ~1 s per cluster; copying a cached template (cp -a) costs ~50 ms.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chownToServerUser, runCommand } from './pg-exec';
import type { PostgresBin } from './postgres-bin';

/** Client authentication method for TCP connections from 127.0.0.1. */
export type ClusterAuth = 'trust' | 'md5' | 'scram-sha-256';

/** A login role created on the primary. */
export interface ClusterUser {
  readonly name: string;
  readonly password: string;
  readonly superuser?: boolean;
}

/** One node as stored in the manifest. */
export interface ManifestNode {
  readonly id: string;
  readonly role: 'primary' | 'standby';
  readonly port: number;
  readonly dataDir: string;
}

/** cluster.json: what `reuse` needs to bring a cluster back. */
export interface ClusterManifest {
  readonly version: 1;
  readonly major: number;
  readonly auth: ClusterAuth;
  readonly users: readonly ClusterUser[];
  readonly nodes: readonly ManifestNode[];
}

/** Name of the postgresql.conf include file we own in each data directory. */
export const CONF_INCLUDE = 'pgmaitre.conf';

/** Path of the manifest of a cluster directory. */
export function manifestPath(dir: string): string {
  return path.join(dir, 'cluster.json');
}

/** Read a cluster manifest if present and every data directory still exists, else undefined. */
export function readManifest(dir: string): ClusterManifest | undefined {
  let m: ClusterManifest;
  try {
    m = JSON.parse(fs.readFileSync(manifestPath(dir), 'utf8')) as ClusterManifest;
  } catch {
    return undefined;
  }
  if (m.version !== 1 || !Array.isArray(m.nodes) || m.nodes.length === 0) return undefined;
  const ok = m.nodes.every((n) => fs.existsSync(path.join(n.dataDir, 'PG_VERSION')));
  return ok ? m : undefined;
}

/** Write the manifest (readable by root only: it holds test passwords). */
export function writeManifest(dir: string, m: ClusterManifest): void {
  fs.writeFileSync(manifestPath(dir), `${JSON.stringify(m, null, 2)}\n`, { mode: 0o600 });
}

/**
 * A data directory cached at `tpl` (made once by `build` into `data` inside a private work
 * directory owned by the server user, then renamed into place: concurrent builders race safely,
 * the loser discards its copy). Returns `tpl`.
 */
export async function cachedDataDir(tpl: string, prefix: string, build: (data: string, work: string) => Promise<void>): Promise<string> {
  if (fs.existsSync(path.join(tpl, 'PG_VERSION'))) return tpl;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  try {
    chownToServerUser(work);
    const data = path.join(work, 'data');
    await build(data, work);
    try {
      fs.renameSync(data, tpl);
    } catch (err) {
      if (!fs.existsSync(path.join(tpl, 'PG_VERSION'))) throw err;
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return tpl;
}

/** Make sure an initdb'd template exists for this major version and return its path. */
export function initdbTemplate(pg: PostgresBin): Promise<string> {
  return cachedDataDir(path.join(os.tmpdir(), `pgmaitre-initdb-template-${pg.major}`), 'pgmaitre-initdb-', async (data) => {
    await runCommand(
      pg.bin('initdb'),
      ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'],
      { asPostgres: true },
    );
  });
}

/** Quote a string as an SQL literal. */
export function sqlLiteral(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** Quote a string as an SQL identifier. */
export function sqlIdent(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

/** Socket directory for a cluster dir, or '' (TCP only) when the socket path would be too long. */
export function socketDirFor(dir: string): string {
  return `${dir}/.s.PGSQL.65535`.length < 100 ? dir : '';
}

/** Text of the per-node postgresql.conf include (frugal, fast, replication-ready). */
export function confText(opts: {
  port: number;
  id: string;
  socketDir: string;
  auth: ClusterAuth;
  settings: Record<string, string | number> | undefined;
}): string {
  const base: Record<string, string | number> = {
    listen_addresses: '127.0.0.1',
    port: opts.port,
    unix_socket_directories: opts.socketDir,
    cluster_name: opts.id,
    max_connections: 200,
    shared_buffers: '32MB',
    fsync: 'off',
    full_page_writes: 'off',
    wal_level: 'replica',
    max_wal_senders: 10,
    wal_keep_size: '256MB',
    hot_standby: 'on',
    hot_standby_feedback: 'on',
    wal_receiver_status_interval: '1s',
    autovacuum: 'off',
    password_encryption: opts.auth === 'md5' ? 'md5' : 'scram-sha-256',
    log_line_prefix: '%m [%p] %q%u@%d ',
    log_checkpoints: 'off',
  };
  const all = { ...base, ...(opts.settings ?? {}) };
  const lines = Object.entries(all).map(([k, v]) => `${k} = ${typeof v === 'number' ? v : sqlLiteral(v)}`);
  return `# written by pgmaitre's cluster harness (src/demo/cluster.ts)\n${lines.join('\n')}\n`;
}

/** pg_hba.conf text: loopback only; replication always trusted; `auth` for TCP logins. */
export function hbaText(auth: ClusterAuth): string {
  return [
    "# written by pgmaitre's cluster harness — loopback only",
    '# TYPE  DATABASE     USER  ADDRESS        METHOD',
    'local   all          all                  trust',
    'local   replication  all                  trust',
    'host    replication  all   127.0.0.1/32   trust',
    `host    all          all   127.0.0.1/32   ${auth}`,
    '',
  ].join('\n');
}

/** Write a file inside a data directory, owned by the server OS user. */
export function writeDataFile(dataDir: string, name: string, text: string, append = false): void {
  const file = path.join(dataDir, name);
  if (append) fs.appendFileSync(file, text);
  else fs.writeFileSync(file, text, { mode: 0o600 });
  chownToServerUser(file);
}
