/** Tests of pool_hba.conf parsing and first-match rule lookup. */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { ConfigError } from '../../../src/config/config-error';
import { join } from 'node:path';
import { loadHba, matchHba, parseHba, type HbaRequest } from '../../../src/config/hba';

const RULES = parseHba(`
# TYPE DATABASE USER ADDRESS METHOD
local   all         all                             trust
host    sales,"all" alice,"bob smith"  10.0.0.0/8   md5
host    sameuser    all         192.168.1.0  255.255.255.0  password
hostssl all         all         2001:db8::/32       scram-sha-256
hostnossl all       +admins     0.0.0.0/0           trust
host    all         all         127.0.0.1/32        reject
host    all         all         ::1/128             scram-sha-256
host    all         all         all                 radius radiusservers=10.1.1.1
`);

const req = (r: Partial<HbaRequest>): HbaRequest => ({ conn: 'host', ssl: false, database: 'db', user: 'u', ...r });
const line = (r: Partial<HbaRequest>): number | undefined => matchHba(RULES, req(r))?.line;

test('parses fields, lists, quoted names, masks, options', () => {
  assert.equal(RULES.length, 8);
  const r = RULES[1];
  assert.deepEqual(r?.databases, [{ kind: 'name', name: 'sales' }, { kind: 'name', name: 'all' }]);
  assert.deepEqual(r?.users, [{ kind: 'name', name: 'alice' }, { kind: 'name', name: 'bob smith' }]);
  assert.deepEqual(RULES[2]?.address, { kind: 'cidr', family: 4, address: '192.168.1.0', prefix: 24 });
  assert.deepEqual(RULES[7]?.options, { radiusservers: '10.1.1.1' });
  assert.match(RULES[7]?.unsupported[0] ?? '', /radius/);
  assert.match(RULES[4]?.unsupported[0] ?? '', /group/);
});

test('local connections match local rules', () => {
  assert.equal(line({ conn: 'local', address: undefined }), 3);
});

test('IPv4 CIDR, lists, quoted "all" is a plain name', () => {
  assert.equal(line({ address: '10.1.2.3', database: 'sales', user: 'alice' }), 4);
  assert.equal(line({ address: '10.1.2.3', database: 'all', user: 'bob smith' }), 4);
  assert.equal(line({ address: '10.1.2.3', database: 'other', user: 'alice' }), 10);
});

test('IPv4-mapped IPv6 addresses match IPv4 rules', () => {
  assert.equal(line({ address: '::ffff:10.9.9.9', database: 'sales', user: 'alice' }), 4);
  assert.equal(line({ address: '::ffff:127.0.0.1' }), 8);
});

test('address+mask and sameuser', () => {
  assert.equal(line({ address: '192.168.1.200', database: 'carol', user: 'carol' }), 5);
  assert.equal(line({ address: '192.168.1.200', database: 'x', user: 'carol' }), 10);
});

test('IPv6 CIDR and hostssl / hostnossl', () => {
  assert.equal(line({ address: '2001:db8::1', ssl: true }), 6);
  assert.equal(line({ address: '2001:db8::1', ssl: false }), 10);
  assert.equal(line({ address: '::1' }), 9);
});

test('+group never matches; first match wins', () => {
  assert.equal(line({ address: '8.8.8.8', user: 'admins' }), 10);
  assert.equal(line({ address: '127.0.0.1' }), 8);
});

test('no match returns undefined', () => {
  assert.equal(matchHba(parseHba('host all all 10.0.0.0/8 trust\n'), req({ address: '11.0.0.1' })), undefined);
});

test('errors name file and line, all at once', () => {
  const text = 'host all all\nhost all all 10.0.0.0/40 md5\nlocal @dbs all trust\nhost all all example.com md5\nhost all all 10.0.0.0/8 magic\nfoo all all trust\n';
  assert.throws(() => parseHba(text, 'pool_hba.conf'), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    const l = err.message.split('\n');
    assert.equal(l.length, 6);
    assert.match(l[0] ?? '', /^pool_hba\.conf:1: too few fields/);
    assert.match(l[1] ?? '', /^pool_hba\.conf:2: invalid CIDR mask length/);
    assert.match(l[2] ?? '', /^pool_hba\.conf:3: DATABASE: "@dbs": @file inclusion is not supported/);
    assert.match(l[3] ?? '', /^pool_hba\.conf:4: invalid ADDRESS "example.com"/);
    assert.match(l[4] ?? '', /^pool_hba\.conf:5: invalid authentication method "magic"/);
    assert.match(l[5] ?? '', /^pool_hba\.conf:6: invalid connection type "foo"/);
    return true;
  });
});

test('samehost matches the loopback interface', () => {
  const rules = parseHba('host all all samehost trust\nhost all all samenet md5\n');
  assert.equal(matchHba(rules, req({ address: '127.0.0.1' }))?.line, 1);
  assert.equal(matchHba(rules, req({ address: '127.0.0.2' }))?.line, 2);
});

