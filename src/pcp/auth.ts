/**
 * PCP md5 authentication: the client asks for a salt ('M' → 'm' + 4 bytes), then sends 'R'
 * with user\0 and md5hex(md5hex(md5hex(password) + user) + salt)\0. pcp.conf stores
 * md5hex(password), so the server computes the same from the file entry. No "md5" prefix.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

function md5hex(data: Buffer | string): string {
  return createHash('md5').update(data).digest('hex');
}

/** A fresh 4-byte salt. */
export function newSalt(): Buffer {
  return randomBytes(4);
}

/** What the client sends for a password (client side). */
export function pcpAuthResponse(user: string, password: string, salt: Buffer): string {
  return pcpAuthFromHash(user, md5hex(password), salt);
}

/** The same from pcp.conf's stored md5hex(password) (server side). */
export function pcpAuthFromHash(user: string, passwordHash: string, salt: Buffer): string {
  const inner = md5hex(passwordHash.toLowerCase() + user);
  return md5hex(Buffer.concat([Buffer.from(inner, 'latin1'), salt]));
}

/** Checks a client's response against pcp.conf users. */
export function verifyPcpAuth(users: ReadonlyMap<string, string>, user: string, response: string, salt: Buffer): boolean {
  const hash = users.get(user);
  if (hash === undefined) return false;
  const expected = Buffer.from(pcpAuthFromHash(user, hash, salt), 'latin1');
  const got = Buffer.from(response, 'latin1');
  return expected.length === got.length && timingSafeEqual(expected, got);
}
