/**
 * Real client programs logging in to a server, for authentication tests: psql (libpq),
 * node-postgres and psycopg2 (Debian's python3-psycopg2 under /usr/bin/python3). Each returns a
 * LoginResult instead of throwing, so a test can assert both success and the exact failure.
 * Also builds pool_passwd files the way DBAs do, with pgpool-II's own pg_md5 and pg_enc.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { aesEntry, md5Entry } from '../../src/config/pool-passwd';

/** Where to log in. `host` is 127.0.0.1 or a Unix socket directory. */
export interface LoginTarget {
  readonly port: number;
  readonly host?: string;
  readonly user: string;
  readonly database?: string;
  /** undefined: send none (psql -w fails if asked; pg has none to give). */
  readonly password?: string;
  /** TLS: libpq's sslmode (default disable) and the CA file for verify-full (server name: localhost). */
  readonly ssl?: { readonly mode: 'disable' | 'require' | 'verify-full'; readonly rootCert?: string };
}

/** What a login attempt gave. `user` is current_user after a successful login. */
export interface LoginResult {
  readonly ok: boolean;
  readonly user?: string;
  /** SQLSTATE when the client exposes it (pg, psycopg2); psql only has the message. */
  readonly code?: string | null;
  readonly message?: string;
  /** After a successful login: whether the client's connection was encrypted. */
  readonly tls?: boolean;
}

export type LoginClient = (t: LoginTarget) => Promise<LoginResult>;

const PSQL = fs.existsSync('/usr/bin/psql') ? '/usr/bin/psql' : 'psql';
const PY = '/usr/bin/python3';
const LOGIN_TIMEOUT_MS = 20_000;

/** psql -X -w -c 'select current_user'; fails on exit code != 0 with stderr as the message. */
export function psqlLogin(t: LoginTarget): Promise<LoginResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, PGSSLMODE: t.ssl?.mode ?? 'disable', PGCONNECT_TIMEOUT: '10', PGGSSENCMODE: 'disable' };
  if (t.ssl?.rootCert !== undefined) env['PGSSLROOTCERT'] = t.ssl.rootCert;
  delete env['PGPASSWORD'];
  delete env['PGPASSFILE'];
  if (t.password !== undefined) env['PGPASSWORD'] = t.password;
  else env['PGPASSFILE'] = '/nonexistent/pgpass';
  const args = ['-X', '-w', '-A', '-t', '-h', t.host ?? '127.0.0.1', '-p', String(t.port), '-U', t.user,
    '-d', t.database ?? 'postgres', '-c', 'select current_user', '-c', '\\conninfo'];
  return new Promise((resolve) => {
    execFile(PSQL, args, { env, timeout: LOGIN_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) resolve({ ok: false, message: `${stderr || err.message}`.trim() });
      else resolve({ ok: true, user: stdout.trim().split('\n')[0]!.trim(), tls: /SSL connection/.test(stdout) });
    });
  });
}

/** node-postgres Client; err.code is the SQLSTATE the server sent. */
export async function pgLogin(t: LoginTarget): Promise<LoginResult> {
  const c = new Client({
    host: t.host ?? '127.0.0.1', port: t.port, user: t.user, database: t.database ?? 'postgres',
    ...(t.password !== undefined ? { password: t.password } : {}),
    connectionTimeoutMillis: LOGIN_TIMEOUT_MS,
    ...(t.ssl !== undefined && t.ssl.mode !== 'disable' ? {
      ssl: t.ssl.mode === 'verify-full'
        ? { ca: fs.readFileSync(t.ssl.rootCert ?? ''), servername: 'localhost', rejectUnauthorized: true }
        : { rejectUnauthorized: false },
    } : {}),
  });
  c.on('error', () => { /* the server's FATAL after login is reported by connect() */ });
  try {
    await c.connect();
    const r = await c.query('select current_user AS u');
    const stream = (c as unknown as { connection: { stream: { encrypted?: boolean } } }).connection.stream;
    return { ok: true, user: String(r.rows[0].u), tls: stream.encrypted === true };
  } catch (e) {
    const err = e as Error & { code?: string };
    return { ok: false, code: err.code ?? null, message: err.message };
  } finally {
    await c.end().catch(() => undefined);
  }
}

