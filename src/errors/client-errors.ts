/**
 * The one catalogue of errors pgmaitre itself puts on the wire, each with its SQLSTATE.
 *
 * Only these (and backend errors relayed verbatim) reach clients; anything else becomes a
 * generic XX000 via `internal()` plus a log line. FATAL means ErrorResponse then close; ERROR
 * means ErrorResponse + ReadyForQuery and the session lives.
 */
import { SqlState } from '../protocol/codes';
import type { ErrorFieldsInput } from '../protocol/error-fields';
import { ProxyError, ProxyErrorCode } from './proxy-error';
import { StartupRefused } from '../protocol/startup';

type Severity = 'ERROR' | 'FATAL';

function err(severity: Severity, code: string, message: string, extra?: Partial<ErrorFieldsInput>): ErrorFieldsInput {
  return { severity, code, message, ...extra };
}

/** Named constructors for every error pgmaitre sends. The key is the constructor name. */
export const clientErrors = {
  /** Startup or message length out of bounds, or an unparsable packet. */
  protocolViolation: (why: string) => err('FATAL', SqlState.ProtocolViolation, why),
  /** Unsupported frontend protocol version. */
  unsupportedProtocol: (major: number, minor: number) =>
    err('FATAL', SqlState.FeatureNotSupported, `unsupported frontend protocol ${major}.${minor}: server supports 3.0 to 3.0`),
  /** num_init_children sessions busy and the wait queue full. */
  tooManyClients: () => err('FATAL', SqlState.TooManyConnections, 'sorry, too many clients already'),
  /** No pool_hba.conf line matches. */
  noHbaEntry: (host: string, user: string, database: string, ssl = false) =>
    err('FATAL', SqlState.InvalidAuthorizationSpecification,
      `no pool_hba.conf entry for host "${host}", user "${user}", database "${database}", ${ssl ? 'SSL on' : 'SSL off'}`),
  /** No pool_hba.conf line matches a replication connection (PostgreSQL's wording for walsenders). */
  noHbaEntryReplication: (host: string, user: string, ssl = false) =>
    err('FATAL', SqlState.InvalidAuthorizationSpecification,
      `no pool_hba.conf entry for replication connection from host "${host}", user "${user}", ${ssl ? 'SSL on' : 'SSL off'}`),
  /** A `reject` line matched a replication connection. */
  hbaRejectReplication: (host: string, user: string) =>
    err('FATAL', SqlState.InvalidAuthorizationSpecification, `pool_hba.conf rejects replication connection for host "${host}", user "${user}"`),
  /** A `reject` line matched. */
  hbaReject: (host: string, user: string, database: string) =>
    err('FATAL', SqlState.InvalidAuthorizationSpecification,
      `pool_hba.conf rejects connection for host "${host}", user "${user}", database "${database}"`),
  /** Wrong password (PostgreSQL's 28P01, which drivers look for; pgpool sends XX000). */
  passwordFailed: (user: string, method: string) =>
    err('FATAL', SqlState.InvalidPassword, `password authentication failed for user "${user}"`,
      { detail: `authentication method: ${method}` }),
  /** The user has no usable entry in pool_passwd for the method the hba line asks for. */
  noPoolPasswd: (user: string, why: string) =>
    err('FATAL', SqlState.InvalidAuthorizationSpecification, `authentication failed for user "${user}"`,
      { detail: why }),
  /**
   * The client is authenticated but pgmaitre cannot log in to the backend as that user: it holds
   * no secret the backend's method accepts (e.g. an md5 pool_passwd hash for a SCRAM backend).
   */
  backendLoginImpossible: (nodeId: number, why: string) =>
    err('FATAL', SqlState.InvalidAuthorizationSpecification, `pgmaitre cannot log in to backend node ${nodeId}: ${why}`),
  /** A TLS client presented a certificate that does not verify against ssl_ca_cert. */
  clientCertificateInvalid: (why: string) =>
    err('FATAL', SqlState.InvalidAuthorizationSpecification, 'client certificate verification failed', { detail: why }),
  /** Too many failed logins from one address within auth_failure_window. */
  tooManyAuthFailures: (host: string, seconds: number) =>
    err('FATAL', SqlState.InvalidAuthorizationSpecification, `too many authentication failures from host "${host}"`,
      { hint: `try again in ${seconds} s` }),
  /** client_connection_rate_limit: too many new connections from one address. */
  connectionRateExceeded: (host: string, limit: number, windowSec: number, retrySec: number) =>
    err('FATAL', SqlState.TooManyConnections, `too many connections from host "${host}"`,
      { detail: `client_connection_rate_limit allows ${limit} new connections per ${windowSec} s from one address`, hint: `try again in ${retrySec} s` }),
  /** The read port found no standby (and read_port_primary_fallback is off, or there is no primary either). */
  noStandby: () =>
    err('FATAL', SqlState.CannotConnectNow, 'no standby node is available',
      { hint: 'check SHOW POOL_NODES; read_port_primary_fallback = on sends such connections to the primary' }),
  /** auth_query (or the role membership lookup) could not run: the details are in pgmaitre's log. */
  authQueryFailed: (user: string) =>
    err('FATAL', SqlState.InvalidAuthorizationSpecification, `authentication failed for user "${user}"`,
      { detail: 'pgmaitre could not look up the password (auth_query failed; see the pgmaitre log)' }),
  /** The directory refused the client's password (PostgreSQL's message and SQLSTATE for ldap). */
  ldapFailed: (user: string) =>
    err('FATAL', SqlState.InvalidAuthorizationSpecification, `LDAP authentication failed for user "${user}"`),
  /** No LDAP server of the hba line could check the password: not the client's fault. */
  ldapUnavailable: (user: string) =>
    err('FATAL', SqlState.InvalidAuthorizationSpecification, `LDAP authentication failed for user "${user}"`,
      { detail: 'The LDAP server could not be reached (see the pgmaitre log); try again later.' }),
  /** An hba method pgmaitre does not implement. */
  unsupportedAuthMethod: (method: string) =>
    err('FATAL', SqlState.FeatureNotSupported, `authentication method "${method}" is not supported by pgmaitre`),
  /** Handshake took longer than authentication_timeout. */
  authenticationTimeout: () => err('FATAL', SqlState.ProtocolViolation, 'canceling authentication due to timeout'),
  /** client_idle_limit reached. */
  idleLimit: (seconds: number) =>
    err('FATAL', SqlState.IdleSessionTimeout, `terminating connection due to client_idle_limit (${seconds} s) being reached`),
  /** No node can take writes. */
  noPrimary: () =>
    err('FATAL', SqlState.CannotConnectNow, 'no primary node is available',
      { hint: 'check SHOW POOL_NODES; pgmaitre is waiting for a primary to be found or promoted' }),
  /** Connecting to a backend failed (refused, timeout, closed). */
  backendUnavailable: (nodeId: number, why: string) =>
    err('FATAL', SqlState.SqlclientUnableToEstablishSqlconnection, `unable to connect to backend node ${nodeId}`, { detail: why }),
  /** A backend connection died under the session. */
  backendLost: (nodeId: number) =>
    err('FATAL', SqlState.ConnectionFailure, `connection to backend node ${nodeId} was lost`),
  /** Session state (SETs) could not be replayed on a node: answering there would use other settings. */
  sessionStateLost: (nodeId: number) =>
    err('FATAL', SqlState.ConnectionFailure, `could not apply this session's settings on backend node ${nodeId}`,
      { hint: 'the session ended rather than run statements with different settings; reconnect' }),
  /** A replication connection while allow_replication_connections = off. */
  replicationOff: () =>
    err('FATAL', SqlState.ProtocolViolation, 'replication connections are not allowed through pgmaitre (allow_replication_connections = off)',
      { hint: 'set allow_replication_connections = on, or connect the replication client to the primary itself' }),
  /** A replication connection on the read port: replication is relayed to the primary only. */
  replicationOnReadPort: () =>
    err('FATAL', SqlState.ProtocolViolation, 'replication connections are not accepted on the read port',
      { hint: "replication connections are relayed to the primary: use pgmaitre's port or write_port" }),
  /** The startup parameter `replication` has a value PostgreSQL would refuse too. */
  invalidReplicationValue: (value: string) =>
    err('FATAL', SqlState.InvalidParameterValue, `invalid value for parameter "replication": "${value}"`,
      { hint: 'Valid values are: "false", 0, "true", 1, "database".' }),
  /** The startup packet named no user (PostgreSQL: 28000). */
  noUserName: () => err('FATAL', SqlState.InvalidAuthorizationSpecification, 'no PostgreSQL user name specified in startup packet'),
  /** pgmaitre is shutting down. */
  shuttingDown: () => err('FATAL', SqlState.AdminShutdown, 'terminating connection due to administrator command'),
  /** Anything not in this catalogue. */
  internal: () => err('FATAL', SqlState.InternalError, 'internal error in pgmaitre'),
  /** A bug in one session's data path: that session ends (the details are in pgmaitre's log). */
  internalFatal: () => err('FATAL', SqlState.InternalError, 'internal error in pgmaitre: this session ends (see the pgmaitre log)'),
} as const;

