/**
 * worker_processes: how many processes serve clients. '1' (the default) is the single process
 * pgmaitre always was; 'auto' takes the cores this process may use
 * (os.availableParallelism(): the CPU affinity mask, so a container's cpuset counts).
 */
import * as os from 'node:os';

/** The highest worker_processes accepted (well above any core count; guards typos like 1000). */
export const MAX_WORKER_PROCESSES = 256;

/** Parses worker_processes; throws an Error naming the key for a bad value. */
export function resolveWorkerCount(value: string, cores: number = os.availableParallelism()): number {
  const v = value.trim().toLowerCase();
  if (v === 'auto') return Math.max(1, Math.min(cores, MAX_WORKER_PROCESSES));
  if (!/^\d+$/.test(v)) throw new Error(`worker_processes: "${value}" is not a number or 'auto'`);
  const n = Number(v);
  if (n < 1 || n > MAX_WORKER_PROCESSES) throw new Error(`worker_processes: ${n} is out of range (1..${MAX_WORKER_PROCESSES}, or 'auto')`);
  return n;
}
