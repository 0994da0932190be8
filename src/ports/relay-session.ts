/**
 * One client of a dedicated port (write_port / read_port): startup → login → pure byte relay.
 *
 * Startup and login follow the smart endpoint's rules so that pool_hba, TLS, the failed-login
 * guard, num_init_children and CancelRequest behave the same on every port:
 *  - SSLRequest is answered 'S' (TLS with ssl_cert/ssl_key) or 'N', GSSENCRequest 'N', a
 *    CancelRequest goes to the session registry (whatever port the target session uses);
 *  - with enable_pool_hba = on the client authenticates against pool_hba.conf + pool_passwd
 *    (frontend/client-auth.ts) and pgmaitre logs in to the node with the credential that gives;
 *    with enable_pool_hba = off the node authenticates the client itself, its exchange relayed;
 *  - the client then gets AuthenticationOk, the node's ParameterStatus, pgmaitre's own
 *    BackendKeyData (so a cancel reaches the right node) and ReadyForQuery.
 * After that nothing is parsed or classified: BackendLink relays bytes both ways. The node was
 * chosen once, before login (the primary for the write port, the balance algorithm's standby for
 * the read port); when it stops being a valid target the port closes the connection
 * (HAProxy's on-marked-down shutdown-sessions).
 */
import type * as net from 'node:net';
import { connect as netConnect } from 'node:net';
import { encodeAuthentication, encodeBackendKeyData, encodeErrorResponse, encodeReadyForQuery } from '../protocol/backend';
import { BackendCode, FrontendCode, Limits } from '../protocol/codes';
import { decodeStartupPacket, encodeCancelRequest, isProtocolOption, negotiateProtocol, replicationMode } from '../protocol/startup';
import { startupPacketLength } from '../protocol/framer';
import type { ErrorFieldsInput } from '../protocol/error-fields';
import { clientErrors, startupRefusal, toClientError } from '../errors/client-errors';
import { ProxyError, ProxyErrorCode } from '../errors/proxy-error';
import { credentialAuthenticator, type BackendAuthenticator } from '../backend/backend-auth';
import { backendAddress } from '../backend/tls-negotiate';
import type { HandshakeIO } from '../frontend/client-auth';
import { hbaLogin } from '../frontend/hba-login';
import { isUnixSocket } from '../frontend/listener';
import { answerSslRequest } from '../frontend/tls';
import type { FrontendContext } from '../frontend/context';
import type { RegisteredSession } from '../frontend/registry';
import { waitForSlot, type SlotLease } from '../frontend/slots';
import type { SessionInfo } from '../admin/types';
import { LogEvent, logLine } from '../log/logger';
import { BackendLink } from './backend-link';
import { PendingInput } from './pending-input';

/** Which dedicated port. */
export type PortKind = 'write' | 'read';

/** What a relay session needs from its port. */
export interface PortHost {
  readonly kind: PortKind;
  /** The node for a new connection, or an error to send (FATAL). */
  chooseNode(): number | ErrorFieldsInput;
  /** The relay started (counted per node) / ended. */
  relayStarted(s: RelaySession): void;
  relayEnded(s: RelaySession): void;
  /** Least_latency wants request → answer times. */
  readonly measureLatency: () => boolean;
  observeLatency(nodeId: number, seconds: number): void;
}

const SSL_NO = Buffer.from('N');

class ClientGone extends Error {
  override name = 'ClientGone';
}

/** A dedicated-port client; see the file header. */
export class RelaySession implements RegisteredSession {
  pid = 0;
  secret = 0;
  readonly connectedAt = new Date();
  readonly address: string;
  readonly port: number;
  user = '';
  database = '';
  applicationName = '';
  nodeId = -1;
  /** True when the read port sent this client to the primary (no standby was up). */
  onPrimary = false;
  link: BackendLink | null = null;
  socket: net.Socket;
  tlsActive = false;
  private slot: SlotLease | null = null;
  private phase: 'startup' | 'login' | 'relay' | 'closed' = 'startup';
  /** Startup phase: bytes of a startup packet not complete yet (bounded by MaxStartupPacket). */
  private pending: Buffer = Buffer.alloc(0);
  /** Login phase: what the client sent since its StartupMessage (pending-input.ts). */
  private readonly input = new PendingInput(() => this.socket, 2 * Limits.MaxAuthMessage);
  private sslRequests = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly onData = (chunk: Buffer): void => this.received(chunk);

