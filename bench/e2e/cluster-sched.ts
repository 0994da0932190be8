// cluster-sched.ts — what Node's cluster scheduling costs per client connection (docs/workers.md):
// SCHED_RR (the primary accepts and passes each socket to a worker, pgmaitre's choice) against
// SCHED_NONE (the workers accept on the shared socket). Two workers echo one byte; the primary
// connects, writes, reads and closes N times in sequence; prints the CPU (utime+stime of the
// primary and both workers, from /proc) and the wall time per connection. Per query the two are
// the same: after the hand-over the socket belongs to the worker.
//   node dist/bench/e2e/cluster-sched.js rr|none [N] [port]
import cluster from 'node:cluster';
import * as fs from 'node:fs';
import * as net from 'node:net';

const policy = process.argv[2] === 'none' ? 'none' : 'rr';
const N = Number(process.argv[3] ?? 2000);
const PORT = Number(process.argv[4] ?? 45999);
cluster.schedulingPolicy = policy === 'none' ? cluster.SCHED_NONE : cluster.SCHED_RR;

function ticks(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(f[11]) + Number(f[12]);
}

if (cluster.isPrimary) {
  const hz = 100; // USER_HZ on Linux
  const workers = [cluster.fork(), cluster.fork()];
  let listening = 0;
  for (const w of workers) {
    w.on('listening', () => {
      if (++listening < workers.length) return;
      void (async () => {
        const pids = [process.pid, ...workers.map((x) => x.process.pid!)];
        const t0 = pids.reduce((a, p) => a + ticks(p), 0);
        const s0 = process.hrtime.bigint();
        for (let i = 0; i < N; i++) {
          await new Promise<void>((resolve) => {
            const s = net.connect(PORT, '127.0.0.1', () => s.write('x'));
            s.on('data', () => s.end());
            s.on('close', () => resolve());
          });
        }
        const wall = Number(process.hrtime.bigint() - s0) / 1000 / N;
        const cpu = ((pids.reduce((a, p) => a + ticks(p), 0) - t0) / hz) * 1e6 / N;
        process.stdout.write(`${policy}: ${cpu.toFixed(0)} µs CPU per connection (primary incl. the client loop, and workers), ${wall.toFixed(0)} µs wall\n`);
        for (const x of workers) x.kill();
      })();
    });
  }
} else {
  net.createServer((s) => {
    s.on('data', (d) => s.write(d));
    s.on('error', () => {});
  }).listen(PORT, '127.0.0.1');
}
