/**
 * log_backend_messages (pgpool 4.6+): log the protocol messages backends send, as pgpool does.
 * 'verbose' logs every message ("DataRow message from backend 1"); 'terse' logs a message whose
 * kind differs from the previous one from that backend, and first how many times the previous
 * kind was repeated ("last DataRow message from backend 1 repeated 99 times"). One instance per
 * client session (pgpool keeps this per child process). Off ('none'), nothing calls it: the
 * session core installs the callback only when the setting asks for it.
 */
import { logLine, LogEvent, type Logger } from './logger';

const LABELS: Readonly<Record<string, string>> = {
  1: 'ParseComplete', 2: 'BindComplete', 3: 'CloseComplete', A: 'NotificationResponse', C: 'CommandComplete',
  D: 'DataRow', E: 'ErrorResponse', G: 'CopyInResponse', H: 'CopyOutResponse', I: 'EmptyQueryResponse',
  K: 'BackendKeyData', N: 'NoticeResponse', R: 'AuthenticationRequest', S: 'ParameterStatus', T: 'RowDescription',
  V: 'FunctionCallResponse', W: 'CopyBothResponse', Z: 'ReadyForQuery', n: 'NoData', s: 'PortalSuspended',
  t: 'ParameterDescription', v: 'NegotiateProtocolVersion', c: 'CopyDone', d: 'CopyData',
};

/** pgpool's label of a backend message kind, or undefined. */
export function backendMessageLabel(code: number): string | undefined {
  return LABELS[String.fromCharCode(code)];
}

/** Per-session state of log_backend_messages. */
export class BackendMessageLog {
  private readonly lastKind = new Map<number, number>();
  private readonly repeats = new Map<number, number>();
  private readonly lastLabel = new Map<number, string>();

  constructor(readonly mode: 'terse' | 'verbose', private readonly log: Logger, private readonly pid: number) {}

  /** One message of kind `code` from backend `node`. */
  message(code: number, node: number): void {
    const label = backendMessageLabel(code);
    if (label === undefined) {
      this.log.warn({ event: LogEvent.BackendMessage, pid: this.pid, node_id: node }, `log_backend_messages: no label found for kind "${String.fromCharCode(code)}" from backend_id: ${node}`);
      return;
    }
    if (this.mode === 'verbose') {
      this.line(node, `${label} message from backend ${node}`);
      return;
    }
    if (this.lastKind.get(node) === code) {
      this.repeats.set(node, (this.repeats.get(node) ?? 0) + 1);
      return;
    }
    const n = this.repeats.get(node) ?? 0;
    if (n > 0) this.line(node, `last ${this.lastLabel.get(node) ?? ''} message from backend ${node} repeated ${n} times`);
    this.repeats.set(node, 0);
    this.lastLabel.set(node, label);
    this.lastKind.set(node, code);
    this.line(node, `${label} message from backend ${node}`);
  }

  private line(node: number, text: string): void {
    logLine(this.log, { event: LogEvent.BackendMessage, pid: this.pid, node_id: node }, text);
  }
}