  constructor(socket: net.Socket, readonly ctx: FrontendContext, readonly host: PortHost) {
    this.socket = socket;
    this.address = socket.remoteAddress ?? '';
    this.port = socket.remotePort ?? 0;
    socket.setNoDelay(true);
    this.listen(socket);
    const sec = ctx.config.authentication_timeout;
    if (sec > 0) {
      this.timer = setTimeout(() => { if (this.phase === 'startup' || this.phase === 'login') this.fatal(clientErrors.authenticationTimeout()); }, sec * 1000);
      this.timer.unref();
    }
  }

  private listen(socket: net.Socket): void {
    socket.on('data', this.onData);
    socket.on('error', () => this.close('client socket error'));
    socket.on('close', () => this.close('client disconnected'));
  }

  // ---- startup and login ------------------------------------------------------------------

  private received(chunk: Buffer): void {
    if (this.phase === 'closed') return;
    if (this.phase !== 'startup') {
      if (!this.input.push(chunk)) this.fatal(clientErrors.protocolViolation(`more than ${this.input.limit} bytes sent before authentication completed`));
      return;
    }
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    this.startupPackets();
  }

  private startupPackets(): void {
    for (;;) {
      const buf = this.pending;
      const len = startupPacketLength(buf, Limits.MaxStartupPacket);
      if (len < 0) {
        // As PostgreSQL does (and the smart endpoint): logged, closed without a word.
        logLine(this.ctx.log, { event: LogEvent.ProtocolViolation, host: this.address, port: this.port }, 'invalid length of startup packet');
        this.close('invalid length of startup packet');
        return;
      }
      if (len === 0) return;
      let msg: ReturnType<typeof decodeStartupPacket>;
      try {
        msg = decodeStartupPacket(buf, 0, len);
      } catch (e) {
        this.fatal(startupRefusal(e));
        return;
      }
      this.pending = buf.subarray(len);
      switch (msg.type) {
        case 'SSLRequest':
          if (!this.sslRequest()) return;
          if (this.tlsActive) return;
          continue;
        case 'GSSENCRequest':
          this.socket.write(SSL_NO);
          continue;
        case 'CancelRequest':
          this.ctx.registry.cancel(msg.pid, msg.secret);
          this.close('cancel request handled');
          return;
        case 'Startup':
          if (this.host.kind === 'write' && this.ctx.replication !== undefined && replicationMode(msg.params) !== null) {
            // The write port's replication connections take the smart endpoint's path (to the primary).
            this.handOverReplication(buf.subarray(0, len), msg.params);
            return;
          }
          this.phase = 'login';
          if (!this.input.push(this.pending)) {
            this.fatal(clientErrors.protocolViolation(`more than ${this.input.limit} bytes sent before authentication completed`));
            return;
          }
          this.pending = Buffer.alloc(0);
          this.login(msg.protocol, msg.params).catch((e: unknown) => {
            if (e instanceof ClientGone || this.phase === 'closed') return;
            this.ctx.log.warn({ event: LogEvent.BackendConnect, port: this.host.kind, err: (e as Error).message, user: this.user }, 'dedicated port login failed');
            this.fatal(toClientError(e, this.nodeId));
          });
          return;
        default:
          this.fatal(clientErrors.protocolViolation(`unsupported startup request code ${msg.code}`));
          return;
      }
    }
  }

  /** A replication connection on the write port: the socket goes to the replication relay as it is. */
  private handOverReplication(packet: Buffer, params: Record<string, string>): void {
    const socket = this.socket;
    socket.removeListener('data', this.onData);
    this.phase = 'closed'; // this object's remaining socket listeners see a closed session
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const rest = this.pending;
    this.pending = Buffer.alloc(0);
    this.ctx.replication!({
      socket, tlsActive: this.tlsActive, unixSocket: isUnixSocket(socket), address: this.address, port: this.port,
      connectedAt: this.connectedAt, packet: Buffer.from(packet), params, rest: Buffer.from(rest),
    });
  }

  private sslRequest(): boolean {
    const raw = this.socket;
    const answer = answerSslRequest(raw, this.ctx.tls, {
      again: ++this.sslRequests > 1 || this.tlsActive, unencryptedAfter: this.pending.length > 0, detach: ['data', 'close', 'error'],
      badCertificate: (e) => this.fatal(e),
    });
    if (answer.kind === 'refused') {
      this.fatal(answer.error);
      return false;
    }
    if (answer.kind === 'tls') {
      raw.on('error', () => undefined);
      this.socket = answer.socket;
      this.tlsActive = true;
      answer.socket.setNoDelay(true);
      this.listen(answer.socket);
    }
    return true;
  }

