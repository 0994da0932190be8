/**
 * SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL speaks it: server and client sessions,
 * verifier parsing/derivation, and the SASLprep approximation used for passwords.
 *
 * PostgreSQL specifics: no channel binding from us (gs2 header 'n,,' or 'y,,'; we never offer
 * SCRAM-SHA-256-PLUS), no authzid, and the username in client-first is ignored (libpq sends
 * 'n='); the user comes from the StartupMessage. Verifiers look like
 * `SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>`.
 *
 * Pass-through: when the server session verifies a client it recovers ClientKey
 * (= ClientProof XOR ClientSignature). A ScramClientSession built from that ClientKey can log in
 * to a backend holding the same verifier without ever knowing the password; the backend's
 * ServerKey is then unknown unless supplied, so server-signature verification becomes optional.
 *
 * @see https://www.postgresql.org/docs/current/sasl-authentication.html
 */

import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { LruCache } from '../../util/lru-cache';

/** The only SASL mechanism pgmaitre offers and uses. */
export const SCRAM_SHA_256 = 'SCRAM-SHA-256';
/** PostgreSQL's default iteration count (scram_iterations). */
export const SCRAM_DEFAULT_ITERATIONS = 4096;
/** PostgreSQL's default salt length in bytes. */
export const SCRAM_DEFAULT_SALT_LEN = 16;
/** PostgreSQL's raw nonce length in bytes (before base64). */
const NONCE_LEN = 18;
const KEY_LEN = 32;

/** Why a SCRAM exchange could not proceed (malformed or unsupported input, wrong state). */
export type ScramErrorCode = 'malformed' | 'unsupported' | 'nonce-mismatch' | 'channel-binding-mismatch' | 'state' | 'server-error';

/** A SCRAM message was malformed/unsupported or a method was called out of order. @see https://www.rfc-editor.org/rfc/rfc5802#section-7 */
export class ScramError extends Error {
  override readonly name = 'ScramError';
  constructor(
    readonly code: ScramErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Parsed SCRAM secret (what pg_authid.rolpassword holds for SCRAM users). @see https://www.postgresql.org/docs/current/catalog-pg-authid.html */
export interface ScramSecret {
  readonly iterations: number;
  readonly salt: Buffer;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

// ---------------------------------------------------------------------------------------------
// Primitives
// ---------------------------------------------------------------------------------------------

const hmac = (key: Buffer, data: string | Buffer): Buffer => createHmac('sha256', key).update(data).digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] as number) ^ (b[i] as number);
  return out;
}

function nonce(): string {
  return randomBytes(NONCE_LEN).toString('base64');
}

/** Strict base64 decode: rejects characters outside the alphabet and non-canonical lengths. */
function b64(s: string, what: string): Buffer {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)) {
    throw new ScramError('malformed', `${what}: invalid base64`);
  }
  return Buffer.from(s, 'base64');
}

// Non-ASCII space characters (RFC 3454 C.1.2), mapped to U+0020 by SASLprep.
const NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/g;
// Characters "commonly mapped to nothing" (RFC 3454 B.1), deleted by SASLprep.
const MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200B-\u200D\u2060\uFE00-\uFE0F\uFEFF]/g;
// Prohibited output (RFC 3454 C.2.1, C.2.2, C.3-C.9 — the ranges a JS regexp can state without tables).
const PROHIBITED =
  /[\u0000-\u001F\u007F-\u009F\u06DD\u070F\u180E\u200C-\u200F\u2028-\u202E\u2060-\u2063\u206A-\u206F\uFDD0-\uFDEF\uFEFF\uFFF9-\uFFFF\uE000-\uF8FF\uD800-\uDFFF\u{1D173}-\u{1D17A}\u{E0001}\u{E0020}-\u{E007F}\u{F0000}-\u{10FFFF}]/u;

