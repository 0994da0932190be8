// pg-exec.ts — run PostgreSQL tools as the right OS user. PostgreSQL refuses to run as root, so
// when we are root, server-side tools (initdb, pg_ctl, pg_basebackup) are spawned with the uid/gid
// of the `postgres` OS user and the directories they write are chowned to it. Clients (psql,
// pgbench) run as whoever we are.

import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';

/** uid/gid of an OS user. */
export interface OsUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** Output of a finished command. */
export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of runCommand. */
export interface RunOptions {
  /** Drop to the `postgres` OS user when we are root. */
  readonly asPostgres?: boolean;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  readonly timeoutMs?: number;
}

let cachedUser: OsUser | null | undefined;

/** True when this process runs as root. */
export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** The OS user server processes must run as: `postgres` when we are root, else undefined (ourselves). */
export function serverOsUser(): OsUser | undefined {
  if (!isRoot()) return undefined;
  if (cachedUser !== undefined) return cachedUser ?? undefined;
  const name = process.env['PG_OS_USER'] ?? 'postgres';
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  const f = line?.split(':');
  if (!f || f.length < 4) {
    throw new Error(`running as root, but OS user '${name}' does not exist (PostgreSQL refuses to run as root)`);
  }
  cachedUser = { name, uid: Number(f[2]), gid: Number(f[3]) };
  return cachedUser;
}

/** chown a path (recursively when asked) to the server OS user; a no-op when not root. */
export function chownToServerUser(p: string, recursive = false): void {
  const u = serverOsUser();
  if (!u) return;
  if (!recursive) {
    fs.chownSync(p, u.uid, u.gid);
    return;
  }
  const r = spawnSync('chown', ['-R', `${u.uid}:${u.gid}`, p], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`chown -R ${u.name} ${p} failed`);
}

function spawnIds(asPostgres: boolean | undefined): { uid?: number; gid?: number } {
  const u = asPostgres ? serverOsUser() : undefined;
  return u ? { uid: u.uid, gid: u.gid } : {};
}

/** Run a command to completion; rejects with an Error carrying its stderr (and stdout) on failure. */
export function runCommand(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      {
        ...spawnIds(opts.asPostgres),
        env: opts.env ?? process.env,
        cwd: opts.cwd ?? '/',
        timeout: opts.timeoutMs ?? 120_000,
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        if (err) {
          const detail = [stderr.trim(), stdout.trim()].filter(Boolean).join('\n');
          reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message.split('\n')[0]}${detail ? `\n${detail}` : ''}`));
        } else {
          resolve({ stdout, stderr });
        }
      },
    );
  });
}

/** Synchronous variant for exit handlers: never throws, returns the exit status. */
export function runCommandSync(cmd: string, args: readonly string[], opts: RunOptions = {}): number | null {
  const r = spawnSync(cmd, args, {
    ...spawnIds(opts.asPostgres),
    env: opts.env ?? process.env,
    cwd: opts.cwd ?? '/',
    timeout: opts.timeoutMs ?? 30_000,
    stdio: 'ignore',
  });
  return r.status;
}

/** Last `lines` lines of a text file, or '' when it cannot be read. */
export function tailFile(file: string, lines = 30): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.split('\n').slice(-lines - 1).join('\n').trimEnd();
  } catch {
    return '';
  }
}
