/**
 * Authentication suites shared by auth.test.ts (SCRAM backends) and auth-md5-backend.test.ts
 * (md5 backends). Call them inside the file's outer describe, after withCluster.
 *
 * hbaMatrix: enable_pool_hba = on; every pool_hba method (trust, reject, password, md5,
 * scram-sha-256) × every pool_passwd entry kind (md5 hash from pg_md5, TEXT, AES from pg_enc with
 * a key file), logged in with psql, node-postgres and psycopg2, right and wrong password. pgmaitre
 * authenticates the client, then logs in to the primary with what it holds.
 *
 * relaySuite: enable_pool_hba = off (pgpool's default): the primary authenticates the client and
 * pgmaitre relays the exchange; a second login must authenticate again even when a pooled
 * connection for that user/database is idle.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ClusterFixture } from '../harness/cluster';
import { backendLines, eventually, startInProcess, type InProcess } from '../harness/in-process';
import {
  buildPoolPasswd, havePsycopg2, pgLogin, psqlLogin, psycopgLogin, type LoginClient, type LoginResult, type PasswdSpec,
} from '../harness/login-clients';
import { RawClient } from '../harness/raw-client';
import { encodeStartupMessage } from '../../src/protocol/startup';
import { decodeAuthentication } from '../../src/protocol/backend';

export type BackendAuth = 'md5' | 'scram-sha-256';

type Method = 'trust' | 'reject' | 'password' | 'md5' | 'scram-sha-256';
type Kind = 'md5' | 'text' | 'aes' | 'none';

/** Users of the matrix: one per (hba method, pool_passwd entry kind). */
export interface MatrixUser {
  readonly name: string;
  readonly method: Method;
  readonly kind: Kind;
  readonly password: string;
}

const METHOD_TAG: Record<Method, string> = { trust: 'tr', reject: 'rj', password: 'pw', md5: 'm5', 'scram-sha-256': 'sc' };

/** The matrix users (also the cluster roles to create, each with its own password). */
export const MATRIX_USERS: readonly MatrixUser[] = (() => {
  const out: MatrixUser[] = [];
  const add = (method: Method, kinds: readonly Kind[]): void => {
    for (const kind of kinds) {
      const name = `${METHOD_TAG[method]}_${kind}`;
      // Characters that trip naive quoting/splitting: ':' (pool_passwd separator), quote, space.
      out.push({ name, method, kind, password: `S3cr:et '${name}' !` });
    }
  };
  add('trust', ['md5', 'text', 'aes', 'none']);
  add('reject', ['text']);
  add('password', ['md5', 'text', 'aes']);
  add('md5', ['md5', 'text', 'aes']);
  add('scram-sha-256', ['md5', 'text', 'aes']);
  return out;
})();

/** Roles for withCluster({users}). */
export const MATRIX_ROLES = MATRIX_USERS.map((u) => ({ name: u.name, password: u.password }));

/** What a login with the right password must give. */
type Expect =
  | { readonly ok: true }
  | { readonly ok: false; readonly code: string; readonly message: RegExp };

/** A login that cannot work because pgmaitre holds no secret the backend's method accepts. */
const NO_BACKEND_SECRET: Expect = { ok: false, code: '28000', message: /cannot log in to backend node 0: backend asks for .*pool_passwd/ };

function expected(u: MatrixUser, backend: BackendAuth): Expect {
  if (u.method === 'reject') return { ok: false, code: '28000', message: /rejects connection/ };
  if (u.method === 'scram-sha-256' && (u.kind === 'md5' || u.kind === 'none')) {
    // pgmaitre cannot run SCRAM with a client from an md5 hash: refused before any password is asked.
    return { ok: false, code: '28000', message: /authentication failed/ };
  }
  if (u.method === 'password') return { ok: true }; // the client's clear-text password works for any backend method
  if (u.kind === 'none') return NO_BACKEND_SECRET;
  if (u.kind === 'md5' && backend === 'scram-sha-256') return NO_BACKEND_SECRET;
  return { ok: true };
}

interface NamedClient {
  readonly name: string;
  readonly login: LoginClient;
  /** SQLSTATE available on failures (psql and psycopg2 only see libpq's message for login failures). */
  readonly hasCode: boolean;
}

/** psql, node-postgres and (when importable) psycopg2. */
export function loginClients(): NamedClient[] {
  const out: NamedClient[] = [
    { name: 'psql', login: psqlLogin, hasCode: false },
    { name: 'pg', login: pgLogin, hasCode: true },
  ];
  if (havePsycopg2()) out.push({ name: 'psycopg2', login: psycopgLogin, hasCode: false });
  return out;
}

/** Asserts a failed login: SQLSTATE when the client has it, and the server's message. */
export function assertFailed(r: LoginResult, client: NamedClient, code: string, message: RegExp, what: string): void {
  assert.equal(r.ok, false, `${what}: login should fail but succeeded as ${r.user}`);
  if (client.hasCode) assert.equal(r.code, code, `${what}: SQLSTATE (message: ${r.message})`);
  else if (r.code !== null && r.code !== undefined) assert.equal(r.code, code, `${what}: SQLSTATE (message: ${r.message})`);
  assert.match(r.message ?? '', message, `${what}: message`);
  assert.doesNotMatch(r.message ?? '', /internal error|timeout expired|timed out/i, `${what}: must be a clear, prompt error`);
}

