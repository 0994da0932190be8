/**
 * Helpers for running pgpool-II's `pgproto` transcripts (src/test/extended-query-test in
 * pgpool-II) against pgmaitre: find the tool, read a transcript's `##` pgpool.conf lines, run it,
 * normalise what legitimately differs between the recorded transcript and ours, and read the node
 * of each statement from pgmaitre's `log_per_node_statement` lines.
 */
import fs from 'node:fs';
import path from 'node:path';
import { exec, type ExecResult } from './exec';

/** Where Debian's pgpool2 (and a source install) put pgproto. */
const PGPROTO_PATHS = ['/usr/sbin/pgproto', '/usr/bin/pgproto', '/usr/local/bin/pgproto'];

/** Path of the pgproto binary, or null when pgpool2 is not installed. */
export function findPgproto(): string | null {
  for (const p of PGPROTO_PATHS) if (fs.existsSync(p)) return p;
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    if (dir && fs.existsSync(path.join(dir, 'pgproto'))) return path.join(dir, 'pgproto');
  }
  return null;
}

/** The pgpool.conf settings a transcript asks for: its lines starting `##`, without the marks. */
export function transcriptSettings(text: string): string[] {
  return text.split('\n').filter((l) => l.startsWith('##')).map((l) => l.slice(2).trim()).filter((l) => l !== '');
}

/** Runs `pgproto -f file` against 127.0.0.1:port as postgres (never rejects; killed after timeoutMs). */
export function runPgproto(bin: string, port: number, file: string, timeoutMs = 20_000): Promise<ExecResult> {
  return exec(bin, ['-h', '127.0.0.1', '-p', String(port), '-d', 'postgres', '-u', 'postgres', '-f', file], { timeoutMs });
}

/**
 * Normalises a pgproto transcript for comparison. In ErrorResponse/NoticeResponse lines the
 * source file, line and routine fields (F, L, R) depend on the PostgreSQL version and build:
 * pgpool-II's own runner replaces the line number with `xxx`; we do that for all three, since
 * the expected transcripts were recorded against an older server (e.g. `dropcmds.c L 483`
 * there vs `L 491` in 15). Trailing blank lines are dropped.
 */
export function normaliseTranscript(text: string): string[] {
  const lines = text.replace(/\r/g, '').split('\n');
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines.map((l) => /(ErrorResponse|NoticeResponse)\(/.test(l)
    ? l.replace(/ ([FLR]) \S+(?= [A-Za-z] | \)$)/g, ' $1 xxx')
    : l);
}

/** One `log_per_node_statement` line of pgmaitre's log: node id and statement text. */
export interface NodeStatement {
  readonly node: number;
  readonly statement: string;
}

/** The `DB node id: N backend pid: P statement: SQL` lines of a pino log, in order. */
export function nodeStatements(log: string): NodeStatement[] {
  const out: NodeStatement[] = [];
  for (const line of log.split('\n')) {
    if (!line.includes('DB node id:')) continue;
    let msg: string;
    try {
      msg = String((JSON.parse(line) as { msg?: unknown }).msg ?? '');
    } catch {
      msg = line;
    }
    const m = /DB node id: (\d+) backend pid: \S+ statement: ([\s\S]*)$/.exec(msg);
    if (m) out.push({ node: Number(m[1]), statement: m[2]! });
  }
  return out;
}
