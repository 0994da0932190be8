// pipe-workers.ts — calibration target of bench/workers.sh: the cheapest Node.js TCP byte pipe
// (the backend side reads into one buffer with net.connect's `onread`, as ../shared/bench/
// nodepipe-fast.js), run in W processes behind one port exactly as pgmaitre's worker_processes
// runs (Node's cluster module, round-robin dealing by the primary). It parses nothing and shares
// nothing, so what its CPU per transaction gains from 1 to W processes is the price Node.js and
// the kernel charge for spreading the same clients over W event loops; pgmaitre's own gain above
// it is pgmaitre's (docs/performance.md, "Worker processes").
//   node dist/bench/e2e/pipe-workers.js <workers> <listenPort> <targetPort>
// Prints `"event":"workers_ready"` once every process listens; SIGTERM stops them all.
import cluster from 'node:cluster';
import net from 'node:net';
import { runWorkers } from './worker-fork';

const workers = Number(process.argv[2]);
const listenPort = Number(process.argv[3]);
const targetPort = Number(process.argv[4]);

function serve(): void {
  net.createServer({ noDelay: true }, (client) => {
    const upstream = net.connect({
      host: '127.0.0.1', port: targetPort, noDelay: true,
      onread: {
        buffer: Buffer.allocUnsafe(65536),
        callback(n: number, buf: Buffer): boolean {
          client.write(Buffer.from(buf.subarray(0, n)));
          return true;
        },
      },
    });
    client.on('data', (d: Buffer) => upstream.write(d));
    const close = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  }).listen(listenPort, '127.0.0.1', () => {
    if (cluster.isPrimary) process.stdout.write('"event":"workers_ready"\n');
  });
}

if (!(workers >= 1) || !listenPort || !targetPort) {
  process.stderr.write('usage: node pipe-workers.js <workers> <listenPort> <targetPort>\n');
  process.exit(2);
}
runWorkers(workers, serve);
