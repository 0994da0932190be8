/**
 * TLS for pgmaitre, both faces, built once from the configuration (ssl = on).
 *
 * Client side: with ssl_cert and ssl_key set, an SSLRequest is answered 'S' and the client's
 * socket is wrapped in a server-side TLSSocket before its StartupMessage (session.ts). ssl_ca_cert
 * makes pgmaitre ask for a client certificate (optional; one that does not verify is refused).
 * ssl_ciphers, ssl_min/max_protocol_version and ssl_prefer_server_ciphers apply as in PostgreSQL.
 *
 * Backend side (pgpool's rule: `ssl = on` enables SSL "for both the frontend and backend
 * communications"): each backend login starts with an SSLRequest; 'S' upgrades, 'N' continues in
 * clear. With ssl_ca_cert the backend's certificate chain must verify against it (like libpq's
 * verify-ca: host names are not checked, backends are usually addressed by IP); without it the
 * channel is encrypted but the server unauthenticated (libpq's sslmode=require).
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL
 */
import * as fs from 'node:fs';
import * as tls from 'node:tls';
import type * as net from 'node:net';
import type { Config } from '../config/load';
import { clientErrors } from '../errors/client-errors';
import type { ErrorFieldsInput } from '../protocol/error-fields';
import { isUnixSocket } from './listener';
import type { BackendTlsOptions } from '../backend/server-connection';

/** What the frontend needs to accept TLS clients. */
export interface FrontendTls {
  readonly context: tls.SecureContext;
  /** ssl_ca_cert set: ask clients for a certificate. */
  readonly requestCert: boolean;
}

type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

function versions(c: Config): { minVersion?: TlsVersion; maxVersion?: TlsVersion } {
  return {
    ...(c.ssl_min_protocol_version !== '' ? { minVersion: c.ssl_min_protocol_version as TlsVersion } : {}),
    ...(c.ssl_max_protocol_version !== '' ? { maxVersion: c.ssl_max_protocol_version as TlsVersion } : {}),
  };
}

/**
 * The client-side TLS context, or null when ssl is off or no certificate/key is configured
 * (pgpool then answers 'N' too). Throws with the offending key when a file cannot be used.
 */
export function buildFrontendTls(c: Config): FrontendTls | null {
  if (!c.ssl || c.ssl_cert === '' || c.ssl_key === '') return null;
  const read = (key: 'ssl_cert' | 'ssl_key' | 'ssl_ca_cert'): Buffer => {
    try {
      return fs.readFileSync(c[key]);
    } catch (e) {
      throw new Error(`${key}: cannot read ${c[key]}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  try {
    const context = tls.createSecureContext({
      cert: read('ssl_cert'),
      key: read('ssl_key'),
      ...(c.ssl_ca_cert !== '' ? { ca: read('ssl_ca_cert') } : {}),
      ...(c.ssl_ciphers !== '' ? { ciphers: c.ssl_ciphers } : {}),
      ...(c.ssl_ecdh_curve !== '' ? { ecdhCurve: c.ssl_ecdh_curve } : {}),
      honorCipherOrder: c.ssl_prefer_server_ciphers,
      ...versions(c),
    });
    return { context, requestCert: c.ssl_ca_cert !== '' };
  } catch (e) {
    const msg = (e as Error).message;
    if (msg.startsWith('ssl_')) throw e;
    throw new Error(`ssl = on: cannot build the TLS context from ssl_cert/ssl_key/ssl_ciphers/ssl_*_protocol_version: ${msg}`);
  }
}

/** Options for TLS to the backends, or undefined when ssl is off. */
export function buildBackendTls(c: Config): BackendTlsOptions | undefined {
  if (!c.ssl) return undefined;
  const ca = c.ssl_ca_cert !== '' ? fs.readFileSync(c.ssl_ca_cert) : undefined;
  return {
    ...(ca !== undefined ? { ca } : {}),
    verify: ca !== undefined,
    ...(c.ssl_ciphers !== '' ? { ciphers: c.ssl_ciphers } : {}),
    ...versions(c),
  };
}

/**
 * Wraps an accepted client socket (after pgmaitre wrote 'S') in a server-side TLSSocket.
 * The raw socket must have no unread bytes: the caller refuses data sent after the SSLRequest.
 */
export function upgradeClient(socket: net.Socket, t: FrontendTls): tls.TLSSocket {
  return new tls.TLSSocket(socket, {
    isServer: true,
    secureContext: t.context,
    requestCert: t.requestCert,
    rejectUnauthorized: false,
  });
}

const SSL_NO = Buffer.from('N');
const SSL_YES = Buffer.from('S');

/** How an SSLRequest was answered. */
export type SslAnswer =
  | { readonly kind: 'refused'; readonly error: ErrorFieldsInput }
  | { readonly kind: 'plain' }
  | { readonly kind: 'tls'; readonly socket: tls.TLSSocket };

/**
 * Answers a client's SSLRequest on any entry point (the smart endpoint, the dedicated ports):
 * 'N' without TLS (or on a Unix socket), else 'S' and the TLS upgrade of `socket`, whose
 * `detach` listeners are removed first (the caller listens on the TLS socket instead). Refused: a
 * second request, or bytes after the SSLRequest before our 'S' -- unencrypted data injected into
 * the TLS session (CVE-2021-23214), as PostgreSQL refuses it. A client certificate that does not
 * verify calls `badCertificate` once the handshake is done.
 * @see https://www.postgresql.org/docs/15/protocol-flow.html#id-1.10.6.7.12
 */
export function answerSslRequest(
  socket: net.Socket,
  t: FrontendTls | null | undefined,
  opts: { readonly again: boolean; readonly unencryptedAfter: boolean; readonly detach: readonly string[]; readonly badCertificate: (e: ErrorFieldsInput) => void },
): SslAnswer {
  if (opts.again) return { kind: 'refused', error: clientErrors.protocolViolation('duplicate SSLRequest') };
  if (t === null || t === undefined || isUnixSocket(socket)) {
    socket.write(SSL_NO);
    return { kind: 'plain' };
  }
  if (opts.unencryptedAfter) return { kind: 'refused', error: clientErrors.protocolViolation('received unencrypted data after SSL request') };
  socket.write(SSL_YES);
  for (const ev of opts.detach) socket.removeAllListeners(ev);
  const secure = upgradeClient(socket, t);
  if (t.requestCert) {
    secure.once('secure', () => {
      const cert = secure.getPeerCertificate();
      if (cert !== null && Object.keys(cert).length > 0 && !secure.authorized) {
        opts.badCertificate(clientErrors.clientCertificateInvalid(String(secure.authorizationError ?? 'unknown')));
      }
    });
  }
  return { kind: 'tls', socket: secure };
}
