/**
 * The logging collector's file (log/log-file.ts), pgpool's log_standby_delay lines and
 * log_backend_messages (terse/verbose), on real files and a recording logger.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { LogFile, strftime, type LogFileOptions } from '../../../src/log/log-file';
import { standbyDelayLine } from '../../../src/health/replication-checker';
import { BackendMessageLog } from '../../../src/log/backend-messages';
import { createLogger } from '../../../src/log/logger';

function opts(dir: string, o: Partial<LogFileOptions> = {}): LogFileOptions {
  return { log_directory: dir, log_filename: 'pgpool-%Y-%m-%d_%H%M%S.log', log_file_mode: 0o600, log_truncate_on_rotation: false, log_rotation_age: 0, log_rotation_size: 0, ...o };
}

test('strftime: the escapes log_filename uses', () => {
  const d = new Date(2026, 11, 7, 3, 4, 5);
  assert.equal(strftime('pgpool-%Y-%m-%d_%H%M%S.log', d), 'pgpool-2026-12-07_030405.log');
  assert.equal(strftime('pgpool-%a-%j-%%.log', d), 'pgpool-Mon-341-%.log');
});

test('logging_collector: lines go to log_directory/log_filename with log_file_mode; pcp_log_rotate begins the file of the moment', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-logfile-'));
  try {
    let now = new Date(2026, 0, 1, 10, 0, 0);
    const f = new LogFile(opts(path.join(dir, 'sub')), () => now);
    const log = createLogger({ log_min_messages: 'info', log_format: 'json' }, f);
    log.info({ event: 'x' }, 'first line');
    const first = path.join(dir, 'sub', 'pgpool-2026-01-01_100000.log');
    assert.equal(f.current, first);
    assert.match(fs.readFileSync(first, 'utf8'), /"msg":"first line"/);
    assert.equal(fs.statSync(first).mode & 0o777, 0o600);
    now = new Date(2026, 0, 1, 11, 30, 0);
    assert.equal(f.rotate(), path.join(dir, 'sub', 'pgpool-2026-01-01_113000.log'));
    log.info('second line');
    assert.doesNotMatch(fs.readFileSync(first, 'utf8'), /second line/);
    assert.match(fs.readFileSync(f.current, 'utf8'), /second line/);
    // A fixed name (logrotate moved the file away): rotate reopens the name, appending.
    f.reconfigure(opts(path.join(dir, 'sub'), { log_filename: 'pgpool.log' }));
    log.info('third');
    fs.renameSync(f.current, `${f.current}.1`);
    f.rotate();
    log.info('fourth');
    assert.match(fs.readFileSync(path.join(dir, 'sub', 'pgpool.log'), 'utf8'), /fourth/);
    assert.doesNotMatch(fs.readFileSync(path.join(dir, 'sub', 'pgpool.log'), 'utf8'), /third/);
    f.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('log_rotation_size: a new file once the current one reaches it', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-logfile-'));
  try {
    let n = 0;
    const f = new LogFile(opts(dir, { log_rotation_size: 1, log_filename: 'p-%S.log' }), () => new Date(2026, 0, 1, 0, 0, n++));
    for (let i = 0; i < 30; i++) f.write(`${'x'.repeat(99)}\n`);
    f.close();
    const files = fs.readdirSync(dir).sort();
    assert.ok(files.length >= 2, files.join(','));
    assert.ok(fs.statSync(path.join(dir, files[0]!)).size >= 1024);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('log_standby_delay: always, if_over_threshold (bytes or time), none, in pgpool\'s words', () => {
  const c = (mode: 'always' | 'if_over_threshold' | 'none', bytes = 0, ms = 0) => ({ log_standby_delay: mode, delay_threshold: bytes, delay_threshold_by_time: ms });
  assert.equal(standbyDelayLine(c('always'), 1, 0, 4096, null), 'Replication of node: 1 is behind 4096 bytes from the primary server (node: 0)');
  assert.equal(standbyDelayLine(c('always'), 1, 0, 0, null), null);
  assert.equal(standbyDelayLine(c('if_over_threshold'), 1, 0, 4096, null), null, 'no threshold set: nothing is over it');
  assert.equal(standbyDelayLine(c('if_over_threshold', 1000), 2, 0, 4096, null), 'Replication of node: 2 is behind 4096 bytes from the primary server (node: 0)');
  assert.equal(standbyDelayLine(c('if_over_threshold', 10000), 2, 0, 4096, null), null);
  assert.equal(standbyDelayLine(c('if_over_threshold', 0, 500), 1, 0, 4096, 1.5), 'Replication of node: 1 is behind 1.500000 second(s) from the primary server (node: 0)');
  assert.equal(standbyDelayLine(c('if_over_threshold', 0, 2000), 1, 0, 4096, 1.5), null);
  assert.equal(standbyDelayLine(c('none', 1), 1, 0, 4096, 9), null);
});

test('log_backend_messages: verbose logs each message, terse each change of kind with the repeats', () => {
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s).msg as string); } });
  const codes = (s: string): number[] => [...s].map((ch) => ch.charCodeAt(0));
  const terse = new BackendMessageLog('terse', log, 1);
  for (const c of codes('TDDDCZ')) terse.message(c, 1);
  assert.deepEqual(lines, [
    'RowDescription message from backend 1', 'DataRow message from backend 1', 'last DataRow message from backend 1 repeated 2 times',
    'CommandComplete message from backend 1', 'ReadyForQuery message from backend 1',
  ]);
  lines.length = 0;
  const verbose = new BackendMessageLog('verbose', log, 1);
  for (const c of codes('DD')) verbose.message(c, 0);
  assert.deepEqual(lines, ['DataRow message from backend 0', 'DataRow message from backend 0']);
});
