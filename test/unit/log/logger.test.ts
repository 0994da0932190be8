import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { createLogger, logLine, resolveLogFormat } from '../../../src/log/logger';

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

test('log_format: json and text as asked; auto is text on a terminal and JSON lines otherwise', () => {
  assert.equal(resolveLogFormat('json', true), 'json');
  assert.equal(resolveLogFormat('text', false), 'text');
  assert.equal(resolveLogFormat('auto', true), 'text');
  assert.equal(resolveLogFormat('auto', false), 'json');
  assert.equal(resolveLogFormat(undefined, false), 'json');
});

test('log_format = text renders time, level, message and the fields, one line each, secrets redacted', () => {
  const chunks: string[] = [];
  const stream = new Writable({ write(c: Buffer, _e, cb) { chunks.push(c.toString()); cb(); } });
  const log = createLogger({ log_min_messages: 'info', log_format: 'text' }, stream);
  log.warn({ event: 'node_change', node_id: 1, reason: 'health check failed' }, 'node 1 status up -> down');
  logLine(log, { event: 'statement' }, 'statement: SELECT 1');
  log.error({ event: 'backend_error', err: new Error('connect ECONNREFUSED 127.0.0.1:5432'), password: 'secret' }, 'cannot connect');
  const lines = chunks.join('').split('\n').filter(Boolean);
  assert.equal(lines.length, 3, chunks.join(''));
  assert.match(lines[0]!, /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] WARN: node 1 status up -> down {2}event=node_change node_id=1 reason="health check failed"$/);
  assert.match(lines[1]!, /^\[.*\] LOG: statement: SELECT 1 {2}event=statement$/);
  assert.match(lines[2]!, /^\[.*\] ERROR: cannot connect {2}event=backend_error err="connect ECONNREFUSED 127.0.0.1:5432" password="\[redacted\]"$/);
  for (const l of lines) assert.ok(!l.includes('{'), `no JSON in a text line: ${l}`);
});
