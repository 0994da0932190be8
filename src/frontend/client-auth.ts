/**
 * Server-side authentication of a client, pgpool-style.
 *
 * With enable_pool_hba = on, the first matching pool_hba.conf line picks the method and
 * pool_passwd holds the secrets: trust, reject, password (cleartext), md5, scram-sha-256. The
 * outcome carries the credential pgmaitre then uses to log in to the backends.
 * With enable_pool_hba = off, the primary authenticates the client: the exchange is relayed
 * (see handshake.ts), and pgmaitre learns nothing it could replay.
 */
import { randomBytes } from 'node:crypto';
import { matchHba, type HbaRule } from '../config/hba';
import type { PoolPasswdEntry } from '../config/pool-passwd';
import { FrontendCode } from '../protocol/codes';
import { encodeAuthentication } from '../protocol/backend';
import { decodePassword, decodeSASLInitialResponse, decodeSASLResponse } from '../protocol/frontend';
import { md5PasswordHash, verifyMd5Response } from '../protocol/auth/md5';
import { parseScramVerifier, scramSecret, ScramServerSession } from '../protocol/auth/scram';
import { timingSafeEqual } from 'node:crypto';
import type { ErrorFieldsInput } from '../protocol/error-fields';
import { clientErrors } from '../errors/client-errors';
import type { BackendCredential } from '../backend/backend-auth';

/** The handshake's view of the client socket. */
export interface HandshakeIO {
  send(buf: Buffer): void;
  /** Next typed frame from the client (a copy of it), or rejects when the client goes away. */
  nextFrame(): Promise<{ code: number; frame: Buffer }>;
}

/** Who is connecting. */
export interface AuthRequestInfo {
  readonly user: string;
  readonly database: string;
  readonly address: string;
  readonly ssl: boolean;
  /** Connected over a Unix-domain socket: matches `local` lines only. */
  readonly local: boolean;
}

/** Result: the credential for backend logins, or an error to send as FATAL. */
export type ClientAuthOutcome =
  | { readonly ok: true; readonly credential: BackendCredential; readonly method: string }
  | { readonly ok: false; readonly error: ErrorFieldsInput; readonly method: string };

/** Thrown (internally) for a client that sent something other than a password message. */
class UnexpectedMessage extends Error {}

function credentialOf(entry: PoolPasswdEntry | undefined): BackendCredential {
  if (entry?.kind === 'text') return { kind: 'password', password: entry.password };
  if (entry?.kind === 'md5') return { kind: 'md5', md5: entry.md5 };
  return { kind: 'none' };
}

/** True when `password` derives the StoredKey of a SCRAM verifier (password method against a SCRAM entry). */
function passwordMatchesVerifier(verifier: string, password: string): boolean {
  const v = parseScramVerifier(verifier);
  if (v === null) return false;
  const derived = scramSecret(password, v.salt, v.iterations);
  return timingSafeEqual(derived.storedKey, v.storedKey);
}

async function readPassword(io: HandshakeIO): Promise<Buffer> {
  const { code, frame } = await io.nextFrame();
  if (code !== FrontendCode.Password) throw new UnexpectedMessage(`expected a password message, got '${String.fromCharCode(code)}'`);
  return frame;
}