/** Slots and the primary's pool are back to rest: no session holds anything. */
export async function assertNoLeaks(px: InProcess): Promise<void> {
  await eventually(() => px.app.ctx.slots.inUse === 0, 'all client slots released');
  await eventually(() => {
    const c = px.app.ctx.pools.get(0)!.counts();
    return c.active === 0 && c.connecting === 0 && c.resetting === 0;
  }, `pool of node 0 back to idle (now ${JSON.stringify(px.app.ctx.pools.get(0)!.counts())})`);
}

/** pgpool.conf lines shared by the suites. */
export function baseConfig(fx: ClusterFixture): string {
  return [
    backendLines(fx.cluster),
    "sr_check_user = 'postgres'",
    "sr_check_password = 'postgres'",
    "health_check_user = 'postgres'",
    "health_check_password = 'postgres'",
    'num_init_children = 16',
    'max_pool = 4',
    'connect_timeout = 10000',
    'authentication_timeout = 30',
    // These suites fail logins on purpose, all from 127.0.0.1: no per-address limit, a short delay.
    'auth_failure_limit = 0',
    'auth_failure_delay = 50',
  ].join('\n');
}

/** enable_pool_hba = on: the method × entry-kind matrix with all clients. */
export function hbaMatrix(fx: ClusterFixture, backend: BackendAuth, keyVia: 'option' | 'pool_key_file'): void {
  describe(`pool_hba methods × pool_passwd entries (backend ${backend}, key via ${keyVia})`, () => {
    let px: InProcess;
    let keyDir: string;
    const clients = loginClients();

    before(async () => {
      keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-key-'));
      const keyFile = path.join(keyDir, 'pgpoolkey');
      fs.writeFileSync(keyFile, 'k3y for pgmaitre tests\n', { mode: 0o600 });
      const specs: PasswdSpec[] = MATRIX_USERS.filter((u) => u.kind !== 'none').map((u) =>
        u.kind === 'aes' ? { user: u.name, kind: 'aes', password: u.password, keyFile } : { user: u.name, kind: u.kind as 'md5' | 'text', password: u.password });
      const { text: passwd, usedTools } = buildPoolPasswd(specs);
      if (!usedTools) process.stderr.write('auth tests: pg_md5/pg_enc not installed (Debian pgpool2); pool_passwd built with pgmaitre\'s own encoders\n');
      const hba = [
        '# TYPE  DATABASE  USER  ADDRESS  METHOD',
        ...(['trust', 'reject', 'password', 'md5', 'scram-sha-256'] as const).map((m) =>
          `host all ${MATRIX_USERS.filter((u) => u.method === m).map((u) => u.name).join(',')} 127.0.0.1/32 ${m}`),
        '',
      ].join('\n');
      const files: Record<string, string> = { 'pool_hba.conf': hba, passwords: passwd };
      // Relative file names resolve against pgpool.conf's directory.
      let conf = `${baseConfig(fx)}\nenable_pool_hba = on\npool_passwd = 'passwords'\n`;
      if (keyVia === 'pool_key_file') {
        files['my.key'] = fs.readFileSync(keyFile, 'utf8');
        conf += "pool_key_file = 'my.key'\n";
        px = await startInProcess(conf, files);
      } else {
        px = await startInProcess(conf, files, { keyFile });
      }
    });
    after(async () => {
      await px?.stop();
      if (keyDir) fs.rmSync(keyDir, { recursive: true, force: true });
    });

    for (const u of MATRIX_USERS) {
      const exp = expected(u, backend);
      const title = `${u.method} + ${u.kind === 'none' ? 'no' : u.kind.toUpperCase()} entry: ${exp.ok ? 'logs in' : `fails ${exp.code}`}`;
      test(title, async () => {
        for (const c of clients) {
          const r = await c.login({ port: px.port, user: u.name, password: u.password });
          const what = `${c.name} as ${u.name}`;
          if (exp.ok) {
            assert.equal(r.ok, true, `${what}: ${r.message}`);
            assert.equal(r.user, u.name, what);
          } else {
            assertFailed(r, c, exp.code, exp.message, what);
          }
        }
      });
      if (u.method === 'password' || u.method === 'md5' || u.method === 'scram-sha-256') {
        if (u.method === 'scram-sha-256' && u.kind === 'md5') continue; // refused before a password is asked (above)
        test(`${u.method} + ${u.kind.toUpperCase()} entry, wrong password: 28P01`, async () => {
          for (const c of clients) {
            const r = await c.login({ port: px.port, user: u.name, password: `${u.password}x` });
            assertFailed(r, c, '28P01', /password authentication failed for user/, `${c.name} as ${u.name}`);
          }
        });
      }
    }

    test('trust never asks for a password', async () => {
      const r = await pgLogin({ port: px.port, user: 'tr_text' });
      assert.equal(r.ok, true, r.message);
    });

    test('a user with no hba line: 28000', async () => {
      for (const c of clients) {
        const r = await c.login({ port: px.port, user: 'postgres', password: 'postgres' });
        assertFailed(r, c, '28000', /no pool_hba\.conf entry for host "127\.0\.0\.1", user "postgres"/, c.name);
      }
    });

    test('failed logins leave no client slot or pool connection behind', async () => {
      await assertNoLeaks(px);
      const before = px.app.ctx.pools.get(0)!.counts();
      const bad = MATRIX_USERS.filter((u) => u.method !== 'trust');
      await Promise.all(bad.map((u) => pgLogin({ port: px.port, user: u.name, password: 'wrong' })));
      await assertNoLeaks(px);
      assert.ok(px.app.ctx.pools.get(0)!.counts().total <= before.total + 0, 'no backend connection opened for failed clients');
    });
  });
}

