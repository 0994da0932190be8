/**
 * The login flow of a client session, from its StartupMessage to its first ReadyForQuery.
 *
 * Order: checks on the startup parameters → a client slot (num_init_children; queue; 53300) →
 * authentication (pool_hba.conf + pool_passwd, or relayed to the primary when
 * enable_pool_hba = off) → a connection to the primary from its pool (or a fresh one when the
 * login was relayed). login() returns what the session needs to start (or the FATAL to send);
 * the session then sends AuthenticationOk, the backend's ParameterStatus values, BackendKeyData
 * (the login connection's backend pid, pgmaitre's own secret) and ReadyForQuery. The session's
 * authentication_timeout, counted from the accept, bounds the whole flow. Addresses with too many
 * recent failures are refused first (rate-limit.ts); every failed client authentication waits
 * auth_failure_delay before its FATAL.
 */
import { BackendCode, FrontendCode } from '../protocol/codes';
import { encodeAuthentication } from '../protocol/backend';
import { isProtocolOption, negotiateProtocol, replicationMode } from '../protocol/startup';
import { clientErrors, toClientError } from '../errors/client-errors';
import { ProxyError, ProxyErrorCode } from '../errors/proxy-error';
import { LogEvent, logLine } from '../log/logger';
import { ServerConnection } from '../backend/server-connection';
import { credentialAuthenticator, type BackendAuthenticator, type BackendCredential } from '../backend/backend-auth';
import { trustedByHba, type HandshakeIO } from './client-auth';
import { hbaLogin } from './hba-login';
import type { FrontendContext } from './context';
import { waitForSlot, type SlotLease } from './slots';
import type { PoolMode } from '../config/pool-mode';
import { SessionState } from '../core/session-state';
import type { LeaseLimit } from '../pool/node-pool';
import type { ErrorFieldsInput } from '../protocol/error-fields';
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

/**
 * What a login derives from its startup parameters alone: names, pool keys, the parameters as
 * SET statements. A client that connects per request sends the same StartupMessage each time,
 * and session.ts hands identical ones over as one (frozen) params object: derived once per such
 * object, not per login. Nothing here may be changed by its users.
 */
interface LoginShape {
  readonly user: string;
  readonly database: string;
  readonly applicationName: string;
  /** Startup parameters other than user/database and protocol options. */
  readonly startupParams: Record<string, string>;
  /** Pool key of session pooling (every startup parameter) and of transaction pooling (none). */
  readonly sessionKey: string;
  readonly pooledKey: string;
  /** The greeting cache's key, after the node id. */
  readonly greetingKey: string;
  /** The greeting cache's keys by node id, made once (a string made once is hashed once). */
  readonly greetingKeys: string[];
  readonly loginKey: string;
  /** Transaction pooling: startupParams as SET statements. */
  readonly settings: ReadonlyMap<string, string>;
  /** `_pq_.` options were asked for (NegotiateProtocolVersion). */
  readonly protocolOptions: boolean;
}

const shapes = new WeakMap<object, LoginShape>();

function loginShape(params: Readonly<Record<string, string>>): LoginShape {
  const known = shapes.get(params);
  if (known !== undefined) return known;
  const user = params.user ?? '';
  const database = params.database || user;
  const startupParams: Record<string, string> = {};
  for (const [k, v] of Object.entries(params)) if (!NOT_IN_KEY.has(k) && !isProtocolOption(k)) startupParams[k] = v;
  const shape: LoginShape = {
    user, database, applicationName: params.application_name ?? '', startupParams,
    sessionKey: poolKey(user, database, params), pooledKey: poolKey(user, database, {}),
    greetingKey: poolKey(user, database, startupParams), greetingKeys: [], loginKey: `${user}\u0000${database}`,
    settings: startupSettings(startupParams), protocolOptions: Object.keys(params).some(isProtocolOption),
  };
  if (Object.isFrozen(params)) shapes.set(params, shape);
  return shape;
}

class ClientGone extends Error {
  override name = 'ClientGone';
}