/** Authenticates a client against pool_hba.conf + pool_passwd. */
export async function authenticateClient(
  io: HandshakeIO,
  who: AuthRequestInfo,
  hba: readonly HbaRule[],
  poolPasswd: ReadonlyMap<string, PoolPasswdEntry>,
): Promise<ClientAuthOutcome> {
  const rule = matchHba(hba, who.local
    ? { conn: 'local', ssl: false, database: who.database, user: who.user }
    : { conn: 'host', ssl: who.ssl, address: who.address, database: who.database, user: who.user });
  const host = who.local ? '[local]' : who.address;
  if (rule === undefined) return { ok: false, method: 'none', error: clientErrors.noHbaEntry(host, who.user, who.database) };
  const method = rule.method;
  const entry = poolPasswd.get(who.user);
  const fail = (error: ErrorFieldsInput): ClientAuthOutcome => ({ ok: false, method, error });
  const wrong = (): ClientAuthOutcome => fail(clientErrors.passwordFailed(who.user, method));
  try {
    switch (method) {
      case 'trust':
        return { ok: true, method, credential: credentialOf(entry) };
      case 'reject':
        return fail(clientErrors.hbaReject(host, who.user, who.database));
      case 'password': {
        if (entry === undefined || entry.kind === 'unusable') {
          return fail(clientErrors.noPoolPasswd(who.user, entry?.kind === 'unusable' ? entry.reason : 'no pool_passwd entry for this user'));
        }
        io.send(encodeAuthentication({ type: 'AuthenticationCleartextPassword' }));
        const frame = await readPassword(io);
        const given = decodePassword(frame, 0, frame.length);
        let ok = false;
        if (entry.kind === 'text') ok = given === entry.password;
        else if (entry.kind === 'md5') ok = md5PasswordHash(who.user, given) === entry.md5;
        else if (entry.kind === 'scram') ok = passwordMatchesVerifier(entry.verifier, given);
        return ok ? { ok: true, method, credential: { kind: 'password', password: given } } : wrong();
      }
      case 'md5': {
        const hash = entry?.kind === 'md5' ? entry.md5 : entry?.kind === 'text' ? md5PasswordHash(who.user, entry.password) : null;
        if (hash === null) return fail(clientErrors.noPoolPasswd(who.user, 'md5 authentication needs an md5 or TEXT/AES entry in pool_passwd'));
        const salt = randomBytes(4);
        io.send(encodeAuthentication({ type: 'AuthenticationMD5Password', salt }));
        const frame = await readPassword(io);
        const given = decodePassword(frame, 0, frame.length);
        return verifyMd5Response(hash, salt, given) ? { ok: true, method, credential: credentialOf(entry) } : wrong();
      }
      case 'scram-sha-256': {
        let server: ScramServerSession;
        if (entry?.kind === 'text') server = ScramServerSession.fromPassword(entry.password);
        else if (entry?.kind === 'scram') server = ScramServerSession.fromVerifier(entry.verifier);
        else return fail(clientErrors.noPoolPasswd(who.user, 'scram-sha-256 authentication needs a TEXT/AES or SCRAM entry in pool_passwd'));
        io.send(encodeAuthentication({ type: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256'] }));
        const first = await readPassword(io);
        const init = decodeSASLInitialResponse(first, 0, first.length);
        if (init.mechanism !== 'SCRAM-SHA-256') {
          return fail(clientErrors.protocolViolation(`client selected an invalid SASL authentication mechanism "${init.mechanism}"`));
        }
        const serverFirst = server.serverFirst(init.data.toString('utf8'));
        io.send(encodeAuthentication({ type: 'AuthenticationSASLContinue', data: Buffer.from(serverFirst) }));
        const final = await readPassword(io);
        const result = server.serverFinal(decodeSASLResponse(final, 0, final.length).toString('utf8'));
        if (!result.ok || result.serverFinal === undefined) return wrong();
        io.send(encodeAuthentication({ type: 'AuthenticationSASLFinal', data: Buffer.from(result.serverFinal) }));
        return { ok: true, method, credential: credentialOf(entry) };
      }
      default:
        return fail(clientErrors.unsupportedAuthMethod(method));
    }
  } catch (e) {
    if (e instanceof UnexpectedMessage) return fail(clientErrors.protocolViolation(e.message));
    // Malformed SASL/password payloads are the client's fault: report them as a failed login.
    if (e instanceof Error && e.name !== 'ClientGone') return fail(clientErrors.protocolViolation(`invalid authentication message: ${e.message}`));
    throw e;
  }
}
