/**
 * PostgreSQL MD5 password authentication helpers (pure crypto, no sockets).
 *
 * Stored form: 'md5' + hex(md5(password + user)) — what pg_authid and pool_passwd hold.
 * Challenge response: 'md5' + hex(md5(hex(md5(password + user)) + salt)). Because the response
 * only needs the stored hash, a pool_passwd md5 entry can both answer a backend's challenge and
 * verify a client's response without knowing the password.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 */

import { createHash, timingSafeEqual } from 'node:crypto';

const MD5_PREFIX = 'md5';

/** True if `s` looks like a stored MD5 hash ('md5' + 32 lowercase hex digits). @see https://www.postgresql.org/docs/current/catalog-pg-authid.html */
export function isMd5Hash(s: string): boolean {
  return s.length === 35 && s.startsWith(MD5_PREFIX) && /^[0-9a-f]{32}$/.test(s.slice(3));
}

/** Stored MD5 hash: 'md5' + hex(md5(password + user)). @see https://www.postgresql.org/docs/current/catalog-pg-authid.html */
export function md5PasswordHash(user: string, password: string): string {
  return MD5_PREFIX + createHash('md5').update(password, 'utf8').update(user, 'utf8').digest('hex');
}

/** Response to an AuthenticationMD5Password challenge from a stored 'md5…' hash and the 4-byte salt. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONMD5PASSWORD */
export function md5Response(md5Hash: string, salt: Buffer): string {
  if (!isMd5Hash(md5Hash)) throw new TypeError('md5Response expects a stored hash of the form md5<32 hex digits>');
  if (salt.length !== 4) throw new RangeError('MD5 salt must be 4 bytes');
  return MD5_PREFIX + createHash('md5').update(md5Hash.slice(3), 'latin1').update(salt).digest('hex');
}

/** Constant-time check of a client's MD5 response against the stored hash and the salt we sent. @see https://www.postgresql.org/docs/current/auth-password.html */
export function verifyMd5Response(stored: string, salt: Buffer, response: string): boolean {
  if (!isMd5Hash(stored)) return false;
  const expected = Buffer.from(md5Response(stored, salt), 'latin1');
  const got = Buffer.from(response, 'utf8');
  // Compare against a same-length buffer so the length check does not short-circuit timing.
  if (got.length !== expected.length) {
    timingSafeEqual(expected, expected);
    return false;
  }
  return timingSafeEqual(expected, got);
}
