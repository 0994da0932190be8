/**
 * What a backend says while pgmaitre logs in to it, handled once for every kind of backend
 * connection: the pooled ServerConnection (backend/server-connection.ts) and the dedicated ports'
 * and replication relay's BackendLink (ports/backend-link.ts). Sans-IO: it takes the backend's
 * messages (from the MessageScanner) and tells its owner what to do through `LoginEvents`.
 *
 * Authentication requests are answered through a BackendAuthenticator (credentials pgmaitre
 * holds, or the client's own exchange relayed), one at a time and in order even when an answer
 * is asynchronous (SCRAM key derivation, a client's password). An ErrorResponse is decoded into
 * a ProxyError (BackendAuth for 28P01/28000, else BackendRejected), with the raw frame handed to
 * the authenticator first (a relayed login forwards it to the client verbatim).
 *
 * @see https://www.postgresql.org/docs/15/protocol-flow.html#id-1.10.6.7.3
 */
import { BackendCode } from '../protocol/codes';
import { decodeAuthentication, decodeBackendKeyData, decodeErrorFields } from '../protocol/backend';
import { ProxyError, ProxyErrorCode } from '../errors/proxy-error';
import type { BackendAuthenticator } from './backend-auth';

/** What the owner of the connection does with the login's events. */
export interface LoginEvents {
  /** Write an authentication answer to the backend. */
  send(buf: Buffer): void;
  /** The login failed: close the connection and report `e`. */
  fail(e: ProxyError): void;
  /** AuthenticationOk: `buf[start..end)` is its frame. */
  authOk?(buf: Buffer, start: number, end: number): void;
  /** One ParameterStatus frame. */
  param(buf: Buffer, start: number, end: number): void;
  /** BackendKeyData. */
  key(pid: number, secret: number): void;
  /** The first ReadyForQuery: logged in, with this transaction status byte. */
  ready(txStatus: number): void;
}

/** The login steps of one backend connection. */
export class BackendLogin {
  private authPending: Promise<void> = Promise.resolve();
  private done = false;

  constructor(
    private readonly nodeId: number,
    private readonly authenticator: BackendAuthenticator | undefined,
    private readonly events: LoginEvents,
  ) {}

  /** True once ready() or fail() was reported: later messages are not the login's. */
  get settled(): boolean {
    return this.done;
  }

  /** Marks the login over from outside (a timeout, a socket error) so that pending answers are dropped. */
  abandon(): void {
    this.done = true;
  }

  private failWith(e: ProxyError): void {
    if (this.done) return;
    this.done = true;
    this.events.fail(e);
  }

  /** One message from the backend during the login. */
  onMessage(code: number, buf: Buffer, start: number, end: number): void {
    if (this.done) return;
    switch (code) {
      case BackendCode.Authentication: {
        const req = decodeAuthentication(buf, start, end);
        if (req.type === 'AuthenticationOk') {
          this.authenticator?.done?.();
          this.events.authOk?.(buf, start, end);
          return;
        }
        const authenticator = this.authenticator;
        if (authenticator === undefined) {
          this.failWith(new ProxyError(ProxyErrorCode.BackendAuth, `node ${this.nodeId} asked for authentication and pgmaitre has no way to answer`));
          return;
        }
        const frame = Buffer.from(buf.subarray(start, end));
        this.authPending = this.authPending
          .then(() => authenticator.answer(req, frame))
          .then((answer) => { if (answer.length > 0 && !this.done) this.events.send(answer); })
          .catch((e: unknown) => this.failWith(e instanceof ProxyError ? e
            : new ProxyError(ProxyErrorCode.BackendAuth, String((e as Error)?.message ?? e))));
        return;
      }
      case BackendCode.ParameterStatus:
        this.events.param(buf, start, end);
        return;
      case BackendCode.BackendKeyData: {
        const k = decodeBackendKeyData(buf, start, end);
        this.events.key(k.pid, k.secret);
        return;
      }
      case BackendCode.ErrorResponse: {
        const f = decodeErrorFields(buf, start, end);
        this.authenticator?.failed?.(Buffer.from(buf.subarray(start, end)));
        const kind = f.code === '28P01' || f.code === '28000' ? ProxyErrorCode.BackendAuth : ProxyErrorCode.BackendRejected;
        this.failWith(new ProxyError(kind, `node ${this.nodeId}: ${f.message}`, f));
        return;
      }
      case BackendCode.ReadyForQuery:
        this.done = true;
        this.events.ready(buf[start + 5]!);
        return;
      default:
        return; // NoticeResponse, NegotiateProtocolVersion: nothing to do
    }
  }
}