  /** Next typed frame from the client during authentication (a copy). */
  private async nextFrame(): Promise<{ code: number; frame: Buffer }> {
    for (;;) {
      if (this.phase === 'closed') throw new ClientGone('client disconnected during authentication');
      const f = this.input.frame(Limits.MaxAuthMessage);
      if (f === 'bad') {
        this.fatal(clientErrors.protocolViolation('invalid message length'));
        throw new ClientGone('bad frame');
      }
      if (f !== null) return f;
      await this.input.wait();
    }
  }

  private async login(protocol: { major: number; minor: number }, params: Readonly<Record<string, string>>): Promise<void> {
    const { ctx } = this;
    if (protocol.major !== 3) {
      this.fatal(clientErrors.unsupportedProtocol(protocol.major, protocol.minor));
      return;
    }
    // Protocol 3.2 / `_pq_.` options: answered as a 3.0 PostgreSQL does (frontend/handshake.ts).
    const negotiation = negotiateProtocol({ protocol, params });
    if (negotiation !== null) this.socket.write(negotiation);
    this.user = params.user ?? '';
    this.database = params.database || this.user;
    this.applicationName = params.application_name ?? '';
    if (this.user === '') {
      this.fatal(clientErrors.noUserName());
      return;
    }
    if (replicationMode(params) !== null) {
      // The write port hands them to the replication relay (above); the read port leads to standbys.
      this.fatal(this.host.kind === 'read' ? clientErrors.replicationOnReadPort() : clientErrors.protocolViolation('replication connections are not supported here'));
      return;
    }
    if (ctx.shuttingDown) {
      this.fatal(clientErrors.shuttingDown());
      return;
    }
    const blocked = ctx.authGuard?.blockedFor(this.address) ?? 0;
    if (blocked > 0 && ctx.hba !== null) {
      this.fatal(clientErrors.tooManyAuthFailures(this.address, blocked));
      return;
    }
    const gone = new Promise<void>((resolve) => this.socket.once('close', () => resolve()));
    const lease = await waitForSlot(ctx.slots, gone, () => this.closed);
    if (lease === 'full') {
      this.fatal(clientErrors.tooManyClients());
      return;
    }
    if (lease === null) return;
    this.slot = lease;

    const target = this.host.chooseNode();
    if (typeof target !== 'number') {
      this.fatal(target);
      return;
    }
    this.nodeId = target;
    this.onPrimary = target === ctx.cluster.primaryId();
    const node = ctx.cluster.node(target)!;
    const io: HandshakeIO = {
      send: (buf) => { if (this.socket.writable) this.socket.write(buf); },
      nextFrame: () => this.nextFrame(),
    };
    const extra: Record<string, string> = {};
    for (const [k, v] of Object.entries(params)) if (k !== 'user' && k !== 'database' && !isProtocolOption(k)) extra[k] = v;
    const linkOpts = (authenticator: BackendAuthenticator) => ({
      nodeId: target, host: node.host, port: node.port, user: this.user, database: this.database, params: extra,
      connectTimeoutMs: ctx.config.connect_timeout, authenticator,
      ...(ctx.backendTls !== undefined ? { tls: ctx.backendTls } : {}),
    });

    let link: BackendLink;
    if (ctx.hba !== null) {
      const outcome = await hbaLogin(ctx, io, {
        user: this.user, database: this.database, address: this.address, ssl: this.tlsActive, local: isUnixSocket(this.socket),
      }, { fields: { database: this.database, port: this.host.kind }, describe: `database=${this.database}`, gone: () => this.closed });
      if (!outcome.ok) {
        this.fatal(outcome.fatal);
        return;
      }
      try {
        link = await BackendLink.connect(linkOpts(credentialAuthenticator(this.user, outcome.credential)));
      } catch (e) {
        if (outcome.unverified === true && e instanceof ProxyError && e.backend?.code === '28P01' && !this.closed) await ctx.authGuard?.failed(this.address);
        throw e;
      }
    } else {
      // The node authenticates the client: its requests go to the client, the answers back.
      const relay: BackendAuthenticator = {
        answer: async (_req, frame) => {
          io.send(frame);
          const { code, frame: reply } = await io.nextFrame();
          if (code !== FrontendCode.Password) throw new ProxyError(ProxyErrorCode.BackendAuth, 'client sent something other than a password message');
          return reply;
        },
        failed: (frame) => {
          if (frame !== null && frame[0] === BackendCode.ErrorResponse && this.socket.writable) this.socket.write(frame);
        },
      };
      try {
        link = await BackendLink.connect(linkOpts(relay));
      } catch (e) {
        if (e instanceof ProxyError && e.backend?.code && !this.closed) {
          this.close(`backend refused login: ${e.backend.code}`); // its FATAL already went to the client
          return;
        }
        throw e;
      }
    }
    if (this.closed) {
      link.destroy();
      return;
    }
    this.link = link;
    // As on the smart endpoint: the client's key is its backend's pid (pg_backend_pid() and NOTIFY
    // pids agree with it) and pgmaitre's own secret (its cancel requests come through pgmaitre).
    this.pid = link.backendPid;
    this.secret = ctx.registry.issueSecret();
    ctx.registry.add(this);
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.socket.write(Buffer.concat([
      encodeAuthentication({ type: 'AuthenticationOk' }), ...link.paramFrames,
      encodeBackendKeyData(this.pid, this.secret), encodeReadyForQuery(link.txStatus),
    ]));
    if (ctx.logFlags.connections) {
      logLine(ctx.log, { event: LogEvent.ConnectionAuthorized, pid: this.pid, user: this.user, database: this.database, node_id: target, port: this.host.kind },
        `connection authorized: user=${this.user} database=${this.database} (${this.host.kind} port, node ${target})`);
    }
    // From here on the relay owns both sockets.
    this.phase = 'relay';
    this.socket.removeListener('data', this.onData);
    const rest = this.input.takeAll();
    this.host.relayStarted(this);
    const measure = this.host.measureLatency();
    link.startRelay({
      client: this.socket,
      copy: this.tlsActive,
      onEnd: (why) => this.close(why),
      ...(measure ? { onLatency: (s: number) => this.host.observeLatency(target, s) } : {}),
    }, rest);
  }

