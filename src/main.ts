// STUB — placeholder until the real process entry is merged (it replaces this whole file).
// main.ts — process entry: argv → config → app. This stub only understands `-f <pgpool.conf>`,
// reads `listen_addresses`/`port`/`backend_port0` from it and pipes bytes to backend 0, so that
// `npm run demo` and the test harness have something to start.

import fs from 'node:fs';
import net from 'node:net';

/** Parse argv, start the middleware; resolves once it listens, with a handle to stop it. */
export async function runMain(argv: string[]): Promise<{ stop(): Promise<void> }> {
  const fIdx = argv.indexOf('-f');
  const confPath = fIdx >= 0 ? argv[fIdx + 1] : undefined;
  if (!confPath) throw new Error('usage: pgmaitre -n -f <pgpool.conf>');
  const text = fs.readFileSync(confPath, 'utf8');
  const get = (key: string): string | undefined =>
    new RegExp(`^\\s*${key}\\s*=\\s*'?([^'\\n#]*)'?`, 'm').exec(text)?.[1]?.trim();
  const port = Number(get('port') ?? 9999);
  const host = get('listen_addresses') ?? '127.0.0.1';
  const backendHost = get('backend_hostname0') ?? '127.0.0.1';
  const backendPort = Number(get('backend_port0') ?? 5432);
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (client) => {
    const backend = net.connect({ host: backendHost, port: backendPort, noDelay: true });
    sockets.add(client).add(backend);
    client.pipe(backend);
    backend.pipe(client);
    const close = (): void => {
      client.destroy();
      backend.destroy();
      sockets.delete(client);
      sockets.delete(backend);
    };
    client.on('error', close).on('close', close);
    backend.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host === '*' ? '0.0.0.0' : host, () => resolve());
  });
  process.stderr.write(`pgmaitre STUB: listening on ${host}:${port}, piping to ${backendHost}:${backendPort}\n`);
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

if (require.main === module || /pgmaitre(\.js)?$/.test(require.main?.filename ?? '')) {
  runMain(process.argv.slice(2)).then(
    (h) => {
      const shutdown = (): void => void h.stop().then(() => process.exit(0));
      process.once('SIGTERM', shutdown);
      process.once('SIGINT', shutdown);
    },
    (err: unknown) => {
      process.stderr.write(`pgmaitre: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
