/**
 * pcp.conf: the users allowed on the PCP/admin interface, as `user:md5hash` lines.
 *
 * The hash is pg_md5's output: the hex MD5 of the password alone (no user name, no
 * "md5" prefix). Blank lines and `#` comments are ignored.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { ConfigError, type ConfigIssue } from './config-error';

/** Parse pcp.conf text into user → lower-case MD5 hex; throws ConfigError listing bad lines. */
export function parsePcpConf(text: string, fileName = 'pcp.conf'): Map<string, string> {
  const users = new Map<string, string>();
  const issues: ConfigIssue[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    if (colon <= 0) {
      issues.push({ file: fileName, line: i + 1, message: 'expected user:md5hash' });
      return;
    }
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1).trim();
    if (!/^[0-9a-fA-F]{32}$/.test(hash)) {
      issues.push({ file: fileName, line: i + 1, key: user, message: 'password must be the 32-hex-digit MD5 printed by pg_md5' });
      return;
    }
    users.set(user, hash.toLowerCase());
  });
  if (issues.length > 0) throw new ConfigError(issues);
  return users;
}

/** Read and parse a pcp.conf file. */
export function loadPcpConf(path: string): Map<string, string> {
  return parsePcpConf(readFileSync(path, 'utf8'), basename(path));
}

/** The hash pg_md5 prints for a password (what pcp.conf stores). */
export function pcpHash(password: string): string {
  return createHash('md5').update(password, 'utf8').digest('hex');
}