/** What the login flow needs from the client connection (the session implements it). */
export interface LoginIO {
  readonly ctx: FrontendContext;
  readonly address: string;
  readonly port: number;
  /** The client's connection is encrypted (hostssl lines). */
  readonly tlsActive: boolean;
  /** Accepted on a Unix-domain socket (`local` lines). */
  readonly unixSocket: boolean;
  /** True once the client went away. */
  readonly gone: boolean;
  /** Resolves when the client goes away. */
  readonly goneSignal: Promise<void>;
  /** Writes to the client. */
  send(buf: Buffer): void;
  /** Next frame from the client, or null when it went away. */
  nextFrame(): Promise<{ code: number; frame: Buffer } | null>;
  /** Client authenticated: messages up to max_message_size are accepted again. */
  authenticated(): void;
}

/** A successful login: the session starts from this. */
export interface LoginOk {
  readonly ok: true;
  readonly user: string;
  readonly database: string;
  readonly applicationName: string;
  /** Startup parameters other than user/database (sent when logging in to more nodes). */
  readonly startupParams: Record<string, string>;
  /** Transaction pooling: the pool key shared by the clients of this (user, database). */
  readonly leaseKey: string;
  /** What pgmaitre holds to log this user in to more nodes. */
  readonly credential: BackendCredential;
  readonly slot: SlotLease;
  /** The node of the login connection: the primary, or a standby when there was none. */
  readonly node: number;
  /**
   * The login connection; null when a transaction-pooled login completed without one (its
   * greeting was known): the client's first request leases a connection like any other.
   */
  readonly conn: ServerConnection | null;
  /** The ParameterStatus values the client is greeted with. */
  readonly params: ReadonlyMap<string, string>;
  /** pool_mode of this client (pool_mode, pool_mode_database_list, pool_mode_user_list). */
  readonly mode: PoolMode;
  /** Transaction pooling: the client's startup parameters as SET statements, already applied on `conn`. */
  readonly base: ReadonlyMap<string, string>;
}

/** A failed login: the FATAL to send (null: nothing, the client already got the backend's own or left). */
export interface LoginFailed {
  readonly ok: false;
  readonly fatal: ErrorFieldsInput | null;
  readonly reason: string;
}

/**
 * Relays the primary's authentication exchange to the client (enable_pool_hba = off):
 * each request goes to the client, each answer back to the primary. A request means the primary
 * no longer lets this (user, database) in without a password, whatever it did before: the pair
 * leaves `trustedLogins` at once, so no later login reuses a pooled connection unchallenged.
 */
function relayAuthenticator(io: LoginIO, hs: HandshakeIO, loginKey: string, who: { user: string; database: string; node: number }): BackendAuthenticator & { asked: boolean } {
  return {
    asked: false,
    async answer(req, frame) {
      this.asked = true;
      if (io.ctx.trustedLogins.delete(loginKey)) {
        logLine(io.ctx.log, { event: LogEvent.TrustForgotten, user: who.user, database: who.database, node_id: who.node },
          `the primary now asks user "${who.user}" for a password on database "${who.database}": pooled logins without one stop`);
      }
      if (req.type === 'AuthenticationSASL' && !io.tlsActive && req.mechanisms.includes('SCRAM-SHA-256-PLUS')) {
        // The primary offers channel binding because pgmaitre reached it over TLS; this client's
        // connection is not encrypted, and PostgreSQL never offers SCRAM-SHA-256-PLUS there.
        hs.send(encodeAuthentication({ type: 'AuthenticationSASL', mechanisms: req.mechanisms.filter((m) => m !== 'SCRAM-SHA-256-PLUS') }));
      } else {
        hs.send(frame);
      }
      const { code, frame: reply } = await hs.nextFrame();
      if (code !== FrontendCode.Password) throw new ProxyError(ProxyErrorCode.BackendAuth, 'client sent something other than a password message');
      return reply;
    },
    failed(frame) {
      // The backend's own FATAL (28P01...) goes to the client verbatim.
      if (frame !== null && frame[0] === BackendCode.ErrorResponse) io.send(frame);
    },
  };
}

const failed = (fatal: ErrorFieldsInput | null, reason: string): LoginFailed => ({ ok: false, fatal, reason });

/** A login's outcome: at once when nothing had to be waited for, else a promise. */
export type LoginResult = LoginOk | LoginFailed | Promise<LoginOk | LoginFailed>;

