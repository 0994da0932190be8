/**
 * The options of an `ldap` line in pool_hba.conf, read and checked as PostgreSQL's hba.c does
 * (same names, same combinations refused, same messages), so a bad line stops a start or a
 * reload with `pool_hba.conf:LINE: why` instead of failing every login. frontend/ldap-auth.ts
 * performs the check against the directory.
 *
 * @see https://www.postgresql.org/docs/15/auth-ldap.html
 */
/** Options of an `ldap` line, validated (see ldapOptionsProblem). */
export interface LdapSettings {
  readonly servers: readonly string[];
  readonly port?: number;
  readonly scheme: 'ldap' | 'ldaps';
  readonly startTls: boolean;
  readonly prefix?: string;
  readonly suffix?: string;
  readonly baseDn?: string;
  readonly bindDn?: string;
  readonly bindPassword?: string;
  readonly searchAttribute?: string;
  readonly searchFilter?: string;
  readonly scope: 'base' | 'one' | 'sub';
}

/** The option names PostgreSQL accepts on an ldap line (pgpool adds backend_use_passwd). */
export const LDAP_OPTIONS = [
  'ldapserver', 'ldapport', 'ldapscheme', 'ldaptls', 'ldapprefix', 'ldapsuffix', 'ldapbasedn', 'ldapbinddn',
  'ldapbindpasswd', 'ldapsearchattribute', 'ldapsearchfilter', 'ldapurl', 'backend_use_passwd',
] as const;

const SEARCH_OPTIONS = ['ldapbasedn', 'ldapbinddn', 'ldapbindpasswd', 'ldapsearchattribute', 'ldapsearchfilter', 'ldapurl'] as const;

/**
 * Reads and checks an ldap line's options the way PostgreSQL's hba.c does; a string says what is
 * wrong (the caller names the file and line).
 */
export function parseLdapOptions(options: Readonly<Record<string, string>>): LdapSettings | string {
  for (const k of Object.keys(options)) {
    if (!(LDAP_OPTIONS as readonly string[]).includes(k)) return `authentication option "${k}" is not valid for authentication method "ldap"`;
  }
  let servers = (options['ldapserver'] ?? '').split(/[\s,]+/).filter((s) => s !== '');
  let scheme: 'ldap' | 'ldaps' = 'ldap';
  let port: number | undefined;
  let baseDn = options['ldapbasedn'];
  let searchAttribute = options['ldapsearchattribute'];
  let searchFilter = options['ldapsearchfilter'];
  let scope: 'base' | 'one' | 'sub' = 'sub';
  const url = options['ldapurl'];
  if (url !== undefined) {
    const m = /^(ldaps?):\/\/([^/:?]*)(?::(\d+))?(?:\/([^?]*)(?:\?([^?]*)(?:\?([^?]*)(?:\?(.*))?)?)?)?$/i.exec(url);
    if (m === null) return `invalid LDAP URL "${url}"`;
    scheme = m[1]!.toLowerCase() as 'ldap' | 'ldaps';
    if (m[2]) servers = [m[2]];
    if (m[3]) port = Number(m[3]);
    if (m[4]) baseDn = decodeURIComponent(m[4]);
    if (m[5]) searchAttribute = m[5];
    if (m[6]) {
      if (m[6] !== 'base' && m[6] !== 'one' && m[6] !== 'sub') return `invalid LDAP URL scope "${m[6]}"`;
      scope = m[6];
    }
    if (m[7]) searchFilter = decodeURIComponent(m[7]);
  }
  const s = options['ldapscheme'];
  if (s !== undefined) {
    if (s !== 'ldap' && s !== 'ldaps') return 'invalid ldapscheme value: "' + s + '"';
    scheme = s;
  }
  const p = options['ldapport'];
  if (p !== undefined) {
    if (!/^\d+$/.test(p) || Number(p) < 1 || Number(p) > 65535) return `invalid LDAP port number: "${p}"`;
    port = Number(p);
  }
  const tls = options['ldaptls'];
  if (tls !== undefined && tls !== '0' && tls !== '1') return `invalid ldaptls value: "${tls}" (expected 0 or 1)`;
  const bup = options['backend_use_passwd'];
  if (bup !== undefined && bup !== '0' && bup !== '1') return `invalid backend_use_passwd value: "${bup}" (expected 0 or 1)`;
  const prefix = options['ldapprefix'];
  const suffix = options['ldapsuffix'];
  if (prefix !== undefined || suffix !== undefined) {
    if (SEARCH_OPTIONS.some((k) => options[k] !== undefined)) {
      return 'cannot use ldapbasedn, ldapbinddn, ldapbindpasswd, ldapsearchattribute, ldapsearchfilter, or ldapurl together with ldapprefix';
    }
  } else if (baseDn === undefined) {
    return 'authentication method "ldap" requires argument "ldapbasedn", "ldapprefix", or "ldapsuffix" to be set';
  }
  if (searchAttribute !== undefined && searchFilter !== undefined) return 'cannot use ldapsearchattribute together with ldapsearchfilter';
  if (servers.length === 0) return 'authentication method "ldap" requires argument "ldapserver" to be set';
  if (scheme === 'ldaps' && tls === '1') return 'cannot use ldaptls together with ldapscheme ldaps';
  return {
    servers, scheme, startTls: tls === '1', scope,
    ...(port !== undefined ? { port } : {}),
    ...(prefix !== undefined ? { prefix } : {}), ...(suffix !== undefined ? { suffix } : {}),
    ...(baseDn !== undefined && prefix === undefined && suffix === undefined ? { baseDn } : {}),
    ...(options['ldapbinddn'] !== undefined ? { bindDn: options['ldapbinddn'] } : {}),
    ...(options['ldapbindpasswd'] !== undefined ? { bindPassword: options['ldapbindpasswd'] } : {}),
    ...(searchAttribute !== undefined ? { searchAttribute } : {}),
    ...(searchFilter !== undefined ? { searchFilter } : {}),
  };
}

