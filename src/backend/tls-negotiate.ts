/**
 * Opening the socket of a backend login, with PostgreSQL's SSL negotiation when asked for.
 *
 * Without TLS options: a plain TCP connect. With them: SSLRequest first, then exactly one byte
 * back: 'S' → TLS handshake on the same socket ('S' followed by more bytes is a protocol
 * violation: nothing may arrive unencrypted after it), 'N' → continue in clear (pgpool's
 * behaviour: the backend's pg_hba.conf decides whether that is acceptable), 'E' (a pre-7.x style
 * error) or anything else → failure.
 *
 * A host starting with '/' is a Unix-socket directory (`<dir>/.s.PGSQL.<port>`, as libpq and
 * pgpool read backend_hostnameN); no SSL is negotiated there, as libpq does not either.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL
 */
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { encodeSSLRequest } from '../protocol/startup';
import { ProxyError, ProxyErrorCode } from '../errors/proxy-error';

/** TLS to a backend (built from ssl, ssl_ca_cert, ssl_ciphers, ssl_*_protocol_version). */
export interface BackendTlsOptions {
  /** CA certificates the backend's certificate must chain to (when `verify`). */
  readonly ca?: Buffer;
  /** Verify the certificate chain (host names are not checked: backends are often IPs). */
  readonly verify: boolean;
  readonly ciphers?: string;
  readonly minVersion?: tls.SecureVersion;
  readonly maxVersion?: tls.SecureVersion;
}

/** Where and how to connect. */
export interface OpenOptions {
  readonly host: string;
  readonly port: number;
  readonly tls?: BackendTlsOptions;
}

const SSL_REQUEST = encodeSSLRequest();

/** net.connect options for a backend address: TCP host:port, or the Unix socket of a directory. */
export function backendAddress(host: string, port: number): net.NetConnectOpts {
  return host.startsWith('/') ? { path: path.join(host, `.s.PGSQL.${port}`) } : { host, port };
}

/**
 * Connects (and negotiates TLS when `opts.tls` is set). The returned socket is connected and
 * has no listeners of ours; `abort` destroys a connection still being opened.
 */
export function openBackendSocket(opts: OpenOptions): { socket: Promise<net.Socket>; abort: () => void } {
  const unix = opts.host.startsWith('/');
  const raw = net.connect(backendAddress(opts.host, opts.port));
  if (!unix) raw.setNoDelay(true);
  let current: net.Socket = raw;
  const socket = new Promise<net.Socket>((resolve, reject) => {
    const where = `${opts.host}:${opts.port}`;
    const onError = (e: NodeJS.ErrnoException): void => {
      cleanup();
      reject(new ProxyError(ProxyErrorCode.BackendConnect, `${where}: ${e.code ?? e.message}`, undefined, { cause: e }));
    };
    const onClose = (): void => {
      cleanup();
      reject(new ProxyError(ProxyErrorCode.BackendClosed, `${where} closed the connection during SSL negotiation`));
    };
    const cleanup = (): void => {
      raw.off('error', onError);
      raw.off('close', onClose);
      raw.off('data', onData);
    };
    const onData = (chunk: Buffer): void => {
      cleanup();
      const answer = chunk[0];
      if (answer === 0x4e /* N */ && chunk.length === 1) {
        resolve(raw);
        return;
      }
      if (answer !== 0x53 /* S */ || chunk.length !== 1) {
        raw.destroy();
        reject(new ProxyError(ProxyErrorCode.BackendProtocol,
          `${where}: unexpected answer to SSLRequest (${chunk.length} bytes starting with 0x${(answer ?? 0).toString(16)})`));
        return;
      }
      const t = opts.tls!;
      const secure = tls.connect({
        socket: raw,
        rejectUnauthorized: t.verify,
        ...(t.ca !== undefined ? { ca: t.ca } : {}),
        ...(t.verify ? { checkServerIdentity: () => undefined } : {}),
        ...(t.ciphers !== undefined ? { ciphers: t.ciphers } : {}),
        ...(t.minVersion !== undefined ? { minVersion: t.minVersion } : {}),
        ...(t.maxVersion !== undefined ? { maxVersion: t.maxVersion } : {}),
      });
      current = secure;
      // Errors now surface on the TLS socket; the raw one must not throw them unhandled.
      raw.on('error', () => undefined);
      const tlsFail = (e: Error): void => {
        secure.destroy();
        reject(new ProxyError(ProxyErrorCode.BackendConnect, `${where}: TLS handshake failed: ${e.message}`, undefined, { cause: e }));
      };
      secure.once('error', tlsFail);
      secure.once('secureConnect', () => {
        secure.off('error', tlsFail);
        resolve(secure);
      });
    };
    raw.once('error', onError);
    raw.once('close', onClose);
    raw.once('connect', () => {
      if (opts.tls === undefined || unix) {
        cleanup();
        resolve(raw);
        return;
      }
      raw.on('data', onData);
      raw.write(SSL_REQUEST);
    });
  });
  return { socket, abort: () => current.destroy() };
}
