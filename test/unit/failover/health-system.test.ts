/**
 * The health system with fake probe results (no PostgreSQL): retries before detaching,
 * DISALLOW_TO_FAILOVER, the primary search adopting a node promoted later, ALWAYS_PRIMARY,
 * failover_on_backend_error on/off, delay thresholds by bytes and by time, and a clean stop().
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { loadConfigText } from '../../../src/config/load';
import { Cluster } from '../../../src/cluster/cluster';
import { createHealthSystem, type HealthSystem } from '../../../src/failover/index';
import type { ProbeFn } from '../../../src/health/probe';
import type { NodeReporter } from '../../../src/health/replication-checker';

interface FakeNode { up: boolean; inRecovery: boolean; lsn: bigint }

/** Three fake nodes on ports 2001..2003 (ids 0..2): 0 primary, 1 and 2 standbys streaming from it. */
function world(): Map<number, FakeNode> {
  return new Map([
    [2001, { up: true, inRecovery: false, lsn: 1000n }],
    [2002, { up: true, inRecovery: true, lsn: 1000n }],
    [2003, { up: true, inRecovery: true, lsn: 1000n }],
  ]);
}

interface SetupHooks {
  /** Where the health system logs (default: silent). */
  readonly log?: pino.Logger;
  /** Ports whose probe throws (a bug or an unexpected failure inside a failover action). */
  readonly throwFor?: Set<number>;
}

function setup(extra: string, w = world(), hooks: SetupHooks = {}): { sys: HealthSystem; cluster: Cluster; w: Map<number, FakeNode>; probes: number[] } {
  const text = [0, 1, 2].map((i) => `backend_hostname${i} = 'fake'\nbackend_port${i} = ${i + 2001}\nbackend_application_name${i} = 's${i}'`).join('\n')
    + `\nhealth_check_period = 1\nhealth_check_max_retries = 1\nhealth_check_retry_delay = 0\nsr_check_period = 1\n${extra}\n`;
  const { config } = loadConfigText(text, '/nonexistent/pgpool.conf');
  const cluster = new Cluster(config.backends.map((b) => ({
    id: b.id, host: b.hostname, port: b.port, weight: b.weight, flags: b.flags, dataDirectory: b.dataDirectory, applicationName: b.applicationName,
  })));
  const probes: number[] = [];
  const probe: ProbeFn = async (ep) => {
    probes.push(ep.port);
    if (hooks.throwFor?.has(ep.port)) throw new Error('probe exploded');
    const n = w.get(ep.port)!;
    return n.up ? { ok: true, inRecovery: n.inRecovery, durationMs: 1 } : { ok: false, error: 'connection refused', durationMs: 1 };
  };
  const reporter: NodeReporter = async (ep) => {
    const n = w.get(ep.port)!;
    if (!n.up) return { ok: false, error: 'connection refused' };
    const streaming = n.inRecovery ? [] : [...w].filter(([p, x]) => x.up && x.inRecovery).map(([p]) => ({
      applicationName: `s${p - 2001}`, state: 'streaming', syncState: 'async', replayLagSec: 0,
    }));
    return { ok: true, inRecovery: n.inRecovery, lsn: n.lsn, upstream: n.inRecovery ? { host: 'fake', port: 2001 } : null, streaming };
  };
  const sys = createHealthSystem({ config, cluster, log: hooks.log ?? pino({ level: 'silent' }), poolPasswd: new Map(), probe, reporter, searchIntervalMs: 50 });
  return { sys, cluster, w, probes };
}

