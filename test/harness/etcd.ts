/**
 * A throw-away single-member etcd (Debian's etcd-server) on free loopback ports, for the HA-pair
 * tests. Its data directory is removed when it stops; the exit hooks of cluster.ts stop it too.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnServer, type ServerProcess } from '../../src/demo/child-server';
import { freePort } from '../../src/demo/free-port';
import { isExecutable } from './exec';

/** Where an etcd binary is, or null. */
export function etcdBinary(): string | null {
  for (const p of ['/usr/bin/etcd', '/usr/local/bin/etcd']) if (isExecutable(p)) return p;
  return null;
}

/** A running etcd. */
export interface TestEtcd {
  readonly endpoint: string;
  stop(): Promise<void>;
}

/** Starts etcd on 127.0.0.1 (client and peer ports picked free). */
export async function startEtcd(): Promise<TestEtcd> {
  const bin = etcdBinary();
  if (bin === null) throw new Error('etcd is not installed (Debian package etcd-server)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-etcd-'));
  const client = await freePort();
  const peer = await freePort();
  let server: ServerProcess;
  try {
    server = await spawnServer({
      name: 'etcd', cmd: bin, port: client, timeoutMs: 20_000,
      args: ['--name', 'pgmtest', '--data-dir', path.join(dir, 'data'),
        '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`,
        '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
        '--initial-cluster', `pgmtest=http://127.0.0.1:${peer}`, '--log-level', 'error'],
    });
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    endpoint: `http://127.0.0.1:${client}`,
    async stop() {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