/** enable_pool_hba = off: the primary authenticates every client through pgmaitre. */
export function relaySuite(fx: ClusterFixture, backend: BackendAuth, user: { name: string; password: string }): void {
  describe(`enable_pool_hba = off, primary authenticates (${backend})`, () => {
    let px: InProcess;
    const clients = loginClients();

    before(async () => {
      px = await startInProcess(`${baseConfig(fx)}\nenable_pool_hba = off\nauthentication_timeout = 2\n`);
    });
    after(async () => { await px?.stop(); });

    test('right password logs in with every client', async () => {
      for (const c of clients) {
        const r = await c.login({ port: px.port, user: user.name, password: user.password });
        assert.equal(r.ok, true, `${c.name}: ${r.message}`);
        assert.equal(r.user, user.name);
      }
    });

    test('wrong password: the primary\'s 28P01 reaches the client', async () => {
      for (const c of clients) {
        const r = await c.login({ port: px.port, user: user.name, password: 'not-the-password' });
        assertFailed(r, c, '28P01', new RegExp(`password authentication failed for user "${user.name}"`), c.name);
      }
    });

    test('the backend asks for the method it is configured with', async () => {
      const raw = await RawClient.open(px.port);
      raw.send(encodeStartupMessage({ user: user.name, database: 'postgres' }));
      const m = await raw.next();
      assert.equal(m.type, 'R');
      const a = decodeAuthentication(m.frame, 0, m.frame.length);
      assert.equal(a.type, backend === 'md5' ? 'AuthenticationMD5Password' : 'AuthenticationSASL');
      raw.close();
    });

    test('a second login still needs the password while a pooled connection is idle', async () => {
      // Log in successfully and end the session: its backend connection goes back to the pool.
      const ok = await pgLogin({ port: px.port, user: user.name, password: user.password });
      assert.equal(ok.ok, true, ok.message);
      await eventually(() => px.app.ctx.pools.get(0)!.counts().idle > 0, 'the connection is idle in the pool');
      // Same user/database again: no password, wrong password, raw startup — all must be challenged.
      for (const c of clients) {
        const wrong = await c.login({ port: px.port, user: user.name, password: 'nope' });
        assertFailed(wrong, c, '28P01', /password authentication failed/, `${c.name} wrong password`);
        const none = await c.login({ port: px.port, user: user.name });
        assert.equal(none.ok, false, `${c.name} logged in without a password`);
      }
      const raw = await RawClient.open(px.port);
      raw.send(encodeStartupMessage({ user: user.name, database: 'postgres' }));
      const m = await raw.next();
      assert.equal(m.type, 'R');
      assert.notEqual(decodeAuthentication(m.frame, 0, m.frame.length).type, 'AuthenticationOk', 'a pooled login bypassed authentication');
      raw.close();
      // And while another session of that user is active, too.
      const c1 = await pgLogin({ port: px.port, user: user.name, password: user.password });
      assert.equal(c1.ok, true);
      const again = await pgLogin({ port: px.port, user: user.name, password: 'still wrong' });
      assert.equal(again.code, '28P01');
    });

    test('a client that disconnects mid-authentication frees its slot', async () => {
      const raw = await RawClient.open(px.port);
      raw.send(encodeStartupMessage({ user: user.name, database: 'postgres' }));
      await raw.next();
      raw.close();
      await assertNoLeaks(px);
    });

    test('a client that never answers the relayed request is cut off by authentication_timeout', async () => {
      const raw = await RawClient.open(px.port);
      raw.send(encodeStartupMessage({ user: user.name, database: 'postgres' }));
      assert.equal((await raw.next()).type, 'R');
      const rest = await raw.waitClosed(6000);
      assert.equal(rest[0]?.error?.code, '08P01');
      await assertNoLeaks(px);
      const r = await pgLogin({ port: px.port, user: user.name, password: user.password });
      assert.equal(r.ok, true, r.message);
    });

    test('failed logins leave no client slot or pool connection behind', async () => {
      await Promise.all(Array.from({ length: 10 }, () => pgLogin({ port: px.port, user: user.name, password: 'wrong' })));
      await assertNoLeaks(px);
      const r = await pgLogin({ port: px.port, user: user.name, password: user.password });
      assert.equal(r.ok, true, r.message);
      await assertNoLeaks(px);
    });
  });
}
