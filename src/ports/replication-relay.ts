/**
 * Replication connections (startup parameter `replication`), relayed byte for byte to the
 * current primary.
 *
 * pg_basebackup and pg_receivewal (`replication=true`) and logical consumers
 * (`replication=database`: pg_recvlogical, Debezium, postgres.js `subscribe`) speak the
 * replication protocol, which only the primary's walsender answers (slots and WAL live there) and
 * which a routing, pooling session cannot carry. The session that decoded the StartupMessage
 * hands the client over here (frontend/session.ts, and the write port's ports/relay-session.ts),
 * after any SSLRequest: the client's TLS ends at pgmaitre as for every connection. Then:
 *  - allow_replication_connections = off → FATAL 08P01 naming the key; a `replication` value
 *    PostgreSQL would refuse → its own FATAL 22023;
 *  - a client slot (num_init_children), queued like any session's;
 *  - no primary → FATAL 57P03;
 *  - enable_pool_hba = off: pgmaitre connects to the primary (TLS when ssl = on, the Unix socket
 *    when backend_hostname is a directory), forwards the StartupMessage unchanged and relays bytes
 *    both ways from there; the primary authenticates the client with its pg_hba.conf
 *    `replication` lines, and nothing after the StartupMessage is parsed;
 *  - enable_pool_hba = on: pool_hba.conf is applied first, matched as PostgreSQL matches
 *    walsenders (a physical connection only by the `replication` keyword, a logical one by its
 *    database), and its method runs against pool_passwd as for any session; pgmaitre then
 *    forwards the StartupMessage unchanged, answers the primary's authentication requests from the
 *    credential that gave (its pg_hba.conf still decides), and relays from the primary's
 *    AuthenticationOk on, that message and every byte after it untouched.
 * The bytes move through ports/backend-link.ts (onread into one buffer per connection).
 * A relayed connection takes a slot and shows in SHOW POOL_PROCESSES as
 * "Replication (relayed to node N)". Its client holds the primary's own BackendKeyData, which
 * pgmaitre never sees, so a CancelRequest never reaches it here (the replication protocol has no
 * use for one). When the primary changes, relays to the old one are closed.
 */
import type * as net from 'node:net';
import { encodeErrorResponse } from '../protocol/backend';
import { Limits } from '../protocol/codes';
import { replicationMode } from '../protocol/startup';
import type { ErrorFieldsInput } from '../protocol/error-fields';
import { clientErrors, toClientError } from '../errors/client-errors';
import { ProxyError } from '../errors/proxy-error';
import { credentialAuthenticator, type BackendAuthenticator } from '../backend/backend-auth';
import type { HandshakeIO } from '../frontend/client-auth';
import { hbaLogin } from '../frontend/hba-login';
import type { FrontendContext, ReplicationHandover } from '../frontend/context';
import type { RegisteredSession } from '../frontend/registry';
import { waitForSlot, type SlotLease } from '../frontend/slots';
import type { SessionInfo } from '../admin/types';
import type { NodeChange } from '../cluster/cluster';
import { LogEvent, logLine, type Logger } from '../log/logger';
import { BackendLink, type LinkOptions } from './backend-link';
import { PendingInput } from './pending-input';

/** The running replication relay: app.ts hands it every replication connection. */
export interface ReplicationRelays {
  /** Takes over a client whose StartupMessage asks for replication. */
  accept(h: ReplicationHandover): void;
  /** Relays open now. */
  count(): number;
  /** Stops following the cluster (the relays themselves end with the session registry's terminate). */
  close(): void;
}

class ClientGone extends Error {
  override name = 'ClientGone';
}

