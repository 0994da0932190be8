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
