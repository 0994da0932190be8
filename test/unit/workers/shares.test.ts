/**
 * worker_processes: the count ('auto', bounds, bad values) and how the instance's limits are
 * divided between workers (shares add up exactly; never zero; offsets number slots once).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveWorkerCount, MAX_WORKER_PROCESSES } from '../../../src/workers/count';
import { share, shareOffset, workerConfig, SPLIT_KEYS } from '../../../src/workers/shares';
import { loadConfigText } from '../../../src/config/load';

const BACKEND = "backend_hostname0 = 'localhost'\nbackend_port0 = 5432\n";

test('worker_processes: a number, or auto = the cores; anything else is refused naming the key', () => {
  assert.equal(resolveWorkerCount('1'), 1);
  assert.equal(resolveWorkerCount(' 4 '), 4);
  assert.equal(resolveWorkerCount('auto', 16), 16);
  assert.equal(resolveWorkerCount('AUTO', 1), 1);
  assert.equal(resolveWorkerCount('auto', 10_000), MAX_WORKER_PROCESSES);
  for (const bad of ['0', '-1', 'two', '1.5', '', `${MAX_WORKER_PROCESSES + 1}`]) {
    assert.throws(() => resolveWorkerCount(bad), /^Error: worker_processes: /, bad);
  }
});

test('the default is one process and the key loads from pgpool.conf', () => {
  assert.equal(loadConfigText(BACKEND + '', '/tmp/pgpool.conf').config.worker_processes, '1');
  assert.equal(loadConfigText(BACKEND + "worker_processes = 'auto'\n", '/tmp/pgpool.conf').config.worker_processes, 'auto');
});

test('shares add up to the total exactly, differ by at most one, and are never zero', () => {
  for (const total of [1, 2, 3, 7, 10, 32, 100]) {
    for (const count of [1, 2, 3, 4, 16]) {
      const parts = Array.from({ length: count }, (_, k) => share(total, k, count));
      assert.ok(parts.every((p) => p >= 1), `${total}/${count}: ${parts}`);
      if (total >= count) {
        assert.equal(parts.reduce((a, b) => a + b, 0), total, `${total}/${count}: ${parts}`);
        assert.ok(Math.max(...parts) - Math.min(...parts) <= 1);
      } else {
        assert.equal(parts.reduce((a, b) => a + b, 0), count, 'fewer than one each: one each');
      }
      for (let k = 0; k < count; k++) assert.equal(shareOffset(total, k, count), parts.slice(0, k).reduce((a, b) => a + b, 0));
    }
  }
  assert.equal(share(0, 1, 2), 0, 'a limit of 0 (off) stays off');
});

test('workerConfig splits the limits, keeps everything else, and is the identity for one worker', () => {
  const c = loadConfigText(BACKEND + 'num_init_children = 33\nmax_client_conn = 100\ndefault_pool_size = 5\nreserve_pool_size = 2\nclient_connection_rate_limit = 9\nport = 7777\n', '/tmp/pgpool.conf').config;
  assert.equal(workerConfig(c, 0, 1), c);
  const w0 = workerConfig(c, 0, 2);
  const w1 = workerConfig(c, 1, 2);
  for (const k of SPLIT_KEYS) assert.equal(w0[k] + w1[k], c[k], k);
  assert.equal(w0.num_init_children, 17);
  assert.equal(w1.num_init_children, 16);
  assert.equal(w0.port, 7777);
  // Each worker may queue as many clients as the instance (2 × 33), not its share's 2 × 17.
  assert.ok(w1.listen_backlog_multiplier * w1.num_init_children >= 2 * 33);
  assert.ok(Object.isFrozen(w0));
});

test('the shmem query cache is split: the workers\' bytes and entries add up to the configured bounds', () => {
  const c = loadConfigText(BACKEND + 'memory_cache_enabled = on\nmemqcache_total_size = 1000001\nmemqcache_max_num_cache = 7\n', '/tmp/pgpool.conf').config;
  for (const count of [2, 3, 4]) {
    const parts = Array.from({ length: count }, (_, k) => workerConfig(c, k, count));
    assert.equal(parts.reduce((a, w) => a + w.memqcache_total_size, 0), 1000001, `total_size over ${count}`);
    assert.equal(parts.reduce((a, w) => a + w.memqcache_max_num_cache, 0), 7, `max_num_cache over ${count}`);
    // What is not a bound stays the instance's.
    for (const w of parts) assert.equal(w.memqcache_maxcache, c.memqcache_maxcache);
  }
});