/** One replication client; see the file header. */
class ReplicationClient implements RegisteredSession {
  /** Never a real backend pid: the client holds the primary's own key, pgmaitre issued none. */
  readonly pid = 0;
  readonly secret: number;
  readonly connectedAt: Date;
  readonly address: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
  readonly applicationName: string;
  nodeId = -1;
  private link: BackendLink | null = null;
  private readonly socket: net.Socket;
  private slot: SlotLease | null = null;
  private phase: 'login' | 'relay' | 'closed' = 'login';
  /** What the client sent before the relay started (pending-input.ts: no join per read, bounded). */
  private readonly input: PendingInput;
  private timer: NodeJS.Timeout | null = null;
  private readonly onData = (chunk: Buffer): void => {
    if (this.phase !== 'closed' && !this.input.push(chunk)) {
      this.fatal(clientErrors.protocolViolation(`more than ${this.input.limit} bytes sent before authentication completed`));
    }
  };
  private readonly onGone = (): void => this.close('client disconnected');

  constructor(private readonly h: ReplicationHandover, private readonly ctx: FrontendContext, private readonly relays: Set<ReplicationClient>) {
    this.socket = h.socket;
    this.secret = ctx.registry.issueSecret();
    this.connectedAt = h.connectedAt;
    this.address = h.address;
    this.port = h.port;
    this.user = h.params.user ?? '';
    // A physical walsender has no database; PostgreSQL's own logs show it as such.
    this.database = replicationMode(h.params) === 'logical' ? h.params.database || this.user : '';
    this.applicationName = h.params.application_name ?? '';
    this.input = new PendingInput(() => this.socket, 2 * Limits.MaxAuthMessage);
    this.input.push(h.rest);
    this.socket.on('data', this.onData);
    this.socket.on('error', this.onGone);
    this.socket.on('close', this.onGone);
    // authentication_timeout counts from the accept, as for every client, until the relay starts
    // (from then on the primary enforces its own while it authenticates the client).
    const ms = ctx.config.authentication_timeout * 1000 - (Date.now() - h.connectedAt.getTime());
    if (ctx.config.authentication_timeout > 0) {
      this.timer = setTimeout(() => this.fatal(clientErrors.authenticationTimeout()), Math.max(ms, 0));
      this.timer.unref();
    }
  }

  /** Login steps up to the relay; every refusal is a FATAL with its SQLSTATE. */
  async run(): Promise<void> {
    const { ctx, h } = this;
    const mode = replicationMode(h.params);
    if (mode === null || mode === 'invalid') {
      this.fatal(clientErrors.invalidReplicationValue(h.params.replication ?? ''));
      return;
    }
    if (!ctx.config.allow_replication_connections) {
      ctx.log.warn({ event: LogEvent.ConnectionReceived, host: this.address, user: this.user, mode },
        `replication connection refused: allow_replication_connections = off (host=${this.address} user=${this.user})`);
      this.fatal(clientErrors.replicationOff());
      return;
    }
    if (ctx.shuttingDown) {
      this.fatal(clientErrors.shuttingDown());
      return;
    }
    if (ctx.logFlags.connections) {
      logLine(ctx.log, { event: LogEvent.ConnectionReceived, host: this.address, port: this.port, user: this.user, database: this.database, replication: mode },
        `new connection received: host=${this.address} port=${this.port} user=${this.user} database=${this.database} replication=${h.params.replication}`);
    }
    const blocked = ctx.authGuard?.blockedFor(this.address) ?? 0;
    if (blocked > 0 && ctx.hba !== null) {
      this.fatal(clientErrors.tooManyAuthFailures(this.address, blocked));
      return;
    }

    // A client slot, like any session (num_init_children; the same queue; 53300 beyond it).
    const gone = new Promise<void>((resolve) => this.socket.once('close', () => resolve()));
    const lease = await waitForSlot(ctx.slots, gone, () => this.closed);
    if (lease === 'full') {
      this.fatal(clientErrors.tooManyClients());
      return;
    }
    if (lease === null) return;
    this.slot = lease;

    const primary = ctx.cluster.primaryId();
    const node = ctx.cluster.node(primary);
    if (primary < 0 || node === undefined) {
      this.fatal(clientErrors.noPrimary());
      return;
    }
    this.nodeId = primary;
    const base: LinkOptions = {
      nodeId: primary, host: node.host, port: node.port, user: this.user, database: this.database, params: {},
      connectTimeoutMs: ctx.config.connect_timeout, startupPacket: h.packet,
      ...(ctx.backendTls !== undefined ? { tls: ctx.backendTls } : {}),
    };

    let link: BackendLink;
    try {
      if (ctx.hba === null) {
        link = await BackendLink.connect({ ...base, relayFrom: 'connect' });
      } else {
        const authenticator = await this.poolHba(mode);
        if (authenticator === null) return;
        link = await BackendLink.connect({ ...base, relayFrom: 'auth-ok', authenticator });
      }
    } catch (e) {
      if (e instanceof ClientGone || this.closed) return;
      if (e instanceof ProxyError && e.backend?.code) {
        this.close(`primary refused the replication connection: ${e.backend.code}`); // its FATAL went to the client
        return;
      }
      ctx.log.warn({ event: LogEvent.BackendConnect, node_id: primary, err: (e as Error).message, user: this.user },
        `replication connection to node ${primary} failed: ${(e as Error).message}`);
      this.fatal(toClientError(e, primary));
      return;
    }
    if (this.closed) {
      link.destroy();
      return;
    }
    this.startRelay(link);
  }