const until = async (cond: () => boolean, what: string, ms = 5000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('health system with fake probes', () => {
  test('start: roles from pg_is_in_recovery(); a failing standby goes down only after its retries', async () => {
    const { sys, cluster, w } = setup('');
    await sys.start();
    try {
      assert.equal(cluster.primaryId(), 0);
      assert.deepEqual(cluster.nodes.map((n) => n.role), ['primary', 'standby', 'standby']);
      w.get(2003)!.up = false;
      await until(() => cluster.node(2)!.status === 'down', 'node 2 down', 4000);
      const h = cluster.node(2)!.health;
      assert.equal(h.fail_count, 1);
      assert.equal(h.retry_count, 1, 'one retry before giving up');
      assert.match(cluster.node(2)!.statusReason, /^health_check_failed: connection refused/);
    } finally {
      await sys.stop();
    }
  });

  test('DISALLOW_TO_FAILOVER: the node is never detached by health checks', async () => {
    const { sys, cluster, w } = setup("backend_flag2 = 'DISALLOW_TO_FAILOVER'");
    await sys.start();
    try {
      w.get(2003)!.up = false;
      await until(() => cluster.node(2)!.health.fail_count >= 2, 'two failed checks', 5000);
      assert.equal(cluster.node(2)!.status, 'up');
    } finally {
      await sys.stop();
    }
  });

  test('primary lost: primaryId() -1 at once; a standby promoted later is adopted', async () => {
    const { sys, cluster, w } = setup('search_primary_node_timeout = 1');
    await sys.start();
    try {
      w.get(2001)!.up = false;
      await until(() => cluster.primaryId() === -1, 'primary gone', 4000);
      await new Promise((r) => setTimeout(r, 1200)); // search timed out; the regular checks keep watching
      w.get(2002)!.inRecovery = false;
      await until(() => cluster.primaryId() === 1, 'node 1 adopted', 4000);
      assert.equal(cluster.node(1)!.role, 'primary');
      assert.equal(cluster.node(0)!.role, 'standby', 'the old primary is no longer listed as primary');
    } finally {
      await sys.stop();
    }
  });

  test('ALWAYS_PRIMARY: the flagged node is the primary even if it says it is in recovery', async () => {
    const w = world();
    w.get(2001)!.inRecovery = true;
    const { sys, cluster } = setup("backend_flag0 = 'ALWAYS_PRIMARY'", w);
    await sys.start();
    try {
      assert.equal(cluster.primaryId(), 0);
    } finally {
      await sys.stop();
    }
  });

  test('failover_on_backend_error = on: a backend error detaches the node only when a probe fails too (errors meanwhile join it)', async () => {
    const { sys, cluster, probes, w } = setup('health_check_period = 0');
    await sys.start();
    try {
      // The node answers a new connection: a lost connection, not a lost node.
      let before = probes.length;
      sys.reportBackendError(1, 'write failed: EPIPE');
      sys.reportBackendError(1, 'closed by server');
      await until(() => probes.length > before, 'a probe', 1000);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(probes.length, before + 1, 'one probe for both errors');
      assert.equal(cluster.node(1)!.status, 'up');
      // The node does not answer: detached.
      w.get(2002)!.up = false;
      before = probes.length;
      sys.reportBackendError(1, 'socket error: ECONNRESET');
      await until(() => cluster.node(1)!.status === 'down', 'node 1 detached', 2000);
      assert.match(cluster.node(1)!.statusReason, /^backend_error: socket error: ECONNRESET; a new connection failed too: connection refused/);
    } finally {
      await sys.stop();
    }
  });

  test('failover_on_backend_error = off: a backend error only triggers a health check', async () => {
    const { sys, cluster, probes } = setup('failover_on_backend_error = off\nhealth_check_period = 0');
    await sys.start();
    try {
      const before = probes.length;
      sys.reportBackendError(1, 'ECONNRESET');
      await until(() => probes.length > before, 'an immediate probe', 1000);
      assert.equal(cluster.node(1)!.status, 'up');
      assert.equal(cluster.node(1)!.health.total_count, 1);
    } finally {
      await sys.stop();
    }
  });

  test('isLagging: bytes by delay_threshold, time by delay_threshold_by_time (ms, wins when set)', async () => {
    const w = world();
    w.get(2002)!.lsn = 0n; // node 1 is 1000 bytes behind
    const a = setup('delay_threshold = 500', w);
    await a.sys.start();
    try {
      await until(() => a.cluster.node(1)!.replication.measuredAt !== null, 'measured');
      assert.equal(a.cluster.node(1)!.replication.delayBytes, 1000);
      assert.equal(a.sys.replication.isLagging(1), true);
      assert.equal(a.sys.replication.isLagging(2), false);
      assert.equal(a.sys.replication.isLagging(0), false, 'never the primary');
      assert.equal(a.sys.replication.replayedAtLeast(1, '0/3E8'), false);
      assert.equal(a.sys.replication.replayedAtLeast(2, '0/3E8'), true);
    } finally {
      await a.sys.stop();
    }
    const b = setup('delay_threshold = 500\ndelay_threshold_by_time = 100', w);
    await b.sys.start();
    try {
      await until(() => b.cluster.node(1)!.replication.measuredAt !== null, 'measured');
      assert.equal(b.sys.replication.isLagging(1), false, 'replay_lag 0 s is under 100 ms');
      b.cluster.setReplication(1, { delaySeconds: 0.25 });
      assert.equal(b.sys.replication.isLagging(1), true);
    } finally {
      await b.sys.stop();
    }
  });

  test('auto_failback reattaches a detached standby that streams again', async () => {
    const { sys, cluster } = setup('auto_failback = on\nauto_failback_interval = 0');
    await sys.start();
    try {
      await sys.detachNode(2);
      assert.equal(cluster.node(2)!.status, 'down');
      await until(() => cluster.node(2)!.status === 'up', 'reattached', 3000);
      assert.match(cluster.node(2)!.statusReason, /^auto_failback/);
    } finally {
      await sys.stop();
    }
  });

  test('a failed failover action is logged at error level with the action and the node', async () => {
    const lines: { level: number; action?: string; node_id?: number; msg: string }[] = [];
    const log = pino({ level: 'debug' }, { write: (line: string) => { lines.push(JSON.parse(line)); } });
    const throwFor = new Set<number>();
    const { sys, cluster } = setup('auto_failback = on\nauto_failback_interval = 0', world(), { log, throwFor });
    await sys.start();
    try {
      await sys.detachNode(2);
      assert.equal(cluster.node(2)!.status, 'down');
      throwFor.add(2003); // auto_failback's attach probes node 2 first: it throws
      const failed = (): typeof lines => lines.filter((l) => l.action === 'auto_failback attach');
      await until(() => failed().length > 0, 'the failed auto_failback attach is logged', 3000);
      const l = failed()[0]!;
      assert.equal(l.level, 50, 'error level: nobody else hears of it');
      assert.equal(l.node_id, 2);
      assert.match(l.msg, /auto_failback attach.*node 2.*probe exploded/);
      assert.equal(cluster.node(2)!.status, 'down');
      // An admin's request that fails is logged too (at warning level: the admin gets the error).
      await assert.rejects(sys.detachNode(9), /node 9 does not exist/);
      const admin = lines.find((x) => x.action === 'detach (admin request)');
      assert.equal(admin?.level, 40);
      assert.equal(admin?.node_id, 9);
    } finally {
      await sys.stop();
    }
  });
});
