/**
 * LDAP authentication of a client password, as PostgreSQL's `ldap` pg_hba method does it
 * (and pgpool-II's pool_hba.conf, which takes the same options).
 *
 * Two modes, chosen by the options of the pool_hba.conf line:
 * - simple bind: bind as `ldapprefix + user + ldapsuffix` with the client's password;
 * - search+bind: bind as `ldapbinddn`/`ldapbindpasswd` (anonymous without them), search
 *   `ldapbasedn` (subtree) for `ldapsearchattribute=user` (default `uid`) or `ldapsearchfilter`
 *   with `$username` replaced, require exactly one entry, then bind as it with the password.
 * `ldapserver` (a space- or comma-separated list, tried in order), `ldapport`, `ldapscheme`
 * (ldap | ldaps) and `ldaptls = 1` (StartTLS) say where; `ldapurl` (RFC 4516) may give the server,
 * base DN, attribute, scope and filter at once.
 *
 * The LDAP client is ldapts (pure TypeScript, one dependency, no install script): LDAP is off the
 * hot path (once per login), so a well-kept library beats a hand-written BER codec.
 *
 * @see https://www.postgresql.org/docs/15/auth-ldap.html
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { Client } from 'ldapts';
import type { LdapSettings } from '../config/hba-ldap';

/** What an LDAP check gave: `unavailable` is the server's fault (down, TLS, bad bind DN), not the client's. */
export type LdapResult =
  | { readonly kind: 'ok' }
  | { readonly kind: 'rejected'; readonly why: string }
  | { readonly kind: 'unavailable'; readonly why: string };

/** Options of the check itself. */
export interface LdapCheckOptions {
  /** Per server: TCP connect timeout, and timeout of each LDAP operation (ms). */
  readonly timeoutMs?: number;
  /** TLS options for ldaps/StartTLS; default: the CA file OpenLDAP's clients use (ldapCaOptions). */
  readonly tls?: ConnectionOptions;
}

/**
 * The directory's CA as PostgreSQL's libldap finds it, so a server set up for PostgreSQL's ldap
 * method works unchanged: `LDAPTLS_CACERT`, else `TLS_CACERT` in `LDAPCONF` or
 * /etc/ldap/ldap.conf; none: Node's CA store (and NODE_EXTRA_CA_CERTS).
 */
export function ldapCaOptions(env: NodeJS.ProcessEnv = process.env): ConnectionOptions {
  let file = env['LDAPTLS_CACERT'];
  if (file === undefined) {
    try {
      const conf = readFileSync(env['LDAPCONF'] ?? '/etc/ldap/ldap.conf', 'utf8');
      file = /^\s*TLS_CACERT\s+(\S+)/m.exec(conf)?.[1];
    } catch {
      // No ldap.conf: Node's CA store.
    }
  }
  if (file === undefined) return {};
  try {
    return { ca: readFileSync(file) };
  } catch {
    return {};
  }
}

/** TLS options for `host`: the certificate is checked against the name (or IP address) in ldapserver. */
function tlsFor(host: string, base: ConnectionOptions): ConnectionOptions {
  return isIP(host) === 0 ? { ...base, host, servername: host } : { ...base, host };
}

/** LDAP filter escaping of a value (RFC 4515). */
function escapeFilterValue(v: string): string {
  return v.replace(/[\\*()\0]/g, (c) => '\\' + c.charCodeAt(0).toString(16).padStart(2, '0'));
}

function isCodeError(e: unknown): e is Error & { code: number } {
  return e instanceof Error && typeof (e as { code?: unknown }).code === 'number';
}

/** Invalid credentials (49) and the like mean "wrong password"; anything else means the server failed us. */
const INVALID_CREDENTIALS = 49;

/** Checks `password` for `user` against the directory. Never throws. */
export async function checkLdapPassword(settings: LdapSettings, user: string, password: string, opts: LdapCheckOptions = {}): Promise<LdapResult> {
  // PostgreSQL refuses an empty password (many servers take it as an anonymous bind: success).
  if (password === '') return { kind: 'rejected', why: 'empty password returned by client' };
  if (settings.baseDn !== undefined && /[*()\\/]/.test(user)) {
    return { kind: 'rejected', why: 'invalid character in user name for LDAP authentication' };
  }
  const timeout = opts.timeoutMs ?? 10_000;
  const tlsBase = opts.tls ?? ldapCaOptions();
  let lastProblem = 'no LDAP server';
  for (const host of settings.servers) {
    const port = settings.port ?? (settings.scheme === 'ldaps' ? 636 : 389);
    const hostPart = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
    const client = new Client({
      url: `${settings.scheme}://${hostPart}:${port}`, timeout, connectTimeout: timeout, strictDN: false,
      ...(settings.scheme === 'ldaps' ? { tlsOptions: tlsFor(host, tlsBase) } : {}),
    });
    let stage = 'connect';
    try {
      if (settings.startTls) {
        stage = 'StartTLS';
        await client.startTLS(tlsFor(host, tlsBase));
      }
      let dn: string;
      if (settings.baseDn !== undefined) {
        stage = 'bind as the search user';
        if (settings.bindDn !== undefined) await client.bind(settings.bindDn, settings.bindPassword ?? '');
        const filter = settings.searchFilter !== undefined
          ? settings.searchFilter.replace(/\$username/g, escapeFilterValue(user))
          : `(${settings.searchAttribute ?? 'uid'}=${escapeFilterValue(user)})`;
        stage = 'search';
        const found = await client.search(settings.baseDn, { scope: settings.scope, filter, attributes: ['1.1'] });
        if (found.searchEntries.length === 0) return { kind: 'rejected', why: `LDAP user "${user}" does not exist` };
        if (found.searchEntries.length > 1) return { kind: 'rejected', why: `LDAP user "${user}" is not unique (${found.searchEntries.length} entries)` };
        dn = found.searchEntries[0]!.dn;
        // The next bind replaces the search user's identity on this connection (RFC 4511 4.2).
      } else {
        dn = `${settings.prefix ?? ''}${user}${settings.suffix ?? ''}`;
      }
      stage = 'bind';
      try {
        await client.bind(dn, password);
      } catch (e) {
        if (isCodeError(e) && e.code === INVALID_CREDENTIALS) return { kind: 'rejected', why: `LDAP login failed for user "${dn}": invalid credentials` };
        throw e;
      }
      return { kind: 'ok' };
    } catch (e) {
      lastProblem = `LDAP server ${host}:${port}: ${stage} failed: ${(e as Error).message}`;
      // A search user that cannot bind, or a server that answers with an error, is a
      // configuration or server problem: the next server may do better.
    } finally {
      await client.unbind().catch(() => undefined);
    }
  }
  return { kind: 'unavailable', why: lastProblem };
}
