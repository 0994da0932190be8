/**
 * Listening sockets: TCP on listen_addresses:port and the Unix socket in each
 * unix_socket_directories entry (`.s.PGSQL.<port>`, as pgpool and PostgreSQL name it).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

/** Expands pgpool's listen_addresses ('*', 'localhost', comma lists) into bind hosts. */
export function bindHosts(listenAddresses: string): string[] {
  const out: string[] = [];
  for (const raw of listenAddresses.split(',')) {
    const a = raw.trim();
    if (a === '') continue;
    if (a === '*') out.push('0.0.0.0', '::');
    else if (a === 'localhost') out.push('127.0.0.1');
    else out.push(a);
  }
  return [...new Set(out)];
}

/** Sockets accepted on a Unix-domain listener (pool_hba `local` lines apply to them). */
const unixSockets = new WeakSet<net.Socket>();

/** True when the socket was accepted on one of the Unix-domain sockets. */
export function isUnixSocket(socket: net.Socket): boolean {
  return unixSockets.has(socket);
}

/** Opens one server per address; resolves once all listen. `onSocket` gets every accepted socket. */
export async function listenAll(
  hosts: readonly string[],
  port: number,
  socketDirs: readonly string[],
  onSocket: (socket: net.Socket, local: boolean) => void,
): Promise<net.Server[]> {
  const servers: net.Server[] = [];
  const listen = (server: net.Server, opts: net.ListenOptions): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts, () => {
        server.off('error', reject);
        resolve();
      });
    });
  try {
    for (const host of hosts) {
      const server = net.createServer({ noDelay: true }, (s) => onSocket(s, false));
      await listen(server, { host, port, backlog: 1024, ipv6Only: host.includes(':') });
      servers.push(server);
    }
    for (const dir of socketDirs) {
      if (dir === '' || !fs.existsSync(dir)) continue;
      const file = path.join(dir, `.s.PGSQL.${port}`);
      await removeStaleSocket(file);
      const server = net.createServer({ noDelay: true }, (s) => {
        unixSockets.add(s);
        onSocket(s, true);
      });
      await listen(server, { path: file });
      fs.chmodSync(file, 0o777);
      servers.push(server);
    }
  } catch (e) {
    await closeAll(servers);
    throw e;
  }
  return servers;
}

/** Removes a Unix socket file left by a dead process (but not one somebody listens on). */
async function removeStaleSocket(file: string): Promise<void> {
  if (!fs.existsSync(file)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect({ path: file }, () => { c.destroy(); resolve(true); });
    c.on('error', () => resolve(false)); // nobody listens there: the answer we are after, not a failure
  });
  if (alive) throw new Error(`${file} is in use by another process`);
  fs.unlinkSync(file);
}

/** Stops accepting on every server. */
export async function closeAll(servers: readonly net.Server[]): Promise<void> {
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
}
