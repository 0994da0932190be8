import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { createLogger, logLine } from '../../../src/log/logger';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({ write(c: Buffer, _e, cb) { chunks.push(c.toString()); cb(); } });
  return { stream, lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

test('LOG-level lines (log_per_node_statement, log_statement...) are written under the default log_min_messages = warning', () => {
  const out = capture();
  const log = createLogger({ log_min_messages: 'warning' }, out.stream);
  log.info('hidden');
  logLine(log, { event: 'node_statement' }, 'DB node id: 0 backend pid: 1 statement: SELECT 1');
  assert.deepEqual(out.lines().map((l) => [l['level'], l['msg']]), [['log', 'DB node id: 0 backend pid: 1 statement: SELECT 1']]);
});

test('log_min_messages = fatal hides LOG lines; a plain pino logger gets them at info', () => {
  const out = capture();
  logLine(createLogger({ log_min_messages: 'fatal' }, out.stream), {}, 'hidden');
  assert.equal(out.lines().length, 0);
  const plain = capture();
  logLine(pino(plain.stream), {}, 'shown');
  assert.equal(plain.lines()[0]?.['level'], 30);
});
