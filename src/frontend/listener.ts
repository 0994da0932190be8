/**
 * Listening sockets: TCP on listen_addresses:port and the Unix socket in each
 * unix_socket_directories entry (`.s.PGSQL.<port>`, as pgpool and PostgreSQL name it).
 */
import cluster from 'node:cluster';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { ListenError, listenOn, removeStaleSocket } from '../util/listen';
import { takeOverAccept, type RawSocket } from '../util/raw-socket';

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

/** The configuration keys a listener comes from, named when it cannot open. */
export interface ListenKeys {
  /** Keys of the TCP listeners, e.g. "listen_addresses/port". */
  readonly tcp: string;
  /** Key of the Unix-domain sockets, e.g. "unix_socket_directories". */
  readonly unix: string;
}

const SMART_KEYS: ListenKeys = { tcp: 'listen_addresses/port', unix: 'unix_socket_directories' };

/**
 * Opens one server per address; resolves once all listen. `onSocket` gets every accepted socket.
 * With `onRaw`, connections accepted on the TCP listeners go to it as RawSockets instead
 * (util/raw-socket.ts: no net.Socket per connection), where this Node allows it.
 * Any listener that cannot open (port taken, address not on this host, socket directory missing,
 * socket file in use) closes those already open and rejects with a ListenError naming `keys`.
 */
export async function listenAll(
  hosts: readonly string[],
  port: number,
  socketDirs: readonly string[],
  onSocket: (socket: net.Socket, local: boolean) => void,
  keys: ListenKeys = SMART_KEYS,
  onRaw?: (socket: RawSocket) => void,
): Promise<net.Server[]> {
  const servers: net.Server[] = [];
  try {
    for (const host of hosts) {
      const server = net.createServer({ noDelay: true }, (s) => onSocket(s, false));
      servers.push(server);
      await listenOn(server, { host, port, backlog: 1024, ipv6Only: host.includes(':') }, keys.tcp);
      // PGMAITRE_NET_SOCKETS=1: every connection a net.Socket (an escape hatch, should a Node
      // release change the internals RawSocket drives in a way its checks do not see).
      if (onRaw !== undefined && process.env['PGMAITRE_NET_SOCKETS'] !== '1') takeOverAccept(server, onRaw, (s) => onSocket(s, false));
    }
    for (const dir of socketDirs) {
      if (dir === '') continue;
      const file = path.join(dir, `.s.PGSQL.${port}`);
      if (!fs.existsSync(dir)) throw new ListenError(file, port, keys.unix, `directory ${dir} does not exist`, 'ENOENT');
      // In a worker (worker_processes > 1) the supervisor opens the socket for every worker and
      // removed a stale file before forking: the file found here may be the sibling's, served by
      // the same supervisor (workers/supervisor.ts).
      if (!cluster.isWorker) await removeStaleSocket(file, port, keys.unix);
      const server = net.createServer({ noDelay: true }, (s) => {
        unixSockets.add(s);
        onSocket(s, true);
      });
      servers.push(server);
      await listenOn(server, { path: file }, keys.unix);
      fs.chmodSync(file, 0o777);
    }
  } catch (e) {
    await closeAll(servers.filter((s) => s.listening));
    throw e;
  }
  return servers;
}

/** Stops accepting on every server. */
export async function closeAll(servers: readonly net.Server[]): Promise<void> {
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
}