/**
 * Runs the login flow, from the StartupMessage to a logged-in backend connection (the session
 * then sends AuthenticationOk, the parameters, BackendKeyData and ReadyForQuery). A login that
 * waits for nothing (a free slot, a (user, database) the primary trusts whose greeting is known,
 * transaction pooling) is answered synchronously: no promise, no microtask (`pgbench -C`).
 */
export function login(io: LoginIO, info: StartupInfo): LoginResult {
  // One object for what a failure must undo (the slot) and report (the node): no closures.
  const run = new LoginRun(io, info.params);
  try {
    const r = loginSteps(io, info, run);
    return r instanceof Promise ? r.then((x) => run.settle(x), (e: unknown) => run.fail(e)) : run.settle(r);
  } catch (e) {
    return run.fail(e);
  }
}

/** A login under way: its slot (released if the login fails) and node (named in its error). */
class LoginRun {
  slot: SlotLease | null = null;
  node = -1;

  constructor(private readonly io: LoginIO, private readonly params: Readonly<Record<string, string>>) {}

  settle(r: LoginOk | LoginFailed): LoginOk | LoginFailed {
    if (!r.ok) this.slot?.release();
    return r;
  }

  fail(e: unknown): LoginFailed {
    this.slot?.release();
    if (e instanceof ClientGone || this.io.gone) return failed(null, 'client disconnected during login');
    const user = this.params.user ?? '';
    this.io.ctx.log.warn({ event: LogEvent.BackendConnect, err: (e as Error).message, user, database: this.params.database || user }, 'login failed');
    return failed(toClientError(e, this.node), (e as Error).message);
  }
}

function loginSteps(io: LoginIO, info: StartupInfo, run: LoginRun): LoginResult {
  const { ctx } = io;
  const params = info.params;
  if (info.protocol.major !== 3) return failed(clientErrors.unsupportedProtocol(info.protocol.major, info.protocol.minor), 'unsupported protocol');
  // Protocol 3.2 (PostgreSQL 18) or `_pq_.` options: pgmaitre speaks 3.0 with clients and knows no
  // protocol option, so it answers as a 3.0 PostgreSQL does, before authentication (libpq then
  // carries on in 3.0).
  const shape = loginShape(params);
  if (info.protocol.minor !== 0 || shape.protocolOptions) {
    const negotiation = negotiateProtocol(info);
    if (negotiation !== null) io.send(negotiation);
  }
  const { user, database } = shape;
  if (user === '') return failed(clientErrors.noUserName(), 'no user name');
  // Replication connections are handed to ctx.replication before the login (session.ts); one
  // gets here only where no relay is wired.
  if (params.replication !== undefined && replicationMode(params) !== null) {
    return failed(clientErrors.protocolViolation('replication connections are not supported here'), 'replication');
  }
  if (ctx.shuttingDown) return failed(clientErrors.shuttingDown(), 'shutting down');
  if (ctx.logFlags.connections) {
    logLine(ctx.log, { event: LogEvent.ConnectionReceived, host: io.address, port: io.port, user, database },
      `new connection received: host=${io.address} port=${io.port} user=${user} database=${database}`);
  }

  // (Only pool_hba's own authentication counts failures: the client's address is not even
  // asked for otherwise.)
  const blocked = ctx.hba !== null ? ctx.authGuard?.blockedFor(io.address) ?? 0 : 0;
  if (blocked > 0) {
    ctx.log.warn({ event: LogEvent.AuthFailed, user, database, host: io.address, code: '28000' },
      `login refused: too many authentication failures from ${io.address}`);
    return failed(clientErrors.tooManyAuthFailures(io.address, blocked), 'too many authentication failures');
  }

  // A client slot (num_init_children), waiting in line like pgpool's listen backlog.
  const mode = ctx.routing.poolMode(user, database);
  const pooled = mode !== 'session';
  // Session pooling: num_init_children sessions (then a queue); transaction pooling: max_client_conn.
  const slots = pooled ? ctx.pooledClients : ctx.slots;
  const free = slots.tryAcquire();
  if (free !== null) {
    if (io.gone) {
      free.release();
      return failed(null, 'client disconnected while waiting for a slot');
    }
    run.slot = free;
    return withSlot(io, shape, mode, free, run);
  }
  return waitForSlot(slots, () => io.goneSignal, () => io.gone).then((lease) => {
    if (lease === 'full') return failed(clientErrors.tooManyClients(), 'too many clients');
    if (lease === null) return failed(null, 'client disconnected while waiting for a slot');
    run.slot = lease;
    return withSlot(io, shape, mode, lease, run);
  });
}

