// node-pipe.ts — calibration target of the e2e bench: a bare Node.js TCP byte pipe with no
// protocol parsing. Whatever pgmaitre costs above this is our own work; this is the floor any
// Node proxy pays on the machine. Run as a separate process:
//   node dist/bench/e2e/node-pipe.js <listenPort> <targetPort>

import net from 'node:net';

/** Start a loopback pipe from listenPort to targetPort; resolves with the server once listening. */
export function startNodePipe(listenPort: number, targetPort: number): Promise<net.Server> {
  const server = net.createServer({ noDelay: true }, (client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort, noDelay: true });
    client.pipe(upstream);
    upstream.pipe(client);
    const close = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenPort, '127.0.0.1', () => resolve(server));
  });
}

if (require.main === module) {
  const listenPort = Number(process.argv[2]);
  const targetPort = Number(process.argv[3]);
  if (!listenPort || !targetPort) {
    process.stderr.write('usage: node node-pipe.js <listenPort> <targetPort>\n');
    process.exit(2);
  }
  startNodePipe(listenPort, targetPort).then(
    () => {
      process.stdout.write(`node-pipe: 127.0.0.1:${listenPort} -> 127.0.0.1:${targetPort} (pid ${process.pid})\n`);
      // exit at once: open client connections must not keep a calibration pipe alive
      process.once('SIGTERM', () => process.exit(0));
      process.once('SIGINT', () => process.exit(0));
    },
    (err: unknown) => {
      process.stderr.write(`node-pipe: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
