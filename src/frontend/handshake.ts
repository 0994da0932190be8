/**
 * The login flow of a client session, from its StartupMessage to its first ReadyForQuery.
 *
 * Order: checks on the startup parameters → a client slot (num_init_children; queue; 53300) →
 * authentication (pool_hba.conf + pool_passwd, or relayed to the primary when
 * enable_pool_hba = off) → a connection to the primary from its pool (or a fresh one when the
 * login was relayed) → AuthenticationOk, the backend's ParameterStatus values, pgmaitre's own
 * BackendKeyData for this client, ReadyForQuery. authentication_timeout bounds the whole flow
 * (the session also counts it from the accept, covering a startup packet that never completes).
 * Addresses with too many recent failures are refused first (rate-limit.ts); every failed client
 * authentication waits auth_failure_delay before its FATAL.
 */
import { encodeAuthentication, encodeBackendKeyData, encodeParameterStatus, encodeReadyForQuery } from '../protocol/backend';
import { BackendCode, FrontendCode } from '../protocol/codes';
import { clientErrors, toClientError } from '../errors/client-errors';
import { ProxyError, ProxyErrorCode } from '../errors/proxy-error';
import { LogEvent, logLine } from '../log/logger';
import { ServerConnection } from '../backend/server-connection';
import { credentialAuthenticator, type BackendAuthenticator, type BackendCredential } from '../backend/backend-auth';
import { authenticateClient, type HandshakeIO, type SecretSources } from './client-auth';
import { rolesNeeded } from '../config/hba';
import { isUnixSocket } from './listener';
import type { ClientSession } from './session';
import { weightedPick } from '../router/lb-select';

/** What the StartupMessage said. */
export interface StartupInfo {
  readonly protocol: { readonly major: number; readonly minor: number };
  readonly params: Readonly<Record<string, string>>;
}

/** Startup parameters that are not part of the pool key (they pick the pool itself). */
const NOT_IN_KEY = new Set(['user', 'database']);

/** Pool key for a login: user, database and every other startup parameter, canonically sorted. */
export function poolKey(user: string, database: string, params: Readonly<Record<string, string>>): string {
  const extra = Object.keys(params).filter((k) => !NOT_IN_KEY.has(k)).sort().map((k) => `${k}=${params[k]}`);
  return `${user}\u0000${database}\u0000${extra.join('\u0000')}`;
}

class ClientGone extends Error {
  override name = 'ClientGone';
}

/**
 * Relays the primary's authentication exchange to the client (enable_pool_hba = off):
 * each request goes to the client, each answer back to the primary. A request means the primary
 * no longer lets this (user, database) in without a password, whatever it did before: the pair
 * leaves `trustedLogins` at once, so no later login reuses a pooled connection unchallenged.
 */
function relayAuthenticator(s: ClientSession, io: HandshakeIO, loginKey: string): BackendAuthenticator & { asked: boolean } {
  return {
    asked: false,
    async answer(_req, frame) {
      this.asked = true;
      if (s.ctx.trustedLogins.delete(loginKey)) {
        logLine(s.ctx.log, { event: LogEvent.TrustForgotten, user: s.user, database: s.database, node_id: s.primaryNode },
          `the primary now asks user "${s.user}" for a password on database "${s.database}": pooled logins without one stop`);
      }
      io.send(frame);
      const { code, frame: reply } = await io.nextFrame();
      if (code !== FrontendCode.Password) throw new ProxyError(ProxyErrorCode.BackendAuth, 'client sent something other than a password message');
      return reply;
    },
    failed(frame) {
      // The backend's own FATAL (28P01...) goes to the client verbatim.
      if (frame !== null && frame[0] === BackendCode.ErrorResponse && s.socket.writable) s.socket.write(frame);
    },
  };
}

/** Runs the login flow; on any failure the session gets a FATAL error and closes. */
export async function runHandshake(s: ClientSession, info: StartupInfo): Promise<void> {
  const { ctx } = s;
  const cfg = ctx.config;
  const timeoutSec = cfg.authentication_timeout;
  const timer = timeoutSec > 0 ? setTimeout(() => s.fatal(clientErrors.authenticationTimeout()), timeoutSec * 1000) : null;
  timer?.unref();
  try {
    await login(s, info);
  } catch (e) {
    if (e instanceof ClientGone || s.closed) return;
    ctx.log.warn({ event: LogEvent.BackendConnect, err: (e as Error).message, user: s.user, database: s.database }, 'login failed');
    s.fatal(toClientError(e, s.primaryNode));
  } finally {
    if (timer !== null) clearTimeout(timer);
    s.loginFinished();
  }
}

