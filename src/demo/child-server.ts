// child-server.ts — spawn a server as a child process and wait until its TCP port accepts
// connections; capture its output, wait for log lines, stop it (SIGTERM, then SIGKILL after 5 s).
// Used by the test harness (pgmaitre under test) and the e2e bench (pgmaitre, the node pipe).

import { spawn } from 'node:child_process';
import { waitForPort } from './free-port';

/** Options of spawnServer. */
export interface SpawnServerOptions {
  readonly name: string;
  readonly cmd: string;
  readonly args: readonly string[];
  /** The loopback port the server will listen on. */
  readonly port: number;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** How long to wait for the port (default 15 s). */
  readonly timeoutMs?: number;
}

/** How a child process ended. */
export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A server child process that accepts connections. */
export interface ServerProcess {
  readonly name: string;
  readonly port: number;
  readonly pid: number;
  /** SIGTERM, then SIGKILL after 5 s; resolves when it has exited. Idempotent. */
  stop(): Promise<ExitStatus>;
  /** SIGKILL right now (for synchronous exit handlers). */
  killSync(): void;
  /** True until the process has exited. */
  alive(): boolean;
  /** Everything written to stdout and stderr so far, interleaved. */
  logs(): string;
  waitForLog(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
}

/** Spawn a server and resolve once 127.0.0.1:port accepts connections (reject with its output if it dies). */
export async function spawnServer(opts: SpawnServerOptions): Promise<ServerProcess> {
  const child = spawn(opts.cmd, [...opts.args], {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let exited: string | undefined;
  const waiters = new Set<() => void>();
  const notify = (): void => {
    for (const w of [...waiters]) w();
  };
  const onData = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
    notify();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exitPromise = new Promise<ExitStatus>((resolve) => {
    child.once('error', (err) => {
      exited = `${opts.name} could not be spawned: ${err.message}`;
      notify();
      resolve({ code: null, signal: null });
    });
    child.once('exit', (code, signal) => {
      exited = `${opts.name} exited (code ${code}, signal ${signal})`;
      notify();
      resolve({ code, signal });
    });
  });
  try {
    await waitForPort(opts.port, opts.timeoutMs ?? 15_000, () => exited);
  } catch (err) {
    if (!exited) child.kill('SIGKILL');
    await exitPromise;
    throw new Error(`${opts.name} did not start on 127.0.0.1:${opts.port}: ${(err as Error).message}\n--- ${opts.name} output ---\n${output}`);
  }
  return {
    name: opts.name,
    port: opts.port,
    pid: child.pid ?? 0,
    alive: () => exited === undefined,
    logs: () => output,
    killSync: () => {
      if (exited === undefined) child.kill('SIGKILL');
    },
    async stop() {
      if (exited !== undefined) return exitPromise;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      const status = await exitPromise;
      clearTimeout(timer);
      return status;
    },
    waitForLog(re, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const finish = (fn: () => void): void => {
          clearTimeout(timer);
          waiters.delete(check);
          fn();
        };
        const check = (): void => {
          const m = output.match(re);
          if (m) finish(() => resolve(m));
          else if (exited) finish(() => reject(new Error(`${exited} before logging ${re}\n--- output ---\n${output}`)));
        };
        const timer = setTimeout(
          () => finish(() => reject(new Error(`no log line matching ${re} within ${timeoutMs} ms\n--- output ---\n${output}`))),
          timeoutMs,
        );
        waiters.add(check);
        check();
      });
    },
  };
}