/** The login once it holds a client slot: at once when nothing is to be waited for, else async. */
function withSlot(io: LoginIO, shape: LoginShape, mode: PoolMode, lease: SlotLease, run: LoginRun): LoginResult {
  const { ctx } = io;
  const pooled = mode !== 'session';
  const { user, database, applicationName, startupParams, loginKey } = shape;

  // The session's first connection goes to the primary; when there is none (failed, not yet
  // promoted), to a standby, so that reads keep working (writes then get an ERROR).
  let primary = ctx.cluster.primaryId();
  if (primary < 0) {
    const standbys = ctx.cluster.nodes.filter((n) => (n.status === 'up' || n.status === 'waiting') && n.role === 'standby');
    primary = weightedPick(standbys.map((n) => ({ id: n.id, weight: n.weight > 0 ? n.weight : 1e-9, usable: true, isPrimary: false, lagging: false, delay: 0 })), Math.random);
    if (primary < 0) throw new ProxyError(ProxyErrorCode.NoPrimary, 'no primary node');
  }
  run.node = primary;

  // Transaction pooling: a login like one already answered (same node, user, database and startup
  // parameters) needs no backend connection, so it never waits for a lease (PgBouncer completes
  // the login and makes only the first query wait, up to query_wait_timeout).
  const greetingKey = shape.greetingKeys[primary] ??= `${primary}\u0000${shape.greetingKey}`;
  const greeting = pooled ? ctx.greetings.get(greetingKey) : undefined;
  // enable_pool_hba = off and a (user, database) the primary let in without asking (see authenticate()).
  if (ctx.hba === null && greeting !== undefined && ctx.trustedLogins.has(loginKey)) {
    io.authenticated();
    const credential = poolPasswdCredential(ctx, user);
    return { ok: true, user, database, applicationName, startupParams, leaseKey: shape.pooledKey, credential, slot: lease, node: primary, conn: null, params: greeting, mode, base: shape.settings };
  }
  // enable_pool_hba = on and a `trust` line for this client: the same, decided at once.
  const hbaTrust = ctx.hba !== null && (!pooled || greeting !== undefined)
    ? trustedByHba({ user, database, address: io.address, ssl: io.tlsActive, local: io.unixSocket }, ctx.hba, ctx.poolPasswd) : null;
  if (pooled && hbaTrust !== null && greeting !== undefined) {
    io.authenticated();
    return { ok: true, user, database, applicationName, startupParams, leaseKey: shape.pooledKey, credential: hbaTrust, slot: lease, node: primary, conn: null, params: greeting, mode, base: shape.settings };
  }
  // Session pooling, the same (user, database) and a cached connection of its key free now (a
  // client that connects per request, connection_cache = on): the client gets that connection at
  // once, its ParameterStatus values and backend pid, as authenticate() would give it after a
  // promise and a microtask.
  if (!pooled && (ctx.hba === null ? ctx.trustedLogins.has(loginKey) : hbaTrust !== null)) {
    const conn = ctx.pools.get(primary)?.tryAcquire(shape.sessionKey) ?? null;
    if (conn !== null) {
      io.authenticated();
      const credential = hbaTrust ?? poolPasswdCredential(ctx, user);
      return { ok: true, user, database, applicationName, startupParams, leaseKey: shape.pooledKey, credential, slot: lease, node: primary, conn, params: conn.params, mode, base: NO_SETTINGS };
    }
  }
  return authenticate(io, shape, mode, lease, primary, greetingKey, greeting);
}

