/**
 * The no-extension alternative of online recovery: when recovery_script_dir is set, pgmaitre
 * runs `<recovery_script_dir>/<recovery_1st_stage_command>` and `<recovery_script_dir>/pgpool_remote_start`
 * itself, on its own host, as its own OS user, with the very arguments the pgpool_recovery
 * extension gives them on the primary (so one script serves both ways):
 *
 *   1st stage:    $1 primary data dir  $2 target host  $3 target data dir  $4 primary port
 *                 $5 target node id    $6 target port  $7 primary host
 *   remote start: $1 target host       $2 target data dir
 *
 * Arguments are passed as an argv (no shell), so no quoting issue can arise from a host name or
 * a directory. Every output line goes to pgmaitre's log; on failure the last lines are the
 * error's detail (the pcp client sees them). The child is killed when pgmaitre stops.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** How a script ended. */
export interface ScriptResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The last output lines (stdout and stderr interleaved), at most 20. */
  readonly tail: readonly string[];
}

const TAIL_LINES = 20;

/** Runs the local scripts of one pgmaitre; kill() ends the running one. */
export class LocalScripts {
  private readonly running = new Set<ChildProcess>();

  constructor(private readonly onLine: (script: string, line: string) => void) {}

  /** The path of `name` in `dir`, or an error text saying why it cannot be run. */
  static resolve(dir: string, name: string): { file: string } | { error: string } {
    if (name === '' || name.includes('/') || name === '.' || name === '..') return { error: `"${name}" is not a file name inside recovery_script_dir` };
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
    } catch {
      return { error: `${file} does not exist or is not executable` };
    }
    return { file };
  }

  /** Runs `file args…` to its end; never rejects for a non-zero exit (see ScriptResult). */
  run(file: string, args: readonly string[], cwd: string): Promise<ScriptResult> {
    const name = path.basename(file);
    return new Promise((resolve) => {
      const tail: string[] = [];
      let child: ChildProcess;
      try {
        // PGMAITRE_RECOVERY tells a script that pgmaitre runs it (its output is captured here).
        child = spawn(file, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PGMAITRE_RECOVERY: 'local' } });
      } catch (err) {
        resolve({ code: 127, signal: null, tail: [(err as Error).message] });
        return;
      }
      this.running.add(child);
      const take = (stream: NodeJS.ReadableStream | null): void => {
        let rest = '';
        stream?.setEncoding('utf8');
        stream?.on('data', (chunk: string) => {
          const lines = (rest + chunk).split('\n');
          rest = lines.pop() ?? '';
          for (const l of lines) push(l);
        });
        stream?.on('end', () => { if (rest !== '') push(rest); });
      };
      const push = (line: string): void => {
        if (line.trim() === '') return;
        this.onLine(name, line);
        tail.push(line);
        if (tail.length > TAIL_LINES) tail.shift();
      };
      take(child.stdout);
      take(child.stderr);
      child.on('error', (err) => push(err.message));
      child.on('close', (code, signal) => {
        this.running.delete(child);
        resolve({ code, signal, tail });
      });
    });
  }

  /** Kills every running script (pgmaitre stops). */
  killAll(): void {
    for (const c of this.running) c.kill('SIGTERM');
  }
}
