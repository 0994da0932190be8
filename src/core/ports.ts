/**
 * The session core's boundary: what it needs from the outside world, as interfaces.
 *
 * The core (session-core.ts and the files beside it) does no I/O. Sockets, pools, timers and
 * side connections live outside; the core calls them only through these ports, and is told what
 * happened through its own methods (a client frame, a backend chunk, a link up or lost, an
 * asynchronous lookup done). Unit tests implement the ports with recorders and drive the core
 * with byte streams split at every offset, with no cluster and no socket.
 */

import type { AppliedState } from './session-state';
import type { ServerStatements } from '../protocol/server-statements';

/** What the core needs from a backend connection (ServerConnection implements it). */
export interface BackendPort extends AppliedState {
  readonly nodeId: number;
  readonly backendPid: number;
  readonly backendSecret: number;
  /** Transaction status from the last ReadyForQuery ('I', 'T', 'E' as char codes). */
  txStatus: number;
  /** ParameterStatus values as last reported. */
  readonly params: Map<string, string>;
  /** Writes request bytes; false when the socket's output is above its high-water mark. */
  write(buf: Buffer): boolean;
  /** Stops/starts reading the backend (the client is not taking its output). */
  pause(): void;
  resume(): void;
  /** Calls `cb` once when the output written so far has drained (after write() returned false). */
  onceDrained(cb: () => void): void;
  /** Transaction pooling: server-side prepared statements this connection has, as the server confirmed them. */
  readonly statements: ServerStatements;
  /**
   * The last statement sent on this connection (SHOW POOL_POOLS' statement column): a reference to
   * the SQL text the core already decoded, never a copy; truncated only when displayed.
   */
  lastStatement: string;
}

/** Where bytes for the client go, in order. */
export interface ClientPort {
  /** Writes bytes to the client; false when its socket is above its high-water mark. */
  write(buf: Buffer): boolean;
}

/** Receives forwarded ranges of backend chunks (the link's scanner calls it in order). */
export interface ForwardSink {
  forward(buf: Buffer, start: number, end: number): void;
}
