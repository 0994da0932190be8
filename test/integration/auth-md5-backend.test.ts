/**
 * Client authentication through pgmaitre against a primary + 2 standbys whose pg_hba.conf asks
 * for md5 (password_encryption = md5): an md5 pool_passwd entry is enough for pgmaitre to log in
 * to the backend. Same suites as auth.test.ts (see auth-suites.ts).
 */
import { describe } from 'node:test';
import { withCluster } from '../harness/cluster';
import { MATRIX_ROLES, hbaMatrix, relaySuite } from './auth-suites';

describe('authentication, md5 backends', { timeout: 600_000 }, () => {
  const fx = withCluster({ standbys: 2, auth: 'md5', users: [...MATRIX_ROLES, { name: 'relayed', password: 'relayed pw' }] });

  hbaMatrix(fx, 'md5', 'option');
  relaySuite(fx, 'md5', { name: 'relayed', password: 'relayed pw' });
});
