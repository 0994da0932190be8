/**
 * Logging facade over pino: structured JSON lines on stderr by default.
 *
 * pgpool's log_min_messages levels map onto pino's. Hot-path log decisions (log_statement,
 * log_per_node_statement, log_client_messages) are plain booleans in `LogFlags`, read once per
 * request, so no logging work happens when they are off.
 */
import pino from 'pino';

/** The logger type used throughout pgmaitre. */
export type Logger = pino.Logger;

/** pgpool's log_min_messages values → pino levels. */
const LEVELS: Readonly<Record<string, pino.Level>> = {
  debug5: 'trace', debug4: 'trace', debug3: 'trace', debug2: 'debug', debug1: 'debug',
  info: 'info', notice: 'info', log: 'info', warning: 'warn', error: 'error', fatal: 'fatal', panic: 'fatal',
};

/** Maps a pgpool log_min_messages value to a pino level (unknown → warn). */
export function pinoLevel(pgpoolLevel: string): pino.Level {
  return LEVELS[pgpoolLevel.toLowerCase()] ?? 'warn';
}

/** Options the logger needs from the config. */
export interface LoggerOptions {
  readonly log_min_messages: string;
  readonly log_format?: string;
}

/**
 * pino level number of pgpool's (and PostgreSQL's) LOG messages. In the server log LOG ranks
 * between ERROR (50) and FATAL (60), so LOG lines are written under the default
 * log_min_messages = warning; pgpool-II's log_statement, log_per_node_statement,
 * log_connections... rely on that.
 */
export const LOG_LEVEL = 55;

/** Creates the process logger (writes to stderr, synchronously so nothing is lost on exit). */
export function createLogger(opts: LoggerOptions, destination?: pino.DestinationStream): Logger {
  const dest = destination ?? pino.destination({ dest: 2, sync: true });
  // Typed as a plain Logger (the LOG level is reached through logLine), so loggers made
  // elsewhere, e.g. pino({ level: 'silent' }) in tests, stay interchangeable.
  return pino<'log'>(
    {
      name: 'pgmaitre',
      level: pinoLevel(opts.log_min_messages),
      customLevels: { log: LOG_LEVEL },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: ['password', '*.password', 'config.*password*'], censor: '[redacted]' },
    },
    dest,
  ) as unknown as Logger;
}

/**
 * Writes a message at pgpool's LOG level (see LOG_LEVEL): what the log_* switches produce.
 * Loggers not made by createLogger (tests) have no such level: they get it at info.
 */
export function logLine(log: Logger, obj: object, msg: string): void {
  const f = (log as Logger & { log?: pino.LogFn }).log;
  if (typeof f === 'function') f.call(log, obj, msg);
  else log.info(obj, msg);
}

/** Booleans the hot path reads to decide whether to log anything at all. */
export interface LogFlags {
  statement: boolean;
  perNodeStatement: boolean;
  clientMessages: boolean;
  connections: boolean;
  disconnections: boolean;
}

/** Event names used in log lines (stable, for grepping and tests). */
export const LogEvent = {
  Listening: 'listening',
  ConnectionReceived: 'connection_received',
  ConnectionAuthorized: 'connection_authorized',
  Disconnected: 'frontend_disconnected',
  Statement: 'statement',
  NodeStatement: 'node_statement',
  ClientMessage: 'client_message',
  AuthFailed: 'authentication_failed',
  /** A (user, database) the primary once let in without a password must authenticate again. */
  TrustForgotten: 'trusted_login_forgotten',
  BackendConnect: 'backend_connect',
  BackendError: 'backend_error',
  PoolReset: 'pool_reset',
  PoolClose: 'pool_close',
  PrimaryFound: 'primary_found',
  ConfigWarning: 'config_warning',
  Shutdown: 'shutdown',
  ProtocolViolation: 'protocol_violation',
  CancelForwarded: 'cancel_forwarded',
  /** A background action (side query, failover step, side connection) failed. */
  ActionFailed: 'action_failed',
} as const;

/**
 * Logs a failed background action with the node it concerns, instead of a silent catch:
 * `action` says what was attempted ("pg_proc volatility lookup", "detach"...).
 */
export function logFailure(log: Logger, action: string, nodeId: number | null, err: unknown, level: 'warn' | 'error' = 'warn'): void {
  const message = err instanceof Error ? err.message : String(err);
  const where = nodeId !== null && nodeId >= 0 ? ` on node ${nodeId}` : '';
  log[level]({ event: LogEvent.ActionFailed, action, node_id: nodeId, err: message }, `${action}${where} failed: ${message}`);
}
