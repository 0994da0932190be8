/** Tests of diffConfig: hot vs restart keys, per-backend fields, added/removed nodes. */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { diffConfig } from '../../../src/config/diff';
import { loadConfigText } from '../../../src/config/load';

const base = "backend_hostname0 = 'a'\nbackend_hostname1 = 'b'\n";
const load = (extra: string, backends = base) => loadConfigText(backends + extra, '/etc/p/pgpool.conf').config;

test('identical snapshots have no changes', () => {
  assert.deepEqual(diffConfig(load(''), load('')), { changed: [], restartOnly: [] });
});

test('hot and restart keys are told apart', () => {
  const d = diffConfig(load('port = 9999\nlog_statement = off\n'), load('port = 6432\nlog_statement = on\n'));
  assert.deepEqual(d.changed, [
    { key: 'port', from: 9999, to: 6432, reload: 'restart' },
    { key: 'log_statement', from: false, to: true, reload: 'hot' },
  ]);
  assert.deepEqual(d.restartOnly, ['port']);
});

test('list values compare by content', () => {
  const d = diffConfig(load("write_function_list = 'a,b'\n"), load("write_function_list = 'a, b'\n"));
  assert.deepEqual(d.changed, []);
});

test('backend changes: weight hot, host restart, added node hot, removed node restart', () => {
  const d1 = diffConfig(load('backend_weight1 = 1\n'), load('backend_weight1 = 0\n'));
  assert.deepEqual(d1.changed, [{ key: 'backend_weight1', from: 1, to: 0, reload: 'hot' }]);
  const d2 = diffConfig(load(''), load('', "backend_hostname0 = 'a'\nbackend_hostname1 = 'c'\n"));
  assert.deepEqual(d2.restartOnly, ['backend_hostname1']);
  const d3 = diffConfig(load(''), load('', `${base}backend_hostname2 = 'c'\n`));
  assert.ok(d3.changed.length > 0 && d3.changed.every((c) => c.reload === 'hot' && c.key.endsWith('2')));
  const d4 = diffConfig(load('', `${base}backend_hostname2 = 'c'\n`), load(''));
  assert.ok(d4.restartOnly.includes('backend_hostname2'));
});

test('per-node health check override shows as a per-node key', () => {
  const d = diffConfig(load(''), load('health_check_period1 = 30\n'));
  assert.deepEqual(d.changed, [{ key: 'health_check_period1', from: 0, to: 30, reload: 'hot' }]);
});
