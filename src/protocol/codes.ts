/**
 * Message type bytes of the PostgreSQL v3 protocol, one map per direction.
 *
 * 'D', 'S', 'E', 'C' and others mean different messages depending on who sends them,
 * so client→server and server→client codes live in separate maps (never a shared enum).
 * Values are char codes so the hot path compares numbers, not strings.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */

const c = (s: string): number => s.charCodeAt(0);

/** Client → server message type bytes. */
export const FrontendCode = {
  Bind: c('B'),
  Close: c('C'),
  CopyData: c('d'),
  CopyDone: c('c'),
  CopyFail: c('f'),
  Describe: c('D'),
  Execute: c('E'),
  Flush: c('H'),
  FunctionCall: c('F'),
  Parse: c('P'),
  /** PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse all share 'p'. */
  Password: c('p'),
  Query: c('Q'),
  Sync: c('S'),
  Terminate: c('X'),
} as const;
export type FrontendCode = (typeof FrontendCode)[keyof typeof FrontendCode];

/** Server → client message type bytes. */
export const BackendCode = {
  Authentication: c('R'),
  BackendKeyData: c('K'),
  BindComplete: c('2'),
  CloseComplete: c('3'),
  CommandComplete: c('C'),
  CopyData: c('d'),
  CopyDone: c('c'),
  CopyInResponse: c('G'),
  CopyOutResponse: c('H'),
  CopyBothResponse: c('W'),
  DataRow: c('D'),
  EmptyQueryResponse: c('I'),
  ErrorResponse: c('E'),
  FunctionCallResponse: c('V'),
  NegotiateProtocolVersion: c('v'),
  NoData: c('n'),
  NoticeResponse: c('N'),
  NotificationResponse: c('A'),
  ParameterDescription: c('t'),
  ParameterStatus: c('S'),
  ParseComplete: c('1'),
  PortalSuspended: c('s'),
  ReadyForQuery: c('Z'),
  RowDescription: c('T'),
} as const;
export type BackendCode = (typeof BackendCode)[keyof typeof BackendCode];

/** Transaction status byte carried by ReadyForQuery. */
export const TxStatus = {
  Idle: c('I'),
  InTransaction: c('T'),
  Failed: c('E'),
} as const;
export type TxStatus = (typeof TxStatus)[keyof typeof TxStatus];

/** Authentication request sub-codes (the int32 after 'R'). */
export const AuthCode = {
  Ok: 0,
  KerberosV5: 2,
  CleartextPassword: 3,
  MD5Password: 5,
  GSS: 7,
  GSSContinue: 8,
  SSPI: 9,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12,
} as const;
export type AuthCode = (typeof AuthCode)[keyof typeof AuthCode];

/** Special "protocol versions" of untyped startup-phase packets. */
export const StartupCode = {
  ProtocolV3: 196608, // 3 << 16
  CancelRequest: 80877102,
  SSLRequest: 80877103,
  GSSENCRequest: 80877104,
} as const;

/**
 * Length limits, as PostgreSQL enforces them (src/include/libpq/pqcomm.h and pqformat):
 * a startup packet is at most 10000 bytes; other messages at most 1 GB - 1.
 */
export const Limits = {
  MaxStartupPacket: 10000,
  /** Longest cancel key (BackendKeyData / CancelRequest) of protocol 3.2 (PostgreSQL 18): 256 bytes; 3.0's is 4. */
  MaxCancelKey: 256,
  MaxMessage: 0x3fffffff,
  /**
   * Largest message accepted before a client is authenticated (password, SASL messages): like
   * PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH, so an unauthenticated peer cannot make pgmaitre buffer
   * a huge message.
   */
  MaxAuthMessage: 65536,
} as const;

/** SQLSTATE codes pgmaitre itself sends. @see https://www.postgresql.org/docs/current/errcodes-appendix.html */
export const SqlState = {
  ProtocolViolation: '08P01',
  ConnectionFailure: '08006',
  ConnectionException: '08000',
  SqlclientUnableToEstablishSqlconnection: '08001',
  InvalidAuthorizationSpecification: '28000',
  InvalidPassword: '28P01',
  TooManyConnections: '53300',
  AdminShutdown: '57P01',
  CannotConnectNow: '57P03',
  IdleSessionTimeout: '57P05',
  QueryCanceled: '57014',
  FeatureNotSupported: '0A000',
  SyntaxError: '42601',
  UndefinedObject: '42704',
  InvalidParameterValue: '22023',
  ReadOnlySqlTransaction: '25006',
  InternalError: 'XX000',
} as const;
export type SqlState = (typeof SqlState)[keyof typeof SqlState];