async function login(s: ClientSession, info: StartupInfo): Promise<void> {
  const { ctx } = s;
  const params = info.params;
  if (info.protocol.major !== 3) {
    s.fatal(clientErrors.unsupportedProtocol(info.protocol.major, info.protocol.minor));
    return;
  }
  s.user = params.user ?? '';
  s.database = params.database || s.user;
  s.applicationName = params.application_name ?? '';
  if (s.user === '') {
    s.fatal(clientErrors.protocolViolation('no PostgreSQL user name specified in startup packet'));
    return;
  }
  if (params.replication !== undefined && params.replication !== 'false' && params.replication !== 'off') {
    s.fatal(clientErrors.protocolViolation('replication connections are not supported through pgmaitre'));
    return;
  }
  if (ctx.shuttingDown) {
    s.fatal(clientErrors.shuttingDown());
    return;
  }
  if (ctx.logFlags.connections) {
    logLine(ctx.log, { event: LogEvent.ConnectionReceived, host: s.address, port: s.port, user: s.user, database: s.database },
      `new connection received: host=${s.address} port=${s.port} user=${s.user} database=${s.database}`);
  }

  const blocked = ctx.authGuard?.blockedFor(s.address) ?? 0;
  if (blocked > 0 && ctx.hba !== null) {
    ctx.log.warn({ event: LogEvent.AuthFailed, user: s.user, database: s.database, host: s.address, code: '28000' },
      `login refused: too many authentication failures from ${s.address}`);
    s.fatal(clientErrors.tooManyAuthFailures(s.address, blocked));
    return;
  }

  // A client slot (num_init_children), waiting in line like pgpool's listen backlog.
  const want = ctx.slots.acquire();
  if (want === null) {
    s.fatal(clientErrors.tooManyClients());
    return;
  }
  // The wait ends when the client goes, or when the session closes (authentication_timeout
  // while queued: the session ends its side of the socket, 'finish', before the client closes).
  const gone = new Promise<null>((resolve) => {
    s.socket.once('close', () => resolve(null));
    s.socket.once('finish', () => resolve(null));
  });
  const lease = await Promise.race([want.lease, gone]);
  if (lease === null || s.closed) {
    // Leaves the queue, or gives back a slot granted meanwhile (never both).
    want.cancel();
    return;
  }
  s.slot = lease;
  const key = ctx.registry.issueKey();
  s.pid = key.pid;
  s.secret = key.secret;
  ctx.registry.add(s);

  const io: HandshakeIO = {
    send: (buf) => { if (s.socket.writable) s.socket.write(buf); },
    nextFrame: async () => {
      const f = await s.nextHandshakeFrame();
      if (f === null) throw new ClientGone('client disconnected during authentication');
      return f;
    },
  };

  // The session's first connection goes to the primary; when there is none (failed, not yet
  // promoted), to a standby, so that reads keep working (writes then get an ERROR).
  let primary = ctx.cluster.primaryId();
  if (primary < 0) {
    const standbys = ctx.cluster.nodes.filter((n) => (n.status === 'up' || n.status === 'waiting') && n.role === 'standby');
    primary = weightedPick(standbys.map((n) => ({ id: n.id, weight: n.weight > 0 ? n.weight : 1e-9, usable: true, isPrimary: false, lagging: false, delay: 0 })), Math.random);
    if (primary < 0) throw new ProxyError(ProxyErrorCode.NoPrimary, 'no primary node');
  }
  s.primaryNode = primary;
  const node = ctx.cluster.node(primary)!;
  const pool = ctx.pools.get(primary)!;
  const pkey = poolKey(s.user, s.database, params);
  const loginKey = `${s.user}\u0000${s.database}`;
  const extraParams: Record<string, string> = {};
  for (const [k, v] of Object.entries(params)) if (!NOT_IN_KEY.has(k)) extraParams[k] = v;
  s.startupParams = extraParams;
  // For logins to other nodes (reads on standbys): what pool_passwd holds, unless the client's
  // own authentication gives something better below.
  const entry = ctx.poolPasswd.get(s.user);
  s.credential = entry?.kind === 'text' ? { kind: 'password', password: entry.password }
    : entry?.kind === 'md5' ? { kind: 'md5', md5: entry.md5 } : { kind: 'none' };
  const connectOpts = (authenticator: BackendAuthenticator) => ({
    nodeId: primary, host: node.host, port: node.port, user: s.user, database: s.database,
    params: extraParams, connectTimeoutMs: ctx.config.connect_timeout, authenticator, key: pkey,
    ...(ctx.backendTls !== undefined ? { tls: ctx.backendTls } : {}),
  });

  let conn: ServerConnection;
  if (ctx.hba !== null) {
    const aq = ctx.authQuery;
    const sources: SecretSources = {
      ...(aq?.enabled ? { lookup: (u: string) => aq.lookup(u) } : {}),
      allowClearText: ctx.config.allow_clear_text_frontend_auth,
    };
    let outcome: Awaited<ReturnType<typeof authenticateClient>>;
    try {
      const roles = aq?.canLookUpRoles && rolesNeeded(ctx.hba) ? { roles: await aq.rolesOf(s.user) } : {};
      outcome = await authenticateClient(io, {
        user: s.user, database: s.database, address: s.address, ssl: s.tlsActive,
        local: isUnixSocket(s.socket), ...roles,
      }, ctx.hba, ctx.poolPasswd, sources);
    } catch (e) {
      if (e instanceof ClientGone || (e as Error).name === 'ClientGone') throw e;
      ctx.log.error({ event: LogEvent.AuthFailed, user: s.user, database: s.database, host: s.address, err: (e as Error).message },
        `auth_query / role lookup for user "${s.user}" failed: ${(e as Error).message}`);
      // AuthLookupError, or the membership query failing: not the client's fault, details logged.
      s.fatal(clientErrors.authQueryFailed(s.user));
      return;
    }
    if (!outcome.ok) {
      ctx.log.warn({ event: LogEvent.AuthFailed, user: s.user, database: s.database, host: s.address, method: outcome.method, code: outcome.error.code },
        `authentication failed: ${outcome.error.message} (host=${s.address} user=${s.user} database=${s.database} method=${outcome.method})`);
      if (outcome.error.code === '28P01' && ctx.authGuard !== undefined && !s.closed) await ctx.authGuard.failed(s.address);
      s.fatal(outcome.error);
      return;
    }
    s.authenticated();
    const cred: BackendCredential = outcome.credential;
    s.credential = cred;
    if (outcome.unverified === true) {
      // The backend checks the password: always a fresh login, then the connection joins the pool.
      try {
        conn = await ServerConnection.connect(connectOpts(credentialAuthenticator(s.user, cred)));
      } catch (e) {
        if (e instanceof ProxyError && e.backend?.code === '28P01' && !s.closed) {
          ctx.log.warn({ event: LogEvent.AuthFailed, user: s.user, database: s.database, host: s.address, method: 'clear text', code: '28P01' },
            `authentication failed: backend refused the clear-text password (host=${s.address} user=${s.user} database=${s.database})`);
          await ctx.authGuard?.failed(s.address);
        }
        throw e;
      }
      pool.adopt(conn);
    } else {
      conn = await pool.acquire(pkey, () => ServerConnection.connect(connectOpts(credentialAuthenticator(s.user, cred))));
    }
  } else {
    // The primary authenticates this client itself (its exchange relayed); the connection then
    // joins the pool. A (user, database) the primary let in without asking may reuse a pooled
    // connection; a new connection relays the primary's exchange all the same, so a trust rule
    // removed from its pg_hba.conf since is noticed there (relayAuthenticator forgets the pair;
    // a configuration reload forgets them all).
    const relay = relayAuthenticator(s, io, loginKey);
    const trusted = ctx.trustedLogins.has(loginKey);
    let fresh = !trusted;
    try {
      conn = trusted
        ? await pool.acquire(pkey, () => { fresh = true; return ServerConnection.connect(connectOpts(relay)); })
        : await ServerConnection.connect(connectOpts(relay));
    } catch (e) {
      if (e instanceof ProxyError && e.backend?.code && !s.closed) {
        // The backend's FATAL already went to the client verbatim (relay.failed).
        s.close(`backend refused login: ${e.backend.code}`);
        return;
      }
      throw e;
    }
    if (!trusted) pool.adopt(conn);
    if (fresh && !relay.asked) ctx.trustedLogins.add(loginKey);
  }

  if (s.closed) {
    pool.release(conn, conn.clean);
    return;
  }
  conn.attach(s);
  s.conns.set(primary, conn);

  const parts: Buffer[] = [encodeAuthentication({ type: 'AuthenticationOk' })];
  for (const [name, value] of conn.params) parts.push(encodeParameterStatus(name, value));
  parts.push(encodeBackendKeyData(s.pid, s.secret), encodeReadyForQuery(conn.txStatus));
  s.socket.write(Buffer.concat(parts));
  s.authenticated();
  s.loginFinished();
  if (ctx.logFlags.connections) {
    logLine(ctx.log, { event: LogEvent.ConnectionAuthorized, pid: s.pid, user: s.user, database: s.database, node_id: primary },
      `connection authorized: user=${s.user} database=${s.database}`);
  }
  s.enterReady();
}
