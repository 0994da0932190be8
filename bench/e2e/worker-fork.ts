/**
 * The bench servers' worker processes (pipe-workers.ts, canned-workers.ts): with one worker, or
 * in a forked worker, `serve` runs here; otherwise the primary forks `workers` processes, prints
 * `"event":"workers_ready"` once each listens, and passes SIGTERM on to them.
 */
import cluster from 'node:cluster';

export function runWorkers(workers: number, serve: () => void): void {
  if (workers === 1 || cluster.isWorker) {
    serve();
    process.once('SIGTERM', () => process.exit(0));
    return;
  }
  let listening = 0;
  const forked = Array.from({ length: workers }, () => cluster.fork());
  for (const w of forked) {
    w.on('listening', () => {
      if (++listening === workers) process.stdout.write('"event":"workers_ready"\n');
    });
  }
  process.once('SIGTERM', () => {
    for (const w of forked) w.process.kill('SIGTERM');
    process.exit(0);
  });
}
