/**
 * Logging facade over pino: structured JSON lines on stderr for files and collectors, or lines
 * rendered for people (time, level, message, the fields that matter) by pino-pretty when
 * log_format = text, or log_format = auto (the default) and stderr is a terminal.
 *
 * pgpool's log_min_messages levels map onto pino's. Hot-path log decisions (log_statement,
 * log_per_node_statement, log_client_messages) are plain booleans in `LogFlags`, read once per
 * request, so no logging work happens when they are off.
 */
import pino from 'pino';
import { PinoPretty } from 'pino-pretty';

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

/** What log_format resolves to. */
export type LogFormat = 'json' | 'text';

/** log_format 'json' | 'text' as given; 'auto' (or unset) is text on a terminal, else JSON lines. */
export function resolveLogFormat(setting: string | undefined, isTTY: boolean): LogFormat {
  if (setting === 'json' || setting === 'text') return setting;
  return isTTY ? 'text' : 'json';
}

/** Fields never shown in text lines (constant or redundant with the prefix). */
const TEXT_HIDDEN = new Set(['pid', 'hostname', 'name', 'time', 'level', 'msg', 'v']);

function textValue(v: unknown): string {
  if (v instanceof Object && typeof (v as { message?: unknown }).message === 'string') return JSON.stringify((v as { message: string }).message);
  if (typeof v === 'string') return /^[\w.:/@-]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

/**
 * A pino-pretty stream writing human lines to `destination` (a file descriptor or stream):
 * `[HH:MM:ss.l] LEVEL: message key=value ...`. Every field of the JSON line except the
 * constant ones is kept, one `key=value` each (an error shows as its message), so a text log
 * says what the JSON one says, on one line.
 */
export function prettyStream(destination: number | pino.DestinationStream, colorize: boolean): pino.DestinationStream {
  return PinoPretty({
    destination: destination as number,
    sync: true,
    colorize,
    translateTime: colorize ? 'SYS:HH:MM:ss.l' : 'SYS:yyyy-mm-dd HH:MM:ss.l',
    customLevels: `log:${LOG_LEVEL}`,
    customColors: 'trace:gray,debug:blue,info:green,log:cyan,warn:yellow,error:red,fatal:bgRed',
    useOnlyCustomProps: false,
    ignore: 'pid,hostname,name',
    hideObject: true,
    messageFormat: (log, messageKey, _label, { colors }) => {
      const fields = Object.entries(log)
        .filter(([k, v]) => !TEXT_HIDDEN.has(k) && k !== messageKey && v !== undefined)
        .map(([k, v]) => `${k}=${textValue(v)}`);
      const msg = String(log[messageKey] ?? '');
      return fields.length === 0 ? msg : `${msg}  ${colors.gray(fields.join(' '))}`;
    },
  });
}

/**
 * Creates the process logger: stderr, written synchronously so nothing is lost on exit, in the
 * format log_format asks for (see resolveLogFormat). Tests pass a destination: JSON lines go
 * there unless log_format = text.
 */
export function createLogger(opts: LoggerOptions, destination?: pino.DestinationStream): Logger {
  const tty = destination === undefined && process.stderr.isTTY === true;
  const format = resolveLogFormat(opts.log_format, tty);
  const dest = format === 'text'
    ? prettyStream(destination ?? 2, tty)
    : destination ?? pino.destination({ dest: 2, sync: true });
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
  /** log_backend_messages: 'none' (the hot path installs nothing), 'terse' or 'verbose'. */
  backendMessages: 'none' | 'terse' | 'verbose';
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
  BackendMessage: 'backend_message',
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
  /** A cancel for a statement that waited, sent to no server: answered ERROR 57014 by pgmaitre (SessionCore.cancel). */
  CancelAnswered: 'cancel_answered',
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
