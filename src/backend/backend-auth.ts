/**
 * How pgmaitre answers a backend's authentication requests when it logs in as a client.
 *
 * Two strategies behind one interface: `credentialAuthenticator` answers from credentials
 * pgmaitre holds (pool_passwd, or a cleartext password the client gave), and the frontend's
 * relay authenticator (frontend/handshake.ts) passes the exchange through to the real client when
 * pgmaitre holds nothing (enable_pool_hba = off: the backend itself authenticates the client).
 */
import type { AuthenticationMessage } from '../protocol/backend';
import { encodePassword, encodeSASLInitialResponse, encodeSASLResponse } from '../protocol/frontend';
import { md5PasswordHash, md5Response } from '../protocol/auth/md5';
import { ScramClientSession } from '../protocol/auth/scram';
import { ProxyError, ProxyErrorCode } from '../errors/proxy-error';

/** What pgmaitre holds to log a user in to a backend. */
export type BackendCredential =
  | { readonly kind: 'none' }
  | { readonly kind: 'password'; readonly password: string }
  | { readonly kind: 'md5'; readonly md5: string }
  /**
   * SCRAM pass-through: the ClientKey recovered from a client's proof (and the ServerKey of the
   * verifier it was checked against). Answers a backend's SCRAM exchange when the backend holds
   * the same verifier; it cannot answer md5 or cleartext requests.
   */
  | { readonly kind: 'scram-keys'; readonly clientKey: Buffer; readonly serverKey: Buffer };

/** Answers one authentication request with the frame to send back to the backend. */
export interface BackendAuthenticator {
  answer(req: AuthenticationMessage, frame: Buffer): Buffer | Promise<Buffer>;
  /** Called once the backend said AuthenticationOk. */
  done?(): void;
  /** Called if the login failed; lets a relaying authenticator tell its client. */
  failed?(frame: Buffer | null): void;
}

function noCredential(user: string, what: string, cred: BackendCredential): ProxyError {
  const held = cred.kind === 'md5'
    ? 'pool_passwd holds only an md5 hash for this user, which cannot answer it (use a TEXT or AES entry)'
    : cred.kind === 'scram-keys'
      ? 'pgmaitre holds only SCRAM keys for this user (from a SCRAM verifier), which cannot answer it (store the same SCRAM verifier on every backend, or add a TEXT or AES entry)'
      : 'pgmaitre holds no usable password for this user (add a TEXT or AES entry to pool_passwd)';
  return new ProxyError(ProxyErrorCode.NoCredentials, `backend asks for ${what} for user "${user}" and ${held}`);
}

/** Answers cleartext, MD5 and SCRAM-SHA-256 requests from a held credential. */
export function credentialAuthenticator(user: string, cred: BackendCredential): BackendAuthenticator {
  let scram: ScramClientSession | null = null;
  return {
    answer(req) {
      switch (req.type) {
        case 'AuthenticationCleartextPassword':
          if (cred.kind !== 'password') throw noCredential(user, 'a cleartext password', cred);
          return encodePassword(cred.password);
        case 'AuthenticationMD5Password': {
          const hash = cred.kind === 'md5' ? cred.md5 : cred.kind === 'password' ? md5PasswordHash(user, cred.password) : null;
          if (hash === null) throw noCredential(user, 'an md5 password', cred);
          return encodePassword(md5Response(hash, req.salt));
        }
        case 'AuthenticationSASL':
          if (cred.kind !== 'password' && cred.kind !== 'scram-keys') throw noCredential(user, 'a SCRAM-SHA-256 password', cred);
          if (!req.mechanisms.includes('SCRAM-SHA-256')) {
            throw new ProxyError(ProxyErrorCode.BackendAuth, `backend offers no supported SASL mechanism (${req.mechanisms.join(', ')})`);
          }
          scram = new ScramClientSession(cred.kind === 'password' ? { password: cred.password }
            : { clientKey: cred.clientKey, serverKey: cred.serverKey });
          return encodeSASLInitialResponse('SCRAM-SHA-256', Buffer.from(scram.clientFirst()));
        case 'AuthenticationSASLContinue':
          if (scram === null) throw new ProxyError(ProxyErrorCode.BackendProtocol, 'SASLContinue without SASL');
          return encodeSASLResponse(Buffer.from(scram.clientFinal(req.data.toString('utf8'))));
        case 'AuthenticationSASLFinal':
          if (scram === null || !scram.verifyServerFinal(req.data.toString('utf8'))) {
            throw new ProxyError(ProxyErrorCode.BackendAuth, 'backend SCRAM server signature did not verify');
          }
          return Buffer.alloc(0);
        default:
          throw new ProxyError(ProxyErrorCode.BackendAuth, `backend asks for an unsupported authentication method (${req.type})`);
      }
    },
  };
}