/**
 * SASLprep (RFC 4013) as PostgreSQL applies it to SCRAM passwords, returning the bytes to hash.
 * Approximation: pure-ASCII passwords are used as is (as PostgreSQL does); otherwise non-ASCII
 * spaces → ' ', "mapped to nothing" characters are removed and the result NFKC-normalized with
 * String.prototype.normalize. If the result contains prohibited characters (controls, private
 * use, surrogates...) or is empty, the raw password bytes are used, which is PostgreSQL's own
 * fallback. Unassigned code points and the bidi rule are not checked (PostgreSQL tables would
 * be needed); such passwords may hash differently from PostgreSQL.
 * @see https://www.postgresql.org/docs/current/auth-password.html
 */
export function saslprep(password: string | Buffer): Buffer {
  let s: string;
  if (Buffer.isBuffer(password)) {
    s = password.toString('utf8');
    // Not valid UTF-8: PostgreSQL hashes the raw bytes.
    if (!Buffer.from(s, 'utf8').equals(password)) return Buffer.from(password);
  } else {
    s = password;
  }
  const raw = Buffer.from(s, 'utf8');
  if (/^[\x00-\x7F]*$/.test(s)) return raw;
  const prepped = s.replace(NON_ASCII_SPACE, ' ').replace(MAPPED_TO_NOTHING, '').normalize('NFKC');
  if (prepped.length === 0 || PROHIBITED.test(prepped)) return raw;
  return Buffer.from(prepped, 'utf8');
}

/** SaltedPassword = Hi(SASLprep(password), salt, i) = PBKDF2-HMAC-SHA-256. @see https://www.rfc-editor.org/rfc/rfc5802#section-3 */
export function scramSaltedPassword(password: string | Buffer, salt: Buffer, iterations: number): Buffer {
  return pbkdf2Sync(saslprep(password), salt, iterations, KEY_LEN, 'sha256');
}

/**
 * SaltedPassword for a backend login with a password (pool_passwd TEXT/AES): a server offers the
 * same salt and iteration count for a role every time (its stored verifier), so each (password,
 * salt, iterations) is derived once, not at every backend connection (PgBouncer keeps these keys
 * per user too). Bounded.
 */
const saltedPasswords = new LruCache<Buffer>(256);

export function cachedSaltedPassword(password: string | Buffer, salt: Buffer, iterations: number): Buffer {
  const key = `${iterations}\u0000${salt.toString('base64')}\u0000${typeof password === 'string' ? password : `\u0001${password.toString('base64')}`}`;
  let salted = saltedPasswords.get(key);
  if (salted === undefined) {
    salted = scramSaltedPassword(password, salt, iterations);
    saltedPasswords.set(key, salted);
  }
  return salted;
}

/** Derive the SCRAM secret (StoredKey, ServerKey) from a password. @see https://www.rfc-editor.org/rfc/rfc5802#section-3 */
export function scramSecret(password: string | Buffer, salt: Buffer = randomBytes(SCRAM_DEFAULT_SALT_LEN), iterations = SCRAM_DEFAULT_ITERATIONS): ScramSecret {
  const salted = scramSaltedPassword(password, salt, iterations);
  return {
    iterations,
    salt,
    storedKey: sha256(hmac(salted, 'Client Key')),
    serverKey: hmac(salted, 'Server Key'),
  };
}

/** PostgreSQL-compatible verifier string for a password (random 16-byte salt, 4096 iterations by default). @see https://www.postgresql.org/docs/current/catalog-pg-authid.html */
export function scramVerifier(password: string | Buffer, salt?: Buffer, iterations = SCRAM_DEFAULT_ITERATIONS): string {
  return formatScramVerifier(scramSecret(password, salt, iterations));
}

/** Format a secret as `SCRAM-SHA-256$iter:salt$StoredKey:ServerKey`. @see https://www.postgresql.org/docs/current/catalog-pg-authid.html */
export function formatScramVerifier(s: ScramSecret): string {
  return `${SCRAM_SHA_256}$${s.iterations}:${s.salt.toString('base64')}$${s.storedKey.toString('base64')}:${s.serverKey.toString('base64')}`;
}

