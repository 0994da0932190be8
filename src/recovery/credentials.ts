/**
 * recovery_password as pgpool-II reads it: empty → the recovery_user's pool_passwd entry (clear
 * text or AES-decrypted); 'AES…' → decrypted with the pool key file (pg_enc's format); 'TEXT…'
 * → the rest, verbatim; an md5 hash ('md5' + 32 hex digits) → refused, because online recovery
 * must log in to the primary and to the recovered node as a client, which a hash cannot do
 * (pgpool-II: "recovery_password is not allowed to be md5 hashed format"). Anything else is the
 * password in clear text.
 */
import type { PoolPasswdEntry } from '../config/pool-passwd';
import { decryptAesPassword, readPoolKey } from '../config/pool-passwd';

/** A recovery_password that cannot be used; message/detail follow pgpool-II's wording. */
export class RecoveryPasswordError extends Error {
  constructor(message: string, readonly detail: string) {
    super(message);
  }
}

/** Resolves the password online recovery logs in with; throws RecoveryPasswordError when unusable. */
export function recoveryPassword(
  user: string, configured: string, poolPasswd: ReadonlyMap<string, PoolPasswdEntry>, keyFile: string,
): string {
  if (configured === '') {
    const e = poolPasswd.get(user);
    if (e === undefined) return '';
    if (e.kind === 'text') return e.password;
    if (e.kind === 'md5' || e.kind === 'scram') {
      throw new RecoveryPasswordError(`the password of recovery_user ${user} is invalid format`,
        `recovery_password is empty and the pool_passwd entry of "${user}" is ${e.kind === 'md5' ? 'an md5 hash' : 'a SCRAM verifier'}: online recovery needs the password itself (clear text, TEXT or AES in pool_passwd, or recovery_password)`);
    }
    throw new RecoveryPasswordError(`the password of recovery_user ${user} is invalid format`, e.reason);
  }
  if (/^md5[0-9a-f]{32}$/.test(configured)) {
    throw new RecoveryPasswordError(`the password of recovery_user ${user} is invalid format`,
      'recovery_password is not allowed to be md5 hashed format');
  }
  if (configured.startsWith('AES')) {
    try {
      return decryptAesPassword(configured.slice(3), readPoolKey(keyFile));
    } catch (err) {
      throw new RecoveryPasswordError(`the password of recovery_user ${user} cannot be decrypted`,
        `recovery_password is AES-encrypted and the key file ${keyFile} does not decrypt it: ${(err as Error).message}`);
    }
  }
  if (configured.startsWith('TEXT')) return configured.slice(4);
  return configured;
}
