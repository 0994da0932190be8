/**
 * SCRAM's key derivation (PBKDF2, 4096 rounds) is not redone at every login (issue 21 item 5):
 * the secret of a TEXT/AES pool_passwd entry is derived once per (user, password), and a
 * backend login with a password derives SaltedPassword once per (password, salt, iterations).
 * Both still authenticate: the exchanges below run client against server.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { textEntrySecret } from '../../../src/frontend/client-auth';
import { cachedSaltedPassword, scramSaltedPassword, ScramClientSession, ScramServerSession } from '../../../src/protocol/auth/scram';

function exchange(server: ScramServerSession, user: string, password: string): boolean {
  const client = new ScramClientSession({ password }, { username: user });
  const serverFirst = server.serverFirst(client.clientFirst());
  const result = server.serverFinal(client.clientFinal(serverFirst));
  return result.ok && client.verifyServerFinal(result.serverFinal!);
}

describe('SCRAM secrets derived once', () => {
  it('a TEXT pool_passwd entry: one secret per (user, password), and it authenticates', () => {
    const a = textEntrySecret('alice', 's3cret');
    assert.equal(textEntrySecret('alice', 's3cret'), a, 'the same secret object at the next login');
    assert.notEqual(textEntrySecret('alice', 'changed'), a, 'a changed password gets its own secret');
    assert.notEqual(textEntrySecret('bob', 's3cret'), a, 'another user gets its own (salt)');
    assert.equal(exchange(new ScramServerSession(a), 'alice', 's3cret'), true);
    assert.equal(exchange(new ScramServerSession(textEntrySecret('alice', 's3cret')), 'alice', 's3cret'), true, 'again, with the kept secret');
    assert.equal(exchange(new ScramServerSession(a), 'alice', 'wrong'), false, 'a wrong password is still refused');
  });

  it('a backend login with a password: SaltedPassword once per (password, salt, iterations)', () => {
    const salt = Buffer.from('0123456789abcdef');
    const s1 = cachedSaltedPassword('pw', salt, 4096);
    assert.deepEqual(s1, scramSaltedPassword('pw', salt, 4096), 'the same bytes as a fresh derivation');
    assert.equal(cachedSaltedPassword('pw', Buffer.from(salt), 4096), s1, 'kept');
    assert.notDeepEqual(cachedSaltedPassword('pw', Buffer.from('fedcba9876543210'), 4096), s1, 'another salt');
    assert.notDeepEqual(cachedSaltedPassword('pw', salt, 4097), s1, 'another iteration count');
    assert.notDeepEqual(cachedSaltedPassword('pw2', salt, 4096), s1, 'another password');
  });
});
