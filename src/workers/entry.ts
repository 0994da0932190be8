/**
 * What main.ts calls: with worker_processes > 1 this process becomes the supervisor
 * (supervisor.ts) and forks the workers, which main.ts recognizes (isWorkerProcess) and runs
 * through runWorker (worker.ts). With worker_processes = 1 startInstance returns null and
 * main.ts starts the single process exactly as before: no extra process, no extra cost.
 */
import cluster from 'node:cluster';
import * as path from 'node:path';
import { ConfigError } from '../config/config-error';
import type { LoadedConfig } from '../config/load';
import type { App } from '../app';
import { createLogger } from '../log/logger';
import { resolveWorkerCount } from './count';
import { startSupervisor } from './supervisor';
import { WORKER_INDEX_ENV } from './worker';

export { runWorker } from './worker';

/** True in a process forked by a supervisor. */
export function isWorkerProcess(): boolean {
  return cluster.isWorker && process.env[WORKER_INDEX_ENV] !== undefined;
}

/** Starts a supervisor and its workers when worker_processes > 1; null otherwise. */
export async function startInstance(loaded: LoadedConfig, opts: { argv: readonly string[]; overrides: { hbaFile?: string; pcpFile?: string; keyFile?: string }; onStopped?: () => void }): Promise<App | null> {
  let count: number;
  try {
    count = resolveWorkerCount(loaded.config.worker_processes);
  } catch (e) {
    throw new ConfigError([{ file: path.basename(loaded.config.config_file), key: 'worker_processes', message: (e as Error).message.replace(/^worker_processes: /, '') }]);
  }
  if (count <= 1) return null;
  const log = createLogger(loaded.config);
  return startSupervisor(loaded, count, { log, overrides: opts.overrides, argv: opts.argv, ...(opts.onStopped !== undefined ? { onStopped: opts.onStopped } : {}) });
}