  // ---- RegisteredSession, admin -----------------------------------------------------------

  /** Forwards a CancelRequest to the node with the node's own key. */
  cancel(): void {
    const link = this.link;
    const node = this.ctx.cluster.node(this.nodeId);
    if (link === null || node === undefined) return;
    const s = netConnect(backendAddress(node.host, node.port), () => s.end(encodeCancelRequest(link.backendPid, link.backendSecret)));
    s.on('error', () => s.destroy());
    s.setTimeout(5000, () => s.destroy());
    this.ctx.log.info({ event: LogEvent.CancelForwarded, pid: this.pid, node_id: this.nodeId }, 'cancel request forwarded');
  }

  /** Shutdown: a byte relay cannot insert an error between messages it does not see, so it just closes. */
  terminate(): void {
    if (this.phase === 'relay') this.close('shutdown');
    else this.fatal(clientErrors.shuttingDown());
  }

  /** This client as SHOW POOL_PROCESSES and the status page see it. */
  info(): SessionInfo {
    return {
      pid: this.pid, slot: this.slot?.slot ?? -1, connectedAt: this.connectedAt, user: this.user, database: this.database,
      applicationName: this.applicationName, address: this.address, port: this.port,
      status: this.phase === 'relay' ? `Relay (${this.host.kind} port)` : 'Wait for connection',
      loadBalanceNode: this.host.kind === 'read' ? this.nodeId : -1,
      backends: this.link === null ? [] : [{ nodeId: this.nodeId, backendPid: this.link.backendPid, connectedAt: this.link.connectedAt, useCount: 1 }],
    };
  }

  // ---- close ------------------------------------------------------------------------------

  /** Sends a FATAL error (only before the relay starts) and closes. */
  fatal(fields: ErrorFieldsInput): void {
    if (this.phase === 'closed') return;
    if (this.phase !== 'relay' && this.socket.writable) this.socket.write(encodeErrorResponse(fields));
    this.close(`${fields.code}: ${fields.message}`);
  }

  /** Ends the session: both sockets, the slot, the registry entry. Idempotent. */
  close(reason: string): void {
    if (this.phase === 'closed') return;
    const wasRelay = this.phase === 'relay';
    this.phase = 'closed';
    if (this.timer !== null) clearTimeout(this.timer);
    this.input.wake();
    if (this.link !== null) this.link.end(reason);
    else if (!this.socket.destroyed) this.socket.end();
    setTimeout(() => this.socket.destroy(), 2000).unref();
    if (wasRelay) this.host.relayEnded(this);
    this.slot?.release();
    this.slot = null;
    this.ctx.registry.delete(this);
    if (wasRelay && this.ctx.logFlags.disconnections) {
      const secs = (Date.now() - this.connectedAt.getTime()) / 1000;
      logLine(this.ctx.log, { event: LogEvent.Disconnected, pid: this.pid, user: this.user, database: this.database, host: this.address, port: this.port, session_time: secs, reason },
        `frontend disconnected (${this.host.kind} port): session time: ${secs.toFixed(3)} s user=${this.user} database=${this.database} host=${this.address}`);
    }
  }

  /** True once closed. */
  get closed(): boolean {
    return this.phase === 'closed';
  }
}