/** Parse a PostgreSQL SCRAM verifier; returns null if `verifier` is not one (e.g. an md5 hash). @see https://www.postgresql.org/docs/current/catalog-pg-authid.html */
export function parseScramVerifier(verifier: string): ScramSecret | null {
  const m = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(verifier);
  if (m === null) return null;
  const iterations = Number(m[1]);
  try {
    const salt = b64(m[2] as string, 'salt');
    const storedKey = b64(m[3] as string, 'StoredKey');
    const serverKey = b64(m[4] as string, 'ServerKey');
    if (!Number.isSafeInteger(iterations) || iterations < 1 || salt.length === 0 || storedKey.length !== KEY_LEN || serverKey.length !== KEY_LEN) return null;
    return { iterations, salt, storedKey, serverKey };
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Message attribute parsing
// ---------------------------------------------------------------------------------------------

/** Read `k=value` at attrs[i]; throws if the attribute letter differs. */
function attr(attrs: readonly string[], i: number, key: string, what: string): string {
  const a = attrs[i];
  if (a === undefined || a.length < 2 || a[0] !== key || a[1] !== '=') {
    throw new ScramError('malformed', `${what}: expected attribute '${key}='`);
  }
  return a.slice(2);
}

// printable = %x21-2B / %x2D-7E (no comma)
const PRINTABLE = /^[\x21-\x2B\x2D-\x7E]+$/;

// ---------------------------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------------------------

/** Result of checking client-final: on success the server-final message and the recovered ClientKey. @see https://www.rfc-editor.org/rfc/rfc5802#section-5.1 */
export interface ScramServerFinalResult {
  readonly ok: boolean;
  readonly serverFinal?: string;
  readonly clientKey?: Buffer;
}

/** Server side of one SCRAM-SHA-256 exchange (pgmaitre authenticating a client). @see https://www.postgresql.org/docs/current/sasl-authentication.html */
export class ScramServerSession {
  private readonly secret: ScramSecret;
  private readonly serverNonceOverride: string | undefined;
  private state: 'initial' | 'first-sent' | 'done' = 'initial';
  private gs2Header = '';
  private clientFirstBare = '';
  private serverFirstMessage = '';
  private combinedNonce = '';

  /** `options.serverNonce` exists for deterministic tests; never set it in production. */
  constructor(secret: ScramSecret, options: { serverNonce?: string } = {}) {
    this.secret = secret;
    this.serverNonceOverride = options.serverNonce;
  }

  /** Start from a stored `SCRAM-SHA-256$…` verifier; throws ScramError if it is not one. */
  static fromVerifier(verifier: string, options: { serverNonce?: string } = {}): ScramServerSession {
    const secret = parseScramVerifier(verifier);
    if (secret === null) throw new ScramError('malformed', 'not a SCRAM-SHA-256 verifier');
    return new ScramServerSession(secret, options);
  }

  /** Start from a cleartext password (derives a secret with a random salt, 4096 iterations). */
  static fromPassword(password: string | Buffer, options: { serverNonce?: string; salt?: Buffer; iterations?: number } = {}): ScramServerSession {
    return new ScramServerSession(scramSecret(password, options.salt, options.iterations), options);
  }

  /** Handle client-first-message (SASLInitialResponse data) → server-first-message (SASLContinue data). */
  serverFirst(clientFirstMessage: string): string {
    if (this.state !== 'initial') throw new ScramError('state', 'serverFirst called twice');
    // gs2-header: cbind-flag "," [authzid] ","
    const c1 = clientFirstMessage.indexOf(',');
    const c2 = c1 < 0 ? -1 : clientFirstMessage.indexOf(',', c1 + 1);
    if (c2 < 0) throw new ScramError('malformed', 'client-first-message: missing gs2 header');
    const flag = clientFirstMessage.slice(0, c1);
    if (flag === 'p' || flag.startsWith('p=')) {
      throw new ScramError('unsupported', 'client requires SCRAM channel binding, but it is not supported');
    }
    if (flag !== 'n' && flag !== 'y') throw new ScramError('malformed', 'client-first-message: invalid channel binding flag');
    if (c2 !== c1 + 1) throw new ScramError('unsupported', 'client uses authorization identity, but it is not supported');
    this.gs2Header = clientFirstMessage.slice(0, c2 + 1);
    this.clientFirstBare = clientFirstMessage.slice(c2 + 1);

    const attrs = this.clientFirstBare.split(',');
    if (attrs[0]?.startsWith('m=')) throw new ScramError('unsupported', 'client-first-message: mandatory extensions are not supported');
    attr(attrs, 0, 'n', 'client-first-message'); // username: ignored, PostgreSQL takes it from the startup packet
    const clientNonce = attr(attrs, 1, 'r', 'client-first-message');
    if (!PRINTABLE.test(clientNonce)) throw new ScramError('malformed', 'client-first-message: invalid nonce');
    // PostgreSQL rejects extensions here ("garbage found at the end of client-first-message").
    if (attrs.length !== 2) throw new ScramError('malformed', 'client-first-message: unexpected attributes after the nonce');

    this.combinedNonce = clientNonce + (this.serverNonceOverride ?? nonce());
    this.serverFirstMessage = `r=${this.combinedNonce},s=${this.secret.salt.toString('base64')},i=${this.secret.iterations}`;
    this.state = 'first-sent';
    return this.serverFirstMessage;
  }

  /** Handle client-final-message (SASLResponse data): verify the proof; ok:false means wrong password. */
  serverFinal(clientFinalMessage: string): ScramServerFinalResult {
    if (this.state !== 'first-sent') throw new ScramError('state', 'serverFinal called before serverFirst or twice');
    this.state = 'done';
    const attrs = clientFinalMessage.split(',');
    const cbind = b64(attr(attrs, 0, 'c', 'client-final-message'), 'channel binding');
    if (cbind.toString('latin1') !== this.gs2Header) {
      throw new ScramError('channel-binding-mismatch', 'client-final-message: unexpected channel binding data');
    }
    const nonceValue = attr(attrs, 1, 'r', 'client-final-message');
    if (nonceValue !== this.combinedNonce) throw new ScramError('nonce-mismatch', 'client-final-message: nonce does not match');
    const last = attrs.length - 1;
    if (last < 2) throw new ScramError('malformed', 'client-final-message: missing proof');
    const proof = b64(attr(attrs, last, 'p', 'client-final-message'), 'proof');
    if (proof.length !== KEY_LEN) throw new ScramError('malformed', 'client-final-message: proof has the wrong length');

    const withoutProof = clientFinalMessage.slice(0, clientFinalMessage.lastIndexOf(',p='));
    const authMessage = `${this.clientFirstBare},${this.serverFirstMessage},${withoutProof}`;
    const clientSignature = hmac(this.secret.storedKey, authMessage);
    const clientKey = xor(proof, clientSignature);
    if (!timingSafeEqual(sha256(clientKey), this.secret.storedKey)) return { ok: false };
    const serverSignature = hmac(this.secret.serverKey, authMessage);
    return { ok: true, serverFinal: `v=${serverSignature.toString('base64')}`, clientKey };
  }
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

/** What a client session proves knowledge of: the password, or a ClientKey recovered by a ScramServerSession. */
export type ScramClientCredential =
  | { readonly password: string | Buffer }
  | { readonly clientKey: Buffer; readonly serverKey?: Buffer };

/** Client side of one SCRAM-SHA-256 exchange (pgmaitre logging in to a backend). @see https://www.postgresql.org/docs/current/sasl-authentication.html */
export class ScramClientSession {
  private readonly credential: ScramClientCredential;
  private readonly clientNonce: string;
  private readonly username: string;
  private state: 'initial' | 'first-sent' | 'final-sent' | 'done' = 'initial';
  private clientFirstBare = '';
  private expectedServerSignature: Buffer | null = null;
  /** After verifyServerFinal: whether the server signature was actually checked (false in ClientKey mode without ServerKey). */
  serverVerified = false;

  /** `options.clientNonce`/`username` exist for deterministic tests (PostgreSQL ignores the username; libpq sends ''). */
  constructor(credential: ScramClientCredential, options: { clientNonce?: string; username?: string } = {}) {
    this.credential = credential;
    this.clientNonce = options.clientNonce ?? nonce();
    this.username = options.username ?? '';
    if (!PRINTABLE.test(this.clientNonce)) throw new ScramError('malformed', 'client nonce must be printable and comma-free');
    if ('clientKey' in credential && credential.clientKey.length !== KEY_LEN) throw new ScramError('malformed', 'ClientKey must be 32 bytes');
  }

  /** client-first-message: 'n,,n=<user>,r=<nonce>' (SASLInitialResponse data). */
  clientFirst(): string {
    if (this.state !== 'initial') throw new ScramError('state', 'clientFirst called twice');
    this.state = 'first-sent';
    const user = this.username.replace(/=/g, '=3D').replace(/,/g, '=2C');
    this.clientFirstBare = `n=${user},r=${this.clientNonce}`;
    return `n,,${this.clientFirstBare}`;
  }

  /** Handle server-first-message (SASLContinue data) → client-final-message (SASLResponse data). */
  clientFinal(serverFirst: string): string {
    if (this.state !== 'first-sent') throw new ScramError('state', 'clientFinal called out of order');
    this.state = 'final-sent';
    const attrs = serverFirst.split(',');
    if (attrs[0]?.startsWith('m=')) throw new ScramError('unsupported', 'server-first-message: mandatory extensions are not supported');
    const combinedNonce = attr(attrs, 0, 'r', 'server-first-message');
    if (!combinedNonce.startsWith(this.clientNonce) || combinedNonce.length <= this.clientNonce.length || !PRINTABLE.test(combinedNonce)) {
      throw new ScramError('nonce-mismatch', 'server-first-message: nonce does not extend ours');
    }
    const salt = b64(attr(attrs, 1, 's', 'server-first-message'), 'salt');
    const iterText = attr(attrs, 2, 'i', 'server-first-message');
    if (!/^[1-9]\d{0,9}$/.test(iterText)) throw new ScramError('malformed', 'server-first-message: invalid iteration count');
    const iterations = Number(iterText);

    let clientKey: Buffer;
    let serverKey: Buffer | undefined;
    if ('password' in this.credential) {
      const salted = cachedSaltedPassword(this.credential.password, salt, iterations);
      clientKey = hmac(salted, 'Client Key');
      serverKey = hmac(salted, 'Server Key');
    } else {
      clientKey = this.credential.clientKey;
      serverKey = this.credential.serverKey;
    }
    const withoutProof = `c=biws,r=${combinedNonce}`; // biws = base64('n,,')
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const proof = xor(clientKey, hmac(sha256(clientKey), authMessage));
    this.expectedServerSignature = serverKey === undefined ? null : hmac(serverKey, authMessage);
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /**
   * Check server-final-message (SASLFinal data). Returns false on 'e=' errors or a wrong signature.
   * Without a ServerKey (ClientKey mode) only the format is checked and `serverVerified` stays false.
   */
  verifyServerFinal(serverFinal: string): boolean {
    if (this.state !== 'final-sent') throw new ScramError('state', 'verifyServerFinal called out of order');
    this.state = 'done';
    this.serverVerified = false;
    const attrs = serverFinal.split(',');
    if (attrs[0]?.startsWith('e=')) return false;
    let sig: Buffer;
    try {
      sig = b64(attr(attrs, 0, 'v', 'server-final-message'), 'server signature');
    } catch {
      return false;
    }
    if (sig.length !== KEY_LEN) return false;
    if (this.expectedServerSignature === null) return true;
    const ok = timingSafeEqual(sig, this.expectedServerSignature);
    this.serverVerified = ok;
    return ok;
  }
}
