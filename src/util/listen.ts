/**
 * Opening a listening socket, with an error a DBA can act on when it cannot be opened.
 *
 * A pgmaitre started beside pgpool-II with a copy of its pgpool.conf finds 9999, 9898 or the
 * Unix socket taken. Node's own error ("listen EADDRINUSE: address already in use
 * 127.0.0.1:9898") names neither the configuration key nor which of the listeners it was;
 * ListenError names the address, the port (or socket file), the key(s) to change and the
 * reason, and keeps the system error code (EADDRINUSE, EACCES, EADDRNOTAVAIL, ENOENT) so the
 * process entry reports it as a start failure (exit 1), not as a crash.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';

/** Why a listener could not open: what, where, which key, and the system's reason. */
export class ListenError extends Error {
  readonly code: string;
  constructor(
    /** Host address or Unix socket file. */
    readonly address: string,
    /** TCP port (the socket file's port suffix for Unix sockets). */
    readonly port: number,
    /** The configuration key(s) that chose this address and port, e.g. "pcp_listen_addresses/pcp_port". */
    readonly key: string,
    /** Human reason ("address already in use"). */
    readonly reason: string,
    code: string,
  ) {
    super(`cannot listen on ${address}${address.startsWith('/') ? '' : ` port ${port}`} (${key}): ${reason}`);
    this.name = 'ListenError';
    this.code = code;
  }
}

const REASONS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'address already in use (another process listens there: pgpool-II, another pgmaitre?)',
  EACCES: 'permission denied',
  EADDRNOTAVAIL: 'address not available on this host',
  ENOENT: 'no such directory',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
};

/** The reason part of a ListenError for a system error. */
export function listenReason(err: NodeJS.ErrnoException): string {
  const code = err.code ?? '';
  const known = REASONS[code];
  return known !== undefined ? `${known} [${code}]` : err.message;
}

/** server.listen(options), rejecting with a ListenError naming `key` when it cannot open. */
export function listenOn(server: net.Server, options: net.ListenOptions, key: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const address = options.path ?? options.host ?? '*';
      reject(new ListenError(address, options.port ?? 0, key, listenReason(err), err.code ?? 'ELISTEN'));
    };
    server.once('error', onError);
    server.listen(options, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/**
 * Removes a Unix socket file left by a dead process, but never one a live process listens on
 * (pgpool-II's own socket when both run on one host): that is a ListenError naming `key`.
 */
export async function removeStaleSocket(file: string, port: number, key: string): Promise<void> {
  if (!fs.existsSync(file)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect({ path: file }, () => { c.destroy(); resolve(true); });
    c.on('error', () => resolve(false)); // nobody listens there: the answer we are after, not a failure
  });
  if (alive) throw new ListenError(file, port, key, 'socket in use by another process (pgpool-II, another pgmaitre?)', 'EADDRINUSE');
  fs.unlinkSync(file);
}