const PY_LOGIN = `
import json, sys, psycopg2
kw = json.loads(sys.argv[1])
try:
    kw.setdefault('sslmode', 'disable')
    conn = psycopg2.connect(connect_timeout=10, **kw)
    cur = conn.cursor()
    cur.execute('select current_user')
    print(json.dumps({'ok': True, 'user': cur.fetchone()[0], 'tls': bool(conn.info.ssl_in_use)}))
    conn.close()
except psycopg2.Error as e:
    print(json.dumps({'ok': False, 'code': e.pgcode, 'message': str(e)}))
`;

/** True when /usr/bin/python3 can import psycopg2. */
export function havePsycopg2(): boolean {
  try {
    execFileSync(PY, ['-c', 'import psycopg2'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** psycopg2.connect(...) in a child python; `code` is e.pgcode (libpq gives none for login failures). */
export function psycopgLogin(t: LoginTarget): Promise<LoginResult> {
  const kw: Record<string, string | number> = { host: t.host ?? '127.0.0.1', port: t.port, user: t.user, dbname: t.database ?? 'postgres' };
  if (t.password !== undefined) kw['password'] = t.password;
  if (t.ssl !== undefined) {
    kw['sslmode'] = t.ssl.mode;
    if (t.ssl.rootCert !== undefined) kw['sslrootcert'] = t.ssl.rootCert;
  }
  const env: NodeJS.ProcessEnv = { ...process.env, PGPASSFILE: '/nonexistent/pgpass' };
  delete env['PGPASSWORD'];
  return new Promise((resolve) => {
    execFile(PY, ['-c', PY_LOGIN, JSON.stringify(kw)], { env, timeout: LOGIN_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) {
        resolve({ ok: false, code: 'PYTHON', message: `python failed: ${stderr || err.message}` });
        return;
      }
      try {
        resolve(JSON.parse(stdout) as LoginResult);
      } catch {
        resolve({ ok: false, code: 'PYTHON', message: `unparsable python output: ${stdout} ${stderr}` });
      }
    });
  });
}

/** Full path of a pgpool-II tool (Debian installs them in /usr/sbin), or null when absent. */
export function pgpoolTool(name: 'pg_md5' | 'pg_enc'): string | null {
  for (const dir of ['/usr/sbin', '/usr/bin', '/usr/local/bin']) {
    const p = path.join(dir, name);
    if (fs.existsSync(p)) return p;
  }
  return null;
}

/** One pool_passwd entry to create. */
export type PasswdSpec =
  | { readonly user: string; readonly kind: 'md5' | 'text'; readonly password: string }
  | { readonly user: string; readonly kind: 'aes'; readonly password: string; readonly keyFile: string };

/**
 * pool_passwd text for the specs. md5 and AES entries come from pgpool-II's `pg_md5 -m` and
 * `pg_enc -m -k KEYFILE` (run against a scratch pgpool.conf, as a DBA would) when installed;
 * otherwise from pgmaitre's own encoders, and `usedTools` is false.
 */
export function buildPoolPasswd(specs: readonly PasswdSpec[]): { text: string; usedTools: boolean } {
  const md5Tool = pgpoolTool('pg_md5');
  const encTool = pgpoolTool('pg_enc');
  const usedTools = md5Tool !== null && encTool !== null;
  const lines: string[] = [];
  if (!usedTools) {
    for (const s of specs) {
      if (s.kind === 'md5') lines.push(md5Entry(s.user, s.password));
      else if (s.kind === 'aes') lines.push(aesEntry(s.user, s.password, fs.readFileSync(s.keyFile, 'utf8').split('\n')[0]!));
      else lines.push(`${s.user}:TEXT${s.password}`);
    }
    return { text: `${lines.join('\n')}\n`, usedTools };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-passwd-'));
  try {
    const conf = path.join(dir, 'pgpool.conf');
    fs.writeFileSync(conf, "pool_passwd = 'pool_passwd'\n");
    const passwd = path.join(dir, 'pool_passwd');
    fs.writeFileSync(passwd, '', { mode: 0o600 });
    for (const s of specs) {
      if (s.kind === 'md5') execFileSync(md5Tool, ['-m', '-f', conf, '-u', s.user, s.password], { stdio: 'pipe' });
      else if (s.kind === 'aes') execFileSync(encTool, ['-m', '-f', conf, '-k', s.keyFile, '-u', s.user, s.password], { stdio: 'pipe' });
      else fs.appendFileSync(passwd, `${s.user}:TEXT${s.password}\n`);
    }
    return { text: fs.readFileSync(passwd, 'utf8'), usedTools };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