  /**
   * enable_pool_hba = on: the client authenticates against pool_hba.conf + pool_passwd; returns
   * what answers the primary's authentication (null: refused, the FATAL is sent).
   */
  private async poolHba(mode: 'physical' | 'logical'): Promise<BackendAuthenticator | null> {
    const { ctx } = this;
    const io: HandshakeIO = {
      send: (buf) => { if (this.socket.writable) this.socket.write(buf); },
      nextFrame: () => this.nextFrame(),
    };
    const outcome = await hbaLogin(ctx, io, {
      user: this.user, database: this.h.params.database || this.user, address: this.address, ssl: this.h.tlsActive,
      local: this.h.unixSocket, replication: mode,
    }, { fields: { replication: mode }, describe: 'replication connection,', gone: () => this.phase === 'closed' });
    if (!outcome.ok) {
      this.fatal(outcome.fatal);
      return null;
    }
    const answer = credentialAuthenticator(this.user, outcome.credential);
    return {
      answer: (req, frame) => answer.answer(req, frame),
      // The primary's own FATAL (28P01, no pg_hba.conf entry...) reaches the client verbatim.
      failed: (frame) => { if (frame !== null && this.socket.writable) this.socket.write(frame); },
    };
  }

  /** Next typed frame from the client during pool_hba authentication (a copy). */
  private async nextFrame(): Promise<{ code: number; frame: Buffer }> {
    for (;;) {
      if (this.closed) throw new ClientGone('client disconnected during authentication');
      const f = this.input.frame(Limits.MaxAuthMessage);
      if (f === 'bad') {
        this.fatal(clientErrors.protocolViolation('invalid message length'));
        throw new ClientGone('bad frame');
      }
      if (f !== null) return f;
      await this.input.wait();
    }
  }

  private startRelay(link: BackendLink): void {
    const { ctx } = this;
    if (ctx.cluster.primaryId() !== this.nodeId) {
      // The primary changed while this client was connecting: it would miss the close below.
      link.destroy();
      this.fatal(clientErrors.backendUnavailable(this.nodeId, `node ${this.nodeId} is no longer the primary`));
      return;
    }
    this.link = link;
    this.phase = 'relay';
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.socket.removeListener('data', this.onData);
    this.socket.removeListener('error', this.onGone);
    this.socket.removeListener('close', this.onGone);
    const rest = this.input.takeAll();
    this.relays.add(this);
    ctx.registry.add(this);
    if (ctx.logFlags.connections) {
      logLine(ctx.log, { event: LogEvent.ConnectionAuthorized, user: this.user, database: this.database, node_id: this.nodeId },
        `replication connection relayed to node ${this.nodeId}: user=${this.user}${this.database !== '' ? ` database=${this.database}` : ''}`);
    }
    link.startRelay({ client: this.socket, copy: this.h.tlsActive, onEnd: (why) => this.close(why) }, rest);
    // The primary may have gone between the connect and now: nothing would ever end the relay.
    if (link.closed || this.socket.destroyed) this.close('connection closed before the relay started');
  }