test('sample conf/pool_hba.conf loads', () => {
  const rules = loadHba(join(__dirname, '../../../../conf/pool_hba.conf'));
  assert.equal(matchHba(rules, req({ address: '127.0.0.1' }))?.method, 'scram-sha-256');
});

test('replication connections match as PostgreSQL walsenders do', () => {
  const rules = parseHba([
    'host replication repl 127.0.0.1/32 md5', // 1: physical only
    'host all repl 127.0.0.1/32 reject', // 2
    'host sales all 127.0.0.1/32 scram-sha-256', // 3
    'host all all 127.0.0.1/32 trust', // 4
  ].join('\n'));
  const at = (r: Partial<HbaRequest>) => matchHba(rules, req({ address: '127.0.0.1', ...r }))?.line;
  // Physical: only the `replication` keyword, never `all` or the database's name.
  assert.equal(at({ user: 'repl', replication: 'physical' }), 1);
  assert.equal(at({ user: 'other', replication: 'physical', database: 'sales' }), undefined);
  // Logical (replication=database) and ordinary connections: never the keyword; by database.
  assert.equal(at({ user: 'repl', replication: 'logical', database: 'sales' }), 2);
  assert.equal(at({ user: 'bob', replication: 'logical', database: 'sales' }), 3);
  assert.equal(at({ user: 'repl', database: 'replication' }), 2);
  assert.equal(at({ user: 'bob', database: 'replication' }), 4);
});

test('ldap lines: simple bind and search+bind options are read; wrong combinations name the line', () => {
  const rules = parseHba([
    'host all alice 127.0.0.1/32 ldap ldapserver=ldap.example.org ldapprefix="uid=" ldapsuffix=",ou=people,dc=example,dc=org" backend_use_passwd=1',
    'hostssl all all 0.0.0.0/0 ldap ldapserver="a.example.org b.example.org" ldapport=1389 ldaptls=1 ldapbasedn="dc=example,dc=org" ldapbinddn="cn=search,dc=example,dc=org" ldapbindpasswd=s3cret ldapsearchattribute=mail',
    'host all all ::1/128 ldap ldapurl="ldaps://ldap.example.org:1636/dc=example,dc=org?cn?one"',
    'host all all ::1/128 ldap ldapserver=x ldapbasedn="dc=example,dc=org" ldapsearchfilter="(|(uid=$username)(mail=$username))"',
    '',
  ].join('\n'));
  assert.deepEqual(rules[0]?.ldap, { servers: ['ldap.example.org'], scheme: 'ldap', startTls: false, scope: 'sub', prefix: 'uid=', suffix: ',ou=people,dc=example,dc=org' });
  assert.equal(rules[0]?.options['backend_use_passwd'], '1');
  assert.deepEqual(rules[0]?.unsupported, []);
  assert.deepEqual(rules[1]?.ldap, {
    servers: ['a.example.org', 'b.example.org'], scheme: 'ldap', startTls: true, scope: 'sub', port: 1389, baseDn: 'dc=example,dc=org',
    bindDn: 'cn=search,dc=example,dc=org', bindPassword: 's3cret', searchAttribute: 'mail',
  });
  assert.deepEqual(rules[2]?.ldap, { servers: ['ldap.example.org'], scheme: 'ldaps', startTls: false, scope: 'one', port: 1636, baseDn: 'dc=example,dc=org', searchAttribute: 'cn' });
  assert.equal(rules[3]?.ldap?.searchFilter, '(|(uid=$username)(mail=$username))');
  const bad: Array<[string, RegExp]> = [
    ['host all all all ldap ldapserver=x', /requires argument "ldapbasedn", "ldapprefix", or "ldapsuffix" to be set/],
    ['host all all all ldap ldapprefix="uid=" ldapbasedn="dc=x"', /cannot use ldapbasedn, .* together with ldapprefix/],
    ['host all all all ldap ldapserver=x ldapbasedn="dc=x" ldapsearchattribute=uid ldapsearchfilter="(uid=$username)"', /cannot use ldapsearchattribute together with ldapsearchfilter/],
    ['host all all all ldap ldapprefix="uid="', /requires argument "ldapserver"/],
    ['host all all all ldap ldapserver=x ldapprefix="uid=" ldapport=70000', /invalid LDAP port number/],
    ['host all all all ldap ldapserver=x ldapprefix="uid=" ldapscheme=http', /invalid ldapscheme/],
    ['host all all all ldap ldapserver=x ldapprefix="uid=" pamservice=x', /"pamservice" is not valid for authentication method "ldap"/],
    ['host all all all pam pamservice=pgpool', /"pam" is not supported by pgmaitre \(it would need a native libpam binding\)/],
  ];
  for (const [text, why] of bad) {
    assert.throws(() => parseHba(`# first\n${text}\n`, 'pool_hba.conf'), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /pool_hba\.conf:2: /);
      assert.match(e.message, why);
      return true;
    }, text);
  }
});
