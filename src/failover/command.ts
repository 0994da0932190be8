/**
 * failover_command / failback_command / follow_primary_command: placeholder expansion and a
 * time-boxed runner whose output goes to the log.
 *
 * Placeholders (pgpool-II's, same meaning):
 *   %d failed (detached / attached / following) node id   %h its host   %p its port   %D its data dir
 *   %m new main node id   %H its host   %r its port   %R its data dir
 *   %M old main node id   %P old primary node id   %N old primary host   %S old primary port   %% '%'
 * "Main node" is pgpool's: the live node with the smallest id (for follow_primary_command and
 * a switchover, the new primary). Missing nodes expand to id -1 and empty host/port/dir.
 * An unknown %x is left as written. Values are substituted verbatim (not shell-quoted), as
 * pgpool does: the command is run by /bin/sh -c.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from '../log/logger';

/** Values of the placeholders. Ids are numbers (-1 = none), the rest strings ('' = none). */
export interface CommandVars {
  readonly d: number; readonly h: string; readonly p: string; readonly D: string;
  readonly m: number; readonly H: string; readonly r: string; readonly R: string;
  readonly M: number; readonly P: number; readonly N: string; readonly S: string;
}

/** Node fields the placeholders draw on. */
export interface CommandNode {
  readonly id: number;
  readonly host: string;
  readonly port: number;
  readonly dataDirectory: string;
}

/** Builds placeholder values from the nodes involved (undefined = none). */
export function commandVars(parts: {
  failed?: CommandNode; newMain?: CommandNode; oldMainId?: number; oldPrimary?: CommandNode;
}): CommandVars {
  const { failed: f, newMain: m, oldPrimary: op } = parts;
  return {
    d: f?.id ?? -1, h: f?.host ?? '', p: f ? String(f.port) : '', D: f?.dataDirectory ?? '',
    m: m?.id ?? -1, H: m?.host ?? '', r: m ? String(m.port) : '', R: m?.dataDirectory ?? '',
    M: parts.oldMainId ?? -1, P: op?.id ?? -1, N: op?.host ?? '', S: op ? String(op.port) : '',
  };
}

/** Replaces every %x placeholder of `template`; '%%' becomes '%'. */
export function expandCommand(template: string, vars: CommandVars): string {
  let out = '';
  for (let i = 0; i < template.length; i++) {
    const ch = template[i]!;
    if (ch !== '%' || i + 1 >= template.length) {
      out += ch;
      continue;
    }
    const k = template[++i]!;
    if (k === '%') out += '%';
    else if (Object.prototype.hasOwnProperty.call(vars, k)) out += String(vars[k as keyof CommandVars]);
    else out += `%${k}`;
  }
  return out;
}

/** How a hook command ended. */
export interface CommandResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
}

const MAX_CAPTURE = 64 * 1024;

/** Runs hook commands with /bin/sh; remembers children so stop() can end them. */
export class CommandRunner {
  private readonly children = new Set<ChildProcess>();

  constructor(private readonly log: Logger) {}

  /** Runs `command` (already expanded) with a timeout; never rejects. Output is logged line by line. */
  run(name: string, command: string, timeoutMs: number, fields: Record<string, unknown> = {}): Promise<CommandResult> {
    const t0 = Date.now();
    this.log.info({ event: 'command_start', command_name: name, command, ...fields }, `running ${name}: ${command}`);
    return new Promise((resolve) => {
      let child: ChildProcess;
      try {
        child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      } catch (e) {
        resolve({ code: null, signal: null, timedOut: false, stdout: '', stderr: String(e), durationMs: 0 });
        return;
      }
      this.children.add(child);
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (b: Buffer) => { if (stdout.length < MAX_CAPTURE) stdout += b.toString('utf8'); });
      child.stderr?.on('data', (b: Buffer) => { if (stderr.length < MAX_CAPTURE) stderr += b.toString('utf8'); });
      let timedOut = false;
      const timer = timeoutMs > 0 ? setTimeout(() => {
        timedOut = true;
        killGroup(child, 'SIGTERM');
        setTimeout(() => killGroup(child, 'SIGKILL'), 2000).unref();
      }, timeoutMs) : null;
      timer?.unref();
      const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error): void => {
        if (timer) clearTimeout(timer);
        this.children.delete(child);
        if (spawnError) stderr += String(spawnError);
        const res: CommandResult = { code, signal, timedOut, stdout, stderr, durationMs: Date.now() - t0 };
        this.logResult(name, res, fields);
        resolve(res);
      };
      child.once('error', (e) => finish(null, null, e));
      child.once('close', (code, signal) => finish(code, signal));
    });
  }

  /** Kills every command still running (process groups). */
  killAll(): void {
    for (const c of this.children) killGroup(c, 'SIGKILL');
  }

  private logResult(name: string, r: CommandResult, fields: Record<string, unknown>): void {
    for (const [stream, text] of [['stdout', r.stdout], ['stderr', r.stderr]] as const) {
      for (const line of text.split('\n')) {
        if (line.trim() !== '') this.log.info({ event: 'command_output', command_name: name, stream, ...fields }, `${name}: ${line}`);
      }
    }
    const ok = r.code === 0 && !r.timedOut;
    const how = r.timedOut ? `timed out after ${r.durationMs} ms` : r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`;
    const f = { event: 'command_done', command_name: name, exit_code: r.code, timed_out: r.timedOut, duration_ms: r.durationMs, ...fields };
    if (ok) this.log.info(f, `${name} finished (${how})`);
    else this.log.error(f, `${name} failed (${how})`);
  }
}

function killGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    // No such process group (it exited meanwhile): signal the shell itself.
    try { child.kill(sig); } catch { /* ignored on purpose: the command has exited, nothing is left to stop */ }
  }
}
