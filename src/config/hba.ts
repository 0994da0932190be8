/**
 * pool_hba.conf: client authentication rules in PostgreSQL's pg_hba.conf syntax.
 *
 *   local      DATABASE USER METHOD [OPTIONS]
 *   host|hostssl|hostnossl DATABASE USER ADDRESS METHOD [OPTIONS]
 *
 * DATABASE/USER are comma lists of names, "quoted names", `all`, `sameuser` (database),
 * `+group`; ADDRESS is CIDR, `ADDRESS MASK`, `all`, `samehost` or `samenet`. Rules are
 * matched top to bottom and the first match wins. Methods pgmaitre cannot perform
 * (pam, ldap, cert, …) parse fine but are listed in `unsupported`. `+group` and
 * `samerole` need the user's role memberships, which the caller looks up on the primary (as
 * auth_user) and passes in `HbaRequest.roles`; without them such entries never match, and
 * pgmaitre refuses to start with them unless auth_user is set (see `rolesNeeded`).
 * `@file` inclusion and host names are rejected. Replication connections match as in PostgreSQL:
 * a physical one (`replication=true`) only lines whose DATABASE is the `replication` keyword, a
 * logical one (`replication=database`) the lines of its database (`replication` never does).
 */
import { readFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { basename } from 'node:path';
import { ConfigError, type ConfigIssue } from './config-error';
import { parseLdapOptions, type LdapSettings } from './hba-ldap';

/** Connection types of a rule. */
export type HbaConnType = 'local' | 'host' | 'hostssl' | 'hostnossl';

/** Authentication methods pgmaitre performs. */
export const SUPPORTED_METHODS = ['trust', 'reject', 'password', 'md5', 'scram-sha-256', 'ldap'] as const;
const KNOWN_UNSUPPORTED = ['cert', 'gss', 'sspi', 'ident', 'peer', 'radius'] as const;
/**
 * Methods refused outright (a config error naming the line, not a warning): PAM needs libpam
 * through a native addon, which pgmaitre does not build (npm 11 skips install scripts, and a
 * compiled module ties the install to one Node ABI). Use ldap, or scram-sha-256 with pool_passwd.
 */
const REFUSED_METHODS: Readonly<Record<string, string>> = {
  pam: 'authentication method "pam" is not supported by pgmaitre (it would need a native libpam binding); use "ldap" or "scram-sha-256"',
};

/** A database or user entry. */
export type HbaName =
  | { readonly kind: 'all' }
  | { readonly kind: 'sameuser' }
  | { readonly kind: 'samerole' }
  | { readonly kind: 'replication' }
  | { readonly kind: 'group'; readonly name: string }
  | { readonly kind: 'name'; readonly name: string };

/** The ADDRESS field of a host rule. */
export type HbaAddress =
  | { readonly kind: 'all' }
  | { readonly kind: 'samehost' }
  | { readonly kind: 'samenet' }
  | { readonly kind: 'cidr'; readonly family: 4 | 6; readonly address: string; readonly prefix: number };

/** One parsed rule. */
export interface HbaRule {
  readonly line: number;
  readonly type: HbaConnType;
  readonly databases: readonly HbaName[];
  readonly users: readonly HbaName[];
  readonly address?: HbaAddress;
  readonly method: string;
  /** `name=value` options; bare words (e.g. a PAM service name) map to ''. */
  readonly options: Readonly<Record<string, string>>;
  /** Why this rule cannot be honoured fully (unsupported method, group entries). */
  readonly unsupported: readonly string[];
  /** The `ldap` method's settings, checked when the file was read. */
  readonly ldap?: LdapSettings;
}

/** A connection to match against the rules. */
export interface HbaRequest {
  conn: 'local' | 'host';
  ssl: boolean;
  /** Client IPv4/IPv6 address (IPv4-mapped IPv6 accepted) for 'host' connections. */
  address?: string;
  database: string;
  user: string;
  /** Roles the user is a member of, itself included (for +group and samerole); absent: such entries never match. */
  roles?: ReadonlySet<string>;
  /**
   * A replication connection (startup parameter `replication`), matched as PostgreSQL does:
   * a physical one only by the `replication` database keyword (not by `all` or a name), a
   * logical one (`replication=database`) like an ordinary connection to its database.
   */
  replication?: 'physical' | 'logical';
}

/**
 * Refuses (ConfigError naming the lines) +group/samerole rules when auth_user is not set: pgmaitre
 * could not look membership up, and a rule that silently never matches would surprise.
 */
export function checkHbaRoles(rules: readonly HbaRule[], authUser: string, fileName = 'pool_hba.conf'): void {
  if (authUser !== '' || !rolesNeeded(rules)) return;
  throw new ConfigError(rules.filter((r) => r.users.some((u) => u.kind === 'group') || r.databases.some((d) => d.kind === 'samerole'))
    .map((r) => ({ file: fileName, line: r.line, message: '+group and samerole need auth_user (pgmaitre looks role membership up on the primary as auth_user); set auth_user or list the users' })));
}

/** True when some rule has a +group user or a samerole database: matching needs the user's roles. */
export function rolesNeeded(rules: readonly HbaRule[]): boolean {
  return rules.some((r) => r.users.some((u) => u.kind === 'group') || r.databases.some((d) => d.kind === 'samerole'));
}

interface Token {
  readonly text: string;
  readonly quoted: boolean;
}

/** Split a line into fields; each field is a comma list of (possibly quoted) tokens. */
function tokenize(line: string): Token[][] | string {
  const fields: Token[][] = [];
  let i = 0;
  const n = line.length;
  while (i < n) {
    while (i < n && /\s/.test(line[i] ?? '')) i++;
    if (i >= n || line[i] === '#') break;
    const field: Token[] = [];
    for (;;) {
      let text = '';
      let quoted = false;
      while (i < n) {
        const ch = line[i] ?? '';
        if (ch === '"') {
          quoted = true;
          i++;
          let closed = false;
          while (i < n) {
            if (line[i] === '"') {
              if (line[i + 1] === '"') {
                text += '"';
                i += 2;
                continue;
              }
              closed = true;
              i++;
              break;
            }
            text += line[i] ?? '';
            i++;
          }
          if (!closed) return 'unterminated quoted name';
          continue;
        }
        if (ch === ',' || ch === '#' || /\s/.test(ch)) break;
        text += ch;
        i++;
      }
      field.push({ text, quoted });
      if (line[i] === ',') {
        i++;
        continue;
      }
      break;
    }
    fields.push(field);
  }
  return fields;
}

function nameOf(t: Token, isDb: boolean): HbaName | string {
  if (!t.quoted) {
    if (t.text.startsWith('@')) return `"${t.text}": @file inclusion is not supported by pgmaitre; list the names inline`;
    if (t.text === 'all') return { kind: 'all' };
    if (isDb && t.text === 'sameuser') return { kind: 'sameuser' };
    if (isDb && (t.text === 'samerole' || t.text === 'samegroup')) return { kind: 'samerole' };
    if (isDb && t.text === 'replication') return { kind: 'replication' };
    if (!isDb && t.text.startsWith('+')) return { kind: 'group', name: t.text.slice(1) };
  }
  if (t.text === '') return 'empty name';
  return { kind: 'name', name: t.text };
}

function maskToPrefix(mask: string, family: 4 | 6): number | undefined {
  if (isIP(mask) !== family) return undefined;
  const bits = ipToBigInt(mask, family).toString(2).padStart(family === 4 ? 32 : 128, '0');
  if (!/^1*0*$/.test(bits)) return undefined;
  return bits.indexOf('0') === -1 ? bits.length : bits.indexOf('0');
}

function ipToBigInt(ip: string, family: 4 | 6): bigint {
  if (family === 4) return ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
  let parts = ip.split('::');
  const tail = (parts[1] ?? '').split(':').filter((x) => x !== '');
  let head = (parts[0] ?? '').split(':').filter((x) => x !== '');
  const expand = (groups: string[]): string[] => groups.flatMap((g) => {
    if (g.includes('.')) {
      const v = Number(ipToBigInt(g, 4));
      return [((v >>> 16) & 0xffff).toString(16), (v & 0xffff).toString(16)];
    }
    return [g];
  });
  head = expand(head);
  const tailE = expand(tail);
  const fill = parts.length > 1 ? Array<string>(8 - head.length - tailE.length).fill('0') : [];
  parts = [...head, ...fill, ...tailE];
  return parts.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function parseAddress(fields: Token[][], at: number): { address: HbaAddress; used: number } | string {
  const tok = fields[at]?.[0];
  if (tok === undefined) return 'missing ADDRESS';
  const a = tok.text;
  if (a === 'all' || a === 'samehost' || a === 'samenet') return { address: { kind: a }, used: 1 };
  const slash = a.indexOf('/');
  const ip = slash >= 0 ? a.slice(0, slash) : a;
  const family = isIP(ip);
  if (family === 0) {
    return `invalid ADDRESS ${JSON.stringify(a)} (expected CIDR such as 10.0.0.0/8, an address and mask, all, samehost or samenet; host names are not supported)`;
  }
  const fam = family as 4 | 6;
  const max = fam === 4 ? 32 : 128;
  if (slash >= 0) {
    const bits = a.slice(slash + 1);
    if (!/^\d+$/.test(bits) || Number(bits) > max) return `invalid CIDR mask length in ${JSON.stringify(a)}`;
    return { address: { kind: 'cidr', family: fam, address: ip, prefix: Number(bits) }, used: 1 };
  }
  const maskTok = fields[at + 1]?.[0];
  if (maskTok === undefined) return `address ${JSON.stringify(a)} needs a CIDR mask length or a separate netmask`;
  const prefix = maskToPrefix(maskTok.text, fam);
  if (prefix === undefined) return `invalid netmask ${JSON.stringify(maskTok.text)}`;
  return { address: { kind: 'cidr', family: fam, address: ip, prefix }, used: 2 };
}

/** Parse pool_hba.conf text; throws ConfigError with one `FILE:LINE: why` per bad line. */
export function parseHba(text: string, fileName = 'pool_hba.conf'): HbaRule[] {
  const rules: HbaRule[] = [];
  const issues: ConfigIssue[] = [];
  text.split(/\r?\n/).forEach((raw, idx) => {
    const line = idx + 1;
    const fail = (message: string): void => {
      issues.push({ file: fileName, line, message });
    };
    const fields = tokenize(raw);
    if (typeof fields === 'string') return fail(fields);
    if (fields.length === 0) return;
    const type = fields[0]?.[0]?.text ?? '';
    if (type !== 'local' && type !== 'host' && type !== 'hostssl' && type !== 'hostnossl') {
      return fail(`invalid connection type ${JSON.stringify(type)} (expected local, host, hostssl or hostnossl)`);
    }
    if (fields.length < (type === 'local' ? 4 : 5)) return fail(`too few fields for a "${type}" rule`);
    const names = (f: Token[] | undefined, isDb: boolean): HbaName[] | string => {
      const out: HbaName[] = [];
      for (const t of f ?? []) {
        const n = nameOf(t, isDb);
        if (typeof n === 'string') return n;
        out.push(n);
      }
      return out;
    };
    const databases = names(fields[1], true);
    if (typeof databases === 'string') return fail(`DATABASE: ${databases}`);
    const users = names(fields[2], false);
    if (typeof users === 'string') return fail(`USER: ${users}`);
    let at = 3;
    let address: HbaAddress | undefined;
    if (type !== 'local') {
      const a = parseAddress(fields, at);
      if (typeof a === 'string') return fail(a);
      address = a.address;
      at += a.used;
    }
    const method = fields[at]?.[0]?.text;
    if (method === undefined) return fail('missing METHOD');
    const unsupported: string[] = [];
    const refused = REFUSED_METHODS[method];
    if (refused !== undefined) return fail(refused);
    if (!(SUPPORTED_METHODS as readonly string[]).includes(method)) {
      if (!(KNOWN_UNSUPPORTED as readonly string[]).includes(method)) {
        return fail(`invalid authentication method ${JSON.stringify(method)}`);
      }
      unsupported.push(`authentication method "${method}" is not supported by pgmaitre`);
    }
    if (users.some((u) => u.kind === 'group')) unsupported.push('+group entries need auth_user: pgmaitre looks group membership up on the primary');
    if (databases.some((d) => d.kind === 'samerole')) unsupported.push('samerole/samegroup need auth_user: pgmaitre looks role membership up on the primary');
    const options: Record<string, string> = {};
    for (const f of fields.slice(at + 1)) {
      for (const t of f) {
        const eq = t.text.indexOf('=');
        if (eq > 0) options[t.text.slice(0, eq)] = t.text.slice(eq + 1);
        else options[t.text] = '';
      }
    }
    let ldap: LdapSettings | undefined;
    if (method === 'ldap') {
      const parsed = parseLdapOptions(options);
      if (typeof parsed === 'string') return fail(parsed);
      ldap = parsed;
    }
    rules.push({
      line, type, databases, users, ...(address !== undefined ? { address } : {}), method, options, unsupported,
      ...(ldap !== undefined ? { ldap } : {}),
    });
  });
  if (issues.length > 0) throw new ConfigError(issues);
  return rules;
}

/** Read and parse a pool_hba.conf file. */
export function loadHba(path: string): HbaRule[] {
  return parseHba(readFileSync(path, 'utf8'), basename(path));
}

/** Turn an IPv4-mapped IPv6 address into plain IPv4; other addresses unchanged. */
export function normalizeAddress(address: string): { ip: string; family: 4 | 6 } | undefined {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const ip = m?.[1] ?? address;
  const f = isIP(ip);
  return f === 0 ? undefined : { ip, family: f as 4 | 6 };
}

const cidrCache = new WeakMap<HbaAddress, BlockList>();

function inCidr(addr: Extract<HbaAddress, { kind: 'cidr' }>, ip: string, family: 4 | 6): boolean {
  if (addr.family !== family) return false;
  let bl = cidrCache.get(addr);
  if (bl === undefined) {
    bl = new BlockList();
    bl.addSubnet(addr.address, addr.prefix, family === 4 ? 'ipv4' : 'ipv6');
    cidrCache.set(addr, bl);
  }
  return bl.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}

function localNets(): { ip: string; family: 4 | 6; prefix: number }[] {
  const out: { ip: string; family: 4 | 6; prefix: number }[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const ni of list ?? []) {
      const family = ni.family === 'IPv4' ? 4 : 6;
      const prefix = Number((ni.cidr ?? '').split('/')[1] ?? (family === 4 ? 32 : 128));
      out.push({ ip: ni.address.replace(/%.*$/, ''), family, prefix });
    }
  }
  return out;
}

function addressMatches(rule: HbaRule, req: HbaRequest): boolean {
  const a = rule.address;
  if (a === undefined || a.kind === 'all') return true;
  const n = req.address !== undefined ? normalizeAddress(req.address) : undefined;
  if (n === undefined) return false;
  if (a.kind === 'cidr') return inCidr(a, n.ip, n.family);
  const nets = localNets().filter((x) => x.family === n.family);
  if (a.kind === 'samehost') return nets.some((x) => ipToBigInt(x.ip, x.family) === ipToBigInt(n.ip, n.family));
  return nets.some((x) => inCidr({ kind: 'cidr', family: x.family, address: x.ip, prefix: x.prefix }, n.ip, n.family));
}

function nameMatches(list: readonly HbaName[], value: string, user: string, roles: ReadonlySet<string> | undefined): boolean {
  return list.some((e) => {
    switch (e.kind) {
      case 'all':
        return true;
      case 'sameuser':
        return value === user;
      case 'name':
        return e.name === value;
      case 'samerole':
        // The database is named after a role the user belongs to.
        return roles?.has(value) ?? false;
      case 'group':
        return roles?.has(e.name) ?? false;
      case 'replication':
        return false; // physical replication connections are matched in databaseMatches
      default: {
        const never: never = e;
        return never;
      }
    }
  });
}

function typeMatches(type: HbaConnType, req: HbaRequest): boolean {
  if (req.conn === 'local') return type === 'local';
  if (type === 'host') return true;
  if (type === 'hostssl') return req.ssl;
  if (type === 'hostnossl') return !req.ssl;
  return false;
}

/** The DATABASE field: a physical replication connection matches only the `replication` keyword. */
function databaseMatches(list: readonly HbaName[], req: HbaRequest): boolean {
  if (req.replication === 'physical') return list.some((e) => e.kind === 'replication');
  return nameMatches(list, req.database, req.user, req.roles);
}

/** First rule matching the connection (PostgreSQL semantics), or undefined (= reject). */
export function matchHba(rules: readonly HbaRule[], req: HbaRequest): HbaRule | undefined {
  return rules.find(
    (r) =>
      typeMatches(r.type, req) &&
      databaseMatches(r.databases, req) &&
      nameMatches(r.users, req.user, req.user, req.roles) &&
      addressMatches(r, req),
  );
}
