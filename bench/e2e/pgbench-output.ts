// pgbench-output.ts — run pgbench and parse its summary (tps, latency, transactions, failures),
// and read a process's CPU time from /proc to charge proxies per query.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

/** What one pgbench run reported. */
export interface PgbenchSummary {
  /** tps excluding connection time; undefined when pgbench printed none. */
  readonly tps: number | undefined;
  readonly latencyMs: number | undefined;
  readonly transactions: number;
  readonly failed: number;
  /** Clients aborted by errors ("client N script M aborted in command ..."). */
  readonly aborted: number;
  /** First error line, if any. */
  readonly error: string | undefined;
}

/** Parse pgbench's textual summary (PostgreSQL 13-17 wording). */
export function parsePgbench(out: string): PgbenchSummary {
  const num = (re: RegExp): number | undefined => {
    const m = re.exec(out);
    return m?.[1] !== undefined ? Number(m[1]) : undefined;
  };
  const tps = num(/^tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing)\)/m);
  const error = /^.*(?:ERROR|FATAL|error):.*$/m.exec(out)?.[0];
  return {
    tps,
    latencyMs: num(/^latency average = ([\d.]+) ms/m),
    transactions: num(/^number of transactions actually processed: (\d+)/m) ?? 0,
    failed: num(/^number of failed transactions: (\d+)/m) ?? 0,
    aborted: (out.match(/aborted in command/g) ?? []).length,
    error,
  };
}

let clkTck: number | undefined;

/** Kernel clock ticks per second (getconf CLK_TCK; 100 on Linux). */
export function clockTicks(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** utime+stime of a process (all its threads) in microseconds, from /proc/<pid>/stat. */
export function processCpuMicros(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // fields after "(comm)": state is field 3; utime and stime are fields 14 and 15
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(rest[11]) + Number(rest[12]);
  return (ticks * 1e6) / clockTicks();
}