/** What pool_passwd holds for logins to other nodes (reads on standbys). */
function poolPasswdCredential(ctx: FrontendContext, user: string): BackendCredential {
  const entry = ctx.poolPasswd.get(user);
  return entry?.kind === 'text' ? { kind: 'password', password: entry.password }
    : entry?.kind === 'md5' ? { kind: 'md5', md5: entry.md5 } : NO_CREDENTIAL;
}

/** No credential in pool_passwd (shared: never changed by its users). */
const NO_CREDENTIAL: BackendCredential = Object.freeze({ kind: 'none' });

/** Authentication and the backend connection, for a login that has its slot and node. */
async function authenticate(io: LoginIO, shape: LoginShape, mode: PoolMode, lease: SlotLease, primary: number,
  greetingKey: string, greeting: ReadonlyMap<string, string> | undefined): Promise<LoginOk | LoginFailed> {
  const { ctx } = io;
  const pooled = mode !== 'session';
  const { user, database, applicationName, startupParams, loginKey } = shape;
  const hs: HandshakeIO = {
    send: (buf) => io.send(buf),
    nextFrame: async () => {
      const f = await io.nextFrame();
      if (f === null) throw new ClientGone('client disconnected during authentication');
      return f;
    },
  };

  const node = ctx.cluster.node(primary)!;
  const pool = ctx.pools.get(primary)!;
  // Transaction pooling shares connections among the clients of a (user, database): they are
  // opened without the client's other startup parameters, which are applied as SETs instead.
  const pkey = pooled ? shape.pooledKey : shape.sessionKey;
  // For logins to other nodes (reads on standbys): what pool_passwd holds, unless the client's
  // own authentication gives something better below.
  let credential = poolPasswdCredential(ctx, user);
  const connectOpts = (authenticator: BackendAuthenticator) => ({
    nodeId: primary, host: node.host, port: node.port, user, database,
    params: pooled ? {} : startupParams, connectTimeoutMs: ctx.config.connect_timeout, authenticator, key: pkey,
    ...(ctx.backendTls !== undefined ? { tls: ctx.backendTls } : {}),
  });

  let conn: ServerConnection;
  if (ctx.hba !== null) {
    const outcome = await hbaLogin(ctx, hs, { user, database, address: io.address, ssl: io.tlsActive, local: io.unixSocket }, {
      fields: { database }, describe: `database=${database}`, gone: () => io.gone,
    });
    if (!outcome.ok) return failed(outcome.fatal, 'authentication failed');
    io.authenticated();
    const cred: BackendCredential = outcome.credential;
    credential = cred;
    if (outcome.unverified === true) {
      // The backend checks the password: always a fresh login, then the connection joins the pool.
      try {
        conn = await ServerConnection.connect(connectOpts(credentialAuthenticator(user, cred)));
      } catch (e) {
        if (e instanceof ProxyError && e.backend?.code === '28P01' && !io.gone) {
          ctx.log.warn({ event: LogEvent.AuthFailed, user, database, host: io.address, method: 'clear text', code: '28P01' },
            `authentication failed: backend refused the clear-text password (host=${io.address} user=${user} database=${database})`);
          await ctx.authGuard?.failed(io.address);
        }
        throw e;
      }
      pool.adopt(conn);
    } else if (greeting !== undefined) {
      return { ok: true, user, database, applicationName, startupParams, leaseKey: shape.pooledKey, credential, slot: lease, node: primary, conn: null, params: greeting, mode, base: shape.settings };
    } else {
      const create = (): Promise<ServerConnection> => ServerConnection.connect(connectOpts(credentialAuthenticator(user, cred)));
      conn = pooled ? await pool.lease(pkey, create, leaseLimit(ctx.config), ctx.config.query_wait_timeout * 1000) : await pool.acquire(pkey, create);
    }
  } else {
    // The primary authenticates this client itself (its exchange relayed); the connection then
    // joins the pool. A (user, database) the primary let in without asking may reuse a pooled
    // connection; a new connection relays the primary's exchange all the same, so a trust rule
    // removed from its pg_hba.conf since is noticed there (relayAuthenticator forgets the pair;
    // a configuration reload forgets them all).
    const relay = relayAuthenticator(io, hs, loginKey, { user, database, node: primary });
    // (Trusted with a known greeting was answered by withSlot() without a connection.)
    const trusted = ctx.trustedLogins.has(loginKey);
    let fresh = !trusted;
    try {
      const create = (): Promise<ServerConnection> => { fresh = true; return ServerConnection.connect(connectOpts(relay)); };
      conn = !trusted ? await ServerConnection.connect(connectOpts(relay))
        : pooled ? await pool.lease(pkey, create, leaseLimit(ctx.config), ctx.config.query_wait_timeout * 1000)
        : await pool.acquire(pkey, create);
    } catch (e) {
      if (e instanceof ProxyError && e.backend?.code && !io.gone) {
        // The backend's FATAL already went to the client verbatim (relay.failed).
        return failed(null, `backend refused login: ${e.backend.code}`);
      }
      throw e;
    }
    if (!trusted) pool.adopt(conn);
    if (fresh && !relay.asked) ctx.trustedLogins.add(loginKey);
  }

  const giveBack = (why: string): void => {
    if (pooled) pool.giveBack(conn, conn.clean, why, leaseLimit(ctx.config));
    else pool.release(conn, conn.clean, why);
  };
  if (io.gone) {
    giveBack('client disconnected during login');
    return failed(null, 'client disconnected during login');
  }
  let base: ReadonlyMap<string, string> = NO_SETTINGS;
  if (pooled) {
    // The client's startup parameters, applied as on a direct login: an invalid one is FATAL.
    // The connection may carry another client's settings: bring it to exactly this client's.
    base = shape.settings;
    const state = new SessionState();
    state.setBase(base);
    const replay = state.replayFor(conn, state);
    if (replay.length > 0) {
      const errors = await conn.runInternal(replay, Math.max(1000, ctx.config.connect_timeout || 10_000));
      if (errors.length > 0) {
        const e = errors[0]!;
        conn.applied = null; // half applied: unknown
        giveBack('startup parameter refused');
        return failed({ severity: 'FATAL', code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) }, `startup parameter refused: ${e.message}`);
      }
    }
  }
  io.authenticated();
  if (pooled) ctx.greetings.set(greetingKey, new Map(conn.params));
  return { ok: true, user, database, applicationName, startupParams, leaseKey: shape.pooledKey, credential, slot: lease, node: primary, conn, params: conn.params, mode, base };
}

