/**
 * The pgmaitre instance the fuzzer attacks, shared by the bounded test and the long-run script:
 * pool_hba with trust, md5 and scram-sha-256 lines, a short authentication_timeout, and a
 * well-behaved client that keeps logging in and querying beside the fuzzer.
 */
import { Client } from 'pg';
import type { Cluster } from '../harness/cluster';
import { backendLines, startInProcess, type InProcess } from '../harness/in-process';
import type { FuzzUsers } from './frontend-fuzz';

export const FUZZ_USERS: FuzzUsers = {
  trust: 'fz_trust',
  md5: { user: 'fz_md5', password: 'fz md5 pw' },
  scram: { user: 'fz_scram', password: 'fz scram pw' },
};

/** Cluster roles for FUZZ_USERS. */
export const FUZZ_ROLES = [
  { name: 'fz_trust', password: 'fz trust pw' }, { name: FUZZ_USERS.md5.user, password: FUZZ_USERS.md5.password },
  { name: FUZZ_USERS.scram.user, password: FUZZ_USERS.scram.password }, { name: 'fz_good', password: 'fz good pw' },
];

/** Starts pgmaitre in this process for fuzzing (extra config lines appended). */
export function startFuzzTarget(cluster: Cluster, extra = ''): Promise<InProcess> {
  const hba = [
    'host all fz_trust 127.0.0.1/32 trust',
    'host all fz_md5 127.0.0.1/32 md5',
    'host all fz_scram,fz_good 127.0.0.1/32 scram-sha-256',
    '',
  ].join('\n');
  const passwd = FUZZ_ROLES.map((r) => `${r.name}:TEXT${r.password}`).join('\n') + '\npostgres:TEXTpostgres\n';
  return startInProcess([
    backendLines(cluster),
    "sr_check_user = 'postgres'", "sr_check_password = 'postgres'",
    "health_check_user = 'postgres'", "health_check_password = 'postgres'",
    'num_init_children = 64', 'max_pool = 2', 'connect_timeout = 10000',
    'enable_pool_hba = on', 'authentication_timeout = 3',
    'auth_failure_delay = 20', 'auth_failure_limit = 0',
    // The logging paths decode what they log: fuzz them too.
    'log_statement = on', 'log_client_messages = on', 'log_per_node_statement = on', 'log_connections = on',
    extra,
  ].join('\n'), { 'pool_hba.conf': hba, pool_passwd: passwd });
}

/** A client that logs in (every 20 queries anew) and runs queries until stopped; counts failures. */
export function wellBehavedClient(port: number): { stop: () => Promise<{ queries: number; errors: string[] }> } {
  let running = true;
  let queries = 0;
  const errors: string[] = [];
  const loop = (async () => {
    while (running) {
      const c = new Client({ host: '127.0.0.1', port, user: 'fz_good', password: 'fz good pw', database: 'postgres', connectionTimeoutMillis: 10_000 });
      c.on('error', (e) => errors.push(`client error: ${e.message}`));
      try {
        await c.connect();
        for (let i = 0; i < 20 && running; i++) {
          const r = await c.query('select $1::int + 1 as n', [i]);
          if (r.rows[0].n !== i + 1) errors.push(`wrong answer ${JSON.stringify(r.rows[0])}`);
          queries++;
        }
      } catch (e) {
        errors.push((e as Error).message);
      } finally {
        await c.end().catch(() => undefined);
      }
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { queries, errors };
    },
  };
}
