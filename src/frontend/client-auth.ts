/**
 * Server-side authentication of a client, pgpool-style.
 *
 * With enable_pool_hba = on, the first matching pool_hba.conf line picks the method and
 * pool_passwd holds the secrets: trust, reject, password (cleartext), md5, scram-sha-256; ldap
 * checks the client's clear-text password against a directory (ldap-auth.ts; pool_passwd or, with
 * backend_use_passwd=1, that password logs in to the backends). The outcome carries the
 * credential pgmaitre then uses to log in to the backends.
 *
 * Where the secret comes from, in order: pool_passwd; auth_query (auth-query.ts) when configured;
 * with allow_clear_text_frontend_auth, the client's own clear-text password (pgpool: pgmaitre
 * cannot check it, the backend does when pgmaitre logs in with it). A user found nowhere goes
 * through a mock exchange of the hba method that always fails with 28P01 (as PostgreSQL does),
 * so the answer does not reveal whether the user exists. As in PostgreSQL, an md5 line with a
 * SCRAM verifier runs SCRAM. A SCRAM verifier (pool_passwd or auth_query) yields the ClientKey
 * for SCRAM pass-through to the backends.
 * With enable_pool_hba = off, the primary authenticates the client: the exchange is relayed
 * (see handshake.ts), and pgmaitre learns nothing it could replay.
 */
import { createHash, randomBytes } from 'node:crypto';
import { matchHba, rolesNeeded, type HbaRule } from '../config/hba';
import type { PoolPasswdEntry } from '../config/pool-passwd';
import { FrontendCode } from '../protocol/codes';
import { encodeAuthentication } from '../protocol/backend';
import { decodePassword, decodeSASLInitialResponse, decodeSASLResponse } from '../protocol/frontend';
import { md5PasswordHash, verifyMd5Response } from '../protocol/auth/md5';
import { parseScramVerifier, scramSecret, ScramServerSession, SCRAM_DEFAULT_ITERATIONS, type ScramSecret } from '../protocol/auth/scram';
import { LruCache } from '../util/lru-cache';
import { timingSafeEqual } from 'node:crypto';
import type { ErrorFieldsInput } from '../protocol/error-fields';
import { clientErrors } from '../errors/client-errors';
import type { BackendCredential } from '../backend/backend-auth';
import { checkLdapPassword, type LdapCheckOptions } from './ldap-auth';

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
  /** The user's roles (for +group/samerole lines), when pool_hba.conf needs them. */
  readonly roles?: ReadonlySet<string>;
  /** A replication connection: lines match as for PostgreSQL's walsenders (see config/hba.ts). */
  readonly replication?: 'physical' | 'logical';
}

/** Where secrets come from besides pool_passwd. */
export interface SecretSources {
  /** auth_query lookup: the user's stored secret, undefined when unknown; rejects when the query fails. */
  readonly lookup?: (user: string) => Promise<PoolPasswdEntry | undefined>;
  /** allow_clear_text_frontend_auth. */
  readonly allowClearText?: boolean;
  /** Timeouts and TLS options of the `ldap` method's directory connections. */
  readonly ldap?: LdapCheckOptions;
}

/** Thrown when auth_query could not run; the handshake logs it and sends authQueryFailed. */
export class AuthLookupError extends Error {
  override name = 'AuthLookupError';
}

/** Per-process secret for mock SCRAM salts: stable per user name, unguessable from outside. */
const MOCK_NONCE = randomBytes(32);

/** A SCRAM verifier that no password matches, with a salt that is the same on every attempt for `user`. */
function mockScramSession(user: string): ScramServerSession {
  const salt = createHash('sha256').update(MOCK_NONCE).update(user, 'utf8').digest().subarray(0, 16);
  return new ScramServerSession({ iterations: SCRAM_DEFAULT_ITERATIONS, salt, storedKey: randomBytes(32), serverKey: randomBytes(32) });
}

/** Result: the credential for backend logins, or an error to send as FATAL. */
export type ClientAuthOutcome =
  /**
   * `unverified`: pgmaitre could not check the password itself (allow_clear_text_frontend_auth);
   * only a fresh backend login with it proves it, so no pooled connection may be reused.
   */
  | { readonly ok: true; readonly credential: BackendCredential; readonly method: string; readonly unverified?: boolean }
  | { readonly ok: false; readonly error: ErrorFieldsInput; readonly method: string; readonly logDetail?: string };

/** Thrown (internally) for a client that sent something other than a password message. */
class UnexpectedMessage extends Error {}

function credentialOf(entry: PoolPasswdEntry | undefined): BackendCredential {
  if (entry?.kind === 'text') return { kind: 'password', password: entry.password };
  if (entry?.kind === 'md5') return { kind: 'md5', md5: entry.md5 };
  return { kind: 'none' };
}

/**
 * SCRAM secrets of TEXT/AES pool_passwd entries, by user and password: derived once (PBKDF2, 4096
 * rounds, milliseconds of CPU) with a salt drawn then, and kept, as PostgreSQL keeps one
 * verifier per role, instead of being derived again at every login (clients that connect per
 * request). A changed password is another key; the bound keeps memory flat.
 */
