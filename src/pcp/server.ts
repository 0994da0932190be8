/**
 * The PCP server: pgpool-II's admin protocol on pcp_port, so the real pcp_* tools (and
 * `pgmaitre node-info` etc.) work against pgmaitre. Each connection authenticates with md5
 * against pcp.conf users, then sends requests answered by handlers.ts, one at a time in order.
 * TCP on pcp_listen_addresses ('*' = all, '' = none) and, when socketDir is given, the Unix
 * socket <socketDir>/.s.PGSQL.<port> that the tools use when no -h is given.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { AdminContext } from '../admin/types';
import { PcpFramer, encodeError, encodeStrings, splitStrings, type PcpPacket } from './codec';
import { newSalt, verifyPcpAuth } from './auth';
import { handlePcpRequest, type PcpClientVersion } from './handlers';
import { ListenError, listenOn, removeStaleSocket } from '../util/listen';

/** Options of createPcpServer. */
export interface PcpServerOptions {
  /** pcp_port; 0 picks a free port. */
  readonly port: number;
  /** pcp_listen_addresses: comma-separated; '*' for all; '' for none. */
  readonly listenAddresses: string;
  /** pcp.conf users: user → md5hex(password). A function is re-read per connection (reload). */
  readonly users: ReadonlyMap<string, string> | (() => ReadonlyMap<string, string>);
  /** pcp_socket_dir for the Unix-domain socket; omitted = none. */
  readonly socketDir?: string;
  /**
   * Which pcp_* tools to answer pcp_node_info for: '4.4' (default; pgpool-II 4.4–4.6 tools read
   * 13 fields) or '4.3' (Debian 12's 4.3 tools read 12). Only node info differs.
   */
  readonly clientVersion?: PcpClientVersion;
  /** Called with notable events (auth failures, errors) for logging. */
  readonly onLog?: (level: 'info' | 'warn' | 'log', message: string) => void;
}

/** A PCP server. */
export interface PcpServer {
  /** Starts listening; resolves with the TCP port bound (or opts.port when only a socket). */
  listen(): Promise<number>;
  close(): Promise<void>;
}

function hostsOf(listen: string): (string | undefined)[] {
  const items = listen.split(',').map((h) => h.trim()).filter((h) => h !== '');
  if (items.includes('*')) return [undefined];
  return items;
}

function serveConnection(ctx: AdminContext, socket: net.Socket, opts: PcpServerOptions): void {
  const framer = new PcpFramer();
  let salt: Buffer | null = null;
  let authenticated = false;
  let chain = Promise.resolve();
  socket.setNoDelay(true);
  // A PCP client that vanished (ECONNRESET...): its connection ends here, there is nothing to answer.
  socket.on('error', () => socket.destroy());
  // log_pcp_processes: pgpool logs each PCP worker's fork and exit; a connection is that here.
  if (ctx.config().log_pcp_processes) {
    const who = socket.remoteAddress !== undefined ? `${socket.remoteAddress}:${socket.remotePort ?? ''}` : '[local]';
    opts.onLog?.('log', `PCP connection from ${who} accepted (pgpool: forked new PCP worker)`);
    socket.once('close', () => opts.onLog?.('log', `PCP connection from ${who} ended (pgpool: PCP process exits with SUCCESS)`));
  }
  const users = (): ReadonlyMap<string, string> => (typeof opts.users === 'function' ? opts.users() : opts.users);
  const send = (bufs: Buffer[]): void => {
    if (bufs.length > 0 && !socket.destroyed) socket.write(Buffer.concat(bufs));
  };
  const fatal = (message: string, detail: string): void => {
    send([encodeError('FATAL', message, detail)]);
    socket.end();
  };

  const handle = async (p: PcpPacket): Promise<void> => {
    if (socket.destroyed) return;
    if (p.type === 'M') {
      salt = newSalt();
      send([Buffer.concat([Buffer.from('m'), Buffer.from([0, 0, 0, 8]), salt])]);
      return;
    }
    if (p.type === 'R') {
      const [user = '', response = ''] = splitStrings(p.payload);
      if (salt === null || !verifyPcpAuth(users(), user, response, salt)) {
        opts.onLog?.('warn', `PCP authentication failed for user "${user}"`);
        fatal('authentication failed', 'username and/or password does not match');
        return;
      }
      salt = null;
      authenticated = true;
      send([encodeStrings('r', 'AuthenticationOK')]);
      return;
    }
    if (p.type === 'X') {
      socket.end();
      return;
    }
    if (!authenticated) {
      fatal('authentication failed for new PCP connection', 'connection not authorized');
      return;
    }
    try {
      await ctx.refresh?.(); // worker_processes > 1: the whole instance's figures
      const reply = await handlePcpRequest(ctx, p.type, p.payload, opts.clientVersion ?? '4.4');
      const after = reply.after;
      if (after !== undefined && !socket.destroyed) socket.write(Buffer.concat(reply.packets), () => setImmediate(after));
      else send(reply.packets);
      if (reply.close === true) socket.end();
    } catch (err) {
      opts.onLog?.('warn', `PCP request '${p.type}' failed: ${err instanceof Error ? err.message : String(err)}`);
      send([encodeError('ERROR', 'PCP request failed', err instanceof Error ? err.message : String(err))]);
    }
  };

  socket.on('data', (chunk: Buffer) => {
    let packets: PcpPacket[];
    try {
      packets = framer.push(chunk);
    } catch (err) {
      fatal('invalid PCP packet', err instanceof Error ? err.message : String(err));
      return;
    }
    for (const p of packets) chain = chain.then(() => handle(p));
  });
}

/** Builds a PCP server over an AdminContext. */
export function createPcpServer(ctx: AdminContext, opts: PcpServerOptions): PcpServer {
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  let socketPath: string | undefined;

  const make = (): net.Server => {
    const srv = net.createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      serveConnection(ctx, s, opts);
    });
    servers.push(srv);
    return srv;
  };
  return {
    async listen(): Promise<number> {
      let port = opts.port;
      for (const host of hostsOf(opts.listenAddresses)) {
        const srv = make();
        await listenOn(srv, { port, ...(host !== undefined ? { host } : {}) }, 'pcp_listen_addresses/pcp_port');
        const addr = srv.address();
        if (typeof addr === 'object' && addr !== null) port = addr.port;
      }
      if (opts.socketDir !== undefined && opts.socketDir !== '') {
        const file = path.join(opts.socketDir, `.s.PGSQL.${port}`);
        if (!fs.existsSync(opts.socketDir)) throw new ListenError(file, port, 'pcp_socket_dir', `directory ${opts.socketDir} does not exist`, 'ENOENT');
        await removeStaleSocket(file, port, 'pcp_socket_dir');
        await listenOn(make(), { path: file }, 'pcp_socket_dir');
        socketPath = file;
      }
      return port;
    },
    async close(): Promise<void> {
      for (const s of sockets) s.destroy();
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      servers.length = 0;
      if (socketPath !== undefined) {
        try { fs.unlinkSync(socketPath); } catch { /* gone */ }
      }
    },
  };
}
