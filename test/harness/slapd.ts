/**
 * A throw-away OpenLDAP server (Debian's slapd) on a free loopback port, for the `ldap` pool_hba
 * method's tests: a slapd.conf with the mdb backend and the core/cosine/inetOrgPerson schemas,
 * loaded offline with slapadd, then `slapd -d 0` in the foreground. Stopped by pid; its directory
 * is removed when it stops.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnServer, type ServerProcess } from '../../src/demo/child-server';
import { freePort } from '../../src/demo/free-port';
import { isExecutable } from './exec';

/** Where Debian's slapd and slapadd are, or null when the slapd package is missing. */
export function slapdBinaries(): { slapd: string; slapadd: string } | null {
  const slapd = ['/usr/sbin/slapd', '/usr/local/sbin/slapd'].find(isExecutable);
  const slapadd = ['/usr/sbin/slapadd', '/usr/local/sbin/slapadd'].find(isExecutable);
  return slapd !== undefined && slapadd !== undefined ? { slapd, slapadd } : null;
}

/** A person in the test directory: uid=NAME,ou=people,BASE with this password. */
export interface LdapPerson {
  readonly uid: string;
  readonly password: string;
  /** Extra attribute `mail` (to test ldapsearchattribute / filters). */
  readonly mail?: string;
}

/** A running slapd. */
export interface TestSlapd {
  readonly port: number;
  /** ldaps:// port when started with TLS (StartTLS works on `port` too), else 0. */
  readonly ldapsPort: number;
  readonly baseDn: string;
  /** The search user's DN and password (cn=search,BASE). */
  readonly searchDn: string;
  readonly searchPassword: string;
  /** Stops it (the port then refuses connections) and keeps the data for start(). */
  pause(): Promise<void>;
  /** Starts it again on the same port after pause(). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

const BASE = 'dc=pgmaitre,dc=test';

/** Starts slapd on 127.0.0.1 with `people` under ou=people. */
export async function startSlapd(people: readonly LdapPerson[], opts: { tls?: { cert: string; key: string } } = {}): Promise<TestSlapd> {
  const bins = slapdBinaries();
  if (bins === null) throw new Error('slapd is not installed (Debian packages slapd and ldap-utils)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-slapd-'));
  const data = path.join(dir, 'data');
  fs.mkdirSync(data);
  const conf = path.join(dir, 'slapd.conf');
  const searchPassword = 'search-secret';
  fs.writeFileSync(conf, [
    'include /etc/ldap/schema/core.schema',
    'include /etc/ldap/schema/cosine.schema',
    'include /etc/ldap/schema/inetorgperson.schema',
    'modulepath /usr/lib/ldap',
    'moduleload back_mdb',
    ...(opts.tls !== undefined ? [`TLSCertificateFile ${opts.tls.cert}`, `TLSCertificateKeyFile ${opts.tls.key}`] : []),
    `pidfile ${path.join(dir, 'slapd.pid')}`,
    'database mdb',
    'maxsize 10485760',
    `suffix "${BASE}"`,
    `rootdn "cn=admin,${BASE}"`,
    'rootpw admin-secret',
    `directory ${data}`,
    // Passwords are checked by binds only; the search user may read entries, not passwords.
    'access to attrs=userPassword by anonymous auth by * none',
    'access to * by * read',
    '',
  ].join('\n'));
  const entries = [
    `dn: ${BASE}\nobjectClass: dcObject\nobjectClass: organization\no: pgmaitre tests\ndc: pgmaitre`,
    `dn: ou=people,${BASE}\nobjectClass: organizationalUnit\nou: people`,
    `dn: cn=search,${BASE}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: search\nuserPassword: ${searchPassword}`,
    ...people.map((p) => [
      `dn: uid=${p.uid},ou=people,${BASE}`, 'objectClass: inetOrgPerson', `uid: ${p.uid}`, `cn: ${p.uid}`, `sn: ${p.uid}`,
      `userPassword: ${p.password}`, ...(p.mail !== undefined ? [`mail: ${p.mail}`] : []),
    ].join('\n')),
  ];
  const ldif = path.join(dir, 'data.ldif');
  fs.writeFileSync(ldif, entries.join('\n\n') + '\n');
  execFileSync(bins.slapadd, ['-q', '-f', conf, '-l', ldif], { stdio: 'pipe' });
  const port = await freePort();
  const ldapsPort = opts.tls !== undefined ? await freePort() : 0;
  const urls = `ldap://127.0.0.1:${port}/${ldapsPort > 0 ? ` ldaps://127.0.0.1:${ldapsPort}/` : ''}`;
  let server: ServerProcess | null = null;
  const start = async (): Promise<void> => {
    server = await spawnServer({ name: 'slapd', cmd: bins.slapd, port, timeoutMs: 20_000, args: ['-f', conf, '-h', urls, '-d', '0'] });
  };
  await start();
  return {
    port, ldapsPort, baseDn: BASE, searchDn: `cn=search,${BASE}`, searchPassword,
    async pause() {
      await server?.stop();
      server = null;
    },
    start,
    async stop() {
      await server?.stop();
      server = null;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