const textSecrets = new LruCache<ScramSecret>(1024);

/** The SCRAM secret a TEXT/AES pool_passwd entry stands for (see textSecrets). */
export function textEntrySecret(user: string, password: string): ScramSecret {
  const key = `${user}\u0000${password}`;
  let secret = textSecrets.get(key);
  if (secret === undefined) {
    secret = scramSecret(password);
    textSecrets.set(key, secret);
  }
  return secret;
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

/** What pool_hba.conf's lines are matched against, for `who`. */
function hbaRequest(who: AuthRequestInfo): Parameters<typeof matchHba>[1] {
  const extra = { ...(who.roles !== undefined ? { roles: who.roles } : {}), ...(who.replication !== undefined ? { replication: who.replication } : {}) };
  return who.local
    ? { conn: 'local', ssl: false, database: who.database, user: who.user, ...extra }
    : { conn: 'host', ssl: who.ssl, address: who.address, database: who.database, user: who.user, ...extra };
}

/** Whether a pool_hba.conf has +group/samerole lines (then the roles are looked up first), by rules. */
const needsRoles = new WeakMap<readonly HbaRule[], boolean>();

/**
 * The credential of a client that pool_hba.conf lets in without asking anything (its line is
 * `trust`), decided at once — what authenticateClient() would answer, without its promise (a
 * client that connects per request); null when the line asks for something, when no line
 * matches, or when +group/samerole lines need the user's roles looked up first.
 */
export function trustedByHba(who: AuthRequestInfo, hba: readonly HbaRule[], poolPasswd: ReadonlyMap<string, PoolPasswdEntry>): BackendCredential | null {
  let roles = needsRoles.get(hba);
  if (roles === undefined) needsRoles.set(hba, (roles = rolesNeeded(hba)));
  if (roles) return null;
  return matchHba(hba, hbaRequest(who))?.method === 'trust' ? credentialOf(poolPasswd.get(who.user)) : null;
}

/** Authenticates a client against pool_hba.conf + pool_passwd. */
export async function authenticateClient(
  io: HandshakeIO,
  who: AuthRequestInfo,
  hba: readonly HbaRule[],
  poolPasswd: ReadonlyMap<string, PoolPasswdEntry>,
  sources: SecretSources = {},
): Promise<ClientAuthOutcome> {
  const rule = matchHba(hba, hbaRequest(who));
  const host = who.local ? '[local]' : who.address;
  if (rule === undefined) {
    return { ok: false, method: 'none', error: who.replication !== undefined
      ? clientErrors.noHbaEntryReplication(host, who.user, who.ssl) : clientErrors.noHbaEntry(host, who.user, who.database, who.ssl) };
  }
  const method = rule.method;
  let entry = poolPasswd.get(who.user);
  const needsSecret = method === 'password' || method === 'md5' || method === 'scram-sha-256';
  if (entry === undefined && needsSecret && sources.lookup !== undefined) {
    try {
      entry = await sources.lookup(who.user);
    } catch (e) {
      throw new AuthLookupError((e as Error).message);
    }
  }
  const fail = (error: ErrorFieldsInput): ClientAuthOutcome => ({ ok: false, method, error });
  const wrong = (): ClientAuthOutcome => fail(clientErrors.passwordFailed(who.user, method));
  try {
    if (entry === undefined && needsSecret) {
      if (sources.allowClearText) {
        // pgpool's allow_clear_text_frontend_auth: the backend checks this password when
        // pgmaitre logs in with it (its 28P01 reaches the client if it is wrong).
        io.send(encodeAuthentication({ type: 'AuthenticationCleartextPassword' }));
        const frame = await readPassword(io);
        return { ok: true, method, unverified: true, credential: { kind: 'password', password: decodePassword(frame, 0, frame.length) } };
      }
      return await mockExchange(io, method, who.user, wrong);
    }
    switch (method) {
      case 'trust':
        return { ok: true, method, credential: credentialOf(entry) };
      case 'ldap': {
        const settings = rule.ldap;
        if (settings === undefined) return fail(clientErrors.unsupportedAuthMethod(method));
        // The password travels in clear text (PostgreSQL's LDAP method): only TLS protects it.
        io.send(encodeAuthentication({ type: 'AuthenticationCleartextPassword' }));
        const frame = await readPassword(io);
        const given = decodePassword(frame, 0, frame.length);
        const r = await checkLdapPassword(settings, who.user, given, sources.ldap ?? {});
        if (r.kind === 'unavailable') return { ok: false, method, error: clientErrors.ldapUnavailable(who.user), logDetail: r.why };
        if (r.kind === 'rejected') return { ok: false, method, error: clientErrors.ldapFailed(who.user), logDetail: r.why };
        // pgpool-II's backend_use_passwd=1: log in to the backends with the password LDAP accepted.
        const credential: BackendCredential = rule.options['backend_use_passwd'] === '1'
          ? { kind: 'password', password: given } : credentialOf(entry?.kind === 'unusable' ? undefined : entry);
        return { ok: true, method, credential };
      }
      case 'reject':
        return fail(who.replication !== undefined ? clientErrors.hbaRejectReplication(host, who.user) : clientErrors.hbaReject(host, who.user, who.database));
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
        // PostgreSQL: an md5 line with a SCRAM verifier runs SCRAM.
        if (entry?.kind === 'scram') return await scramExchange(io, entry.verifier, method, wrong);
        const hash = entry?.kind === 'md5' ? entry.md5 : entry?.kind === 'text' ? md5PasswordHash(who.user, entry.password) : null;
        if (hash === null) return fail(clientErrors.noPoolPasswd(who.user, 'md5 authentication needs an md5 or TEXT/AES entry in pool_passwd'));
        const salt = randomBytes(4);
        io.send(encodeAuthentication({ type: 'AuthenticationMD5Password', salt }));
        const frame = await readPassword(io);
        const given = decodePassword(frame, 0, frame.length);
        return verifyMd5Response(hash, salt, given) ? { ok: true, method, credential: credentialOf(entry) } : wrong();
      }
      case 'scram-sha-256': {
        if (entry?.kind === 'scram') return await scramExchange(io, entry.verifier, method, wrong);
        if (entry?.kind !== 'text') return fail(clientErrors.noPoolPasswd(who.user, 'scram-sha-256 authentication needs a TEXT/AES or SCRAM entry in pool_passwd'));
        const r = await runScram(io, new ScramServerSession(textEntrySecret(who.user, entry.password)));
        if (r.kind === 'error') return fail(r.error);
        return r.kind === 'ok' ? { ok: true, method, credential: credentialOf(entry) } : wrong();
      }
      default:
        return fail(clientErrors.unsupportedAuthMethod(method));
    }
  } catch (e) {
    if (e instanceof UnexpectedMessage) return fail(clientErrors.protocolViolation(e.message));
    if (e instanceof AuthLookupError) throw e;
    // Malformed SASL/password payloads are the client's fault: report them as a failed login.
    if (e instanceof Error && e.name !== 'ClientGone') return fail(clientErrors.protocolViolation(`invalid authentication message: ${e.message}`));
    throw e;
  }
}

