/**
 * Internal failures: one base class with a stable code per failure kind and policy predicates.
 *
 * Internal errors never reach the wire as-is: the frontend maps them to a client error from
 * client-errors.ts (or to XX000 plus a log line). `retryable` says another node may succeed;
 * `bansNode` says the node itself looks broken (input for failover_on_backend_error).
 */

/** Catalogue of internal failure codes. Codes are never reused for another meaning. */
export const ProxyErrorCode = {
  BackendConnect: 'PGPX_BACKEND_CONNECT',
  BackendConnectTimeout: 'PGPX_BACKEND_CONNECT_TIMEOUT',
  BackendAuth: 'PGPX_BACKEND_AUTH',
  BackendRejected: 'PGPX_BACKEND_REJECTED',
  BackendProtocol: 'PGPX_BACKEND_PROTOCOL',
  BackendClosed: 'PGPX_BACKEND_CLOSED',
  NoPrimary: 'PGPX_NO_PRIMARY',
  NoCredentials: 'PGPX_NO_CREDENTIALS',
  ResetFailed: 'PGPX_RESET_FAILED',
} as const;
export type ProxyErrorCode = (typeof ProxyErrorCode)[keyof typeof ProxyErrorCode];

const RETRYABLE: ReadonlySet<ProxyErrorCode> = new Set([
  ProxyErrorCode.BackendConnect,
  ProxyErrorCode.BackendConnectTimeout,
  ProxyErrorCode.BackendClosed,
]);
const BANS_NODE: ReadonlySet<ProxyErrorCode> = new Set([
  ProxyErrorCode.BackendConnect,
  ProxyErrorCode.BackendConnectTimeout,
  ProxyErrorCode.BackendClosed,
  ProxyErrorCode.BackendProtocol,
]);

/** Fields of a backend ErrorResponse carried by a ProxyError (so the client can get them verbatim). */
export interface BackendErrorFields {
  readonly severity?: string;
  readonly code?: string;
  readonly message?: string;
  readonly detail?: string;
  readonly hint?: string;
}

/** An internal failure with a stable code; `backend` holds the server's error when there was one. */
export class ProxyError extends Error {
  constructor(
    readonly code: ProxyErrorCode,
    message: string,
    readonly backend?: BackendErrorFields,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ProxyError';
  }

  /**
   * BackendClosed: the server's own FATAL when it said one before closing (57P01 from
   * pg_terminate_backend()...). Not `backend`: that one means a login the server refused.
   */
  goodbye: BackendErrorFields | null = null;

  /** Another node (or a later attempt) may succeed. */
  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }

  /** The node itself looks unreachable or broken. */
  get bansNode(): boolean {
    return BANS_NODE.has(this.code);
  }
}
