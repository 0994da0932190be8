/** MD5 auth helpers against independently computed answers (md5sum, Python hashlib, PostgreSQL 15). */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isMd5Hash, md5PasswordHash, md5Response, verifyMd5Response } from '../../../src/protocol/auth/md5';

// `echo -n passworduser | md5sum` → 4d45974e13472b5a0be3533de4666414
const STORED = 'md54d45974e13472b5a0be3533de4666414';
// python3: hashlib.md5(b'4d45974e13472b5a0be3533de4666414' + bytes([1,2,3,4])).hexdigest()
const RESPONSE = 'md5a3576f1ae039b8996bc4fc2720f9c71a';
const SALT = Buffer.from([1, 2, 3, 4]);

describe('md5', () => {
  it('md5PasswordHash matches md5sum and PostgreSQL', () => {
    assert.equal(md5PasswordHash('user', 'password'), STORED);
    // PostgreSQL 15, password_encryption=md5: CREATE ROLE user1 PASSWORD 'password'
    assert.equal(md5PasswordHash('user1', 'password'), 'md59022daebd17737ba0bd9cd4732ea66b6');
    assert.ok(isMd5Hash(STORED));
    assert.ok(!isMd5Hash('md5xyz'));
    assert.ok(!isMd5Hash('SCRAM-SHA-256$4096:...'));
  });

  it('md5Response answers a challenge from the stored hash alone', () => {
    assert.equal(md5Response(STORED, SALT), RESPONSE);
    assert.throws(() => md5Response('password', SALT), TypeError);
    assert.throws(() => md5Response(STORED, Buffer.alloc(3)), RangeError);
  });

  it('verifyMd5Response accepts the right answer and rejects the rest', () => {
    assert.equal(verifyMd5Response(STORED, SALT, RESPONSE), true);
    assert.equal(verifyMd5Response(STORED, Buffer.from([1, 2, 3, 5]), RESPONSE), false);
    assert.equal(verifyMd5Response(STORED, SALT, RESPONSE.slice(0, -1) + '0'), false);
    assert.equal(verifyMd5Response(STORED, SALT, 'md5short'), false);
    assert.equal(verifyMd5Response(STORED, SALT, ''), false);
    assert.equal(verifyMd5Response('not-a-hash', SALT, RESPONSE), false);
    assert.equal(verifyMd5Response(md5PasswordHash('bob', 's3cret'), SALT, md5Response(md5PasswordHash('bob', 's3cret'), SALT)), true);
  });
});
