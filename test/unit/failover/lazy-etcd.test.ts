/**
 * etcd3 (grpc-js, protobufjs) is loaded only when etcd_endpoints asks for it: a process that loads
 * the whole application without one does not pay for it at start.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

test('loading the application does not load etcd3 (lazy until etcd_endpoints is set)', () => {
  const app = path.join(__dirname, '..', '..', '..', 'src', 'app.js');
  const gate = path.join(__dirname, '..', '..', '..', 'src', 'failover', 'command-gate.js');
  const script = `
    require(${JSON.stringify(app)});
    const loaded = () => Object.keys(require.cache).some((f) => f.includes('/node_modules/etcd3/'));
    const before = loaded();
    const { EtcdCommandGate } = require(${JSON.stringify(gate)});
    const g = new EtcdCommandGate({ endpoints: '127.0.0.1:1', prefix: '/pgmaitre/', name: 'x', port: 1, ttlSec: 5, log: { info() {}, warn() {}, error() {} } });
    const after = loaded();
    g.stop().catch(() => {});
    process.stdout.write(JSON.stringify({ before, after }));
    setImmediate(() => process.exit(0));
  `;
  const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 })) as { before: boolean; after: boolean };
  assert.equal(out.before, false, 'etcd3 was loaded without etcd_endpoints');
  assert.equal(out.after, true, 'the etcd gate did not load etcd3');
});
