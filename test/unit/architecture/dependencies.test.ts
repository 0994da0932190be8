/**
 * Enforces the module dependency table of docs/architecture.md: who may import whom in src/.
 * Reads every src file's relative imports (type-only imports count too: they are coupling).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '../../../../src');

/** module → modules it may import (besides itself). Top-level files (app.ts, main.ts) may import anything. */
const ALLOWED: Record<string, readonly string[]> = {
  util: [],
  protocol: ['util'],
  config: ['util'],
  errors: ['protocol', 'util'],
  log: ['config', 'util'],
  classify: ['util'],
  cluster: ['config', 'log', 'errors', 'util'],
  backend: ['protocol', 'config', 'log', 'errors', 'util'],
  pool: ['config', 'log', 'errors', 'util'],
  router: ['classify', 'cluster', 'config', 'errors', 'util'],
  health: ['cluster', 'backend', 'config', 'log', 'errors', 'util'],
  failover: ['cluster', 'health', 'config', 'log', 'errors', 'util'],
  admin: ['cluster', 'pool', 'config', 'errors', 'protocol', 'util'],
  // The session core does no I/O: no backend, pool, frontend, health or sockets.
  core: ['protocol', 'classify', 'router', 'cluster', 'config', 'errors', 'log', 'admin', 'util'],
  // The query cache implements the core's hook (core/cache-port.ts) and asks the catalog on side connections.
  cache: ['core', 'protocol', 'classify', 'backend', 'config', 'log', 'errors', 'util'],
  frontend: ['core', 'cache', 'protocol', 'classify', 'router', 'pool', 'backend', 'cluster', 'admin', 'errors', 'config', 'log', 'util', 'health'],
  ports: ['core', 'protocol', 'backend', 'frontend', 'router', 'cluster', 'admin', 'errors', 'config', 'log', 'util'],
  demo: ['util', 'config', 'log'],
  pcp: ['admin', 'cluster', 'pool', 'config', 'errors', 'protocol', 'log', 'util'],
  http: ['admin', 'cluster', 'pool', 'config', 'errors', 'log', 'util'],
  // Online recovery drives the failover manager's attach (through app.ts) and probes nodes like health/.
  recovery: ['cluster', 'health', 'failover', 'config', 'log', 'errors', 'util'],
};

/**
 * Process entries besides main.ts (npm run demo; the supervisor and workers of worker_processes > 1,
 * which start app.ts): like main.ts they may import anything.
 */
const ENTRY_MODULES = new Set(['demo', 'workers']);

function* files(dir: string): Generator<string> {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* files(p);
    else if (p.endsWith('.ts')) yield p;
  }
}

function moduleOf(file: string): string | null {
  const rel = path.relative(root, file).split(path.sep);
  return rel.length > 1 ? rel[0]! : null;
}

test('src modules import only what the dependency table allows', () => {
  const violations: string[] = [];
  for (const file of files(root)) {
    const from = moduleOf(file);
    if (from === null || ENTRY_MODULES.has(from)) continue; // app.ts, main.ts, demo/
    const allowed = ALLOWED[from];
    assert.ok(allowed !== undefined, `module src/${from} is not in the dependency table`);
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:import|export)[^'"]*from\s+'(\.[^']+)'|require\('(\.[^']+)'\)/g)) {
      const spec = (m[1] ?? m[2])!;
      const target = path.resolve(path.dirname(file), spec);
      if (!target.startsWith(root)) continue;
      const to = moduleOf(target + '.ts');
      if (to === null) {
        violations.push(`${path.relative(root, file)} imports a top-level file (${spec})`);
      } else if (to !== from && !allowed.includes(to)) {
        violations.push(`${path.relative(root, file)}: ${from} must not import ${to} (${spec})`);
      }
    }
  }
  assert.deepEqual(violations, []);
});
