/**
 * Runs a client program (psql, pgbench, python, java) to completion without throwing on a
 * non-zero exit, for the client-driver integration tests. Asynchronous on purpose: an in-process
 * pgmaitre shares the event loop with the test, so a synchronous spawn would deadlock.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';

/** Exit status and output of a finished program. */
export interface ExecResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of exec. */
export interface ExecOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** Written to the program's stdin, which is then closed. */
  readonly input?: string;
  /** Killed (SIGKILL) after this long; default 60 s. */
  readonly timeoutMs?: number;
  readonly cwd?: string;
}

/** Spawns `cmd args`, collects stdout/stderr, resolves when it exits (never rejects for a failed exit). */
export function exec(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd ?? '/', stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.on('error', () => { /* the program may exit before reading all of it */ });
    child.stdin.end(opts.input ?? '');
  });
}

/** True when `file` exists and is executable. */
export function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Formats a result for assertion messages. */
export function describeResult(r: ExecResult): string {
  return `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}\n--- stdout ---\n${r.stdout.slice(-4000)}\n--- stderr ---\n${r.stderr.slice(-4000)}`;
}
