/**
 * A throw-away memcached (Debian's memcached) on a free loopback port, for the query cache tests
 * (memqcache_method = memcached). It keeps nothing on disk; stop() ends it by pid, and restart()
 * starts a new one on the same port (an empty cache, as after a real restart).
 */
import { spawnServer, type ServerProcess } from '../../src/demo/child-server';
import { freePort } from '../../src/demo/free-port';
import { isExecutable } from './exec';

/** Where a memcached binary is, or null. */
export function memcachedBinary(): string | null {
  for (const p of ['/usr/bin/memcached', '/usr/local/bin/memcached']) if (isExecutable(p)) return p;
  return null;
}

/** A running (or stopped, restartable) memcached. */
export interface TestMemcached {
  readonly port: number;
  /** Stops it (by pid); the port stays reserved for restart(). */
  stop(): Promise<void>;
  /** Starts it again on the same port (empty). */
  restart(): Promise<void>;
  alive(): boolean;
}

/** Starts memcached on 127.0.0.1 (64 MB, UDP off). */
export async function startMemcached(memoryMb = 64): Promise<TestMemcached> {
  const bin = memcachedBinary();
  if (bin === null) throw new Error('memcached is not installed (Debian package memcached)');
  const port = await freePort();
  const spawn = (): Promise<ServerProcess> => spawnServer({
    name: 'memcached', cmd: bin, port, timeoutMs: 15_000,
    args: ['-l', '127.0.0.1', '-p', String(port), '-U', '0', '-m', String(memoryMb), '-t', '1', ...(process.getuid?.() === 0 ? ['-u', 'nobody'] : [])],
  });
  let server: ServerProcess | null = await spawn();
  return {
    port,
    async stop() {
      const s = server;
      server = null;
      if (s !== null) await s.stop();
    },
    async restart() {
      if (server !== null) await server.stop();
      server = await spawn();
    },
    alive: () => server?.alive() ?? false,
  };
}
