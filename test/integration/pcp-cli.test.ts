/** `pgmaitre <command>` (runPcpCommand) against pgmaitre's PCP server over real sockets. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createPcpServer, type PcpServer } from '../../src/pcp/server';
import { runPcpCommand } from '../../src/pcp/cli';
import { pcpHash } from '../../src/config/pcp-conf';
import { pgTimestamp } from '../../src/admin/format';
import { addSession, makeContext, type TestContext } from '../fixtures/admin/context';

describe('pgmaitre PCP subcommands', () => {
  let t: TestContext;
  let server: PcpServer;
  let port: number;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    t = makeContext();
    addSession(t);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgmaitre-cli-'));
    server = createPcpServer(t.ctx, { port: 0, listenAddresses: '127.0.0.1', socketDir: dir, users: () => new Map([['admin', pcpHash('pw')]]) });
    port = await server.listen();
    fs.writeFileSync(path.join(dir, 'pass'), `127.0.0.1:${port}:admin:pw\nlocalhost:*:admin:pw\n`, { mode: 0o600 });
    env = { PCPPASSFILE: path.join(dir, 'pass'), USER: 'admin' };
  });
  after(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await runPcpCommand(args, { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, env });
    return { code, out, err };
  }
  const conn = (): string[] => ['-h', '127.0.0.1', '-p', String(port), '-U', 'admin', '-w'];

  test('node-count, node-info, health-check-stats', async () => {
    assert.deepEqual(await cli('node-count', ...conn()), { code: 0, out: '3\n', err: '' });
    const ts = pgTimestamp(t.cluster.node(1)!.lastStatusChange);
    assert.equal((await cli('node-info', ...conn(), '1')).out, `db1 5433 2 0.333333 up up standby standby 1024 streaming async ${ts}\n`);
    assert.equal((await cli('node-info', ...conn(), '-a')).out.split('\n').length, 4);
    assert.match((await cli('node-info', ...conn(), '-n', '0', '-v')).out, /^Role\s+: primary$/m);
    assert.match((await cli('health-check-stats', ...conn(), '-n', '2')).out, /^2 db2 5434 down standby /);
  });

  test('proc-count, proc-info, pool-status', async () => {
    assert.equal((await cli('proc-count', ...conn())).out, '2000000000 31337 2000000002 2000000003 \n');
    assert.equal((await cli('proc-info', ...conn())).out.trim().split('\n').length, 2);
    assert.match((await cli('pool-status', ...conn())).out, /name : num_init_children\nvalue: 4\n/);
  });

  test('actions', async () => {
    t.calls.length = 0;
    assert.equal((await cli('detach-node', ...conn(), '-n', '1')).out, 'pcp_detach_node -- Command Successful\n');
    await cli('attach-node', ...conn(), '1');
    await cli('promote-node', ...conn(), '-g', '1');
    await cli('reload', ...conn());
    await cli('stop', ...conn(), '-m', 'immediate');
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(t.calls, ['detach 1', 'attach 1', 'promote 1', 'reload', 'stop immediate']);
  });

  test('Unix socket, errors and a bad password', async () => {
    assert.equal((await cli('node-count', '-h', dir, '-p', String(port), '-U', 'admin')).out, '3\n');
    const e = await cli('node-info', ...conn(), '-n', '5');
    assert.equal(e.code, 1);
    assert.equal(e.err, 'ERROR:  informing node info failed\nDETAIL:  invalid node ID\n\n');
    const bad = await cli('node-count', '-h', '127.0.0.1', '-p', String(port), '-U', 'nobody');
    assert.equal(bad.code, 1);
    assert.match(bad.err, /^FATAL: {2}authentication failed/);
    assert.match((await cli('frobnicate')).err, /unknown command "frobnicate"/);
  });
});