/** Names of every client error constructor (pinned by a test). */
export type ClientErrorName = keyof typeof clientErrors;

/** Maps any thrown value to what the client may see. Backend errors pass through verbatim. */
export function toClientError(e: unknown, nodeId: number): ErrorFieldsInput {
  if (e instanceof ProxyError) {
    if (e.backend?.code) {
      return {
        severity: 'FATAL',
        code: e.backend.code,
        message: e.backend.message ?? e.message,
        ...(e.backend.detail ? { detail: e.backend.detail } : {}),
        ...(e.backend.hint ? { hint: e.backend.hint } : {}),
      };
    }
    // A backend terminated right after its login (pg_terminate_backend() of every backend catches
    // starting ones too): the client gets the server's FATAL, as a direct client would.
    if (e.code === ProxyErrorCode.BackendClosed && e.goodbye?.code === '57P01') {
      return { severity: 'FATAL', code: e.goodbye.code, message: e.goodbye.message ?? e.message };
    }
    if (e.retryable || e.bansNode) return clientErrors.backendUnavailable(nodeId, e.message);
    if (e.code === ProxyErrorCode.NoCredentials || e.code === ProxyErrorCode.BackendAuth) return clientErrors.backendLoginImpossible(nodeId, e.message);
    if (e.code === 'PGPX_NO_PRIMARY') return clientErrors.noPrimary();
  }
  return clientErrors.internal();
}

/**
 * The FATAL for a startup packet that could not be taken: PostgreSQL's own for what it refuses
 * (an unsupported protocol version: 0A000; no user name: 28000), else 08P01 naming the fault.
 */
export function startupRefusal(e: unknown): ErrorFieldsInput {
  if (e instanceof StartupRefused) return e.reason === 'protocol' ? clientErrors.unsupportedProtocol(e.major, e.minor) : clientErrors.noUserName();
  return clientErrors.protocolViolation(`invalid startup packet: ${(e as Error).message}`);
}