type ScramResult =
  | { readonly kind: 'ok'; readonly clientKey: Buffer }
  | { readonly kind: 'wrong' }
  | { readonly kind: 'error'; readonly error: ErrorFieldsInput };

/** One SCRAM-SHA-256 exchange with the client against `server`'s secret. */
async function runScram(io: HandshakeIO, server: ScramServerSession): Promise<ScramResult> {
  io.send(encodeAuthentication({ type: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256'] }));
  const first = await readPassword(io);
  const init = decodeSASLInitialResponse(first, 0, first.length);
  if (init.mechanism !== 'SCRAM-SHA-256') {
    return { kind: 'error', error: clientErrors.protocolViolation(`client selected an invalid SASL authentication mechanism "${init.mechanism}"`) };
  }
  const serverFirst = server.serverFirst(init.data.toString('utf8'));
  io.send(encodeAuthentication({ type: 'AuthenticationSASLContinue', data: Buffer.from(serverFirst) }));
  const final = await readPassword(io);
  const result = server.serverFinal(decodeSASLResponse(final, 0, final.length).toString('utf8'));
  if (!result.ok || result.serverFinal === undefined || result.clientKey === undefined) return { kind: 'wrong' };
  io.send(encodeAuthentication({ type: 'AuthenticationSASLFinal', data: Buffer.from(result.serverFinal) }));
  return { kind: 'ok', clientKey: result.clientKey };
}

/** SCRAM against a stored verifier; success carries the ClientKey for pass-through to the backends. */
async function scramExchange(io: HandshakeIO, verifier: string, method: string, wrong: () => ClientAuthOutcome): Promise<ClientAuthOutcome> {
  const secret = parseScramVerifier(verifier);
  if (secret === null) return wrong();
  const r = await runScram(io, new ScramServerSession(secret));
  if (r.kind === 'error') return { ok: false, method, error: r.error };
  if (r.kind === 'wrong') return wrong();
  return { ok: true, method, credential: { kind: 'scram-keys', clientKey: r.clientKey, serverKey: secret.serverKey } };
}

/** The hba method's exchange for a user pgmaitre has no secret for: always fails with 28P01. */
async function mockExchange(io: HandshakeIO, method: string, user: string, wrong: () => ClientAuthOutcome): Promise<ClientAuthOutcome> {
  if (method === 'scram-sha-256') {
    const r = await runScram(io, mockScramSession(user));
    return r.kind === 'error' ? { ok: false, method, error: r.error } : wrong();
  }
  io.send(encodeAuthentication(method === 'md5'
    ? { type: 'AuthenticationMD5Password', salt: randomBytes(4) }
    : { type: 'AuthenticationCleartextPassword' }));
  await readPassword(io);
  return wrong();
}
