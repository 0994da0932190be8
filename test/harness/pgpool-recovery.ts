/**
 * Online-recovery fixtures for a test cluster: the pgpool_recovery extension (Debian's
 * postgresql-<major>-pgpool2 package) created in the primary's `postgres` database, and recovery
 * scripts copied into data directories (owned by the server OS user, mode 0700), where the
 * extension looks for them.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Cluster } from '../../src/demo/cluster';
import { chownToServerUser } from '../../src/demo/pg-exec';
import { REPO_ROOT } from './cluster';

/** contrib/recovery: the scripts pgmaitre ships. */
export const CONTRIB_RECOVERY = path.join(REPO_ROOT, 'contrib', 'recovery');

/** Why the extension cannot be used here, or null when it can. */
export function pgpoolRecoveryMissing(major: number | string): string | null {
  const control = `/usr/share/postgresql/${major}/extension/pgpool_recovery.control`;
  return fs.existsSync(control) ? null : `${control} not found (apt-get install postgresql-${major}-pgpool2)`;
}

/** Writes `scripts` (file name → text) into each data directory, owned by the server OS user. */
export function installScripts(dataDirs: readonly string[], scripts: Record<string, string>): void {
  for (const dir of dataDirs) {
    for (const [name, text] of Object.entries(scripts)) {
      const file = path.join(dir, name);
      fs.writeFileSync(file, text, { mode: 0o700 });
      fs.chmodSync(file, 0o700);
      chownToServerUser(file);
    }
  }
}

/** The shipped recovery_1st_stage and pgpool_remote_start, by name. */
export function shippedScripts(): Record<string, string> {
  return Object.fromEntries(['recovery_1st_stage', 'pgpool_remote_start'].map((n) => [n, fs.readFileSync(path.join(CONTRIB_RECOVERY, n), 'utf8')]));
}

/** CREATE EXTENSION pgpool_recovery in the primary's postgres database; the shipped scripts into every node's data directory. */
export async function installPgpoolRecovery(cluster: Cluster, extra: Record<string, string> = {}): Promise<void> {
  await cluster.psql(cluster.primary.id, 'CREATE EXTENSION IF NOT EXISTS pgpool_recovery');
  installScripts(cluster.nodes.map((n) => n.dataDir), { ...shippedScripts(), ...extra });
}
