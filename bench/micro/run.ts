/**
 * `npm run bench:micro`: runs every micro benchmark in this folder, one process each (so one's
 * JIT state does not colour another's figures).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

for (const f of fs.readdirSync(__dirname).filter((n) => n.endsWith('.js') && n !== 'run.js' && n !== 'frame.js').sort()) {
  process.stdout.write(`\n## ${f.replace(/\.js$/, '')}\n`);
  spawnSync(process.execPath, [path.join(__dirname, f)], { stdio: 'inherit' });
}
