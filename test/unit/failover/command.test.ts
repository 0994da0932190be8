/**
 * Placeholder expansion of failover/failback/follow_primary commands (every pgpool placeholder,
 * '%%', unknown and trailing '%'), and the time-boxed command runner.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { CommandRunner, commandVars, expandCommand } from '../../../src/failover/command';

const failed = { id: 0, host: 'db0', port: 5432, dataDirectory: '/data/0' };
const main = { id: 1, host: 'db1', port: 5433, dataDirectory: '/data/1' };

test('every placeholder expands to pgpool meaning', () => {
  const v = commandVars({ failed, newMain: main, oldMainId: 0, oldPrimary: failed });
  assert.equal(expandCommand('%d %h %p %D %m %H %M %P %r %R %N %S %%', v), '0 db0 5432 /data/0 1 db1 0 0 5433 /data/1 db0 5432 %');
});

test("'%%' is a literal percent, also right before a letter", () => {
  const v = commandVars({ failed });
  assert.equal(expandCommand('100%% %%d %d', v), '100% %d 0');
});

test('unknown placeholders stay as written; a trailing % is kept', () => {
  const v = commandVars({ failed });
  assert.equal(expandCommand('x %q y %', v), 'x %q y %');
});

test('missing nodes expand to -1 and empty strings', () => {
  const v = commandVars({});
  assert.equal(expandCommand('[%d][%h][%p][%D][%m][%H][%M][%P][%r][%R][%N][%S]', v), '[-1][][][][-1][][-1][-1][][][][]');
});

test('runner captures output and exit code', async () => {
  const r = await new CommandRunner(pino({ level: 'silent' })).run('t', 'echo out; echo err >&2; exit 3', 5000);
  assert.equal(r.code, 3);
  assert.equal(r.stdout, 'out\n');
  assert.equal(r.stderr, 'err\n');
  assert.equal(r.timedOut, false);
});

test('runner kills a command that outlives its timeout', async () => {
  const t0 = Date.now();
  const r = await new CommandRunner(pino({ level: 'silent' })).run('t', 'sleep 30', 200);
  assert.equal(r.timedOut, true);
  assert.ok(Date.now() - t0 < 5000);
});