/** Session pooling's `base`: no startup parameter applied as a SET (never changed by its users). */
const NO_SETTINGS: ReadonlyMap<string, string> = new Map();

/** Transaction pooling: how many connections a (node, user, database) may have. */
export function leaseLimit(c: FrontendContext['config']): LeaseLimit {
  // Asked at every lease and give-back: one object per configuration (a reload makes a new one).
  if (limitOf !== c) {
    limit = { size: c.default_pool_size, reserve: c.reserve_pool_size, reserveAfterMs: c.reserve_pool_timeout * 1000 };
    limitOf = c;
  }
  return limit;
}
let limitOf: FrontendContext['config'] | null = null;
let limit: LeaseLimit = { size: 0, reserve: 0, reserveAfterMs: 0 };

/**
 * A client's startup parameters as SET statements, by lower-cased name (`options` split into its
 * `-c name=value` / `--name=value` settings), in the order given.
 */
export function startupSettings(params: Readonly<Record<string, string>>): Map<string, string> {
  const out = new Map<string, string>();
  const add = (name: string, value: string): void => {
    out.set(name.toLowerCase(), `SET ${quoteIdent(name.toLowerCase())} TO ${quoteLiteral(value)}`);
  };
  for (const [k, v] of Object.entries(params)) {
    if (k === 'options') {
      const words = v.trim().split(/\s+/);
      for (let i = 0; i < words.length; i++) {
        const w = words[i]!;
        const kv = w === '-c' ? words[++i] ?? '' : w.startsWith('-c') ? w.slice(2) : w.startsWith('--') ? w.slice(2) : '';
        const eq = kv.indexOf('=');
        if (eq > 0) add(kv.slice(0, eq).replace(/-/g, '_'), kv.slice(eq + 1));
      }
    } else if (k !== 'replication') {
      add(k, v);
    }
  }
  return out;
}

function quoteIdent(name: string): string {
  return /^[a-z_][a-z0-9_.]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}
