/**
 * util/jit.ts: the server process records type feedback from a function's first call
 * (--no-lazy-feedback-allocation), so that code paths its first connections ran are not met
 * "without feedback" by optimized code later (a deoptimization per such path; issue 21 item 5).
 * Fails if loading the entry point no longer applies the flag (a Node release that freezes V8's
 * flags after start, or drops this one), or if the entry point stops loading util/jit first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const dist = path.join(__dirname, '..', '..', '..', 'src');

/** Whether a function called once has a feedback vector, in a fresh node after `prelude`. */
function feedbackAfterOneCall(prelude: string): boolean {
  const code = `${prelude}\nconst f = new Function('x', 'return x.a + 1;');\nf({ a: 1 });\n%DebugPrint(f);\n`;
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', '-e', code], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const line = r.stdout.split('\n').find((l) => l.includes('feedback vector'));
  assert.ok(line !== undefined, `no feedback vector line in %DebugPrint's output:\n${r.stdout}`);
  return !line.includes('No feedback vector');
}

test('without util/jit, a function called once has no feedback (the default this module changes)', () => {
  assert.equal(feedbackAfterOneCall(''), false);
});

test('loading the entry point (dist/src/main.js) makes V8 record feedback from the first call', () => {
  assert.equal(feedbackAfterOneCall(`require(${JSON.stringify(path.join(dist, 'main.js'))});`), true);
});

test('main.ts loads util/jit before any other module', () => {
  const js = fs.readFileSync(path.join(dist, 'main.js'), 'utf8');
  const requires = [...js.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]);
  assert.equal(requires[0], './util/jit');
});
