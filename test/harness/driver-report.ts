/**
 * The JSON report a driver check program (JdbcCheck.java, psycopg2_check.py) prints: one entry
 * per check with ok/failure. `DriverRun` holds one run and hands each test its check, skipping
 * the test when the driver is not installed.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { describeResult, type ExecResult } from './exec';

/** One check of the report. */
export type Check = Record<string, unknown> & { ok: boolean; failure?: string; trace?: string };

/** What the check program prints. */
export interface DriverReport {
  readonly driver: unknown;
  readonly checks: Record<string, Check>;
}

/** One run of a driver check program. */
export class DriverRun {
  skipReason = '';
  run: ExecResult | undefined;
  report: DriverReport | undefined;

  constructor(private readonly program: string) {}

  /** Records the program's output (its stdout must be the JSON report). */
  finished(run: ExecResult): void {
    this.run = run;
    try {
      this.report = JSON.parse(run.stdout) as DriverReport;
    } catch {
      this.report = undefined;
    }
  }

  /** The named check, asserted ok; undefined (test skipped) when the driver is missing. */
  check(t: TestContext, name: string): Check | undefined {
    if (this.skipReason) {
      t.skip(this.skipReason);
      return undefined;
    }
    assert.ok(this.report, `${this.program} printed no JSON\n${this.run ? describeResult(this.run) : ''}`);
    const c = this.report.checks[name];
    assert.ok(c, `check ${name} missing`);
    assert.equal(c.ok, true, `${name}: ${c.failure}\n${c.trace ?? ''}\n${this.run?.stderr ?? ''}`);
    return c;
  }
}
