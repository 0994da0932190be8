/**
 * The shipped scripts (contrib/recovery) choose between this host and SSH as documented: with
 * RECOVERY_SSH=always (or a host that is not this one) the target's commands go through
 * `ssh … postgres@<host> bash -s -- <quoted args>`. A stand-in `ssh` first on PATH records the
 * call and runs the command string here, so quoting is exercised for real.
 * (The one-host path runs in test/integration/online-recovery.test.ts; the SSH path with a real
 * sshd in test/integration/online-recovery-ssh.test.ts.)
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const contrib = path.resolve(__dirname, '../../../../contrib/recovery');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-ssh-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const calls = path.join(dir, 'calls');

function fakeSsh(succeeds: boolean): NodeJS.ProcessEnv {
  fs.writeFileSync(path.join(dir, 'ssh'), `#!/bin/bash
printf '%s\\n' "$*" >> ${calls}
${succeeds ? '' : 'echo "ssh: connect to host: Connection refused" >&2; exit 255'}
while [ $# -gt 0 ]; do case "$1" in -o|-i|-p) shift 2;; -*) shift;; *) break;; esac; done
shift
exec bash -c "$*"
`, { mode: 0o755 });
  fs.writeFileSync(calls, '');
  return { ...process.env, PATH: `${dir}:${process.env['PATH'] ?? ''}`, RECOVERY_SSH: 'always' };
}

function run(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(path.join(contrib, script), args, { env, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), out: `${stdout}${stderr}` });
    });
  });
}

test('pgpool_remote_start over SSH: postgres@host, arguments quoted, the remote side\'s error comes back', async () => {
  const env = fakeSsh(true);
  const r = await run('pgpool_remote_start', ['db9.example', '/srv/pg data/15'], env);
  assert.equal(r.code, 1);
  assert.match(r.out, /\/srv\/pg data\/15 holds no PostgreSQL cluster/);
  const call = fs.readFileSync(calls, 'utf8');
  assert.match(call, /postgres@db9\.example bash -s -- \/srv\/pg\\ data\/15 /);
});

test('recovery_1st_stage over SSH: refuses clearly when passwordless SSH does not work', async () => {
  const env = fakeSsh(false);
  const r = await run('recovery_1st_stage', [dir, 'db9.example', '/srv/pg/15', '5432', '1', '5432', 'db0.example'], env);
  assert.equal(r.code, 1);
  assert.match(r.out, /passwordless SSH to postgres@db9\.example failed/);
  assert.match(fs.readFileSync(path.join(dir, 'pgmaitre_recovery.log'), 'utf8'), /ERROR: passwordless SSH/);
});
