/** Tests of pool_passwd: every entry form, AES round trip and pg_enc known answers, pcp.conf. */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError } from '../../../src/config/config-error';
import { loadPcpConf, parsePcpConf, pcpHash } from '../../../src/config/pcp-conf';
import {
  aesEntry, decryptAesPassword, encryptAesPassword, loadPoolPasswd, md5Entry, parsePoolPasswd, readPoolKey,
} from '../../../src/config/pool-passwd';

const dir = mkdtempSync(join(tmpdir(), 'pgmaitre-pw-'));

test('md5Entry is md5(password || user), as pg_md5 -m writes', () => {
  const hex = createHash('md5').update('secretalice').digest('hex');
  assert.equal(md5Entry('alice', 'secret'), `alice:md5${hex}`);
});

test('AES round trip', () => {
  for (const pw of ['', 'x', 'exactly16bytes!!', 'pässwörd with ünicode and spaces']) {
    assert.equal(decryptAesPassword(encryptAesPassword(pw, 'k3y'), 'k3y'), pw);
  }
  assert.throws(() => decryptAesPassword(encryptAesPassword('secret', 'right'), 'wrong'), /wrong key|decryption failed/);
});

test('known answer: pg_enc -K mykey secret (pgpool 4.3.5)', () => {
  assert.equal(encryptAesPassword('secret', 'mykey'), 'V7IMV7YNworqqZU1Z46Wgw==');
  assert.equal(decryptAesPassword('V7IMV7YNworqqZU1Z46Wgw==', 'mykey'), 'secret');
});

test('all entry forms parse; a bad AES entry does not break the others', () => {
  const text = [
    '# comment',
    md5Entry('alice', 'pw'),
    'bob:TEXTplain:with:colons',
    aesEntry('carol', 'aes-secret', 'thekey'),
    'dave:AESbm90IGEgdmFsaWQgY2lwaGVydGV4dA==',
    'erin:SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy',
    'frank:rawclear',
    'gina:md5short',
  ].join('\n');
  const m = parsePoolPasswd(text, 'pool_passwd', 'thekey');
  assert.deepEqual(m.get('alice'), { kind: 'md5', md5: md5Entry('alice', 'pw').slice('alice:'.length) });
  assert.deepEqual(m.get('bob'), { kind: 'text', password: 'plain:with:colons' });
  assert.deepEqual(m.get('carol'), { kind: 'text', password: 'aes-secret' });
  assert.equal(m.get('dave')?.kind, 'unusable');
  assert.match((m.get('dave') as { reason: string }).reason, /^pool_passwd:5: dave: cannot decrypt AES password/);
  assert.deepEqual(m.get('erin'), { kind: 'scram', verifier: 'SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy' });
  assert.deepEqual(m.get('frank'), { kind: 'text', password: 'rawclear' });
  assert.deepEqual(m.get('gina'), { kind: 'text', password: 'md5short' });
});

test('loadPoolPasswd: missing key file makes only AES entries unusable, naming file and line', () => {
  const f = join(dir, 'pool_passwd');
  writeFileSync(f, `${aesEntry('carol', 's', 'k')}\nbob:TEXTb\n`);
  const m = loadPoolPasswd(f, join(dir, 'no-such-key'));
  assert.equal(m.get('carol')?.kind, 'unusable');
  assert.match((m.get('carol') as { reason: string }).reason, /pool_passwd:1: carol: .*no-such-key.*ENOENT/);
  assert.deepEqual(m.get('bob'), { kind: 'text', password: 'b' });
  const k = join(dir, '.pgpoolkey');
  writeFileSync(k, 'k\nignored second line\n');
  assert.equal(readPoolKey(k), 'k');
  assert.deepEqual(loadPoolPasswd(f, k).get('carol'), { kind: 'text', password: 's' });
});

function hasPgEnc(): boolean {
  try {
    execFileSync('pg_enc', ['--help'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('decrypts what the real pg_enc writes (skipped if pg_enc is absent)', { skip: !hasPgEnc() && 'pg_enc not installed' }, () => {
  const keyFile = join(dir, 'pgenc-key');
  writeFileSync(keyFile, 'Sup3r Secret key\n');
  chmodSync(keyFile, 0o600);
  for (const pw of ['secret', 'p@ss w0rd with spaces', 'x'.repeat(40)]) {
    const out = execFileSync('pg_enc', ['-k', keyFile, '-u', 'alice', pw], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const m = /AES([A-Za-z0-9+/=]+)/.exec(out);
    assert.ok(m, out);
    const entries = parsePoolPasswd(`alice:AES${m[1] ?? ''}\n`, 'pool_passwd', readPoolKey(keyFile));
    assert.deepEqual(entries.get('alice'), { kind: 'text', password: pw });
    assert.equal(encryptAesPassword(pw, 'Sup3r Secret key'), m[1]);
  }
});

test('pcp.conf', () => {
  const m = parsePcpConf(`# users\nadmin:${pcpHash('admin')}\n\nops:0123456789ABCDEF0123456789abcdef\n`);
  assert.deepEqual([...m], [['admin', '21232f297a57a5a743894a0e4a801fc3'], ['ops', '0123456789abcdef0123456789abcdef']]);
  assert.throws(() => parsePcpConf('admin:plain\nnocolon\n'), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.deepEqual(err.message.split('\n'), [
      'pcp.conf:1: admin: password must be the 32-hex-digit MD5 printed by pg_md5',
      'pcp.conf:2: expected user:md5hash',
    ]);
    return true;
  });
  assert.equal(loadPcpConf(join(__dirname, '../../../../conf/pcp.conf')).get('admin'), pcpHash('admin'));
});

test('sample conf/pool_passwd loads', () => {
  const m = loadPoolPasswd(join(__dirname, '../../../../conf/pool_passwd'));
  assert.deepEqual(m.get('postgres'), { kind: 'text', password: 'postgres' });
});
