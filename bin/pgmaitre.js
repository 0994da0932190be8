#!/usr/bin/env node
// Entry point installed as `pgmaitre` (npx pgmaitre -n -f pgpool.conf). The TypeScript build lives in dist/.
require('../dist/src/main.js').cli(process.argv.slice(2));
