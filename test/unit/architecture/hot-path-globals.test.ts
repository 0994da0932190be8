/**
 * In Node.js 20 `Buffer`, `performance` and `process` are accessor properties of the global object
 * (lazy getters). Optimized code cannot fold a global accessor: each `Buffer.from(...)` or
 * `performance.now()` on a per-request path went through V8's LoadGlobalIC and a getter call (seen
 * in perf under pgbench -S at 64 clients, issue 17, item 9). The modules of the per-request path
 * import them from node:buffer / node:perf_hooks instead (a plain property of a module object).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '../../../../src');

/** The per-request path: the session core and what it calls, the wire codecs, the socket glue, the classifier and router. */
const HOT = [
  'core', 'protocol', 'classify', 'router',
  'util/fast-read.ts', 'util/fast-write.ts', 'util/raw-socket.ts',
  'backend/server-connection.ts', 'backend/message-scanner.ts', 'frontend/session.ts', 'admin/latency.ts',
];
/** (The query cache's glue is its own path: the cache hit's.) */
const SKIP = new Set(['core/cache-glue.ts', 'core/cache-port.ts']);

function* files(rel: string): Generator<string> {
  const p = path.join(root, rel);
  if (fs.statSync(p).isFile()) {
    yield rel;
    return;
  }
  for (const e of fs.readdirSync(p)) if (e.endsWith('.ts')) yield path.join(rel, e);
}

/** The code of a TypeScript file without comments and string literals. */
function code(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\/\/[^\n]*/g, '')
    .replace(/'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`/g, "''");
}

test('the per-request path reads Buffer and performance from their modules, not from global accessors', () => {
  const missing: string[] = [];
  for (const dir of HOT) {
    for (const rel of files(dir)) {
      if (SKIP.has(rel)) continue;
      const text = fs.readFileSync(path.join(root, rel), 'utf8');
      const c = code(text);
      if (/(?<![\w.$])Buffer\s*[.(]/.test(c) && !text.includes("import { Buffer } from 'node:buffer';")) missing.push(`${rel}: Buffer`);
      if (/(?<![\w.$])performance\s*\./.test(c) && !text.includes("import { performance } from 'node:perf_hooks';")) missing.push(`${rel}: performance`);
      if (/(?<![\w.$])process\s*\.(?!binding|platform|env)/.test(c)) missing.push(`${rel}: process`);
    }
  }
  assert.deepEqual(missing, []);
});
