/**
 * Does a node still accept connections? Used when a client's idle backend connection received
 * FATAL 57P01 ("terminating connection due to administrator command"): PostgreSQL says the same
 * for pg_terminate_backend() of that one backend and for a fast shutdown of the whole server.
 * A server shutting down answers a new startup packet with FATAL 57P03 ("the database system is
 * shutting down") or refuses the connection; a running one asks for authentication or lets the
 * client in. Only the first message is read; nothing is authenticated.
 *
 * No answer within the timeout counts as accepting: a server shutting down answers at once
 * (57P03, or a refused connection), while a busy one can be slow — and the caller's safe side
 * is PostgreSQL's own rule (the client whose backend said 57P01 is ended), not carrying a
 * session on elsewhere as if the node were going away.
 */
import * as net from 'node:net';
import { encodeStartupMessage } from '../protocol/startup';
import { decodeErrorFields } from '../protocol/backend';
import { backendAddress } from './tls-negotiate';

/** Where to probe. */
export interface AcceptingProbeTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
  readonly timeoutMs: number;
}

/** Resolves true when the node answers a startup packet with anything but "shutting down", or not in time (never rejects). */
export function probeAccepting(t: AcceptingProbeTarget): Promise<boolean> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (v: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const s = net.connect(backendAddress(t.host, t.port), () => {
      s.write(encodeStartupMessage({ user: t.user, database: t.database, application_name: 'pgmaitre probe' }));
    });
    const timer = setTimeout(() => finish(true), t.timeoutMs);
    timer.unref();
    let got = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length < 5) return;
      const len = got.readInt32BE(1);
      if (got[0] !== 0x45 /* E */) {
        finish(true); // an authentication request (or more): the server takes connections
        return;
      }
      if (got.length < len + 1) return;
      let code = '';
      try {
        code = decodeErrorFields(got, 0, len + 1).code;
      } catch {
        // unreadable: treat as not accepting
      }
      finish(code !== '57P03' && code !== '57P01' && code !== '57P02' && code !== '');
    });
    s.on('error', () => finish(false));
    s.on('close', () => finish(false));
  });
}
