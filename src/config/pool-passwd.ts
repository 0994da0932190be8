/**
 * pool_passwd: the passwords pgmaitre uses to authenticate clients and to log in to backends.
 *
 * One `user:secret` per line, where secret is one of (same rules as pgpool-II):
 *   md5<32 hex>            MD5 of password || user name (what pg_md5 -m writes)
 *   AES<base64>            password encrypted by pg_enc (decrypted here to clear text)
 *   TEXT<password>         clear text
 *   SCRAM-SHA-256$...      a SCRAM verifier as PostgreSQL stores it
 *   anything else          clear text
 *
 * pg_enc's AES format: AES-256-CBC with PKCS#7 padding; key and IV come from OpenSSL's
 * EVP_BytesToKey(SHA-1, no salt, 1 iteration) over the key string; the ciphertext is
 * base64-encoded. The key string is the first line of the key file (~/.pgpoolkey, or
 * $PGPOOLKEYFILE) with its trailing newline removed and nothing else trimmed.
 * An entry that cannot be decrypted becomes {kind:'unusable'} with a reason naming the
 * file and line; it never prevents the other entries from loading.
 */
import { createCipheriv, createDecipheriv, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

/** A usable (or explicitly unusable) pool_passwd entry. */
export type PoolPasswdEntry =
  | { readonly kind: 'md5'; readonly md5: string }
  | { readonly kind: 'text'; readonly password: string }
  | { readonly kind: 'scram'; readonly verifier: string }
  | { readonly kind: 'unusable'; readonly reason: string };

/** Derive AES-256-CBC key and IV from a pass phrase the way EVP_BytesToKey(SHA-1, no salt, 1) does. */
function deriveKeyIv(passphrase: string): { key: Buffer; iv: Buffer } {
  const pass = Buffer.from(passphrase, 'utf8');
  let material = Buffer.alloc(0);
  let block = Buffer.alloc(0);
  while (material.length < 48) {
    block = createHash('sha1').update(Buffer.concat([block, pass])).digest();
    material = Buffer.concat([material, block]);
  }
  return { key: material.subarray(0, 32), iv: material.subarray(32, 48) };
}

/** Encrypt a password as pg_enc does; returns the base64 text that follows "AES" in pool_passwd. */
export function encryptAesPassword(password: string, passphrase: string): string {
  const { key, iv } = deriveKeyIv(passphrase);
  const c = createCipheriv('aes-256-cbc', key, iv);
  return Buffer.concat([c.update(password, 'utf8'), c.final()]).toString('base64');
}

/** Decrypt the base64 part of an AES entry; throws if the key is wrong or the data corrupt. */
export function decryptAesPassword(base64: string, passphrase: string): string {
  const data = Buffer.from(base64, 'base64');
  if (data.length === 0 || data.length % 16 !== 0) throw new Error('not a valid AES-256-CBC ciphertext');
  const { key, iv } = deriveKeyIv(passphrase);
  const d = createDecipheriv('aes-256-cbc', key, iv);
  try {
    return Buffer.concat([d.update(data), d.final()]).toString('utf8');
  } catch {
    throw new Error('decryption failed (wrong key or corrupted entry)');
  }
}

/** A pool_passwd line with an AES-encrypted password (what `pg_enc -m` writes). */
export function aesEntry(user: string, password: string, passphrase: string): string {
  return `${user}:AES${encryptAesPassword(password, passphrase)}`;
}

/** A pool_passwd line with the MD5 of password+user (what `pg_md5 -m` writes). */
export function md5Entry(user: string, password: string): string {
  return `${user}:md5${createHash('md5').update(password + user, 'utf8').digest('hex')}`;
}

/** Read the encryption key from a pgpool key file: its first line without the newline. */
export function readPoolKey(path: string): string {
  const text = readFileSync(path, 'utf8');
  const nl = text.indexOf('\n');
  const key = nl >= 0 ? text.slice(0, nl) : text;
  if (key === '') throw new Error(`key file ${path} is empty`);
  return key;
}

const SCRAM_RE = /^SCRAM-SHA-256\$\d+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/;

/** Classify one secret (the part after `user:`). `key` is a function so the key file is read only if needed. */
function classify(secret: string, where: string, getKey: () => string): PoolPasswdEntry {
  if (secret.startsWith('md5')) {
    if (/^md5[0-9a-f]{32}$/.test(secret)) return { kind: 'md5', md5: secret };
    return { kind: 'text', password: secret };
  }
  if (secret.startsWith('AES')) {
    let key: string;
    try {
      key = getKey();
    } catch (err) {
      return { kind: 'unusable', reason: `${where}: cannot decrypt AES password: ${(err as Error).message}` };
    }
    try {
      return { kind: 'text', password: decryptAesPassword(secret.slice(3), key) };
    } catch (err) {
      return { kind: 'unusable', reason: `${where}: cannot decrypt AES password: ${(err as Error).message}` };
    }
  }
  if (secret.startsWith('SCRAM-SHA-256$')) {
    if (SCRAM_RE.test(secret)) return { kind: 'scram', verifier: secret };
    return { kind: 'unusable', reason: `${where}: malformed SCRAM-SHA-256 verifier` };
  }
  if (secret.startsWith('TEXT')) return { kind: 'text', password: secret.slice(4) };
  return { kind: 'text', password: secret };
}

/** Parse pool_passwd text; `key` (or a function reading it lazily) decrypts AES entries. */
export function parsePoolPasswd(
  text: string,
  fileName = 'pool_passwd',
  key?: string | (() => string),
): Map<string, PoolPasswdEntry> {
  let cached: { key?: string; err?: Error } | undefined;
  const getKey = (): string => {
    if (cached === undefined) {
      try {
        if (key === undefined) throw new Error('no key file given');
        cached = { key: typeof key === 'string' ? key : key() };
      } catch (err) {
        cached = { err: err as Error };
      }
    }
    if (cached.err !== undefined) throw cached.err;
    return cached.key ?? '';
  };
  const out = new Map<string, PoolPasswdEntry>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    const where = `${fileName}:${i + 1}`;
    if (colon <= 0) return; // no user name: nothing to key the entry by
    const user = line.slice(0, colon);
    out.set(user, classify(line.slice(colon + 1), `${where}: ${user}`, getKey));
  });
  return out;
}

/** Load a pool_passwd file; AES entries are decrypted with the key read from keyFile. */
export function loadPoolPasswd(path: string, keyFile?: string): Map<string, PoolPasswdEntry> {
  const text = readFileSync(path, 'utf8');
  const key = keyFile === undefined ? undefined : (): string => {
    try {
      return readPoolKey(keyFile);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new Error(code !== undefined ? `key file ${keyFile} not readable (${code})` : (err as Error).message);
    }
  };
  return parsePoolPasswd(text, basename(path), key);
}