  /** True once closed. */
  get closed(): boolean {
    return this.phase === 'closed';
  }

  // ---- RegisteredSession, admin -----------------------------------------------------------

  /** No key of pgmaitre's reaches this client, so no CancelRequest can name it; nothing to do. */
  cancel(): void {}

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
      status: this.phase === 'relay' ? `Replication (relayed to node ${this.nodeId})` : 'Wait for connection',
      loadBalanceNode: -1,
      backends: this.link === null ? [] : [{ nodeId: this.nodeId, backendPid: 0, connectedAt: this.link.connectedAt, useCount: 1 }],
    };
  }

  // ---- close ------------------------------------------------------------------------------

  /** Sends a FATAL error (only before the relay starts) and closes. */
  fatal(fields: ErrorFieldsInput): void {
    if (this.phase === 'closed') return;
    if (this.phase !== 'relay' && this.socket.writable) this.socket.write(encodeErrorResponse(fields));
    this.close(`${fields.code}: ${fields.message}`);
  }

  /** Ends the client: both sockets, the slot, the registry entry. Idempotent. */
  close(reason: string): void {
    if (this.phase === 'closed') return;
    const wasRelay = this.phase === 'relay';
    this.phase = 'closed';
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.input.wake();
    if (wasRelay) {
      this.link!.end(reason);
    } else if (!this.socket.destroyed) {
      this.socket.end();
      setTimeout(() => this.socket.destroy(), 2000).unref();
    }
    this.relays.delete(this);
    this.slot?.release();
    this.slot = null;
    this.ctx.registry.delete(this);
    if (wasRelay && this.ctx.logFlags.disconnections) {
      const secs = (Date.now() - this.connectedAt.getTime()) / 1000;
      logLine(this.ctx.log, { event: LogEvent.Disconnected, user: this.user, database: this.database, host: this.address, port: this.port, session_time: secs, reason },
        `replication connection ended: session time: ${secs.toFixed(3)} s user=${this.user} host=${this.address} (${reason})`);
    }
  }
}

/** Starts following the cluster; `accept` takes each replication connection. */
export function startReplicationRelays(ctx: FrontendContext, log: Logger): ReplicationRelays {
  const relays = new Set<ReplicationClient>();
  // A relay stays on the node that was primary when it started: once that node is no longer the
  // primary (failover, switchover, detach), it is closed, as the write port does.
  const onChange = (c: NodeChange): void => {
    const primary = ctx.cluster.primaryId();
    for (const r of [...relays]) {
      if (r.nodeId === primary) continue;
      log.warn({ event: 'relay_closed', port: 'replication', node_id: r.nodeId, user: r.user, reason: `${c.field} of node ${c.nodeId}: ${c.from} -> ${c.to}` },
        `closing replication connection to node ${r.nodeId}: it is no longer the primary`);
      r.close(`node ${r.nodeId} is no longer the primary`);
    }
  };
  ctx.cluster.on('change', onChange);
  return {
    accept: (h) => {
      const client = new ReplicationClient(h, ctx, relays);
      client.run().catch((e: unknown) => {
        log.error({ err: e, event: 'replication_relay_crash' }, 'unexpected error in a replication connection');
        client.fatal(clientErrors.internal());
      });
    },
    count: () => relays.size,
    close: () => { ctx.cluster.off('change', onChange); },
  };
}
