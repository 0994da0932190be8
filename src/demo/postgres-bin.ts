// postgres-bin.ts — find the PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_basebackup)
// and, when allowed, install them. Used by the throw-away clusters of the demo, the integration
// tests and the benchmark. Search order: $PG_BIN, `pg_config --bindir`, the highest
// /usr/lib/postgresql/<major>/bin holding initdb, then $PATH.

import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** Where the server binaries live and which major version they are. */
export interface PostgresBin {
  readonly binDir: string;
  readonly major: number;
  /** Absolute path of one binary of that directory (`initdb`, `pg_ctl`, ...). */
  readonly bin: (name: string) => string;
}

const SERVER_TOOLS = ['initdb', 'pg_ctl', 'postgres', 'pg_basebackup'] as const;

function hasServerTools(dir: string): boolean {
  return SERVER_TOOLS.every((t) => isExecutable(path.join(dir, t)));
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function pgConfigBinDir(): string | undefined {
  try {
    const out = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return out.trim() || undefined;
  } catch {
    return undefined;
  }
}

function debianBinDirs(): string[] {
  const root = '/usr/lib/postgresql';
  let entries: string[];
  try {
    entries = fs.readdirSync(root);
  } catch {
    return [];
  }
  return entries
    .filter((e) => /^\d+(\.\d+)?$/.test(e))
    .sort((a, b) => Number(b) - Number(a))
    .map((e) => path.join(root, e, 'bin'));
}

function pathBinDirs(): string[] {
  const dirs: string[] = [];
  for (const d of (process.env['PATH'] ?? '').split(path.delimiter)) {
    if (!d) continue;
    const initdb = path.join(d, 'initdb');
    if (!isExecutable(initdb)) continue;
    // /usr/local/bin/initdb may be a symlink into the real bin dir next to the other tools
    dirs.push(path.dirname(fs.realpathSync(initdb)), d);
  }
  return dirs;
}

function majorOf(binDir: string): number {
  const out = execFileSync(path.join(binDir, 'postgres'), ['--version'], { encoding: 'utf8' });
  const m = /(\d+)(?:\.\d+)?/.exec(out);
  if (!m?.[1]) throw new Error(`cannot parse the version printed by ${binDir}/postgres: ${out.trim()}`);
  return Number(m[1]);
}

/** Locate the server binaries, or return undefined when none are installed. */
export function findPostgresBin(): PostgresBin | undefined {
  const envDir = process.env['PG_BIN'];
  if (envDir) {
    if (!hasServerTools(envDir)) {
      throw new Error(`PG_BIN=${envDir} does not contain ${SERVER_TOOLS.join(', ')}`);
    }
    return makeBin(envDir);
  }
  const candidates = [pgConfigBinDir(), ...debianBinDirs(), ...pathBinDirs()];
  for (const dir of candidates) {
    if (dir && hasServerTools(dir)) return makeBin(dir);
  }
  return undefined;
}

function makeBin(binDir: string): PostgresBin {
  const major = majorOf(binDir);
  return { binDir, major, bin: (name) => path.join(binDir, name) };
}

/** The sentence telling a human what to install on this kind of machine. */
export function installHint(): string {
  return (
    'PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_basebackup) were not found. Install them: ' +
    'Debian/Ubuntu: `apt-get install postgresql`; Fedora/RHEL: `dnf install postgresql-server`; ' +
    'or point PG_BIN at the directory holding them (PG_BIN=/usr/lib/postgresql/15/bin).'
  );
}

function commandExists(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** Return the server binaries; install them with apt-get when missing, `install` is set and we are root. */
export function ensurePostgres(opts: { install: boolean }): PostgresBin {
  const found = findPostgresBin();
  if (found) return found;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!opts.install || !isRoot || !commandExists('apt-get')) throw new Error(installHint());
  process.stderr.write('[pgmaitre] PostgreSQL not found: running apt-get update && apt-get install -y postgresql\n');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update'], ['install', '-y', 'postgresql']]) {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed (exit ${r.status}). ${installHint()}`);
  }
  const installed = findPostgresBin();
  if (!installed) throw new Error(`apt-get installed postgresql but its binaries are still not found. ${installHint()}`);
  return installed;
}
