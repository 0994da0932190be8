/**
 * Per-address connection-rate limit (HAProxy's `tcp-request connection reject if
 * { src_conn_rate gt N }`): at most client_connection_rate_limit new connections from one client
 * address within the last client_connection_rate_window seconds, on every client port (the smart
 * endpoint and the dedicated ports). Beside the failed-login limit of rate-limit.ts, which counts
 * failures only, this one counts every accepted connection, before anything is read.
 *
 * A refused connection gets one ErrorResponse at once (53300, as PostgreSQL's postmaster writes
 * one without reading when it cannot serve a client), then the socket is closed; other addresses
 * are not affected. Unix-socket clients have no address and are not limited. Memory is bounded:
 * at most `limit` times per address and MAX_TRACKED addresses, oldest evicted first.
 */
import type * as net from 'node:net';
import { encodeErrorResponse } from '../protocol/backend';
import { clientErrors } from '../errors/client-errors';
import { RawSocket } from '../util/raw-socket';

const MAX_TRACKED = 10_000;

/** The settings the limiter reads (live: a reload applies at once). */
export interface ConnRateSettings {
  readonly client_connection_rate_limit: number;
  readonly client_connection_rate_window: number;
}

/** Connection times per address; see the file header. */
export class ConnectionRateLimiter {
  private readonly seen = new Map<string, number[]>();

  constructor(readonly settings: () => ConnRateSettings, private readonly now: () => number = Date.now) {}

  /** Records a connection from `address`; returns 0 when admitted, else the seconds until one would be. */
  admit(address: string): number {
    const limit = this.settings().client_connection_rate_limit;
    if (limit <= 0 || address === '') return 0;
    const windowMs = this.settings().client_connection_rate_window * 1000;
    const now = this.now();
    let times = this.seen.get(address);
    if (times === undefined) {
      times = [];
    } else {
      this.seen.delete(address);
      let drop = 0;
      while (drop < times.length && times[drop]! <= now - windowMs) drop++;
      if (drop > 0) times.splice(0, drop);
    }
    this.seen.set(address, times);
    if (this.seen.size > MAX_TRACKED) {
      const oldest = this.seen.keys().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
    if (times.length >= limit) return Math.max(1, Math.ceil((times[times.length - limit]! + windowMs - now) / 1000));
    times.push(now);
    return 0;
  }

  /** Addresses currently tracked. */
  get tracked(): number {
    return this.seen.size;
  }
}

/**
 * Checks a freshly accepted socket; when its address is over the limit, answers with a FATAL
 * 53300 and closes it (reading and dropping whatever the client sends meanwhile, so the close
 * is a clean FIN and the client reads the error). Returns true when the socket may go on.
 */
export function admitConnection(limiter: ConnectionRateLimiter | undefined, accepted: net.Socket | RawSocket): boolean {
  if (limiter === undefined || limiter.settings().client_connection_rate_limit <= 0) return true; // (the address is not asked for)
  const address = accepted.remoteAddress ?? '';
  const wait = limiter.admit(address);
  if (wait === 0) return true;
  const socket = accepted instanceof RawSocket ? accepted.toNetSocket() : accepted;
  const s = limiter.settings();
  socket.on('error', () => socket.destroy());
  socket.on('data', () => undefined);
  socket.end(encodeErrorResponse(clientErrors.connectionRateExceeded(address, s.client_connection_rate_limit, s.client_connection_rate_window, wait)));
  setTimeout(() => socket.destroy(), 2000).unref();
  return false;
}
